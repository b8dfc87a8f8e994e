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

import datetime as _dt
import math
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from policies.grant import DisclosureRules
from shuyu.errors import ValidationError

PASS, FAIL, REVIEW = "pass", "fail", "review"
STATUSES = (PASS, FAIL, REVIEW)

# rule name -> status it gives a cell; names shared with ACRO's results.json where ACRO has one
RULE_STATUS: dict[str, str] = {
    "threshold": FAIL,
    "zeros": FAIL,
    "nk-rule": FAIL,
    "p-ratio": FAIL,
    "dof": FAIL,
    "negative": REVIEW,
    "missing": REVIEW,
    "min-max": REVIEW,
    "dominance-unchecked": REVIEW,
    "count-unknown": REVIEW,
    "all-values-are-same": REVIEW,
}
RULE_ORDER = tuple(RULE_STATUS)
RULE_TEXT: dict[str, str] = {
    "threshold": "fewer contributors than the minimum count",
    "zeros": "a zero count (class disclosure); a structural zero may be accepted by the reviewer",
    "nk-rule": "the largest contributors dominate the cell total",
    "p-ratio": "the second largest contributor could estimate the largest too closely",
    "dof": "too few residual degrees of freedom",
    "negative": "negative values: dominance is not defined, review by hand",
    "missing": "missing contributor values were ignored",
    "min-max": "a minimum/maximum reveals one contributor's value and the cell size is unknown",
    "dominance-unchecked": "dominance cannot be checked without contributor data",
    "count-unknown": "the number of contributors is unknown (no counts column, no contributor data)",
    "all-values-are-same": "every contributor has the same value (class disclosure)",
}

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

REL_TOL = 1e-9


@dataclass(frozen=True)
class CellResult:
    """One checked cell: a (row, column) of the output table."""

    key: dict[str, Any]  # group-by column -> value
    column: str
    value: Any
    status: str  # pass | fail | review
    rules: tuple[str, ...] = ()  # rules that failed or need review, in RULE_ORDER
    numbers: dict[str, Any] = field(default_factory=dict)  # the numbers behind the verdict
    row: int = 0  # 0-based row position in the table
    col: int = 0  # 0-based position of `column` among the table's columns

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": {k: _jsonable(v) for k, v in self.key.items()},
            "column": self.column,
            "value": _jsonable(self.value),
            "status": self.status,
            "rules": list(self.rules),
            "numbers": {k: _jsonable(v) for k, v in self.numbers.items()},
            "row": self.row,
            "col": self.col,
        }


@dataclass
class TableReport:
    """The verdict for every checked cell of one table output."""

    cells: list[CellResult]
    summary: dict[str, Any]
    group_by: tuple[str, ...] = ()
    columns: tuple[str, ...] = ()  # all columns of the table, in order
    checked: tuple[str, ...] = ()  # the count and value columns that were checked
    rules: dict[str, Any] = field(default_factory=dict)  # thresholds used
    notes: list[str] = field(default_factory=list)
    n_rows: int = 0

    @property
    def ok(self) -> bool:
        """True when every cell passes: nothing fails and nothing needs a reviewer's judgement."""
        return self.summary["fail"] == 0 and self.summary["review"] == 0

    @property
    def blocked(self) -> bool:
        """True when some cell fails a rule (as opposed to only needing review)."""
        return self.summary["fail"] > 0

    @property
    def status(self) -> str:
        if self.summary["fail"]:
            return FAIL
        return REVIEW if self.summary["review"] else PASS

    def failing(self, statuses: Sequence[str] = (FAIL, REVIEW)) -> list[CellResult]:
        return [c for c in self.cells if c.status in statuses]

    def mask(self, statuses: Sequence[str] = (FAIL,)) -> pd.DataFrame:
        """Boolean frame (table rows x checked columns): True where a cell has one of `statuses`."""
        out = pd.DataFrame(False, index=pd.RangeIndex(self.n_rows), columns=list(self.checked))
        for c in self.cells:
            if c.status in statuses:
                out.iat[c.row, self.checked.index(c.column)] = True
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "ok": self.ok,
            "summary": self.summary,
            "group_by": list(self.group_by),
            "checked": list(self.checked),
            "rules": self.rules,
            "notes": list(self.notes),
            "cells": [c.to_dict() for c in self.cells],
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
# rule blocks: each returns one row per (table row, column) with status, rules and numbers


