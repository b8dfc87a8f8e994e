"""Trusted aggregation: `table:` actions, executed by the platform over the workspace."""
