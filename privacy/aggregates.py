"""What a DP query releases: its aggregates and its group keys, checked against the privacy model.

Each SELECT-list aggregate must be one whose sensitivity the engine can bound: COUNT(*),
COUNT(column), COUNT(DISTINCT person key), and SUM / AVG / QUANTILE / MEDIAN of a numeric column
with manifest bounds (tightened by top/bottom coding). Aggregates that release single values
(MIN, MAX, FIRST, ...) are refused with the reason. GROUP BY keys must have public categories so
the released group set is fixed in advance, unless the request opted into unknown-keys mode.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from privacy.parsed import AggKind, Aggregate, ColRef, GroupKey
from privacy.request import SUPPORTED, fail
from privacy.scope import QueryScope

_UNSUPPORTED_AGG = {
    "min": "MIN/MAX release a single person's value",
    "max": "MIN/MAX release a single person's value",
    "arg_min": "ARG_MIN/ARG_MAX release a single row",
    "arg_max": "ARG_MIN/ARG_MAX release a single row",
    "first": "FIRST/LAST release a single row",
    "last": "FIRST/LAST release a single row",
    "list": "LIST releases raw values",
    "array_agg": "ARRAY_AGG releases raw values",
    "string_agg": "STRING_AGG releases raw values",
    "mode": "MODE is not supported",
    "stddev": "STDDEV/VARIANCE are not supported yet",
    "stddev_samp": "STDDEV/VARIANCE are not supported yet",
    "stddev_pop": "STDDEV/VARIANCE are not supported yet",
    "variance": "STDDEV/VARIANCE are not supported yet",
    "var_samp": "STDDEV/VARIANCE are not supported yet",
    "var_pop": "STDDEV/VARIANCE are not supported yet",
    "quantile_disc": "QUANTILE_DISC returns a data value",
}


class AggregateChecks(QueryScope):
    """The SELECT-list aggregates and GROUP BY keys of the query in scope."""

    # -- GROUP BY
    def group_column(self, expr: Mapping[str, Any]) -> ColRef:
        if expr.get("class") == "CONSTANT":
            raise fail("GROUP BY by position is not supported", fix="GROUP BY column names")
        if expr.get("class") != "COLUMN_REF":
            raise fail(
                f"GROUP BY {self.text(expr)} is not supported: group by plain columns",
                fix="GROUP BY a column with public categories, e.g. GROUP BY district",
            )
        return self.column(expr)

    def group_key(self, ref: ColRef, name: str) -> GroupKey:
        info = ref.info
        if info.is_identifier:
            raise fail(
                f"GROUP BY {info.name}: it is an identifier (pseudonymised key); grouping by it "
                "would publish keys",
                fix="group by a column with public categories, e.g. district",
            )
        if info.categories:
            return GroupKey(ref, name, info.categories)
        if info.role == "sensitive":
            raise fail(
                f"GROUP BY {info.name}: it is a sensitive column without public categories",
                fix="aggregate it (SUM/AVG/QUANTILE) instead of grouping by it",
            )
        if not self.allow_unknown:
            raise fail(
                f"GROUP BY {info.name}: the column has no declared public categories, so the set of "
                "groups itself would depend on the data",
                fix=(
                    f"declare `categories:` for {info.dataset}.{info.name} in the manifest (and keep it "
                    "in the grant), or opt into unknown-keys mode (unknown_keys: true, delta > 0)"
                ),
            )
        return GroupKey(ref, name, None)

    # -- aggregates
    def aggregate(self, node: Mapping[str, Any], unit: ColRef) -> Aggregate:
        fname = str(node.get("function_name", "")).lower()
        snippet = self.text(node)
        if node.get("class") != "FUNCTION":
            raise fail(f"{snippet!r} is not supported", fix=f"use {SUPPORTED}")
        if node.get("filter") is not None:
            raise fail(
                f"FILTER (WHERE ...) is not supported: {snippet}", fix="use the query's WHERE"
            )
        if (node.get("order_bys") or {}).get("orders"):
            raise fail(f"ORDER BY inside an aggregate is not supported: {snippet}", fix="remove it")
        if node.get("export_state"):
            raise fail(f"EXPORT_STATE is not supported: {snippet}")
        if node.get("schema") or node.get("catalog"):
            raise fail(f"qualified function names are not supported: {snippet}")
        args = [a.get("expression", a) for a in node.get("arguments") or []]
        distinct = bool(node.get("distinct"))
        alias = node.get("alias") or ""
        if fname in _UNSUPPORTED_AGG:
            raise fail(f"{snippet}: {_UNSUPPORTED_AGG[fname]}", fix=f"use {SUPPORTED}")
        if distinct and fname != "count":
            raise fail(f"DISTINCT is only supported as COUNT(DISTINCT person key): {snippet}")
        if fname == "count_star":
            return Aggregate("count", alias or "count", "COUNT(*)")
        if fname == "count":
            if len(args) != 1:
                raise fail(f"COUNT takes one column: {snippet}", fix="COUNT(*) or COUNT(column)")
            ref = self.value_column(args[0], snippet)
            if distinct:
                if ref.column != unit.column or not ref.info.is_identifier:
                    raise fail(
                        f"{snippet}: COUNT(DISTINCT ...) is only supported on the person key "
                        f"({unit.column}); distinct counts of other columns have no bounded sensitivity",
                        fix=f"COUNT(DISTINCT {unit.column})",
                    )
                return Aggregate(
                    "count_distinct",
                    alias or f"count_distinct_{ref.column}",
                    f"COUNT(DISTINCT {ref.column})",
                    ref=unit,
                )
            return Aggregate(
                "count_column", alias or f"count_{ref.column}", f"COUNT({ref.column})", ref=ref
            )
        if fname in ("sum", "avg", "mean", "median", "quantile", "quantile_cont"):
            kind: AggKind = "quantile"
            q: float | None = None
            if fname in ("sum", "avg", "mean", "median"):
                if len(args) != 1:
                    raise fail(f"{fname.upper()} takes one column: {snippet}")
                kind = {"sum": "sum", "avg": "avg", "mean": "avg", "median": "quantile"}[fname]  # type: ignore[assignment]
                q = 0.5 if fname == "median" else None
            else:
                if len(args) != 2:
                    raise fail(
                        f"QUANTILE takes a column and one q in [0, 1]: {snippet}",
                        fix="e.g. QUANTILE(wage_base, 0.9)",
                    )
                q = self.quantile_q(args[1], snippet)
            ref = self.value_column(args[0], snippet)
            bounds = self.bounds_for(ref, fname.upper())
            col = ref.column
            if kind == "sum":
                return Aggregate("sum", alias or f"sum_{col}", f"SUM({col})", ref, None, bounds)
            if kind == "avg":
                return Aggregate("avg", alias or f"avg_{col}", f"AVG({col})", ref, None, bounds)
            assert q is not None
            if fname == "median":
                return Aggregate(
                    "quantile", alias or f"median_{col}", f"MEDIAN({col})", ref, q, bounds
                )
            return Aggregate(
                "quantile",
                alias or f"quantile_{col}_{q:g}",
                f"QUANTILE({col}, {q:g})",
                ref,
                q,
                bounds,
            )
        if node.get("is_operator") or not fname.replace("_", "").isalnum():
            raise fail(
                f"expressions are not allowed in SELECT (operator {fname!r}): only group columns and aggregates",
                fix="select the plain aggregate; compute derived values from the released table",
            )
        raise fail(
            f"{fname.upper()}() is not allowed in SELECT: only group columns and aggregates",
            fix=f"use {SUPPORTED}",
        )

    def value_column(self, node: Mapping[str, Any], snippet: str) -> ColRef:
        if node.get("class") != "COLUMN_REF":
            raise fail(
                f"aggregate arguments must be a plain column, not an expression: {snippet}",
                fix="aggregate a column; derive values from the released table",
            )
        return self.column(node)

    def quantile_q(self, node: Mapping[str, Any], snippet: str) -> float:
        literal = node.get("literal") or {}
        if node.get("class") != "CONSTANT" or literal.get("kind") not in (
            "INTEGER",
            "NUMERIC",
            "DECIMAL",
            "DOUBLE",
        ):
            raise fail(
                f"QUANTILE takes one literal q in [0, 1]: {snippet}",
                fix="e.g. QUANTILE(wage_base, 0.9); one quantile per aggregate",
            )
        q = float(str(literal.get("text")))
        if not 0 <= q <= 1:
            raise fail(f"quantile q must be in [0, 1], not {q:g}: {snippet}")
        return q

    def bounds_for(self, ref: ColRef, what: str) -> tuple[float, float]:
        info = ref.info
        if info.type not in ("integer", "float"):
            raise fail(
                f"{what}({info.name}): {info.dataset}.{info.name} is a {info.type} column; "
                f"{what} needs a numeric column",
                fix="aggregate a numeric column with bounds",
            )
        if info.transform not in ("keep", "top_bottom_code"):
            raise fail(
                f"{what}({info.name}): the grant transforms it ({info.transform}), so its manifest "
                "bounds do not describe the workspace values",
                fix="aggregate a kept or top_bottom_coded column",
            )
        bounds = info.value_bounds()
        if bounds is None:
            raise fail(
                f"{what}({info.name}): {info.dataset}.{info.name} has no bounds in the manifest; DP "
                "sums, averages and quantiles need them to bound one person's influence",
                fix=f"add `bounds: [low, high]` to column {info.name} of the {info.dataset} manifest "
                "and register a new version",
            )
        return bounds
