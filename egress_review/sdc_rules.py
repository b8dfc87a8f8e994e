"""The SDC cell rules: frequency and magnitude rules evaluated on whole columns at once.

Each checked column becomes one *verdict frame* (a row per table row: status, the rules that
fired and the numbers behind them). Frequency columns get the threshold and zeros rules; value
columns get the threshold on their contributor count plus, by statistic kind, (n, k)-dominance,
the p% rule, the min/max rule and the review rules for cells that cannot be checked. The rules are
numpy expressions over per-cell contributor statistics (``sdc_contributors``); this module also
turns the verdict frames into :class:`CellResult` objects and a summary. It exists so the rule
arithmetic and its boundary tolerance live in one place, apart from input handling and data access.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from egress_review.sdc_report import (
    FAIL,
    PASS,
    REVIEW,
    RULE_ORDER,
    RULE_STATUS,
    CellResult,
    _clean_number,
    _isnan,
)
from policies.grant import DisclosureRules

REL_TOL = 1e-9


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


def _as_float(s: pd.Series) -> np.ndarray:
    return pd.to_numeric(s, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