def _frequency_block(df: pd.DataFrame, col: str, rules: DisclosureRules) -> pd.DataFrame:
    raw = df[col]
    c = _as_float(raw)
    blank = np.isnan(c)
    neg = ~blank & (c < 0)
    if rules.zeros_disclosive:
        low = ~blank & (c >= 0) & (c < rules.min_count)
    else:
        low = ~blank & (c > 0) & (c < rules.min_count)
    zero = ~blank & (c == 0) & rules.zeros_disclosive
    flags = {"threshold": low, "zeros": zero, "negative": neg}
    nums = pd.DataFrame({"count": c, "min_count": float(rules.min_count)})
    nums.loc[blank, "count"] = np.nan
    return _block(df, col, flags, nums, suppressed=blank)


def _value_block(
    df: pd.DataFrame,
    col: str,
    kind: str,
    index: int,
    size: np.ndarray | None,
    cstats: pd.DataFrame | None,
    rules: DisclosureRules,
) -> pd.DataFrame:
    val = _as_float(df[col])
    rows = len(df)
    nums: dict[str, np.ndarray] = {}
    if cstats is not None:
        p = f"v{index}_"
        n = cstats[p + "n"].to_numpy(dtype=float, na_value=0.0)
        n = np.nan_to_num(n, nan=0.0)
        total = cstats[p + "total"].to_numpy(dtype=float, na_value=np.nan)
        top1 = cstats[p + "top1"].to_numpy(dtype=float, na_value=np.nan)
        top2 = np.nan_to_num(cstats[p + "top2"].to_numpy(dtype=float, na_value=np.nan), nan=0.0)
        topn = cstats[p + "topn"].to_numpy(dtype=float, na_value=np.nan)
        lo = cstats[p + "min"].to_numpy(dtype=float, na_value=np.nan)
        negs = np.nan_to_num(cstats[p + "neg"].to_numpy(dtype=float, na_value=0.0), nan=0.0)
        miss = np.nan_to_num(cstats[p + "miss"].to_numpy(dtype=float, na_value=0.0), nan=0.0)
        known = np.ones(rows, dtype=bool)
        nums["n"] = n
    elif size is not None:
        n = size.copy()
        known = ~np.isnan(n)
        n = np.where(known, n, 0.0)
        nums["n"] = np.where(known, n, np.nan)
    else:
        n = np.zeros(rows)
        known = np.zeros(rows, dtype=bool)
    nums["min_count"] = np.full(rows, float(rules.min_count))

    empty = known & (n == 0)
    # a blank published value with contributors behind it has been suppressed already
    suppressed = np.isnan(val) & ~empty
    if rules.zeros_disclosive:
        low = known & (n < rules.min_count)
    else:
        low = known & (n > 0) & (n < rules.min_count)
    flags: dict[str, np.ndarray] = {
        "threshold": low,
        "zeros": empty & rules.zeros_disclosive,
        "count-unknown": ~known if kind != "extreme" else np.zeros(rows, dtype=bool),
        "min-max": (~known) if kind == "extreme" else np.zeros(rows, dtype=bool),
    }
    if cstats is not None:
        has = n > 0
        negative = has & (negs > 0) & (kind == "magnitude")
        flags["negative"] = negative
        flags["missing"] = miss > 0
        nums.update(
            total=total,
            largest=top1,
            second=np.where(has, top2, np.nan),
            negatives=negs,
            missing=miss,
        )
        if kind != "frequency":
            flags["all-values-are-same"] = (n >= 2) & (lo == top1)
        if kind == "magnitude":
            checkable = has & ~negative & (total > 0)
            tol = REL_TOL * np.abs(np.nan_to_num(total))
            with np.errstate(invalid="ignore", divide="ignore"):
                share = np.where(checkable, topn / total, np.nan)
                remainder = np.where(checkable, total - top1 - top2, np.nan)
                ratio = np.where(checkable & (top1 > 0), remainder / top1, np.nan)
            flags["nk-rule"] = checkable & (topn - rules.dominance_k * total > tol)
            flags["p-ratio"] = checkable & (rules.p_percent * top1 - remainder > tol)
            nums.update(
                top_n_sum=np.where(has, topn, np.nan),
                top_n_share=share,
                p_remainder=remainder,
                p_ratio=ratio,
                dominance_n=np.full(rows, float(rules.dominance_n)),
                dominance_k=np.full(rows, rules.dominance_k),
                p_percent=np.full(rows, rules.p_percent),
            )
    else:
        if kind == "magnitude":
            flags["negative"] = ~np.isnan(val) & (val < 0)
            flags["dominance-unchecked"] = ~empty
    return _block(df, col, flags, pd.DataFrame(nums), suppressed=suppressed)


