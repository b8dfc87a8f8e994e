"""The release step: from noisy measurements to the published table, all post-processing.

Once each measurement has been drawn with noise (`privacy.engine`), everything left is
post-processing of noisy values and costs no further privacy: the unknown-keys threshold on
the noisy row count, AVG as noisy SUM / noisy COUNT with its conservative error bound, the
per-column mechanisms, ε and 95% bounds, the notes that explain them, and the assembly of the
`DPResult`. Keeping it separate makes that property easy to check: this module reads only
the noisy measurements and the group keys they belong to, and draws no randomness.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from privacy.calibration import (
    BETA,
    Calibrated,
    Mechanism,
    avg_interval,
    geometric_error,
    laplace_error,
)
from privacy.dp_result import DPResult
from privacy.query import DPRequest, ParsedQuery

# What the released metadata calls each mechanism (all sampled exactly by OpenDP).
LABELS = {
    Mechanism.GEOMETRIC: "geometric",
    Mechanism.LAPLACE: "laplace",
    Mechanism.NOISY_MAX: "noisy-max quantile on a public grid",
}


def publish(
    request: DPRequest,
    parsed: ParsedQuery,
    calibrated: list[Calibrated],
    uses: dict[str, list[str]],
    keys: list[tuple[Any, ...]],
    noisy: list[list[Any]],
    threshold: float | None,
) -> DPResult:
    """The released table of one draw: `noisy` holds, per measurement (calibrated order), one
    noisy value per cell of `keys`; `threshold` is the unknown-keys τ (None: public categories).
    """
    k = request.max_contributions
    by_key = {c.measurement.key: (c, noisy[j]) for j, c in enumerate(calibrated)}
    n = len(keys)
    keep = list(range(n))
    if threshold is not None:
        counts = by_key["count"][1]
        keep = [i for i in range(n) if counts[i] >= threshold]

    group_names = [g.name for g in parsed.groups]
    data: dict[str, list[Any]] = {g: [keys[i][j] for i in keep] for j, g in enumerate(group_names)}
    mechanisms: dict[str, str] = {}
    errors: dict[str, list[float]] = {}
    eps_col: dict[str, float] = {}
    for agg in parsed.aggregates:
        used = [by_key[key] for key in uses[agg.name]]
        eps_col[agg.name] = sum(c.epsilon for c, _ in used)
        if agg.kind == "avg":
            (cs, sums), (cc, counts) = used
            lo, hi = agg.bounds  # type: ignore[misc]
            b_s = laplace_error(cs.scale, BETA / 2)
            b_c = geometric_error(cc.epsilon, cc.sensitivity, BETA / 2)
            vals, errs = [], []
            for i in keep:
                if counts[i] <= 0:
                    vals.append(math.nan)
                    errs.append(math.nan)
                    continue
                avg = float(min(max(sums[i] / counts[i], lo), hi))
                a_lo, a_hi = avg_interval(sums[i], counts[i], b_s, b_c, lo, hi)
                vals.append(avg)
                errs.append(
                    float(max(avg - a_lo, a_hi - avg, 0.0)) if a_lo <= a_hi else float(hi - lo)
                )
            data[agg.name] = vals
            errors[agg.name] = errs
            mechanisms[agg.name] = "laplace sum / geometric count"
        else:
            c, values = used[0]
            data[agg.name] = [values[i] for i in keep]
            bound = c.error95 if c.error95 is not None else math.nan
            errors[agg.name] = [bound] * len(keep)
            mechanisms[agg.name] = LABELS[c.mechanism]
    table = pd.DataFrame({name: data[name] for name in parsed.output}, columns=list(parsed.output))
    for agg in parsed.aggregates:
        if agg.kind in ("count", "count_column", "count_distinct"):
            table[agg.name] = table[agg.name].astype("int64")
        else:
            table[agg.name] = table[agg.name].astype("float64")
    return DPResult(
        table=table,
        epsilon=request.epsilon,
        delta=(request.delta or 0.0) if parsed.unknown_keys else 0.0,
        mechanisms={a.name: mechanisms[a.name] for a in parsed.aggregates},
        error_bounds={a.name: errors[a.name] for a in parsed.aggregates},
        epsilon_by_column={a.name: eps_col[a.name] for a in parsed.aggregates},
        datasets=parsed.datasets,
        notes=_notes(request, parsed, calibrated, threshold),
        query=parsed.sql,
        max_contributions=k,
        group_columns=tuple(group_names),
        threshold=threshold,
        measurements=[
            {
                "measurement": c.measurement.key.replace('"', ""),
                "mechanism": str(c.mechanism),
                "epsilon": c.epsilon,
                "sensitivity": c.sensitivity,
                "scale": c.scale,
                "error95": c.error95,
            }
            for c in calibrated
        ],
    )


def _notes(
    request: DPRequest, parsed: ParsedQuery, calibrated: list[Calibrated], threshold: float | None
) -> list[str]:
    """What the analyst needs to read the release: unit, bounding, ε split, bounds, groups."""
    k = request.max_contributions
    m = len(calibrated)
    notes = [
        f"privacy unit: {parsed.unit.info.dataset}.{parsed.unit.column} "
        f"(pseudonymised); at most {k} row(s) per person kept (seeded random choice)",
        f"epsilon {request.epsilon:g} split equally over {m} measurement(s) "
        f"({request.epsilon / m:.6g} each; sequential composition)",
        "values are clamped to the manifest bounds before aggregation",
        "95% error bounds cover the noise only (not clamping or contribution-bounding bias); "
        "AVG bounds are conservative; quantiles have none",
        "noise is sampled exactly (OpenDP): discrete Laplace for counts, Laplace on a public "
        "lattice for sums; quantiles are points of a public grid over the column's bounds",
        "noisy counts are not clamped at 0 (unbiased); clamping afterwards is free post-processing",
    ]
    if threshold is not None:
        notes.append(
            f"unknown keys: a group is released only if its noisy row count >= {threshold:g} "
            f"(delta {request.delta or 0.0:g}); released counts are therefore biased upwards"
        )
    else:
        notes.append("every combination of the public categories is released, including empty ones")
    notes.extend(parsed.notes)
    return notes
