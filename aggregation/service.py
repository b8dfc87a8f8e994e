"""Run a `table:` action: the platform computes the table itself, over the project's workspace.

A job's own code can write any numbers into a table; a `table:` action's numbers come from the
platform. The query is checked by `aggregation.query` (the DP engine's parser with the trusted
table's rules), then one DuckDB statement writes the table and a second writes the
contributor-level rows behind every cell (group keys, the person key as `contributor`, each
aggregated value). The contributor file is held by the platform for the disclosure checks
(dominance, p%, persons per cell) and is never released, never given to a sandbox.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from aggregation.keys import monthly_dates
from aggregation.query import FIELD, TableQuery, parse_table_query
from privacy.parsed import Aggregate, ParsedQuery
from privacy.schema import read_columns
from shuyu.errors import PlatformError, ValidationError

CONTRIBUTOR = "contributor"  # the helper file's person-key column (egress_review reads it)


@dataclass(frozen=True)
class TableResult:
    query: TableQuery
    table: pd.DataFrame
    helper_rows: int

    def metadata(self) -> dict[str, Any]:
        """What the stored output declaration records: the output is the platform's own."""
        return {
            "query": self.query.parsed.sql,
            "datasets": list(self.query.parsed.datasets),
            "statistics": self.query.statistics,
            "verified": "platform",
        }


def run_table_query(workspace: Path, sql: str, target: Path, helper: Path) -> TableResult:
    """Check and run `sql` over `workspace`; write the table to `target` (by its suffix) and the
    contributor rows to `helper` (Parquet)."""
    if not workspace.is_file():
        raise PlatformError(
            f"workspace {workspace} does not exist", fix="build the project's workspace first"
        )
    con = duckdb.connect()
    try:
        con.execute("ATTACH ? AS ws (READ_ONLY)", [str(workspace)])
        schema = read_columns(con, "ws")
        query = parse_table_query(sql, schema, monthly=monthly_dates(con, "ws", schema))
        names = [*query.group_by, *query.statistics]
        if CONTRIBUTOR in names:
            raise ValidationError(
                f"an output column may not be named {CONTRIBUTOR!r} (the platform's person key)",
                field=FIELD,
                fix="give it another alias",
            )
        source, where, params = _relation(query.parsed)
        table_sql, helper_sql = _statements(query.parsed, source, where)
        try:
            table = con.execute(table_sql, params).df()
            helper.parent.mkdir(parents=True, exist_ok=True)
            con.execute(f"COPY ({helper_sql}) TO '{_str(str(helper))}' (FORMAT parquet)", params)
            (helper_rows,) = con.execute(
                f"SELECT count(*) FROM read_parquet('{_str(str(helper))}')"
            ).fetchone()  # type: ignore[misc]
        except duckdb.Error as exc:
            # DuckDB's message may quote data values: keep it for the operator only.
            raise PlatformError(
                "the platform could not evaluate the table query",
                fix="check the query; the operator log has details",
            ) from exc
    finally:
        con.close()
    _write(table, target)
    return TableResult(query, table, int(helper_rows))


def check_declared(query: TableQuery, declared: dict[str, Any], where: str) -> dict[str, Any]:
    """The output's declaration, checked against the query (or filled from it).

    group_by must name exactly the query's GROUP BY columns, counts and values exactly its
    aggregates, so every published number is a declared cell the checks see.
    """
    filled = dict(declared)
    for role, actual in (
        ("group_by", query.group_by),
        ("counts", query.counts),
        ("values", query.values),
    ):
        given = tuple(declared.get(role) or ())
        if given and sorted(given) != sorted(actual):
            raise ValidationError(
                f"the output declares {role} {list(given)} but the query makes {list(actual)}",
                field=f"{where}.{role}",
                fix=f"declare {role}: [{', '.join(actual)}] (or leave it out: it is filled in)",
            )
        filled[role] = list(actual)
    if declared.get("kind") != "table":
        raise ValidationError(
            "a table: action's output is a table", field=f"{where}.kind", fix="kind: table"
        )
    return filled


def _relation(parsed: ParsedQuery) -> tuple[str, str, list[Any]]:
    tables = [f'ws."{t.dataset}" AS t{i}' for i, t in enumerate(parsed.tables)]
    source = tables[0]
    if parsed.join_keys is not None:
        a, b = parsed.join_keys
        source += f" JOIN {tables[1]} ON {a.sql} = {b.sql}"
    where = [f"{parsed.unit.sql} IS NOT NULL"]
    params: list[Any] = []
    if parsed.where_sql:
        where.append(parsed.where_sql)
        params.extend(parsed.where_params)
    return source, " AND ".join(where), params


def _statements(parsed: ParsedQuery, source: str, where: str) -> tuple[str, str]:
    keys = [f"{g.ref.sql} AS {_q(g.name)}" for g in parsed.groups]
    aggs = [f"{_aggregate(a, parsed)} AS {_q(a.name)}" for a in parsed.aggregates]
    group = " GROUP BY ALL ORDER BY ALL" if parsed.groups else ""
    table_sql = f"SELECT {', '.join([*keys, *aggs])} FROM {source} WHERE {where}{group}"
    values = [
        f"{a.ref.sql} AS {_q(a.name)}"
        for a in parsed.aggregates
        if a.ref is not None and a.kind not in ("count_column", "count_distinct")
    ]
    helper_cols = [*keys, f"CAST({parsed.unit.sql} AS VARCHAR) AS {CONTRIBUTOR}", *values]
    helper_sql = f"SELECT {', '.join(helper_cols)} FROM {source} WHERE {where}"
    return table_sql, helper_sql


def _aggregate(a: Aggregate, parsed: ParsedQuery) -> str:
    ref = a.ref.sql if a.ref is not None else ""
    match a.kind:
        case "count":
            return "count(*)"
        case "count_column":
            return f"count({ref})"
        case "count_distinct":
            return f"count(DISTINCT {parsed.unit.sql})"
        case "sum":
            return f"sum({ref})"
        case "avg":
            return f"avg({ref})"
    return {"MIN": f"min({ref})", "MAX": f"max({ref})"}.get(a.label.split("(")[0], f"median({ref})")


def _write(table: pd.DataFrame, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    suffix = target.suffix.lower()
    if suffix == ".parquet":
        table.to_parquet(target, index=False)
    elif suffix == ".json":
        table.to_json(target, orient="records", force_ascii=False, date_format="iso")
    else:
        table.to_csv(target, index=False)


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _str(text: str) -> str:
    return text.replace("'", "''")