def _block(
    df: pd.DataFrame,
    col: str,
    flags: dict[str, np.ndarray],
    nums: pd.DataFrame,
    suppressed: np.ndarray,
) -> pd.DataFrame:
    rows = len(df)
    keep = ~suppressed
    fail = np.zeros(rows, dtype=bool)
    review = np.zeros(rows, dtype=bool)
    names = np.full(rows, "", dtype=object)
    for rule in RULE_ORDER:
        flag = flags.get(rule)
        if flag is None:
            continue
        flag = np.asarray(flag, dtype=bool) & keep
        if RULE_STATUS[rule] == FAIL:
            fail |= flag
        else:
            review |= flag
        names = np.where(flag, names + rule + ";", names)
    status = np.where(fail, FAIL, np.where(review, REVIEW, PASS))
    out = pd.DataFrame(
        {
            "row": np.arange(rows),
            "column": col,
            "status": status,
            "rules": names,
            "suppressed": suppressed,
        }
    )
    out["value"] = df[col].to_numpy(dtype=object)
    out["numbers"] = _number_dicts(nums.reset_index(drop=True), suppressed)
    return out


def _number_dicts(nums: pd.DataFrame, suppressed: np.ndarray) -> list[dict[str, Any]]:
    records = nums.to_dict("records") if len(nums.columns) else [{} for _ in range(len(suppressed))]
    out = []
    for rec, sup in zip(records, suppressed, strict=True):
        d = {k: _clean_number(v) for k, v in rec.items() if not _isnan(v)}
        if sup:
            d["suppressed"] = True
        out.append(d)
    return out


def _materialise(
    frame: pd.DataFrame, df: pd.DataFrame, group_by: tuple[str, ...], columns: tuple[str, ...]
) -> list[CellResult]:
    keys = df[list(group_by)].to_dict("records") if group_by else [{} for _ in range(len(df))]
    position = {c: i for i, c in enumerate(columns)}
    return [
        CellResult(
            key=keys[row],
            column=col,
            value=value,
            status=status,
            rules=tuple(r for r in rules.split(";") if r),
            numbers=numbers,
            row=int(row),
            col=position[col],
        )
        for row, col, value, status, rules, numbers in zip(
            frame["row"].to_numpy(),
            frame["column"].to_numpy(),
            frame["value"].to_numpy(),
            frame["status"].to_numpy(),
            frame["rules"].to_numpy(),
            frame["numbers"].to_numpy(),
            strict=True,
        )
    ]


def _summarise(frame: pd.DataFrame, n_rows: int) -> dict[str, Any]:
    counts = frame["status"].value_counts()
    by_rule: dict[str, int] = {}
    joined = frame["rules"].str.split(";").explode()
    joined = joined[joined.astype(bool)]
    for rule, n in joined.value_counts().items():
        by_rule[str(rule)] = int(n)
    return {
        "cells": int(len(frame)),
        "rows": int(n_rows),
        PASS: int(counts.get(PASS, 0)),
        FAIL: int(counts.get(FAIL, 0)),
        REVIEW: int(counts.get(REVIEW, 0)),
        "suppressed": int(frame["suppressed"].sum()),
        "rules": {r: by_rule[r] for r in RULE_ORDER if r in by_rule},
    }


# --------------------------------------------------------------------------------------------
# contributor data: one DuckDB GROUP BY over the unit-level rows


