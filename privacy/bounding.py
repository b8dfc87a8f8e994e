"""Contribution bounding and the one DuckDB statement that computes the true measurements.

Keeping at most k rows per person is what makes every sensitivity in `privacy.calibration`
hold, so it is done in one place: `_sql` builds the single vectorised statement (filter, rank
each person's rows by a seeded hash and keep k, clamp values to their bounds, GROUP BY with
every measurement). There is ONE bounding strategy, whatever the data: every person's rows are
ranked and the first k kept, so the running time depends on the public table sizes and not on
how many persons have more than k rows (an earlier cost-based choice between strategies moved
the run time when one person with many rows was added). Its output is true (un-noised) values
that never leave the platform; quantiles arrive as integer counts per public grid point.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from privacy.calibration import Calibrated, Measurement
from privacy.query import ParsedQuery


def _sql(
    parsed: ParsedQuery,
    calibrated: list[Calibrated],
    k: int,
    seed: int,
) -> tuple[str, list[Any]]:
    """The one statement computing the true bounded measurements per group."""
    params: list[Any] = []
    select: list[str] = [f"{parsed.unit.sql} AS __u"]
    hashed = ["__u"]
    for i, g in enumerate(parsed.groups):
        expr = f"CAST({g.ref.sql} AS VARCHAR)" if g.categories is not None else g.ref.sql
        select.append(f"{expr} AS g{i}")
        hashed.append(f"g{i}")
    values: dict[str, str] = {}  # key -> inner column name
    for c in calibrated:
        m = c.measurement
        if m.kind in ("sum", "quantile") and m.ref is not None:
            key = f"v:{m.ref.sql}"
            if key not in values:
                lo, hi = m.bounds  # type: ignore[misc]
                values[key] = f"v{len(values)}"
                select.append(
                    f"least(greatest(CAST({m.ref.sql} AS DOUBLE), {lo!r}::DOUBLE), {hi!r}::DOUBLE) AS {values[key]}"
                )
                hashed.append(values[key])
        if m.kind == "count_column" and m.ref is not None:
            key = f"r:{m.ref.sql}"
            if key not in values:
                values[key] = f"v{len(values)}"
                select.append(f"({m.ref.sql} IS NOT NULL) AS {values[key]}")
                hashed.append(values[key])
    tables = [f'ws."{t.dataset}" AS t{i}' for i, t in enumerate(parsed.tables)]
    source = tables[0]
    if parsed.join_keys is not None:
        a, b = parsed.join_keys
        source += f" JOIN {tables[1]} ON {a.sql} = {b.sql}"
    where = [f"{parsed.unit.sql} IS NOT NULL"]
    if parsed.where_sql:
        where.append(parsed.where_sql)
        params.extend(parsed.where_params)
    for g in parsed.groups:
        if g.categories is not None:
            where.append(f"list_contains(?::VARCHAR[], CAST({g.ref.sql} AS VARCHAR))")
            params.append(list(g.categories))
    inner = f"SELECT {', '.join(select)} FROM {source} WHERE {' AND '.join(where)}"
    order = f"hash({', '.join(hashed)}, ?::UBIGINT)"
    rank = f"QUALIFY row_number() OVER (PARTITION BY __u ORDER BY {order}) <= {int(k)}"
    bounded = f"{inner} {rank}"
    params.append(seed)
    outer: list[str] = [f"g{i}" for i in range(len(parsed.groups))]
    for j, c in enumerate(calibrated):
        m = c.measurement
        if m.kind == "count":
            outer.append(f"count(*) AS m{j}")
        elif m.kind == "count_column":
            outer.append(f"count_if(v{_idx(values, 'r', m)}) AS m{j}")
        elif m.kind == "count_distinct":
            outer.append(f"count(DISTINCT __u) AS m{j}")
        elif m.kind == "sum":
            outer.append(f"coalesce(sum(v{_idx(values, 'v', m)}), 0)::DOUBLE AS m{j}")
        else:  # quantile: rows per public grid point
            v = f"v{_idx(values, 'v', m)}"
            outer.append(f"histogram({m.grid.index_sql(v)}) FILTER (WHERE {v} IS NOT NULL) AS m{j}")
    group_by = (
        f" GROUP BY {', '.join(f'g{i}' for i in range(len(parsed.groups)))}"
        if parsed.groups
        else ""
    )
    sql = f"SELECT {', '.join(outer)} FROM ({bounded}) AS bounded{group_by}"
    return sql, params


def _idx(values: Mapping[str, str], prefix: str, m: Measurement) -> str:
    assert m.ref is not None
    return values[f"{prefix}:{m.ref.sql}"][1:]
