"""The WHERE clause of a DP query: simple predicates on public columns, literals bound as parameters.

A filter changes which rows are counted, so it may only use columns that are neither identifiers
nor sensitive, compared with literals: =, <>, <, <=, >, >=, [NOT] IN, BETWEEN, IS [NOT] NULL,
joined by AND / OR / NOT. The walker rewrites the predicate as its own SQL over the fixed table
aliases, and every literal becomes a `?` parameter cast to the column's workspace type, so no
analyst text reaches the engine's SQL.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from privacy.parsed import ColRef
from privacy.request import fail
from privacy.scope import QueryScope

NUMERIC_SQL = {
    "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
    "UBIGINT", "FLOAT", "DOUBLE", "REAL",
}  # fmt: skip
_COMPARE = {
    "COMPARE_EQUAL": "=",
    "COMPARE_NOTEQUAL": "<>",
    "COMPARE_LESSTHAN": "<",
    "COMPARE_GREATERTHAN": ">",
    "COMPARE_LESSTHANOREQUALTO": "<=",
    "COMPARE_GREATERTHANOREQUALTO": ">=",
}
_FLIP = {"=": "=", "<>": "<>", "<": ">", ">": "<", "<=": ">=", ">=": "<="}


class WhereChecks(QueryScope):
    """The WHERE clause of the query in scope."""

    def parse_where(self, node: Mapping[str, Any] | None) -> str | None:
        if node is None:
            return None
        return self.predicate(node)

    def predicate(self, node: Mapping[str, Any]) -> str:
        cls, kind = node.get("class"), node.get("type")
        if cls == "CONJUNCTION" and kind in ("CONJUNCTION_AND", "CONJUNCTION_OR"):
            op = " AND " if kind == "CONJUNCTION_AND" else " OR "
            return "(" + op.join(self.predicate(c) for c in node.get("children") or []) + ")"
        if kind == "OPERATOR_NOT":
            children = node.get("children") or []
            if len(children) != 1:
                raise fail(f"unsupported NOT: {self.text(node)}")
            return f"(NOT {self.predicate(children[0])})"
        if cls == "COMPARISON" and kind in _COMPARE:
            left, right = node.get("left") or {}, node.get("right") or {}
            op = _COMPARE[kind]
            if left.get("class") != "COLUMN_REF" and right.get("class") == "COLUMN_REF":
                left, right, op = right, left, _FLIP[op]
            ref = self.filter_column(left, node)
            return f"({ref.sql} {op} {self.literal(right, ref, node)})"
        if kind in ("COMPARE_IN", "COMPARE_NOT_IN"):
            children = node.get("children") or []
            if len(children) < 2:
                raise fail(f"IN needs a list of values: {self.text(node)}")
            ref = self.filter_column(children[0], node)
            values = ", ".join(self.literal(c, ref, node) for c in children[1:])
            neg = "NOT " if kind == "COMPARE_NOT_IN" else ""
            return f"({ref.sql} {neg}IN ({values}))"
        if kind == "COMPARE_BETWEEN":
            ref = self.filter_column(node.get("input") or {}, node)
            lo = self.literal(node.get("lower") or {}, ref, node)
            hi = self.literal(node.get("upper") or {}, ref, node)
            return f"({ref.sql} BETWEEN {lo} AND {hi})"
        if kind in ("OPERATOR_IS_NULL", "OPERATOR_IS_NOT_NULL"):
            children = node.get("children") or []
            if len(children) != 1:
                raise fail(f"unsupported IS NULL: {self.text(node)}")
            ref = self.filter_column(children[0], node)
            return f"({ref.sql} IS {'NOT ' if kind == 'OPERATOR_IS_NOT_NULL' else ''}NULL)"
        if cls == "SUBQUERY":
            raise fail(f"subqueries are not supported: {self.text(node)}", fix="use literal values")
        raise fail(
            f"the WHERE condition {self.text(node)!r} is not a simple predicate",
            fix="use column = / <> / < / <= / > / >= literal, IN (...), BETWEEN, IS NULL, joined by AND / OR / NOT",
        )

    def filter_column(self, node: Mapping[str, Any], whole: Mapping[str, Any]) -> ColRef:
        if node.get("class") != "COLUMN_REF":
            raise fail(
                f"the WHERE condition {self.text(whole)!r} must compare a column with literals",
                fix="e.g. WHERE gender = '女' AND month >= DATE '2025-01-01'",
            )
        ref = self.column(node)
        info = ref.info
        if info.is_identifier:
            raise fail(
                f"WHERE on {info.name}: filtering on identifiers or pseudonyms singles out persons",
                fix="filter on public columns (categories, dates, public attributes)",
            )
        if not info.public:
            raise fail(
                f"WHERE on {info.name}: it is a sensitive column; filters may only use public or "
                "category columns",
                fix="filter on public columns; aggregate sensitive ones",
            )
        return ref

    def literal(self, node: Mapping[str, Any], ref: ColRef, whole: Mapping[str, Any]) -> str:
        """Bind a literal as a parameter cast to the column's workspace type."""
        sql_type = ref.info.sql_type.upper()
        cast_to: str | None = None
        if node.get("class") == "CAST":
            cast_to = str((node.get("type_expr") or {}).get("type_name", "")).upper()
            if cast_to not in ("DATE", "TIMESTAMP") or node.get("try_cast"):
                raise fail(
                    f"only DATE '...' and TIMESTAMP '...' literals are supported: {self.text(node)}"
                )
            node = node.get("child") or {}
        if node.get("class") != "CONSTANT":
            raise fail(
                f"the WHERE condition {self.text(whole)!r} must compare a column with literals",
                fix="write values literally, e.g. 'a', 3, DATE '2025-01-01'",
            )
        lit = node.get("literal") or {}
        lkind, text = lit.get("kind"), lit.get("text")
        if lkind == "NULL_LITERAL":
            raise fail("compare with NULL using IS NULL / IS NOT NULL", fix="WHERE col IS NULL")
        value: Any
        base = sql_type.split("(")[0]
        if base in NUMERIC_SQL or base.startswith("DECIMAL"):
            if lkind not in ("INTEGER", "NUMERIC", "DECIMAL", "DOUBLE") or cast_to:
                raise fail(
                    f"{ref.column} is numeric: compare it with a number, not {self.text(node)}",
                    fix=f"e.g. {ref.column} >= 10",
                )
            value = (
                float(str(text))
                if base in ("FLOAT", "DOUBLE", "REAL") or base.startswith("DECIMAL")
                else _as_int(text)
            )
        elif base in ("DATE", "TIMESTAMP", "TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ"):
            if lkind != "STRING":
                raise fail(
                    f"{ref.column} is a date: compare it with DATE 'YYYY-MM-DD'",
                    fix=f"e.g. {ref.column} >= DATE '2025-01-01'",
                )
            try:
                value = (
                    date.fromisoformat(str(text))
                    if base == "DATE"
                    else datetime.fromisoformat(str(text))
                )
            except ValueError:
                raise fail(
                    f"{text!r} is not an ISO date for {ref.column}", fix="e.g. DATE '2025-01-01'"
                ) from None
        elif base == "BOOLEAN":
            if lkind != "BOOLEAN":
                raise fail(
                    f"{ref.column} is boolean: compare it with TRUE or FALSE",
                    fix=f"e.g. {ref.column} = TRUE",
                )
            value = str(text).lower() == "true"
        elif base == "VARCHAR":
            if lkind != "STRING" or cast_to:
                raise fail(
                    f"{ref.column} is text: compare it with a quoted string, not {self.text(node)}",
                    fix=f"e.g. {ref.column} = '{(ref.info.categories or ('value',))[0]}'",
                )
            value = str(text)
        else:
            raise fail(f"filters on {ref.column} ({sql_type}) are not supported")
        self.params.append(value)
        return f"CAST(? AS {sql_type})"


def _as_int(text: Any) -> int | float:
    try:
        return int(str(text))
    except ValueError:
        return float(str(text))
