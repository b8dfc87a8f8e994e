"""数域 shuyu: the platform kernel (settings, errors, metadata store, platform home)."""

__version__ = "0.1.0"
