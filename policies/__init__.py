"""Access policies: grants of datasets to projects, with per-column transforms and limits."""
