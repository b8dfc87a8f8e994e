"""The checked form of a DP query: what the parse-tree walker hands to the engine.

Nothing here holds analyst text that will be executed: tables are datasets with fixed aliases
(t0 / t1), columns are references to workspace `ColumnInfo`, the WHERE clause is SQL the walker
wrote itself with literals as bound parameters, and each aggregate carries the bounds that give
it its sensitivity. The engine builds its own SQL and noise from these objects alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from privacy.schema import ColumnInfo


@dataclass(frozen=True)
class ColRef:
    table: int  # index into ParsedQuery.tables; the engine aliases it t0 / t1
    info: ColumnInfo

    @property
    def column(self) -> str:
        return self.info.name

    @property
    def sql(self) -> str:
        return f't{self.table}."{self.info.name}"'


@dataclass(frozen=True)
class TableRef:
    dataset: str
    alias: str


@dataclass(frozen=True)
class GroupKey:
    ref: ColRef
    name: str
    categories: tuple[str, ...] | None  # None: unknown keys (thresholded)


AggKind = Literal["count", "count_column", "count_distinct", "sum", "avg", "quantile"]


@dataclass(frozen=True)
class Aggregate:
    kind: AggKind
    name: str
    label: str  # canonical form, e.g. SUM(wage_base)
    ref: ColRef | None = None
    q: float | None = None
    bounds: tuple[float, float] | None = None


@dataclass(frozen=True)
class ParsedQuery:
    sql: str
    tables: tuple[TableRef, ...]
    join_keys: tuple[ColRef, ColRef] | None
    where_sql: str | None
    where_params: tuple[Any, ...]
    groups: tuple[GroupKey, ...]
    aggregates: tuple[Aggregate, ...]
    output: tuple[str, ...]  # output column names in SELECT order
    unit: ColRef
    unknown_keys: bool  # some group column has no public categories: thresholded release
    notes: tuple[str, ...] = field(default=())

    @property
    def datasets(self) -> tuple[str, ...]:
        return tuple(sorted({t.dataset for t in self.tables}))
