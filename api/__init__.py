"""Shells over the service layer: the `shuyu` CLI, the HTTP API and the reviewer pages."""
