"""DP queries: a restricted SELECT form, parsed by DuckDB's own parser and checked node by node.

The analyst's text is never executed. DuckDB's `json_serialize_sql()` turns it into a parse
tree; every node is checked against a short whitelist and the engine then writes its own SQL
from the checked pieces (fixed table aliases, quoted catalogue column names, literals bound as
parameters). Accepted:

    SELECT <group columns>, <aggregates>
    FROM <dataset> [[AS] a] [JOIN <dataset> [[AS] b] USING (<key>) | ON a.<key> = b.<key>]
    [WHERE <simple predicates on public columns>]
    [GROUP BY <columns> | GROUP BY ALL]

Aggregates: COUNT(*), COUNT(column), COUNT(DISTINCT <privacy unit>), SUM(column),
AVG(column) (MEAN), QUANTILE(column, q) (QUANTILE_CONT), MEDIAN(column), each with an
optional AS alias. Predicates: =, <>, <, <=, >, >=, [NOT] IN (literals), [NOT] BETWEEN,
IS [NOT] NULL, combined with AND / OR / NOT, on columns that are not identifiers and not
sensitive. Everything else (subqueries, CTEs, UNION, window functions, SELECT *, DISTINCT,
HAVING, ORDER BY, LIMIT, expressions, raw columns without aggregation) is refused with a
`ValidationError` on field `dp.query` naming the problem and a fix.

Rules that come from the privacy model rather than from SQL:
- GROUP BY columns need public categories (manifest `categories`, recorded in the workspace's
  `_shuyu_columns` when the column is kept), so the released group set is fixed in advance.
  Without them the request must opt into unknown-keys mode (`unknown_keys=True`, needs δ > 0):
  groups are then released only when their noisy count passes a threshold (see engine).
- SUM / AVG / QUANTILE need numeric bounds from the manifest (tightened by a top_bottom_code
  transform). Missing bounds are an error: clamping to bounds is what gives the sensitivity.
- Every dataset needs a privacy unit: the pseudonymised person key (by default the column that
  is a direct identifier pseudonymised in the workspace, i.e. `resident_id`). A join between two
  person-level datasets must be on that key; a join with a dataset without persons must be on
  keys pseudonymised on both sides (the joins the grant's pseudonymisation makes possible).

The pieces live in their own modules and are re-exported here, so callers import from
`privacy.query` alone: `privacy.request` (the `dp:` knobs and the refusal error),
`privacy.schema` (workspace columns and privacy units), `privacy.parsed` (the checked form),
`privacy.scope` (FROM / JOIN / column names), `privacy.aggregates` (SELECT aggregates and GROUP
BY keys) and `privacy.predicates` (WHERE). This module walks the statement itself.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import duckdb

from privacy.aggregates import AggregateChecks
from privacy.parsed import AggKind, Aggregate, ColRef, GroupKey, ParsedQuery, TableRef
from privacy.predicates import NUMERIC_SQL, WhereChecks
from privacy.request import (
    DEFAULT_DELTA,
    FIELD,
    FORM,
    MAX_DELTA,
    MAX_EPSILON,
    SUPPORTED,
    DPRequest,
    as_request,
    fail,
)
from privacy.schema import (
    UNIT_IDENTIFIER_KIND,
    ColumnInfo,
    Schema,
    load_columns,
    read_columns,
    resolve_units,
)

__all__ = [
    "DEFAULT_DELTA",
    "FIELD",
    "FORM",
    "MAX_DELTA",
    "MAX_EPSILON",
    "NUMERIC_SQL",
    "SUPPORTED",
    "UNIT_IDENTIFIER_KIND",
    "AggKind",
    "Aggregate",
    "ColRef",
    "ColumnInfo",
    "DPRequest",
    "GroupKey",
    "ParsedQuery",
    "Schema",
    "TableRef",
    "as_request",
    "load_columns",
    "parse_dp_query",
    "read_columns",
    "resolve_units",
]

_SELECT_KEYS = {
    "type", "modifiers", "cte_map", "select_list", "from_table", "where_clause",
    "group_expressions", "group_sets", "aggregate_handling", "having", "sample", "qualify",
}  # fmt: skip


def _serialize(sql: str) -> dict[str, Any]:
    con = duckdb.connect()
    try:
        raw = con.execute("SELECT json_serialize_sql(?)", [sql]).fetchone()[0]  # type: ignore[index]
    finally:
        con.close()
    tree = json.loads(raw)
    if tree.get("error"):
        message = str(tree.get("error_message", "cannot be parsed"))
        if "Only SELECT" in message:
            raise fail("a DP query is one SELECT statement", fix=f"write {FORM}")
        raise fail(f"the DP query is not valid SQL: {message}", fix=f"write {FORM}")
    return tree


def parse_dp_query(
    sql: str,
    schema: Schema,
    units: Mapping[str, str] | None = None,
    *,
    unknown_keys: bool = False,
) -> ParsedQuery:
    """Check `sql` against the whitelist and the workspace's columns; raise ValidationError."""
    return _Parser(
        sql.strip().rstrip(";").strip(),
        schema,
        resolve_units(schema) if units is None else dict(units),
        unknown_keys,
    ).parse()