def _contributor_stats(
    contributors: Any,
    df: pd.DataFrame,
    group_by: tuple[str, ...],
    value_map: dict[str, str],
    contributor_id: str | None,
    rules: DisclosureRules,
) -> pd.DataFrame:
    """Per-cell contributor statistics aligned to `df`'s rows (columns v{i}_n, _total, ...)."""
    sources = list(dict.fromkeys(value_map.values()))
    src_index = {s: j for j, s in enumerate(sources)}
    top = max(rules.dominance_n, 2)
    g = [_q(c) for c in group_by]
    if contributor_id is not None:
        inner_sel = ", ".join(
            [*g, *(f"SUM({_q(s)}) AS s{j}" for j, s in enumerate(sources))]
            + [f"COUNT(*) - COUNT({_q(s)}) AS m{j}" for j, s in enumerate(sources)]
        )
        inner = f"SELECT {inner_sel} FROM contrib GROUP BY " + ", ".join([*g, _q(contributor_id)])
        miss = [f"SUM(m{j})" for j in range(len(sources))]
    else:
        inner_sel = ", ".join([*g, *(f"{_q(s)} AS s{j}" for j, s in enumerate(sources))])
        inner = f"SELECT {inner_sel} FROM contrib"
        miss = [f"COUNT(*) - COUNT(s{j})" for j in range(len(sources))]
    aggs = []
    for j in range(len(sources)):
        v = f"s{j}"
        aggs += [
            f"COUNT({v})::BIGINT AS s{j}_n",
            f"SUM({v})::DOUBLE AS s{j}_total",
            f"max({v}, {top}) AS s{j}_tops",
            f"MIN({v})::DOUBLE AS s{j}_min",
            f"COUNT_IF({v} < 0)::BIGINT AS s{j}_neg",
            f"({miss[j]})::BIGINT AS s{j}_miss",
        ]
    post = []
    for j in range(len(sources)):
        post += [
            f"s{j}_n",
            f"s{j}_total",
            f"s{j}_tops[1]::DOUBLE AS s{j}_top1",
            f"s{j}_tops[2]::DOUBLE AS s{j}_top2",
            f"list_sum(s{j}_tops[1:{rules.dominance_n}])::DOUBLE AS s{j}_topn",
            f"s{j}_min",
            f"s{j}_neg",
            f"s{j}_miss",
        ]
    group = f" GROUP BY {', '.join(g)}" if g else ""
    sql = (
        f"WITH units AS ({inner}), agg AS (SELECT {', '.join([*g, *aggs])} FROM units{group}) "
        f"SELECT {', '.join([*g, *post])} FROM agg"
    )
    stats = _run_on(contributors, sql, list(group_by) + sources + _opt(contributor_id))

    # align to the table's rows
    if group_by:
        left = df[list(group_by)].copy()
        right = stats.copy()
        for key in group_by:
            left[key], right[key] = _harmonise(left[key], right[key])
        merged = left.merge(right, on=list(group_by), how="left", sort=False)
        if len(merged) != len(left):  # cannot happen with GROUP BY keys, but stay aligned
            merged = merged.iloc[: len(left)]
    else:
        merged = (
            pd.concat([stats] * len(df), ignore_index=True)
            if len(stats)
            else pd.DataFrame(index=range(len(df)))
        )
    out = pd.DataFrame(index=range(len(df)))
    for i, (_col, src) in enumerate(value_map.items()):
        j = src_index[src]
        for part in ("n", "total", "top1", "top2", "topn", "min", "neg", "miss"):
            name = f"s{j}_{part}"
            out[f"v{i}_{part}"] = (
                merged[name].to_numpy() if name in merged else np.full(len(df), np.nan)
            )
    return out


_BASE: duckdb.DuckDBPyConnection | None = None
_BASE_PID = 0
_BASE_LOCK = threading.Lock()


def _cursor() -> duckdb.DuckDBPyConnection:
    """A fresh connection-local cursor on one shared in-memory database: microseconds instead of
    the ~10 ms of duckdb.connect(); registrations and temp views stay private to the cursor."""
    global _BASE, _BASE_PID
    with _BASE_LOCK:
        if _BASE is None or os.getpid() != _BASE_PID:  # never reuse a parent's across fork
            _BASE, _BASE_PID = duckdb.connect(), os.getpid()
        return _BASE.cursor()


