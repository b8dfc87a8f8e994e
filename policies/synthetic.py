"""Synthetic twins: data with a dataset's schema, drawn only from its manifest's declarations.

Development runs use these, so analysts can debug code without seeing a single real value.
Values come from declared categories and bounds (never from the snapshot), generated in DuckDB
with a seeded hash so a twin is reproducible. Identifier columns draw from one pool per
identifier kind, so joins across datasets (residents ⋈ contributions) still match.
"""

from __future__ import annotations

import hashlib
from datetime import date
from pathlib import Path

import duckdb

from catalog.manifest import DUCKDB_TYPES, ColumnSpec, Manifest


def write_synthetic_source(manifest: Manifest, rows: int, seed: int, target: Path) -> Path:
    exprs = [
        f'{_column_expr(name, spec, rows, seed)} AS "{name}"'
        for name, spec in manifest.columns.items()
    ]
    con = duckdb.connect()
    try:
        con.execute(
            f"COPY (SELECT {', '.join(exprs)} FROM range({int(rows)}) AS r(i) ORDER BY i) "
            f"TO '{target}' (FORMAT parquet)"
        )
    finally:
        con.close()
    return target


def _unit(name: str, seed: int) -> str:
    """A deterministic pseudo-random number in [0, 1) per row and column."""
    salt = abs(hash_text(f"{seed}:{name}"))
    return f"((hash(i, {salt}) % 1000000007) / 1000000007.0)"


def _column_expr(name: str, spec: ColumnSpec, rows: int, seed: int) -> str:
    u = _unit(name, seed)
    duck = DUCKDB_TYPES[spec.type]
    if spec.categories:
        cats = ", ".join("'" + c.replace("'", "''") + "'" for c in spec.categories)
        return (
            f"CAST(([{cats}])[1 + CAST(floor({u} * {len(spec.categories)}) AS BIGINT)] AS {duck})"
        )
    if spec.identifier_kind or spec.role == "direct_identifier":
        kind = spec.identifier_kind or name
        # residents-like tables (first rows) get each key once; others draw keys from the same pool
        return f"'SYN-{kind}-' || lpad(CAST(i % {rows} AS VARCHAR), 8, '0')"
    if spec.type in ("integer", "float"):
        lo, hi = spec.bounds or (0, 1000)
        value = f"({lo} + {u} * ({hi} - {lo}))"
        return f"CAST(round({value}) AS BIGINT)" if spec.type == "integer" else f"round({value}, 2)"
    if spec.type in ("date", "timestamp"):
        lo, hi = spec.bounds or (date(2000, 1, 1), date(2025, 12, 31))
        days = (hi - lo).days
        day = f"DATE '{lo}' + CAST(floor({u} * {days + 1}) AS INTEGER)"
        if spec.granularity == "month":  # every month in the bounds equally likely
            months = (hi.year - lo.year) * 12 + hi.month - lo.month + 1
            day = f"date_trunc('month', DATE '{lo}') + to_months(CAST(floor({u} * {months}) AS INTEGER))"
        elif spec.granularity == "year":
            day = f"date_trunc('year', DATE '{lo}') + to_years(CAST(floor({u} * {hi.year - lo.year + 1}) AS INTEGER))"
        return f"CAST({day} AS {duck})"
    if spec.type == "boolean":
        return f"{u} < 0.5"
    return f"'synthetic-{name}-' || CAST(CAST(floor({u} * 1000) AS BIGINT) AS VARCHAR)"


def hash_text(text: str) -> int:
    """A stable (not per-process-salted) 31-bit hash of text."""

    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") >> 1
