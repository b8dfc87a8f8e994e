"""Statistical disclosure control (SDC) for table outputs, run outside the sandbox before review.

The rules follow ACRO (SACRO project) and the UK SDAP output-checking rules, with the thresholds
of the grant's :class:`policies.grant.DisclosureRules`:

``threshold``
    a frequency cell (a ``counts`` column, or the number of contributors of a magnitude cell) with
    fewer than ``min_count`` units fails. A zero counts as below the threshold only when zeros are
    disclosive (as in ACRO, where an empty cell is also a threshold failure).
``zeros``
    a zero count fails when ``zeros_disclosive`` (class disclosure); the reviewer may later accept
    a structural zero, so it is reported under its own rule.
``nk-rule``
    (n, k)-dominance: the n largest contributors' sum > k x cell total fails. A cell exactly at k
    passes (the rule is strictly "greater than").
``p-ratio``
    p% rule: total - largest - second largest < p x largest fails (the second largest contributor
    could estimate the largest to within p%). Exactly at the boundary passes.
``min-max``
    a min/max statistic reveals one contributor's value; it passes only when the cell is known to
    pass the threshold, otherwise it fails the threshold (too few) or goes to review (size unknown).
``dof``
    residual degrees of freedom of a model output below ``min_dof`` fail (:func:`check_dof`).

Cells that cannot be checked are never silently passed: negative magnitudes (dominance is not
defined), missing contributor values, magnitude cells without contributor data ("dominance cannot
be checked without contributor data") and cells whose contributors all share one value go to
``review``. A cell's status is ``fail`` if any failing rule applies, else ``review`` if any review
rule applies, else ``pass``. A cell whose published value is already blank (NaN) while it has
contributors is treated as suppressed and passes.

Boundaries are compared with a relative tolerance of 1e-9 of the cell total so that float rounding
(0.9 x 10 is not exactly 9 in binary) cannot flip a cell that sits exactly on a boundary.

All work is vectorised: contributor data are aggregated per cell in one DuckDB ``GROUP BY`` (top-n
values with ``max(v, n)``), and the rules are numpy expressions over whole columns.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from egress_review.sdc_contributors import _contributor_stats, _require_columns_list
from egress_review.sdc_contributors import _cursor as _cursor  # bench/bench_sdc.py sets threads
from egress_review.sdc_report import (
    FAIL,
    PASS,
    REVIEW,
    RULE_ORDER,
    RULE_STATUS,
    RULE_TEXT,
    STATUSES,
    CellResult,
    TableReport,
)
from egress_review.sdc_rules import (
    REL_TOL,
    _as_float,
    _frequency_block,
    _materialise,
    _summarise,
    _value_block,
)
from policies.grant import DisclosureRules
from shuyu.errors import ValidationError

__all__ = [
    "FAIL",
    "PASS",
    "REL_TOL",
    "REVIEW",
    "RULE_ORDER",
    "RULE_STATUS",
    "RULE_TEXT",
    "STATUSES",
    "STAT_KINDS",
    "CellResult",
    "TableReport",
    "check_dof",
    "check_table",
]

# statistic name -> kind of rule set applied to a value column
STAT_KINDS: dict[str, str] = {
    "sum": "magnitude",
    "total": "magnitude",
    "mean": "magnitude",
    "avg": "magnitude",
    "average": "magnitude",
    "min": "extreme",
    "max": "extreme",
    "minimum": "extreme",
    "maximum": "extreme",
    "median": "position",
    "mode": "position",
    "quantile": "position",
    "percentile": "position",
    "std": "spread",
    "sd": "spread",
    "var": "spread",
    "variance": "spread",
    "count": "frequency",
}


# --------------------------------------------------------------------------------------------
# public API


def check_table(
    table: pd.DataFrame | str | Path,
    *,
    group_by: Sequence[str],
    counts: Sequence[str] = (),
    values: Sequence[str] | Mapping[str, str] = (),
    rules: DisclosureRules,
    contributors: pd.DataFrame | duckdb.DuckDBPyRelation | str | Path | None = None,
    contributor_id: str | None = None,
    stats: str | Mapping[str, str] | None = None,
    complete: bool = False,
) -> TableReport:
    """Check an aggregate table cell by cell.

    table
        long format: one row per cell, the `group_by` columns plus count and value columns; a
        DataFrame or a Parquet/CSV path.
    counts
        frequency columns. The first one is also the cell size of the value columns when no
        contributor data are given.
    values
        magnitude columns; a mapping ``{table column: contributor column}`` when the contributor
        data name the value differently (a plain sequence means the same name on both sides).
    contributors
        unit-level data behind the cells (DataFrame, DuckDB relation, or a Parquet/CSV path) with
        the group-by columns, the value columns and optionally `contributor_id`. With an id, a
        contributor's rows within a cell are summed first (dominance is about contributors, not
        records); without one every row is a contributor (as in ACRO).
    stats
        statistic of each value column (``"mean"``, ``"sum"``, ``"max"``, ``"median"`` ...), one
        name for all or a mapping; default: magnitudes (sum/mean).
    complete
        add the missing combinations of the observed group-by levels as empty cells (count 0), as
        ACRO's crosstab does, so that implied zeros are checked too.
    """
    df = _load_table(table)
    group_by = _as_tuple(group_by, "group_by")
    counts = _as_tuple(counts, "counts")
    value_map = _value_map(values)
    checked = counts + tuple(value_map)
    if not checked:
        raise ValidationError(
            "nothing to check: the output declares no counts and no values",
            field="counts",
            fix="declare the count columns (counts:) and/or magnitude columns (values:)",
        )
    _require_columns(df, group_by + checked, "table")
    overlap = set(group_by) & set(checked)
    if overlap:
        raise ValidationError(
            f"columns {sorted(overlap)} are both group-by and checked columns",
            field="group_by",
            fix="a column is either a key or a cell value",
        )
    kinds = _stat_kinds(stats, value_map)
    notes: list[str] = []
    if complete and group_by:
        df, added = _complete(df, group_by, counts)
        if added:
            notes.append(f"{added} missing group-by combinations were added as empty cells")
    df = df.reset_index(drop=True)
    if group_by and df.duplicated(list(group_by)).any():
        notes.append("the group-by columns do not identify rows uniquely; each row is checked")

    cstats: pd.DataFrame | None = None
    if value_map and contributors is not None:
        need = sorted({kinds[c] for c in value_map} - {"frequency"})
        if need:
            cstats = _contributor_stats(
                contributors, df, group_by, value_map, contributor_id, rules
            )
    elif value_map and any(k in ("magnitude",) for k in kinds.values()):
        notes.append("no contributor data: dominance cannot be checked without contributor data")

    columns = tuple(str(c) for c in df.columns)
    blocks: list[pd.DataFrame] = []
    size = _as_float(df[counts[0]]) if counts else None
    for col in counts:
        blocks.append(_frequency_block(df, col, rules))
    for i, (col, _src) in enumerate(value_map.items()):
        if kinds[col] == "frequency":
            blocks.append(_frequency_block(df, col, rules))
        else:
            blocks.append(_value_block(df, col, kinds[col], i, size, cstats, rules))
    frame = pd.concat(blocks, ignore_index=True)
    cells = _materialise(frame, df, group_by, columns)
    summary = _summarise(frame, len(df))
    used = {
        "min_count": rules.min_count,
        "dominance_n": rules.dominance_n,
        "dominance_k": rules.dominance_k,
        "p_percent": rules.p_percent,
        "zeros_disclosive": rules.zeros_disclosive,
    }
    return TableReport(
        cells=cells,
        summary=summary,
        group_by=group_by,
        columns=columns,
        checked=checked,
        rules=used,
        notes=notes,
        n_rows=len(df),
    )


def check_dof(residual_dof: float | int | None, rules: DisclosureRules) -> CellResult:
    """Degrees-of-freedom rule for model outputs: residual dof < min_dof fails (ACRO's
    MinimumDoFCheck); an unknown dof goes to review."""
    numbers: dict[str, Any] = {"dof": residual_dof, "min_dof": rules.min_dof}
    if residual_dof is None or (isinstance(residual_dof, float) and math.isnan(residual_dof)):
        return CellResult({}, "residual_dof", residual_dof, REVIEW, ("count-unknown",), numbers)
    if residual_dof < rules.min_dof:
        return CellResult({}, "residual_dof", residual_dof, FAIL, ("dof",), numbers)
    return CellResult({}, "residual_dof", residual_dof, PASS, (), numbers)


# --------------------------------------------------------------------------------------------
# input handling


def _load_table(table: Any) -> pd.DataFrame:
    if isinstance(table, pd.DataFrame):
        return table.copy()
    if isinstance(table, str | Path):
        path = Path(table)
        suffix = path.suffix.lower()
        if suffix == ".parquet":
            return pd.read_parquet(path)
        if suffix == ".csv":
            return pd.read_csv(path)
        if suffix == ".json":
            return pd.read_json(path)
        raise ValidationError(
            f"cannot read a table from {path.name}", file=str(path), fix="use .parquet or .csv"
        )
    raise ValidationError(f"table must be a DataFrame or a path, not {type(table).__name__}")


def _complete(
    df: pd.DataFrame, group_by: tuple[str, ...], counts: tuple[str, ...]
) -> tuple[pd.DataFrame, int]:
    """Append the absent combinations of the observed group-by levels as empty cells."""
    keys = list(group_by)
    present = pd.MultiIndex.from_frame(df[keys])
    levels = [df[c].drop_duplicates() for c in keys]
    n_full = int(np.prod([len(v) for v in levels]))
    if n_full == len(present.drop_duplicates()):
        return df, 0
    full = pd.MultiIndex.from_product(levels, names=keys)
    absent = full.difference(present, sort=False).to_frame(index=False)
    for c in df.columns:
        if c not in keys:
            absent[c] = 0 if c in counts else np.nan
    return pd.concat([df, absent[list(df.columns)]], ignore_index=True), len(absent)


def _value_map(values: Sequence[str] | Mapping[str, str]) -> dict[str, str]:
    if isinstance(values, Mapping):
        return {str(k): str(v) for k, v in values.items()}
    return {v: v for v in _as_tuple(values, "values")}


def _stat_kinds(stats: str | Mapping[str, str] | None, value_map: dict[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for col in value_map:
        if stats is None:
            name = "mean"
        elif isinstance(stats, str):
            name = stats
        else:
            name = stats.get(col, "mean")
        kind = STAT_KINDS.get(str(name).lower())
        if kind is None:
            raise ValidationError(
                f"unknown statistic {name!r} for column {col}",
                field="stats",
                fix=f"use one of: {', '.join(sorted(STAT_KINDS))}",
            )
        out[col] = kind
    return out


def _as_tuple(cols: Sequence[str] | str | None, name: str) -> tuple[str, ...]:
    if cols is None:
        return ()
    if isinstance(cols, str):
        return (cols,)
    return tuple(str(c) for c in cols)


def _require_columns(df: pd.DataFrame, cols: Sequence[str], what: str) -> None:
    _require_columns_list([str(c) for c in df.columns], cols, what)
