"""The workspace as a DP query sees it: column metadata from `_shuyu_columns`, and privacy units.

A query is checked against what the workspace actually holds, not against the manifests: which
columns survived the grant, their role, their transform (a pseudonymised key, a top/bottom-coded
value), their bounds and public categories, and their DuckDB type. This module reads that into a
`Schema` and decides, per dataset, which column is the privacy unit (the pseudonymised person
key) whose rows the engine bounds per person.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from shuyu.errors import PlatformError

UNIT_IDENTIFIER_KIND = "cn_resident_id"


@dataclass(frozen=True)
class ColumnInfo:
    """One workspace column as `_shuyu_columns` describes it, plus its DuckDB type."""

    dataset: str
    name: str
    type: str  # manifest type
    sql_type: str  # type in the workspace table (after the transform)
    role: str
    transform: str
    transform_options: tuple[tuple[str, Any], ...]
    bounds: tuple[Any, Any] | None
    categories: tuple[str, ...] | None

    @property
    def is_identifier(self) -> bool:
        return self.role == "direct_identifier" or self.transform == "pseudonymise"

    @property
    def public(self) -> bool:
        """May appear in WHERE / GROUP BY: not an identifier, not a sensitive value."""
        return not self.is_identifier and self.role != "sensitive"

    def value_bounds(self) -> tuple[float, float] | None:
        """Numeric bounds valid for the workspace values, or None."""
        if self.type not in ("integer", "float") or self.transform not in (
            "keep",
            "top_bottom_code",
        ):
            return None
        bounds = None if self.bounds is None else (float(self.bounds[0]), float(self.bounds[1]))
        if self.transform == "top_bottom_code":
            opts = dict(self.transform_options)
            coded = (float(opts["lower"]), float(opts["upper"]))
            bounds = (
                coded if bounds is None else (max(bounds[0], coded[0]), min(bounds[1], coded[1]))
            )
            if bounds[0] > bounds[1]:
                bounds = coded
        return bounds


Schema = dict[str, dict[str, ColumnInfo]]


def load_columns(workspace: Path | str) -> Schema:
    """The column metadata of a workspace file (opened read-only)."""
    try:
        con = duckdb.connect(str(workspace), read_only=True)
    except duckdb.Error as exc:
        raise PlatformError(
            f"cannot open the workspace {workspace}: {str(exc).splitlines()[0]}",
            fix="build the workspace first (shuyu workspace build)",
        ) from exc
    try:
        return read_columns(con, None)
    finally:
        con.close()


def read_columns(con: duckdb.DuckDBPyConnection, catalog: str | None) -> Schema:
    prefix = f'"{catalog}".' if catalog else ""
    try:
        rows = con.execute(
            f"SELECT dataset, column_name, type, role, transform, bounds, categories FROM {prefix}_shuyu_columns"
        ).fetchall()
        types = {
            (t, c): str(dt)
            for t, c, dt in con.execute(
                "SELECT table_name, column_name, data_type FROM duckdb_columns() "
                + (
                    "WHERE database_name = ?"
                    if catalog
                    else "WHERE database_name = current_database()"
                ),
                [catalog] if catalog else [],
            ).fetchall()
        }
    except duckdb.Error as exc:
        raise PlatformError(
            "the file is not a shuyu workspace (no _shuyu_columns table)",
            fix="run DP queries on a workspace built by the platform",
        ) from exc
    schema: Schema = {}
    for dataset, column, typ, role, transform, bounds, categories in rows:
        parsed = json.loads(transform)
        if isinstance(parsed, str):
            name, options = parsed, {}
        else:
            name, options = next(iter(parsed.items()))
            options = options if isinstance(options, dict) else {"to": options}
        schema.setdefault(dataset, {})[column] = ColumnInfo(
            dataset=dataset,
            name=column,
            type=typ,
            sql_type=types.get((dataset, column), "VARCHAR"),
            role=role,
            transform=name,
            transform_options=tuple(sorted(options.items())),
            bounds=tuple(json.loads(bounds)) if bounds else None,  # type: ignore[arg-type]
            categories=tuple(categories) if categories is not None else None,
        )
    return schema


def resolve_units(
    schema: Schema,
    unit_column: str | Mapping[str, str] | None = None,
    identifier_kinds: Mapping[tuple[str, str], str | None] | None = None,
) -> dict[str, str]:
    """dataset -> privacy-unit column, for the datasets that hold persons.

    Explicit `unit_column` (one name for every dataset that has it, or a dataset -> column map)
    wins. Otherwise: a column that is a direct identifier pseudonymised in the workspace and,
    when `identifier_kinds` (from the manifests) is given, of kind cn_resident_id. Several
    candidates without manifest kinds is an error: configure the unit.
    """
    units: dict[str, str] = {}
    for dataset, columns in schema.items():
        if isinstance(unit_column, Mapping):
            if dataset in unit_column:
                units[dataset] = unit_column[dataset]
            continue
        if isinstance(unit_column, str):
            if unit_column in columns:
                units[dataset] = unit_column
            continue
        candidates = [
            c.name
            for c in columns.values()
            if c.role == "direct_identifier" and c.transform == "pseudonymise"
        ]
        if identifier_kinds is not None:
            candidates = [
                c for c in candidates if identifier_kinds.get((dataset, c)) == UNIT_IDENTIFIER_KIND
            ]
        if len(candidates) == 1:
            units[dataset] = candidates[0]
        elif len(candidates) > 1:
            raise PlatformError(
                f"dataset {dataset} has several pseudonymised person keys ({', '.join(candidates)})",
                fix="configure the privacy unit column (unit_column=...)",
            )
    for dataset, column in units.items():
        if dataset in schema and column not in schema[dataset]:
            raise PlatformError(f"privacy unit column {column} is not in dataset {dataset}")
    return units
