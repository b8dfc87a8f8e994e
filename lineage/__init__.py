"""Governance: the tamper-evident ledger of every operation, and lineage queries over it."""