class _Parser(AggregateChecks, WhereChecks):
    """One DP query's statement: the SELECT node's shape, then each clause through the checks."""

    def parse(self) -> ParsedQuery:
        if not self.sql:
            raise fail("the DP query is empty", fix=f"write {FORM}")
        tree = _serialize(self.sql)
        statements = tree.get("statements") or []
        if len(statements) != 1:
            raise fail(
                f"a DP query is exactly one SELECT statement; found {len(statements)}",
                fix="send one query per dp: action",
            )
        statement = statements[0]
        if statement.get("named_param_map"):
            raise fail(
                "query parameters ($1, ?) are not supported", fix="write the values as literals"
            )
        node = statement["node"]
        kind = node.get("type")
        if kind == "SET_OPERATION_NODE":
            op = str(node.get("setop_type", "UNION"))
            raise fail(
                f"{op} is not supported: a DP query is one SELECT",
                fix="run separate DP queries (each spends its own epsilon)",
            )
        if kind != "SELECT_NODE":
            raise fail(f"only a plain SELECT is supported, not {kind}", fix=f"write {FORM}")
        self.check_select_node(node)

        self.parse_from(node.get("from_table") or {})
        unit = self.unit_ref()
        where_sql = self.parse_where(node.get("where_clause"))

        # GROUP BY
        group_all = node.get("aggregate_handling") == "FORCE_AGGREGATES"
        if node.get("aggregate_handling") not in ("STANDARD_HANDLING", "FORCE_AGGREGATES", None):
            raise fail(f"aggregate handling {node.get('aggregate_handling')} is not supported")
        group_exprs = node.get("group_expressions") or []
        sets = node.get("group_sets") or []
        if group_exprs and sets != [list(range(len(group_exprs)))]:
            raise fail(
                "GROUPING SETS, ROLLUP and CUBE are not supported",
                fix="GROUP BY plain columns; run one query per grouping",
            )
        group_refs: list[ColRef] = []
        for expr in group_exprs:
            group_refs.append(self.group_column(expr))

        # SELECT list
        select_list = node.get("select_list") or []
        plain: list[tuple[ColRef, str, Mapping[str, Any]]] = []
        aggregates: list[Aggregate] = []
        output: list[str] = []
        for item in select_list:
            cls = item.get("class")
            if cls == "COLUMN_REF":
                ref = self.column(item)
                name = item.get("alias") or ref.column
                plain.append((ref, name, item))
                output.append(name)
            elif cls == "FUNCTION" or cls == "AGGREGATE":
                agg = self.aggregate(item, unit)
                aggregates.append(agg)
                output.append(agg.name)
            elif cls == "STAR":
                raise fail(
                    "SELECT * would release raw rows",
                    fix="select group columns and aggregates, e.g. SELECT district, COUNT(*) ... GROUP BY district",
                )
            elif cls == "WINDOW":
                raise fail(
                    f"window functions are not supported: {self.text(item)}",
                    fix=f"use plain aggregates: {SUPPORTED}",
                )
            elif cls == "SUBQUERY":
                raise fail(f"subqueries are not supported: {self.text(item)}", fix=f"write {FORM}")
            else:
                raise fail(
                    f"{self.text(item)!r} is not allowed in SELECT: only group columns and aggregates",
                    fix=f"use {SUPPORTED}; compute derived values from the released table",
                )
        if not aggregates:
            raise fail(
                "a DP query must aggregate: selecting columns without COUNT/SUM/AVG/QUANTILE would release raw values",
                fix=f"add an aggregate, e.g. SELECT district, COUNT(*) FROM ... GROUP BY district ({SUPPORTED})",
            )
        if group_all:
            group_refs = [ref for ref, _, _ in plain]
        if plain and not group_refs:
            names = ", ".join(n for _, n, _ in plain)
            raise fail(
                f"{names} is selected without GROUP BY: that would release raw values",
                fix=f"add GROUP BY {names}",
            )
        group_keys_sql = [r.sql for r in group_refs]
        if len(set(group_keys_sql)) != len(group_keys_sql):
            raise fail("a GROUP BY column is listed twice", fix="list each group column once")
        groups: list[GroupKey] = []
        for ref in group_refs:
            match = [name for r, name, _ in plain if r.sql == ref.sql]
            if not match:
                raise fail(
                    f"GROUP BY {ref.column} is not in the SELECT list",
                    fix=f"add {ref.column} to the SELECT list so each row says which group it is",
                )
            groups.append(self.group_key(ref, match[0]))
        for ref, _name, item in plain:
            if ref.sql not in group_keys_sql:
                raise fail(
                    f"{self.text(item)} is selected but not grouped by",
                    fix="add it to GROUP BY or remove it from the SELECT list",
                )
        if len(set(output)) != len(output):
            dup = next(n for n in output if output.count(n) > 1)
            raise fail(
                f"two output columns are both named {dup!r}", fix="give them distinct AS aliases"
            )
        if len(set(group_keys_sql)) != len(plain):
            raise fail("a group column is selected twice", fix="select each group column once")

        unknown = any(g.categories is None for g in groups)
        notes: list[str] = []
        if unknown:
            notes.append(
                "unknown-keys mode: groups are released only when their noisy row count passes a "
                "threshold chosen from epsilon and delta"
            )
        return ParsedQuery(
            sql=self.sql,
            tables=tuple(self.tables),
            join_keys=self.join_keys,
            where_sql=where_sql,
            where_params=tuple(self.params),
            groups=tuple(groups),
            aggregates=tuple(aggregates),
            output=tuple(output),
            unit=unit,
            unknown_keys=unknown,
            notes=tuple(notes),
        )

    def check_select_node(self, node: Mapping[str, Any]) -> None:
        for modifier in node.get("modifiers") or []:
            mtype = modifier.get("type")
            if mtype == "DISTINCT_MODIFIER":
                raise fail("SELECT DISTINCT is not supported", fix="GROUP BY the columns instead")
            if mtype == "ORDER_MODIFIER":
                raise fail(
                    "ORDER BY is not supported: the engine releases every group in a fixed order",
                    fix="sort the released table afterwards",
                )
            if mtype == "LIMIT_MODIFIER" or mtype == "LIMIT_PERCENT_MODIFIER":
                raise fail(
                    "LIMIT is not supported: which groups are kept would depend on the data",
                    fix="remove LIMIT and filter the released table afterwards",
                )
            raise fail(f"{mtype} is not supported", fix=f"write {FORM}")
        if (node.get("cte_map") or {}).get("map"):
            raise fail("WITH (common table expressions) is not supported", fix=f"write {FORM}")
        if node.get("having") is not None:
            raise fail(
                "HAVING is not supported: filtering groups on true aggregate values leaks them",
                fix="filter the released (noisy) table afterwards",
            )
        if node.get("qualify") is not None:
            raise fail("QUALIFY is not supported", fix=f"write {FORM}")
        if node.get("sample") is not None:
            raise fail("sampling (USING SAMPLE) is not supported", fix="remove it")
        for key, value in node.items():
            if key not in _SELECT_KEYS and value not in (None, [], {}, "", False):
                raise fail(f"SQL feature {key!r} is not supported", fix=f"write {FORM}")
