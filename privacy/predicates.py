"""The WHERE clause of a DP query: simple predicates on public columns, literals bound as parameters.

A filter changes which rows are counted, so it may only use columns that are neither identifiers
nor sensitive, compared with literals: =, <>, <, <=, >, >=, [NOT] IN, BETWEEN, IS [NOT] NULL,
joined by AND / OR / NOT. The walker rewrites the predicate as its own SQL over the fixed table
aliases, and every literal becomes a `?` parameter cast to the column's workspace type, so no
analyst text reaches the engine's SQL.

Every literal is checked HERE, at parse time, against its column's type (the value must be
representable: `employees <> 99999999999999999999` on a BIGINT is refused) and its declared
bounds. Why: DuckDB evaluates AND / OR lazily, so a cast that fails only when some row reaches
it turns "does any row pass the earlier predicates?" into fail / no fail, an existence probe.
After these checks the cast in the engine's statement cannot fail whatever the data.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

import duckdb

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
        _check_fits(value, ref, base, sql_type)
        self.params.append(value)
        return f"CAST(? AS {sql_type})"


def _as_int(text: Any) -> int | float:
    try:
        return int(str(text))
    except ValueError:
        return float(str(text))


_INT_RANGE = {
    "TINYINT": (-(2**7), 2**7 - 1),
    "SMALLINT": (-(2**15), 2**15 - 1),
    "INTEGER": (-(2**31), 2**31 - 1),
    "BIGINT": (-(2**63), 2**63 - 1),
    "HUGEINT": (-(2**127), 2**127 - 1),
    "UTINYINT": (0, 2**8 - 1),
    "USMALLINT": (0, 2**16 - 1),
    "UINTEGER": (0, 2**32 - 1),
    "UBIGINT": (0, 2**64 - 1),
}
_FLOAT_MAX = {"FLOAT": 3.4028234663852886e38, "REAL": 3.4028234663852886e38}


def _check_fits(value: Any, ref: ColRef, base: str, sql_type: str) -> None:
    """Refuse a literal the column's type cannot hold or that lies outside its bounds."""
    column = ref.column
    if isinstance(value, float) and not math.isfinite(value):
        raise fail(f"{column}: {value!r} is not a finite number", fix=f"e.g. {column} >= 10")
    limits: tuple[float, float] | None = _INT_RANGE.get(base)
    if limits is None and base in _FLOAT_MAX:
        limits = (-_FLOAT_MAX[base], _FLOAT_MAX[base])
    if limits is None and base.startswith("DECIMAL") and "," in sql_type:
        width, scale = (int(x) for x in sql_type[sql_type.index("(") + 1 : -1].split(","))
        top = 10 ** (width - scale)
        limits = (-top + 10**-scale, top - 10**-scale)
    if limits is not None and not limits[0] <= value <= limits[1]:
        raise fail(
            f"{column} is {sql_type}: {value!r} is outside what it can hold",
            fix=f"compare {column} with a value between {limits[0]:g} and {limits[1]:g}",
        )
    bounds = _bounds(ref, base)
    try:
        inside = bounds is None or bounds[0] <= value <= bounds[1]
    except TypeError:  # e.g. a timestamp with a time zone against naive bounds
        raise fail(f"{column}: {value!s} cannot be compared with the column's bounds") from None
    if bounds is not None and not inside:
        lo, hi = bounds
        raise fail(
            f"{column}: {value!s} is outside the column's declared bounds [{lo!s}, {hi!s}]",
            fix=f"compare {column} with a value between {lo!s} and {hi!s}",
        )
    if not _castable(value, sql_type):  # the engine's own cast, tried on the literal alone
        raise fail(f"{column} is {sql_type}: {value!r} cannot be read as that type")


def _bounds(ref: ColRef, base: str) -> tuple[Any, Any] | None:
    info = ref.info
    if base in NUMERIC_SQL or base.startswith("DECIMAL"):
        return info.value_bounds()
    if info.bounds is None or info.transform != "keep":
        return None
    try:
        if base == "DATE":
            return date.fromisoformat(str(info.bounds[0])), date.fromisoformat(str(info.bounds[1]))
        if base == "TIMESTAMP":
            return (
                datetime.fromisoformat(str(info.bounds[0])),
                datetime.fromisoformat(str(info.bounds[1])),
            )
    except ValueError:
        return None
    return None


def _castable(value: Any, sql_type: str) -> bool:
    con = duckdb.connect()
    try:
        con.execute(f"SELECT CAST(? AS {sql_type})", [value]).fetchall()
        return True
    except duckdb.Error:
        return False
    finally:
        con.close()
