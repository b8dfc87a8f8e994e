"""Contribution bounding and the one DuckDB statement that computes the true measurements.

Keeping at most k rows per person is what makes every sensitivity in `privacy.calibration`
hold, so it is done in one place: `_sql` builds the single vectorised statement (filter, rank
each person's rows by a seeded hash and keep k, clamp values to their bounds, GROUP BY with
every measurement), and `_strategy` picks, from cached row-count histograms of the immutable
workspace tables, the cheapest way to compute that ranking that keeps exactly the same rows.
Its output is true (un-noised) values that never leave the platform.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import duckdb

from privacy.calibration import Calibrated, Measurement
from privacy.query import ParsedQuery

Strategy = Literal["none", "split", "window"]
_STATS: dict[tuple[Any, ...], dict[int, int]] = {}  # workspace column -> {rows per value: values}
_STATS_MAX = 256


def _sql(
    parsed: ParsedQuery,
    calibrated: list[Calibrated],
    k: int,
    seed: int,
    strategy: Strategy = "window",
) -> tuple[str, list[Any]]:
    """The one statement computing the true bounded measurements per group.

    `strategy` only changes the cost, never the result: "window" ranks every person's rows,
    "split" ranks only persons with more than k rows, "none" is used when no person can
    have more than k rows in this relation (see `_strategy`).
    """
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
    if strategy == "none":  # no person can have more than k rows here: nothing to drop
        bounded = inner
    elif strategy == "split":  # persons with <= k rows keep them all unsorted; rank the others
        bounded = (
            f"WITH src AS MATERIALIZED (SELECT *, count(*) OVER (PARTITION BY __u) AS __c "
            f"FROM ({inner})) "
            f"SELECT * EXCLUDE (__c) FROM src WHERE __c <= {int(k)} "
            f"UNION ALL SELECT * EXCLUDE (__c) FROM src WHERE __c > {int(k)} {rank}"
        )
        params.append(seed)
    else:
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
        else:
            v = f"v{_idx(values, 'v', m)}"
            outer.append(f"list({v}) FILTER (WHERE {v} IS NOT NULL) AS m{j}")
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


def _rows_per_value(
    con: duckdb.DuckDBPyConnection, path: Path, dataset: str, column: str
) -> dict[int, int]:
    """Histogram of rows per non-null value of a workspace column (cached: workspaces are immutable)."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns, dataset, column)
    if key not in _STATS:
        if len(_STATS) >= _STATS_MAX:
            _STATS.clear()
        rows = con.execute(
            f'SELECT c, count(*) FROM (SELECT count(*) AS c FROM ws."{dataset}" '
            f'WHERE "{column}" IS NOT NULL GROUP BY "{column}") GROUP BY c'
        ).fetchall()
        _STATS[key] = {int(c): int(n) for c, n in rows}
    return _STATS[key]


def _strategy(con: duckdb.DuckDBPyConnection, path: Path, parsed: ParsedQuery, k: int) -> Strategy:
    """The cheapest way to bound contributions that gives the same rows as ranking everyone.

    From per-column row-count histograms of the (immutable) workspace tables: if no person can
    have more than k rows in the query's relation, bounding is a no-op; for one table, when
    persons above k hold under half the rows, only they are ranked. Only the running time
    depends on this choice (a timing side channel common to every SQL engine), not the output.
    """
    unit = parsed.unit
    per_person = _rows_per_value(con, path, parsed.tables[unit.table].dataset, unit.column)
    if parsed.join_keys is None:
        total = sum(c * n for c, n in per_person.items())
        over = sum(c * n for c, n in per_person.items() if c > k)
        if over == 0:
            return "none"
        return "split" if 2 * over < total else "window"
    a, b = parsed.join_keys
    other = b if a.table == unit.table else a
    per_key = _rows_per_value(con, path, parsed.tables[other.table].dataset, other.column)
    # a person's rows in the join <= their rows x the most rows any join key has on the other side
    bound = max(per_person, default=0) * max(per_key, default=0)
    return "none" if bound <= k else "window"
