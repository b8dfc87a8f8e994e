"""The data catalog: manifests, immutable content-addressed snapshots, versions."""
