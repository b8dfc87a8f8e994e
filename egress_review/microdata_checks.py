"""Disclosure checks for microdata (row-level) outputs: k-anonymity, l-diversity, risk.

This module measures a row-level file against the grant's rules and reports; it changes
nothing (``microdata_anonymise`` does, reusing :func:`sample_frequencies`). The measures:

k-anonymity
    records are grouped on the declared quasi-identifiers (QIs); a record whose class has fewer
    than ``rules.k_anonymity`` records violates it. A missing QI value (NULL, also what local
    suppression writes) is a *wildcard*: it matches every value, as in sdcMicro, because an
    intruder cannot tell what was blanked. The class of record i is therefore every record that
    agrees with i on the QIs where both are non-missing, and f_i is its size. Without any
    missing QI this is the ordinary equivalence class.
l-diversity
    per sensitive column, over the exact equivalence classes (a missing QI counts as its own
    value here, so the classes partition the file): distinct l = the number of distinct
    sensitive values in a class, entropy l = exp(H) with H the Shannon entropy (natural log) of
    the class's sensitive values. Using exact classes gives a lower bound of l under the
    wildcard reading, so the check errs on the safe side. Distinct l below ``rules.l_diversity``
    fails; entropy l below it (while distinct l passes) goes to review.
re-identification risk
    sdcMicro's individual risk. Without sampling weights the file is treated as the population:
    r_i = 1 / f_i, the chance that an intruder who matches a known person to the class picks
    the right record (conservative when the file is a sample of a larger population). With a
    weights column the population class size is estimated by F_i = sum of the class's weights
    and the Benedetti-Franconi approximation is used (sdcMicro ``indivRisk(method="approx")``),
    with p = f/F: f=1: p/(1-p) log(1/p); f=2: p/(1-p) - (p/(1-p))^2 log(1/p); f>2: p/(f-(1-p));
    (p = 1 gives the limit 1/f). The global risk is the expected number of re-identifications
    sum_i r_i; the global risk rate is that divided by the number of records.

Status: ``fail`` when k-anonymity or distinct l-diversity fails (the output is blocked),
``review`` when only entropy l-diversity falls short or no QI is declared, else ``pass``.

All frequencies are pandas group-bys over whole columns (factorised codes); with missing QIs
one group-by per pair of missingness patterns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from policies.grant import DisclosureRules
from shuyu.errors import ValidationError

PASS, FAIL, REVIEW = "pass", "fail", "review"
MAX_LISTED = 1000  # row indices listed in to_dict(); the count is always exact


@dataclass
class KAnonymity:
    k: int
    min_class_size: int
    n_classes: int
    violating_count: int
    violating_rows: list[Any]  # index labels of the violating records
    status: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "k": self.k,
            "min_class_size": self.min_class_size,
            "n_classes": self.n_classes,
            "violating_count": self.violating_count,
            "violating_rows": [_plain(i) for i in self.violating_rows[:MAX_LISTED]],
            "violating_rows_truncated": len(self.violating_rows) > MAX_LISTED,
            "status": self.status,
        }


@dataclass
class LDiversity:
    column: str
    l: int  # noqa: E741 - the name of the parameter in the literature
    min_distinct_l: int
    min_entropy_l: float
    violating_classes: int  # classes with distinct l < l
    violating_rows: int
    entropy_violating_classes: int  # classes with entropy l < l
    status: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "l": self.l,
            "min_distinct_l": self.min_distinct_l,
            "min_entropy_l": round(self.min_entropy_l, 6),
            "violating_classes": self.violating_classes,
            "violating_rows": self.violating_rows,
            "entropy_violating_classes": self.entropy_violating_classes,
            "status": self.status,
        }


@dataclass
class ReidentificationRisk:
    estimator: str
    global_risk: float  # expected number of re-identifications
    global_risk_rate: float  # global_risk / records
    max_risk: float
    records_at_risk: int  # records with risk > 1/k
    individual: pd.Series = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "estimator": self.estimator,
            "global_risk": round(self.global_risk, 6),
            "global_risk_rate": round(self.global_risk_rate, 8),
            "max_risk": round(self.max_risk, 6),
            "records_at_risk": self.records_at_risk,
        }


@dataclass
class MicrodataReport:
    rows: int
    quasi_identifiers: tuple[str, ...]
    sensitive: tuple[str, ...]
    k_anonymity: KAnonymity | None
    l_diversity: dict[str, LDiversity]
    risk: ReidentificationRisk | None
    notes: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        parts = [self.k_anonymity.status] if self.k_anonymity else [REVIEW]
        parts += [d.status for d in self.l_diversity.values()]
        if FAIL in parts:
            return FAIL
        return REVIEW if REVIEW in parts else PASS

    @property
    def ok(self) -> bool:
        """True only when every check passes (same meaning as TableReport.ok)."""
        return self.status == PASS

    @property
    def blocked(self) -> bool:
        """A microdata output that still fails k-anonymity or l-diversity is not released."""
        return self.status == FAIL

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "ok": self.ok,
            "blocked": self.blocked,
            "rows": self.rows,
            "quasi_identifiers": list(self.quasi_identifiers),
            "sensitive": list(self.sensitive),
            "k_anonymity": self.k_anonymity.to_dict() if self.k_anonymity else None,
            "l_diversity": {c: d.to_dict() for c, d in self.l_diversity.items()},
            "risk": self.risk.to_dict() if self.risk else None,
            "notes": list(self.notes),
        }


# --------------------------------------------------------------------------------------------
# checks


def check_microdata(
    df: pd.DataFrame,
    *,
    quasi_identifiers: Sequence[str],
    sensitive: Sequence[str] = (),
    rules: DisclosureRules,
    weights: str | None = None,
) -> MicrodataReport:
    qis = _cols(quasi_identifiers)
    sens = _cols(sensitive)
    _require(df, qis + sens + ((weights,) if weights else ()))
    notes: list[str] = []
    if not qis:
        notes.append("no quasi-identifiers declared: k-anonymity cannot be checked")
        return MicrodataReport(len(df), qis, sens, None, {}, None, notes)
    f, big_f = sample_frequencies(df, qis, weights=weights)
    k = rules.k_anonymity
    bad = f < k
    codes = _class_codes(df, qis)
    kan = KAnonymity(
        k=k,
        min_class_size=int(f.min()) if len(f) else 0,
        n_classes=int(codes.max() + 1) if len(codes) else 0,
        violating_count=int(bad.sum()),
        violating_rows=list(df.index[bad]),
        status=FAIL if bad.any() else PASS,
    )
    if len(df) and df[list(qis)].isna().any().any():
        notes.append("missing quasi-identifier values are treated as wildcards (match any value)")
    ldiv = {s: _l_diversity(df, codes, s, rules.l_diversity) for s in sens}
    risk = individual_risk(f, big_f if weights else None)
    r = pd.Series(risk, index=df.index, name="risk")
    rep_risk = ReidentificationRisk(
        estimator=(
            "Benedetti-Franconi approximation with F = sum of weights (sdcMicro indivRisk approx)"
            if weights
            else "1/f_k with sample frequencies (file treated as the population)"
        ),
        global_risk=float(r.sum()),
        global_risk_rate=float(r.mean()) if len(r) else 0.0,
        max_risk=float(r.max()) if len(r) else 0.0,
        records_at_risk=int((r > 1.0 / k + 1e-12).sum()),
        individual=r,
    )
    return MicrodataReport(len(df), qis, sens, kan, ldiv, rep_risk, notes)


def sample_frequencies(
    df: pd.DataFrame, qis: Sequence[str], weights: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """f_i (records matching record i on the QIs, missing values as wildcards) and F_i (the sum
    of their weights, or f_i without weights)."""
    qis = list(qis)
    n = len(df)
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    w = df[weights].to_numpy(dtype=float) if weights else np.ones(n)
    codes = pd.DataFrame({q: pd.factorize(df[q], use_na_sentinel=True)[0] for q in qis})
    present = codes.to_numpy() >= 0
    if present.all():
        g = _class_codes(df, qis)
        f = np.bincount(g)[g]
        big_f = np.bincount(g, weights=w)[g]
        return f.astype(np.int64), big_f
    # missingness patterns: bit q set when QI q is present
    bits = (present * (1 << np.arange(len(qis)))).sum(axis=1)
    patterns = np.unique(bits)
    f = np.zeros(n)
    big_f = np.zeros(n)
    rows_of = {int(p): np.flatnonzero(bits == p) for p in patterns}
    for pi in patterns:
        ri = rows_of[int(pi)]
        for pj in patterns:
            rj = rows_of[int(pj)]
            shared = [q for b, q in enumerate(qis) if (int(pi) >> b) & 1 and (int(pj) >> b) & 1]
            if not shared:
                f[ri] += len(rj)
                big_f[ri] += w[rj].sum()
                continue
            right = codes.iloc[rj][shared].assign(_w=w[rj])
            counts = right.groupby(shared, sort=False).agg(_f=("_w", "size"), _F=("_w", "sum"))
            left = codes.iloc[ri][shared]
            hit = left.merge(counts, left_on=shared, right_index=True, how="left")
            f[ri] += hit["_f"].fillna(0).to_numpy()
            big_f[ri] += hit["_F"].fillna(0).to_numpy()
    return f.astype(np.int64), big_f


def individual_risk(f: np.ndarray, big_f: np.ndarray | None = None) -> np.ndarray:
    """Per-record re-identification risk (see the module docstring for the estimator)."""
    f = np.asarray(f, dtype=float)
    if big_f is None:
        with np.errstate(divide="ignore"):
            return np.where(f > 0, 1.0 / np.maximum(f, 1), 0.0)
    big_f = np.maximum(np.asarray(big_f, dtype=float), f)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(big_f > 0, f / big_f, 1.0)
        q = 1.0 - p
        odd = np.where(q > 1e-12, p / np.where(q > 1e-12, q, 1.0), 0.0)
        log = np.log(1.0 / np.where(p > 0, p, 1.0))
        r1 = odd * log
        r2 = odd - odd**2 * log
        rn = p / (f - q)
        r = np.where(f == 1, r1, np.where(f == 2, r2, rn))
    return np.where((q <= 1e-12) | (f <= 0), np.where(f > 0, 1.0 / np.maximum(f, 1), 0.0), r)


def _l_diversity(df: pd.DataFrame, codes: np.ndarray, col: str, l_req: int) -> LDiversity:
    s = df[col]
    frame = pd.DataFrame({"c": codes, "s": s.to_numpy()})
    frame = frame[s.notna().to_numpy()]
    pairs = frame.groupby(["c", "s"], sort=False).size()
    cls = pairs.index.get_level_values(0).to_numpy()
    cnt = pairs.to_numpy(dtype=float)
    n_cls = int(codes.max() + 1) if len(codes) else 0
    distinct = np.bincount(cls, minlength=n_cls)
    total = np.bincount(cls, weights=cnt, minlength=n_cls)
    clogc = np.bincount(cls, weights=cnt * np.log(cnt), minlength=n_cls)
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = np.where(
            total > 0,
            np.log(np.where(total > 0, total, 1)) - clogc / np.where(total > 0, total, 1),
            0.0,
        )
    ent_l = np.exp(entropy)
    ent_l = np.where(total > 0, ent_l, 0.0)
    bad = distinct < l_req
    bad_ent = ent_l < l_req - 1e-9
    rows_per_class = np.bincount(codes, minlength=n_cls)
    status = FAIL if bad.any() else (REVIEW if bad_ent.any() else PASS)
    return LDiversity(
        column=col,
        l=l_req,
        min_distinct_l=int(distinct.min()) if n_cls else 0,
        min_entropy_l=float(ent_l.min()) if n_cls else 0.0,
        violating_classes=int(bad.sum()),
        violating_rows=int(rows_per_class[bad].sum()),
        entropy_violating_classes=int(bad_ent.sum()),
        status=status,
    )


# --------------------------------------------------------------------------------------------
# helpers


def _class_codes(df: pd.DataFrame, qis: Sequence[str]) -> np.ndarray:
    if len(df) == 0:
        return np.zeros(0, dtype=np.int64)
    return df.groupby(list(qis), sort=False, dropna=False).ngroup().to_numpy(dtype=np.int64)


def _cols(cols: Sequence[str] | str | None) -> tuple[str, ...]:
    if cols is None:
        return ()
    if isinstance(cols, str):
        return (cols,)
    return tuple(str(c) for c in cols)


def _require(df: pd.DataFrame, cols: Sequence[str]) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ValidationError(
            f"the microdata has no column(s) {', '.join(missing)}",
            fix=f"columns present: {', '.join(map(str, df.columns))}",
        )


def _plain(v: Any) -> Any:
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    return v
