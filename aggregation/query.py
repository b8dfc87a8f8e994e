"""The restricted aggregate SQL of a `table:` action, checked by the DP engine's own parser.

The DP parser (`privacy.query`) already turns a query into a checked form without ever
executing analyst text: one dataset or a granted join, simple WHERE on public columns, GROUP BY
plain columns, aggregates over plain columns. A trusted table differs from a DP release in
three rules only, overridden here:

- GROUP BY keys follow `aggregation.keys`: public categories, a generalising transform,
  bounded integers or month dates (no noise, so no need for every category to be public);
- MIN / MAX are allowed (the disclosure checks then apply the min-max rule to those cells);
- SUM / AVG / MIN / MAX / MEDIAN need a numeric column but no bounds (nothing is clamped).

Everything else — subqueries, expressions, HAVING, ORDER BY, LIMIT, window functions, joins on
anything but granted keys — is refused exactly as for DP queries, with the same reasons, under
the field `table.query`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aggregation.keys import key_problem
from privacy.parsed import Aggregate, ColRef, GroupKey, ParsedQuery
from privacy.query import _Parser, resolve_units
from privacy.request import fail
from privacy.schema import Schema
from shuyu.errors import ShuyuError, ValidationError

FIELD = "table.query"
SUPPORTED = (
    "COUNT(*), COUNT(DISTINCT <person key>), SUM(col), AVG(col), MIN(col), MAX(col), MEDIAN(col)"
)
# statistic of each aggregate, in the words of the disclosure checks (egress_review.sdc.STAT_KINDS)
STATISTIC = {"count": "count", "count_column": "count", "count_distinct": "count", "sum": "sum"}


@dataclass(frozen=True)
class TableQuery:
    """A checked `table:` query: the parsed form plus the statistic of each output column."""

    parsed: ParsedQuery
    statistics: dict[str, str]  # output column -> count | sum | mean | min | max | median

    @property
    def group_by(self) -> tuple[str, ...]:
        return tuple(g.name for g in self.parsed.groups)

    @property
    def counts(self) -> tuple[str, ...]:
        return tuple(c for c, s in self.statistics.items() if s == "count")

    @property
    def values(self) -> tuple[str, ...]:
        return tuple(c for c, s in self.statistics.items() if s != "count")


class _TableParser(_Parser):
    """The DP parser with the three trusted-table rules above."""

    monthly: frozenset[tuple[str, str]] = frozenset()  # date columns holding months

    def group_key(self, ref: ColRef, name: str) -> GroupKey:
        problem = key_problem(ref.info, (ref.info.dataset, ref.info.name) in self.monthly)
        if problem is not None:
            raise fail(
                f"GROUP BY {ref.column}: {problem}",
                fix="group by a column with public categories, a generalised column or a month",
            )
        return GroupKey(ref, name, ref.info.categories)

    def aggregate(self, node: Mapping[str, Any], unit: ColRef) -> Aggregate:
        fname = str(node.get("function_name", "")).lower()
        if fname not in ("min", "max"):
            return super().aggregate(node, unit)
        if node.get("distinct") or node.get("filter") is not None:
            raise fail(f"{self.text(node)}: write MIN(column) or MAX(column)")
        args = [a.get("expression", a) for a in node.get("arguments") or []]
        if len(args) != 1:
            raise fail(f"{fname.upper()} takes one column: {self.text(node)}")
        ref = self.value_column(args[0], self.text(node))
        self.bounds_for(ref, fname.upper())
        q = 0.0 if fname == "min" else 1.0
        label = f"{fname.upper()}({ref.column})"
        return Aggregate("quantile", node.get("alias") or f"{fname}_{ref.column}", label, ref, q)

    def bounds_for(self, ref: ColRef, what: str) -> tuple[float, float]:
        info = ref.info
        if info.type not in ("integer", "float"):
            raise fail(
                f"{what}({info.name}): {info.dataset}.{info.name} is a {info.type} column; "
                f"{what} needs a numeric column",
                fix="aggregate a numeric column",
            )
        if info.transform not in ("keep", "top_bottom_code"):
            raise fail(
                f"{what}({info.name}): the grant transforms it ({info.transform})",
                fix="aggregate a kept or top_bottom_coded column",
            )
        return info.value_bounds() or (float("-inf"), float("inf"))


def parse_table_query(
    sql: str,
    schema: Schema,
    *,
    monthly: set[tuple[str, str]] | frozenset[tuple[str, str]] = frozenset(),
    units: Mapping[str, str] | None = None,
) -> TableQuery:
    """Check a `table:` query against the workspace's columns; raise ValidationError naming why."""
    parser = _TableParser(
        sql.strip().rstrip(";").strip(),
        schema,
        resolve_units(schema) if units is None else dict(units),
        False,
    )
    parser.monthly = frozenset(monthly)
    try:
        parsed = parser.parse()
    except ShuyuError as exc:
        raise ValidationError(
            exc.message.replace("a DP query", "a table query").replace("DP query", "table query"),
            field=FIELD,
            fix=(exc.fix or "").replace("DP ", "") or f"use {SUPPORTED}",
        ) from None
    statistics: dict[str, str] = {}
    for agg in parsed.aggregates:
        if agg.kind == "quantile":
            stat = {"MIN": "min", "MAX": "max"}.get(agg.label.split("(")[0], "median")
            if stat == "median" and agg.q != 0.5:
                raise ValidationError(
                    f"{agg.label}: only the median is supported among quantiles",
                    field=FIELD,
                    fix="use MEDIAN(col), MIN(col) or MAX(col)",
                )
        else:
            stat = STATISTIC.get(agg.kind, "mean")
        statistics[agg.name] = stat
    return TableQuery(parsed, statistics)
