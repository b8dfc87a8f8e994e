"""Calibration: which measurements a query needs, their share of ε, mechanism and noise scale.

A DP query is answered from a small set of distinct measurements (AVG(x) is SUM(x) and
COUNT(x); measurements shared between aggregates are computed once). This module turns the
parsed query into those measurements, splits ε equally over them, and fixes each one's
sensitivity, mechanism, noise scale and data-independent 95% error bound, together with the
closed-form noise arithmetic (geometric and Laplace error bounds, the unknown-keys threshold τ
and the AVG interval) that the release step and the tests rely on. It is pure arithmetic over
the parsed query (and OpenDP's privacy maps, for the Laplace scale): no data, no randomness.

Mechanisms (all sampled exactly by OpenDP, see privacy.noise): counts `geometric` (discrete
Laplace, scale Δ / ε), sums `laplace` (on a lattice, scale ≥ Δ / ε from OpenDP's map), quantiles
`noisy_max` (report-noisy-min over a public grid, Gumbel scale 2 · k · Δ1 / ε; privacy.quantiles).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

from privacy.noise import laplace_scale
from privacy.quantiles import Grid, grid_for, gumbel_scale
from privacy.query import Aggregate, ColRef, DPRequest, ParsedQuery

BETA = 0.05  # error bounds are 1 - BETA = 95%
MAX_CELLS = 100_000  # public-category grids larger than this are refused

MeasureKind = Literal["count", "count_column", "count_distinct", "sum", "quantile"]


@dataclass(frozen=True)
class Measurement:
    key: str
    kind: MeasureKind
    ref: ColRef | None = None
    q: float | None = None
    bounds: tuple[float, float] | None = None

    @property
    def grid(self) -> Grid:
        """The public candidates of a quantile measurement."""
        assert self.bounds is not None and self.ref is not None
        return grid_for(self.bounds, self.ref.info.type == "integer")


class Mechanism(StrEnum):
    GEOMETRIC = "geometric"  # discrete Laplace on integers (OpenDP)
    LAPLACE = "laplace"  # Laplace on a public lattice (OpenDP)
    NOISY_MAX = "noisy_max"  # report-noisy-min over a public grid (OpenDP)


@dataclass(frozen=True)
class Calibrated:
    measurement: Measurement
    epsilon: float
    sensitivity: float
    mechanism: Mechanism
    scale: float  # the OpenDP noise scale: discrete Laplace, Laplace or Gumbel
    error95: float | None  # data-independent 95% bound, None for quantiles


# --------------------------------------------------------------------------- noise helpers


def geometric_alpha(epsilon: float, sensitivity: float) -> float:
    return math.exp(-epsilon / sensitivity)


def geometric_error(epsilon: float, sensitivity: float, beta: float = BETA) -> float:
    """Smallest integer m with P(|Z| > m) ≤ beta for the two-sided geometric noise Z."""
    alpha = geometric_alpha(epsilon, sensitivity)
    # P(|Z| > m) = P(|Z| >= m + 1) = 2 alpha^(m+1) / (1 + alpha)
    m = math.ceil(math.log(beta * (1 + alpha) / 2) / math.log(alpha)) - 1
    while m > 0 and 2 * alpha**m / (1 + alpha) <= beta:  # guard against rounding
        m -= 1
    return float(max(m, 0))


def laplace_error(scale: float, beta: float = BETA) -> float:
    return scale * math.log(1 / beta)


def unknown_keys_threshold(epsilon_count: float, k: int, delta: float) -> float:
    """τ such that a group made by one person (count ≤ k, ≤ k such groups) passes w.p. ≤ δ."""
    alpha = geometric_alpha(epsilon_count, k)
    return float(k + math.ceil((k / epsilon_count) * math.log(k / (delta * (1 + alpha)))))


def avg_interval(
    noisy_sum: float, noisy_count: float, b_sum: float, b_count: float, lo: float, hi: float
) -> tuple[float, float]:
    """Where the true mean lies if |sum error| ≤ b_sum and |count error| ≤ b_count."""
    n1, n2 = max(noisy_count - b_count, 1.0), noisy_count + b_count
    if n2 < 1:
        return lo, hi
    s1, s2 = noisy_sum - b_sum, noisy_sum + b_sum
    low = min(s1 / n1, s1 / n2)
    high = max(s2 / n1, s2 / n2)
    return max(lo, low), min(hi, high)


# --------------------------------------------------------------------------- planning


def _plan(parsed: ParsedQuery, request: DPRequest) -> tuple[list[Calibrated], dict[str, list[str]]]:
    """Measurements, their share of ε and their mechanism; aggregate name -> measurement keys."""
    measurements: dict[str, Measurement] = {}
    uses: dict[str, list[str]] = {}

    def need(m: Measurement) -> str:
        measurements.setdefault(m.key, m)
        return m.key

    for agg in parsed.aggregates:
        uses[agg.name] = _measurements_for(agg, need)
    if parsed.unknown_keys:
        need(Measurement("count", "count"))  # the selection count (released only if asked for)
    k = request.max_contributions
    eps_m = request.epsilon / len(measurements)
    cells = _grid_size(parsed)
    calibrated = []
    for m in measurements.values():
        if m.kind in ("count", "count_column", "count_distinct"):
            sens = float(k)
            if m.kind == "count_distinct" and cells:
                sens = float(min(k, cells))
            calibrated.append(
                Calibrated(
                    m,
                    eps_m,
                    sens,
                    Mechanism.GEOMETRIC,
                    sens / eps_m,
                    geometric_error(eps_m, sens),
                )
            )
        elif m.kind == "sum":
            assert m.bounds is not None
            sens = k * max(abs(m.bounds[0]), abs(m.bounds[1]))
            # the scale for the largest table the engine releases: data-independent
            scale = laplace_scale(sens, eps_m, MAX_CELLS)
            calibrated.append(
                Calibrated(m, eps_m, sens, Mechanism.LAPLACE, scale, laplace_error(scale))
            )
        else:
            assert m.q is not None
            calibrated.append(
                Calibrated(
                    m, eps_m, float(k), Mechanism.NOISY_MAX, gumbel_scale(m.q, k, eps_m), None
                )
            )
    return calibrated, uses


def _measurements_for(agg: Aggregate, need: Any) -> list[str]:
    ref = agg.ref
    col = ref.sql if ref is not None else ""
    if agg.kind == "count":
        return [need(Measurement("count", "count"))]
    if agg.kind == "count_column":
        return [need(Measurement(f"count:{col}", "count_column", ref))]
    if agg.kind == "count_distinct":
        return [need(Measurement("units", "count_distinct", ref))]
    if agg.kind == "sum":
        return [need(Measurement(f"sum:{col}", "sum", ref, None, agg.bounds))]
    if agg.kind == "avg":
        return [
            need(Measurement(f"sum:{col}", "sum", ref, None, agg.bounds)),
            need(Measurement(f"count:{col}", "count_column", ref)),
        ]
    return [need(Measurement(f"quantile:{col}:{agg.q!r}", "quantile", ref, agg.q, agg.bounds))]


def _grid_size(parsed: ParsedQuery) -> int | None:
    if parsed.unknown_keys:
        return None
    return math.prod(len(g.categories or ()) for g in parsed.groups) if parsed.groups else 1
