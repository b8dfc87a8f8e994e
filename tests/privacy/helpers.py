"""Hand-made workspace files laid out like policies.workspace builds them (tables + _shuyu_columns)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd


@dataclass(frozen=True)
class Col:
    name: str
    sql_type: str  # workspace type
    type: str  # manifest type
    role: str
    transform: Any = "keep"
    bounds: Sequence[Any] | None = None
    categories: Sequence[str] | None = None


def person(name: str = "person_id") -> Col:
    return Col(name, "VARCHAR", "string", "direct_identifier", "pseudonymise")


def write_workspace(
    path: Path, datasets: dict[str, tuple[list[Col], Iterable[Sequence[Any]]]]
) -> Path:
    con = duckdb.connect(str(path))
    try:
        con.execute(
            "CREATE TABLE _shuyu_columns (dataset VARCHAR, column_name VARCHAR, type VARCHAR, role VARCHAR, "
            "transform VARCHAR, bounds VARCHAR, categories VARCHAR[])"
        )
        con.execute(
            "CREATE TABLE _shuyu_workspace (project VARCHAR, kind VARCHAR, grant_id VARCHAR, policy_hash VARCHAR, "
            "dataset VARCHAR, dataset_version INTEGER, snapshot_sha256 VARCHAR, built_at TIMESTAMPTZ)"
        )
        for name, (columns, rows) in datasets.items():
            cols = ", ".join(f'"{c.name}" {c.sql_type}' for c in columns)
            con.execute(f'CREATE TABLE "{name}" ({cols})')
            data = [list(r) for r in rows]
            if data:  # one vectorised insert (executemany goes row by row)
                frame = pd.DataFrame(data, columns=[c.name for c in columns], dtype=object)
                con.register("frame", frame)
                con.execute(f'INSERT INTO "{name}" SELECT * FROM frame')
                con.unregister("frame")
            for c in columns:
                con.execute(
                    "INSERT INTO _shuyu_columns VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [
                        name,
                        c.name,
                        c.type,
                        c.role,
                        json.dumps(c.transform),
                        json.dumps(list(c.bounds)) if c.bounds is not None else None,
                        list(c.categories) if c.categories is not None else None,
                    ],
                )
        con.execute("CHECKPOINT")
    finally:
        con.close()
    return path


VISIT_COLUMNS = [
    person(),
    Col("district", "VARCHAR", "string", "quasi_identifier", categories=["a", "b", "c"]),
    Col("value", "DOUBLE", "float", "sensitive", bounds=[0, 100]),
    Col("unbounded", "DOUBLE", "float", "sensitive"),
    Col("note", "VARCHAR", "string", "attribute"),
    Col("day", "DATE", "date", "quasi_identifier", bounds=["2025-01-01", "2025-12-31"]),
]


def visits(path: Path, rows: Iterable[Sequence[Any]]) -> Path:
    """One dataset `visits`: (person_id, district, value, unbounded, note, day)."""
    return write_workspace(path, {"visits": (VISIT_COLUMNS, rows)})


def employment_like(path: Path) -> Path:
    """The three demo datasets' workspace columns (as the example grant produces), a few rows each."""
    contributions = [
        person("resident_id"),
        Col("enterprise_code", "VARCHAR", "string", "attribute", "pseudonymise"),
        Col(
            "district",
            "VARCHAR",
            "string",
            "quasi_identifier",
            categories=["海勃湾区", "海南区", "乌达区"],
        ),
        Col("month", "DATE", "date", "quasi_identifier", bounds=["2024-01-01", "2025-12-01"]),
        Col("wage_base", "DOUBLE", "float", "sensitive", bounds=[1000, 40000]),
        Col("pension_paid", "DOUBLE", "float", "sensitive", bounds=[160, 6400]),
        Col("bonus", "DOUBLE", "float", "sensitive"),  # no bounds in the manifest
    ]
    residents = [
        person("resident_id"),
        Col("birth_date", "VARCHAR", "date", "quasi_identifier", {"generalise": {"to": "five_year_band"}},
            bounds=["1940-01-01", "2008-12-31"]),
        Col("gender", "VARCHAR", "string", "quasi_identifier", categories=["男", "女"]),
        Col("district", "VARCHAR", "string", "quasi_identifier", categories=["海勃湾区", "海南区", "乌达区"]),
    ]  # fmt: skip
    enterprises = [
        Col("credit_code", "VARCHAR", "string", "attribute", "pseudonymise"),
        Col("industry", "VARCHAR", "string", "quasi_identifier", categories=["制造业", "建筑业"]),
        Col("district", "VARCHAR", "string", "quasi_identifier", categories=["海勃湾区", "海南区", "乌达区"]),
        Col("employees", "BIGINT", "integer", "attribute", {"top_bottom_code": {"lower": 1, "upper": 2000}},
            bounds=[1, 20000]),
        Col("registered_capital", "DOUBLE", "float", "sensitive", bounds=[10, 1000000]),
    ]  # fmt: skip
    return write_workspace(
        path,
        {
            "contributions": (
                contributions,
                [
                    ("p1", "e1", "海南区", "2025-01-01", 5000.0, 800.0, 1.0),
                    ("p2", "e2", "乌达区", "2025-02-01", 7000.0, 1120.0, 2.0),
                ],
            ),
            "residents": (
                residents,
                [("p1", "1980-1984", "男", "海南区"), ("p2", "1990-1994", "女", "乌达区")],
            ),
            "enterprises": (
                enterprises,
                [("e1", "制造业", "海南区", 10, 100.0), ("e2", "建筑业", "乌达区", 5, 50.0)],
            ),
        },
    )