def _run_on(contributors: Any, sql: str, needed: list[str]) -> pd.DataFrame:
    if isinstance(contributors, duckdb.DuckDBPyRelation):
        _require_columns_list(list(contributors.columns), needed, "contributors")
        result = contributors.query("contrib", sql)
        if result is None:  # pragma: no cover - a SELECT always yields a relation
            raise ValidationError("the contributor query returned nothing", field="contributors")
        return result.df()
    con = _cursor()
    try:
        if isinstance(contributors, pd.DataFrame):
            _require_columns_list([str(c) for c in contributors.columns], needed, "contributors")
            con.register("contrib", contributors)
        elif isinstance(contributors, str | Path):
            path = str(contributors).replace("'", "''")
            reader = (
                "read_csv_auto" if str(contributors).lower().endswith(".csv") else "read_parquet"
            )
            con.execute(f"CREATE TEMP VIEW contrib AS SELECT * FROM {reader}('{path}')")
            cols = [r[0] for r in con.execute("DESCRIBE contrib").fetchall()]
            _require_columns_list(cols, needed, "contributors")
        else:
            raise ValidationError(
                "contributors must be a DataFrame, a DuckDB relation or a path, "
                f"not {type(contributors).__name__}",
                field="contributors",
            )
        return con.execute(sql).df()
    finally:
        con.close()


# --------------------------------------------------------------------------------------------
# helpers


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


def _harmonise(a: pd.Series, b: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Make two key columns comparable (dates vs ISO strings, ints vs floats)."""
    if a.dtype == b.dtype:
        return a, b
    num_a, num_b = pd.api.types.is_numeric_dtype(a), pd.api.types.is_numeric_dtype(b)
    if num_a and num_b:
        return a.astype(float), b.astype(float)
    return _key_text(a), _key_text(b)


def _key_text(s: pd.Series) -> pd.Series:
    if isinstance(s.dtype, pd.CategoricalDtype):
        s = s.astype(s.cat.categories.dtype)
    if pd.api.types.is_datetime64_any_dtype(s):
        dt = s.dt
        midnight = (dt.hour == 0) & (dt.minute == 0) & (dt.second == 0)
        fmt = "%Y-%m-%d" if bool(midnight.all()) else "%Y-%m-%dT%H:%M:%S"
        return s.dt.strftime(fmt).astype(object)
    if s.dtype == object:
        return s.map(
            lambda v: v.isoformat() if isinstance(v, _dt.date) else (None if _isnan(v) else str(v))
        )
    if pd.api.types.is_float_dtype(s) and bool((s.dropna() % 1 == 0).all()):
        return s.map(lambda v: None if _isnan(v) else str(int(v))).astype(object)
    return s.map(lambda v: None if _isnan(v) else str(v)).astype(object)


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


def _opt(x: str | None) -> list[str]:
    return [x] if x is not None else []


def _require_columns(df: pd.DataFrame, cols: Sequence[str], what: str) -> None:
    _require_columns_list([str(c) for c in df.columns], cols, what)


def _require_columns_list(have: Sequence[str], cols: Sequence[str], what: str) -> None:
    missing = [c for c in cols if c not in have]
    if missing:
        raise ValidationError(
            f"the {what} has no column(s) {', '.join(missing)}",
            field=what,
            fix=f"columns present: {', '.join(have)}",
        )


def _as_float(s: pd.Series) -> np.ndarray:
    return pd.to_numeric(s, errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def _q(name: str) -> str:
    return '"' + str(name).replace('"', '""') + '"'


def _isnan(v: Any) -> bool:
    if v is None or v is pd.NA or v is pd.NaT:
        return True
    try:
        return bool(isinstance(v, float | np.floating) and math.isnan(v))
    except TypeError:
        return False


def _clean_number(v: Any) -> Any:
    if isinstance(v, float | np.floating):
        f = float(v)
        return int(f) if f.is_integer() and abs(f) < 2**53 else f
    if isinstance(v, np.integer):
        return int(v)
    return v


def _jsonable(v: Any) -> Any:
    if _isnan(v):
        return None
    if isinstance(v, np.bool_ | bool):
        return bool(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating | float):
        return _clean_number(v)
    if isinstance(v, pd.Timestamp):
        return v.isoformat()
    if isinstance(v, _dt.date | _dt.datetime):
        return v.isoformat()
    if isinstance(v, np.datetime64):
        return pd.Timestamp(v).isoformat()
    return v
