"""Which workspace columns a published table may group by, and how many groups each allows.

A table is an aggregate only if its keys come from a small public domain fixed in advance: a
column with public categories, a generalising transform (year, five-year band, age band,
district), bounded integers, or dates that hold months. Anything else as a key — a pseudonym, a
wage, an exact date, free text — makes one row per person: row-level data dressed as a table.
The same rule decides what a `table:` query may GROUP BY and what a job's own table may declare
in `group_by`, so the two paths cannot disagree.
"""

from __future__ import annotations

import duckdb

from privacy.schema import ColumnInfo, Schema

# Labels a table may use for margin rows (ACRO's crosstabs write "All").
MARGIN_LABELS = ("all", "total", "合计", "总计", "全部")


def key_problem(info: ColumnInfo, monthly: bool) -> str | None:
    """Why grouping by `info` would publish row-level data, or None when it is a public grouping.

    `monthly`: the date column holds only first-of-month values (see `monthly_dates`).
    """
    where = f"{info.dataset}.{info.name}"
    if info.is_identifier:
        return f"{where} is a pseudonymised identifier: grouping by it publishes one row per person"
    if info.transform == "generalise" or info.categories:
        return None
    if info.transform == "mask":
        return f"{where} is masked, not generalised: its values are not a public grouping"
    if info.role == "sensitive":
        return f"{where} is a sensitive value: grouping by it publishes individual values"
    if info.type == "boolean":
        return None
    if info.type == "integer":
        if info.value_bounds() is not None:
            return None
        return f"{where} is an integer without manifest bounds: its groups are not fixed in advance"
    if info.type == "date":
        return (
            None
            if monthly
            else f"{where} is an exact date: grouping by it publishes row-level data"
        )
    if info.type == "timestamp":
        return f"{where} is an exact time: grouping by it publishes row-level data"
    if info.type == "float":
        return f"{where} is a continuous value: grouping by it publishes individual values"
    return f"{where} has no public categories: its values are not a fixed, public grouping"


def monthly_dates(
    con: duckdb.DuckDBPyConnection, catalog: str, schema: Schema
) -> set[tuple[str, str]]:
    """Date columns (not generalised) whose workspace values are all first days of a month.

    The manifest's `granularity` is not copied into the workspace, so the platform reads it from
    the data it holds: a month column is a bounded, public grouping; a day-level date is not.
    """
    found: set[tuple[str, str]] = set()
    for dataset, columns in schema.items():
        for info in columns.values():
            if info.type != "date" or info.transform == "generalise" or info.is_identifier:
                continue
            ok = con.execute(
                f'SELECT coalesce(bool_and(day("{info.name}") = 1), true) '
                f'FROM "{catalog}"."{dataset}"'
            ).fetchone()
            if ok is not None and ok[0]:
                found.add((dataset, info.name))
    return found
