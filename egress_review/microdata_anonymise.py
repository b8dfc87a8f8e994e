"""k-anonymisation of microdata: generalisers, then generalisation and local suppression.

Where ``microdata_checks`` only measures a file, this module changes one until it is k-anonymous
on its quasi-identifiers (:func:`enforce_k`), and provides the generalisers a caller builds a
hierarchy from (:func:`band`, :func:`year`, :func:`year_month`, :func:`prefix`, :func:`recode`).
It measures progress with the same wildcard-aware class sizes as the checks
(:func:`~egress_review.microdata_checks.sample_frequencies`), so a file it returns passes
:func:`~egress_review.microdata_checks.check_microdata`'s k-anonymity check by construction, and
it logs every change it makes so the reviewer can see what was coarsened or blanked.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from egress_review.microdata_checks import MAX_LISTED, _cols, _plain, _require, sample_frequencies
from shuyu.errors import ValidationError

Generaliser = Callable[[pd.Series], pd.Series]


def band(width: float, start: float = 0) -> Generaliser:
    """Numbers to bands of `width` starting at `start`, labelled "lo-hi" (inclusive integers for
    integer widths, e.g. 30-39)."""

    def apply(s: pd.Series) -> pd.Series:
        x = pd.to_numeric(s, errors="coerce")
        lo = np.floor((x - start) / width) * width + start
        hi = lo + width
        if float(width).is_integer() and float(start).is_integer():
            label = lo.map(lambda v: None if pd.isna(v) else f"{int(v)}-{int(v + width - 1)}")
        else:
            label = pd.Series(
                [None if pd.isna(a) else f"{a:g}-{b:g}" for a, b in zip(lo, hi, strict=True)],
                index=s.index,
            )
        return label.astype(object)

    apply.__name__ = f"band({width:g})"
    return apply


def year() -> Generaliser:
    """Dates to their year."""

    def apply(s: pd.Series) -> pd.Series:
        return pd.to_datetime(s, errors="coerce").dt.year.astype("Int64")

    apply.__name__ = "year"
    return apply


def year_month() -> Generaliser:
    """Dates to "YYYY-MM"."""

    def apply(s: pd.Series) -> pd.Series:
        return pd.to_datetime(s, errors="coerce").dt.strftime("%Y-%m").astype(object)

    apply.__name__ = "year_month"
    return apply


def prefix(n: int) -> Generaliser:
    """Strings (codes) to their first n characters."""

    def apply(s: pd.Series) -> pd.Series:
        return s.astype("string").str.slice(0, n).astype(object)

    apply.__name__ = f"prefix({n})"
    return apply


def recode(mapping: Mapping[Any, Any], other: Any = None) -> Generaliser:
    """Categories to coarser ones; unmapped values become `other` (None keeps them)."""

    def apply(s: pd.Series) -> pd.Series:
        out = s.map(mapping)
        return out if other is None else out.where(s.isna() | s.isin(list(mapping)), other)

    apply.__name__ = "recode"
    return apply


def enforce_k(
    df: pd.DataFrame,
    qis: Sequence[str],
    k: int,
    generalisers: Mapping[str, Generaliser | Sequence[Generaliser]] | None = None,
    *,
    max_suppressed: float = 0.05,
) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """Make `df` k-anonymous on `qis`; return the new frame and a log of every change.

    1. Generalisation: `generalisers` maps a QI to one generaliser or a hierarchy of them (each
       applied to the ORIGINAL column: level 1, level 2 ...). While more than `max_suppressed`
       of the records violate k, the QI level that leaves the fewest violating records is
       applied (ties: the one keeping more distinct values).
    2. Local suppression: for the records still violating, one QI at a time is set to NULL
       (a wildcard), the QI that resolves the most violating records first; only the records it
       resolves are blanked, unless it resolves none, then all violating records are. Repeats
       until no record violates k (an all-NULL record matches every record, so this ends as
       long as the file has at least k records).
    """
    qis = list(_cols(qis))
    _require(df, tuple(qis))
    if k < 1:
        raise ValueError("k must be at least 1")
    levels: dict[str, list[Generaliser]] = {}
    for q, g in (generalisers or {}).items():
        if q not in qis:
            raise ValidationError(f"generaliser for {q}, which is not a quasi-identifier", field=q)
        levels[q] = list(g) if isinstance(g, Sequence) else [g]
    out = df.copy()
    log: list[dict[str, Any]] = []
    applied = {q: 0 for q in levels}
    budget = int(math.floor(max_suppressed * len(df)))

    def violating(frame: pd.DataFrame) -> np.ndarray:
        f, _ = sample_frequencies(frame, qis)
        return f < k

    bad = violating(out)
    start_bad = int(bad.sum())
    log.append({"step": "start", "rows": len(df), "k": k, "violating_rows": start_bad})
    # 1. generalisation
    while bad.sum() > budget:
        best: tuple[int, int, str, pd.Series] | None = None
        for q, hier in levels.items():
            if applied[q] >= len(hier):
                continue
            col = hier[applied[q]](df[q])
            trial = out.copy()
            trial[q] = col
            v = int(violating(trial).sum())
            distinct = -int(col.nunique(dropna=True))
            if best is None or (v, distinct) < (best[0], best[1]):
                best = (v, distinct, q, col)
        if best is None:
            break
        v, _, q, col = best
        gen = levels[q][applied[q]]
        before = int(bad.sum())
        out[q] = col
        applied[q] += 1
        bad = violating(out)
        log.append(
            {
                "step": "generalise",
                "column": q,
                "generaliser": getattr(gen, "__name__", "custom"),
                "level": applied[q],
                "violating_before": before,
                "violating_after": int(bad.sum()),
                "distinct_values": int(out[q].nunique(dropna=True)),
            }
        )
    # 2. local suppression
    suppressed: dict[str, int] = {}
    while bad.any():
        rows = np.flatnonzero(bad)
        best_s: tuple[int, str, np.ndarray] | None = None
        for q in sorted(qis, key=lambda c: -out[c].nunique(dropna=True)):
            live = rows[out[q].iloc[rows].notna().to_numpy()]
            if len(live) == 0:
                continue
            trial = _blank(out, q, live)
            resolved = live[~violating(trial)[live]]
            if best_s is None or len(resolved) > best_s[0]:
                best_s = (len(resolved), q, resolved if len(resolved) else live)
        if best_s is None:
            log.append(
                {
                    "step": "unresolved",
                    "violating_rows": int(bad.sum()),
                    "reason": f"every quasi-identifier is already blank; the file has fewer than {k} records",
                }
            )
            break
        _, q, target = best_s
        out = _blank(out, q, target)
        suppressed[q] = suppressed.get(q, 0) + len(target)
        before = int(bad.sum())
        bad = violating(out)
        log.append(
            {
                "step": "suppress",
                "column": q,
                "cells": int(len(target)),
                "rows": [_plain(i) for i in out.index[target][:MAX_LISTED]],
                "violating_before": before,
                "violating_after": int(bad.sum()),
            }
        )
    f, _ = sample_frequencies(out, qis)
    log.append(
        {
            "step": "result",
            "k": k,
            "min_class_size": int(f.min()) if len(f) else 0,
            "violating_rows": int((f < k).sum()),
            "generalised": {q: applied[q] for q in applied if applied[q]},
            "suppressed_cells": suppressed,
        }
    )
    return out, log


def _blank(df: pd.DataFrame, col: str, rows: np.ndarray) -> pd.DataFrame:
    out = df.copy()
    s = out[col]
    if pd.api.types.is_integer_dtype(s) or pd.api.types.is_bool_dtype(s):
        s = s.astype("Int64" if pd.api.types.is_integer_dtype(s) else "boolean")
    s = s.copy()
    s.iloc[rows] = None
    out[col] = s
    return out
