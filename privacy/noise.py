"""Exact noise: every random draw of the DP engine goes through OpenDP's samplers.

Why OpenDP and not diffprivlib here: diffprivlib's float `Laplace` computes `x + b·f(U)` in
floating point, so the low bits of a released value depend on `x` and can rule out a hypothesis
about it (Mironov 2012). OpenDP samples every distribution exactly on an integer lattice:

- counts: the discrete Laplace (two-sided geometric) on integers, `P(Z = z) ∝ α^|z|` with
  `α = exp(-1 / scale)`; scale = sensitivity / ε. OpenDP's privacy map is exact for integers;
- sums: the Laplace on the lattice `2^g · Z`, where `g` depends only on the (public) scale:
  the true value is rounded to the lattice and integer discrete-Laplace noise is added, so
  every released value is a multiple of `2^g` and every multiple of `2^g` can be released
  whatever the data (nothing in the low bits). OpenDP's privacy map accounts for the rounding;
  the scale is raised until that map is at most the ε asked for;
- quantiles: report-noisy-max over integer scores of a public grid (privacy.quantiles), with
  OpenDP's exact noisy-max sampler; the scores are integers, so ties cannot break it.

Nothing here is seeded: OpenDP draws from the operating system's secure randomness.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import cache
from typing import Any

import numpy as np

# The lattice of released sums: 2^-LATTICE_BITS of the noise scale (rounded down to a power of
# two). Far below the noise, far above the float spacing of any value the engine releases.
LATTICE_BITS = 40


@cache
def _dp() -> Any:
    """The OpenDP prelude with the `contrib` features (its samplers live there)."""
    import opendp.prelude as dp

    dp.enable_features("contrib")
    return dp


def lattice_exponent(scale: float) -> int:
    """g such that released sums are multiples of 2^g: depends only on the public scale."""
    return math.floor(math.log2(scale)) - LATTICE_BITS


def laplace_scale(sensitivity: float, epsilon: float, cells: int) -> float:
    """The smallest scale (≥ sensitivity / ε) whose OpenDP privacy map is at most ε.

    OpenDP charges the rounding to the lattice on top of `sensitivity / scale`, so the plain
    scale is raised by that (tiny) excess until the map is within ε.
    """
    scale = sensitivity / epsilon
    for _ in range(8):
        spent = float(_laplace(scale, max(cells, 1)).map(float(sensitivity)))
        if spent <= epsilon:
            return scale
        scale *= (spent / epsilon) * (1 + 1e-12)
    raise AssertionError("OpenDP's Laplace map did not settle")  # pragma: no cover


def _laplace(scale: float, cells: int) -> Any:
    dp = _dp()
    return dp.m.make_laplace(
        dp.vector_domain(dp.atom_domain(T=float, nan=False), size=cells),
        dp.l1_distance(T=float),
        scale=scale,
        k=lattice_exponent(scale),
    )


def laplace(values: Sequence[float], scale: float) -> list[float]:
    """Exact Laplace noise on the lattice 2^g (g from the scale) for each value."""
    if not values:
        return []
    return [float(v) for v in _laplace(scale, len(values))([float(v) for v in values])]


def discrete_laplace(values: Sequence[int], scale: float) -> list[int]:
    """Exact two-sided geometric (discrete Laplace) noise for each integer value."""
    if not values:
        return []
    dp = _dp()
    mech = dp.m.make_laplace(
        dp.vector_domain(dp.atom_domain(T="i64")), dp.l1_distance(T="i64"), scale=scale
    )
    return [int(v) for v in mech([int(v) for v in values])]


def noisy_min_index(scores: np.ndarray, scale: float) -> int:
    """Index of the lowest integer score after exact Gumbel noise (the exponential mechanism).

    For scores whose L∞ change between neighbours is Δ this is (2Δ / scale)-DP: the scores are
    not monotone in the data, so the factor 2 stays.
    """
    dp = _dp()
    mech = dp.m.make_noisy_max(
        dp.vector_domain(dp.atom_domain(T="u64")),
        dp.linf_distance(T="u64", monotonic=False),
        dp.max_divergence(),
        scale=scale,
        negate=True,
    )
    return int(mech([int(s) for s in scores]))


def noisy_min_epsilon(sensitivity: int, scale: float) -> float:
    """OpenDP's own privacy map for `noisy_min_index` (used by tests and the calibration)."""
    dp = _dp()
    mech = dp.m.make_noisy_max(
        dp.vector_domain(dp.atom_domain(T="u64")),
        dp.linf_distance(T="u64", monotonic=False),
        dp.max_divergence(),
        scale=scale,
        negate=True,
    )
    return float(mech.map(int(sensitivity)))
