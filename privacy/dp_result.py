"""The released DP table and its metadata: what a query returns and what is written out.

A `DPResult` is the only thing that leaves the DP engine: the noisy table plus, per output
column, the mechanism, the ε it used and its 95% error bounds. It lives apart from the engine
so that everything downstream (the service, jobs, Parquet writers) depends only on this model
and its serialisations (`cells()`, `metadata()`, `to_parquet()`), never on how the noise was
drawn. It holds noisy values only.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd


@dataclass
class DPResult:
    """A released DP table and what it cost.

    `table` holds the group columns and the noisy aggregates (in SELECT order). Per output
    column: `mechanisms`, `epsilon_by_column` (ε of the measurements it uses; shared ones count
    for each column that uses them, the query total is `epsilon`) and `error_bounds` (one 95%
    bound per row of `table`; NaN where none is given). `cells()` is the long form with that
    metadata on every cell. `datasets` are the datasets whose budget the query spends.
    """

    table: pd.DataFrame
    epsilon: float
    delta: float
    mechanisms: dict[str, str]
    error_bounds: dict[str, list[float]]
    epsilon_by_column: dict[str, float]
    datasets: tuple[str, ...]
    notes: list[str]
    query: str
    max_contributions: int
    group_columns: tuple[str, ...]
    threshold: float | None = None
    measurements: list[dict[str, Any]] = field(default_factory=list)

    def cells(self) -> pd.DataFrame:
        rows = []
        for i in range(len(self.table)):
            groups = {g: self.table[g].iloc[i] for g in self.group_columns}
            for col in self.mechanisms:
                rows.append(
                    {
                        **groups,
                        "column": col,
                        "value": self.table[col].iloc[i],
                        "epsilon": self.epsilon_by_column[col],
                        "mechanism": self.mechanisms[col],
                        "error95": self.error_bounds[col][i],
                    }
                )
        columns = [*self.group_columns, "column", "value", "epsilon", "mechanism", "error95"]
        return pd.DataFrame(rows, columns=columns)

    def metadata(self) -> dict[str, Any]:
        return {
            "query": self.query,
            "epsilon": self.epsilon,
            "delta": self.delta,
            "max_contributions": self.max_contributions,
            "datasets": list(self.datasets),
            "threshold": self.threshold,
            "columns": {
                c: {
                    "mechanism": self.mechanisms[c],
                    "epsilon": self.epsilon_by_column[c],
                    "error95": [None if _isnan(v) else v for v in self.error_bounds[c]],
                }
                for c in self.mechanisms
            },
            "measurements": self.measurements,
            "notes": self.notes,
        }

    def to_parquet(self, path: Path | str, form: Literal["wide", "cells"] = "wide") -> Path:
        """Write the table (or its cells) with the DP metadata in the Parquet key-value metadata."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        frame = self.table if form == "wide" else self.cells()
        table = pa.Table.from_pandas(frame, preserve_index=False)
        meta = dict(table.schema.metadata or {})
        meta[b"shuyu.dp"] = json.dumps(self.metadata(), ensure_ascii=False, default=str).encode()
        target = Path(path)
        pq.write_table(table.replace_schema_metadata(meta), target)
        return target


def _isnan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)
