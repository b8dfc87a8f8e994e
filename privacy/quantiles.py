"""DP quantiles on a public grid with integer scores: ties cannot break them.

The old path (diffprivlib's exponential mechanism over the data's own values) divided
exponentials of data-dependent widths and crashed with 0/0 when most values were tied: one
person could flip crash / no crash. Here nothing depends on the data but integer counts:

- the candidates are a public grid from the column's bounds: every integer in [lo, hi] when the
  column is integer and the range is small, otherwise `GRID_POINTS` evenly spaced points;
- DuckDB snaps each (clamped) value to its nearest grid index and counts rows per index
  (`histogram`), so the engine only ever sees, per group, integer counts over the grid;
- candidate j scores `|(den - num) · lt_j - num · gt_j|`, with q = num / den,
  lt_j = rows below j, gt_j = rows above j (integers: 0 at the exact quantile);
- one row moves lt_j or gt_j by at most 1, so a score moves by at most
  Δ1 = max(num, den - num); a person keeps at most k rows, so Δ = k · Δ1 in one group, and
  over all groups their rows move the scores by at most k · Δ1 in total;
- report-noisy-min with exact Gumbel noise of scale 2 · k · Δ1 / ε_m (OpenDP): a group holding
  j of a person's rows costs j · ε_m / k, all groups together at most ε_m.
The output is always a grid point. An empty group draws uniformly from the grid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from privacy.noise import noisy_min_index

GRID_POINTS = 4001  # float (or wide integer) ranges: 4,000 equal steps over [lo, hi]
MAX_Q_DENOMINATOR = 1000


@dataclass(frozen=True)
class Grid:
    """The public candidates lo, lo + step, ..., lo + (points - 1) · step."""

    lo: float
    step: float
    points: int

    def values(self) -> np.ndarray:
        return self.lo + self.step * np.arange(self.points, dtype=float)

    def index_sql(self, value_sql: str) -> str:
        """SQL snapping a clamped value to its nearest grid index (0 .. points - 1)."""
        if self.points == 1:
            return "0::BIGINT"
        return (
            f"least(greatest(CAST(round(({value_sql} - {self.lo!r}::DOUBLE) / {self.step!r}::DOUBLE)"
            f" AS BIGINT), 0), {self.points - 1})"
        )


def grid_for(bounds: tuple[float, float], integer: bool) -> Grid:
    lo, hi = float(bounds[0]), float(bounds[1])
    if hi <= lo:
        return Grid(lo, 1.0, 1)
    if integer and math.isclose(lo, round(lo)) and hi - lo + 1 <= GRID_POINTS:
        lo = float(round(lo))
        return Grid(lo, 1.0, int(math.floor(hi - lo)) + 1)
    return Grid(lo, (hi - lo) / (GRID_POINTS - 1), GRID_POINTS)


def q_fraction(q: float) -> tuple[int, int]:
    f = Fraction(q).limit_denominator(MAX_Q_DENOMINATOR)
    return f.numerator, f.denominator


def score_sensitivity(q: float) -> int:
    """Δ1: how much one row can move a candidate's score."""
    num, den = q_fraction(q)
    return max(num, den - num, 1)


def gumbel_scale(q: float, k: int, epsilon: float) -> float:
    return 2.0 * k * score_sensitivity(q) / epsilon


def counts_vector(histogram: Any, points: int) -> np.ndarray:
    """Rows per grid index from DuckDB's `histogram()` map (None for an empty group)."""
    counts = np.zeros(points, dtype=np.int64)
    if histogram:
        index = np.fromiter((int(i) for i in histogram), dtype=np.int64, count=len(histogram))
        rows = np.fromiter(
            (int(n) for n in histogram.values()), dtype=np.int64, count=len(histogram)
        )
        np.add.at(counts, index, rows)
    return counts


def scores(counts: np.ndarray, q: float) -> np.ndarray:
    """Integer score of each candidate (0 at the exact quantile, larger further away)."""
    num, den = q_fraction(q)
    below = np.concatenate(([0], np.cumsum(counts)[:-1]))
    above = int(counts.sum()) - below - counts
    return np.abs((den - num) * below - num * above).astype(np.uint64)


def release_quantile(counts: np.ndarray, grid: Grid, q: float, scale: float) -> float:
    return float(grid.values()[noisy_min_index(scores(counts, q), scale)])


def output_log_probabilities(counts: np.ndarray, q: float, scale: float) -> np.ndarray:
    """log P(candidate j) for `release_quantile` (Gumbel-max = the exponential mechanism)."""
    logits = -scores(counts, q).astype(float) / scale
    top = logits.max()
    return np.asarray(logits - (top + np.log(np.exp(logits - top).sum())))


def output_probabilities(counts: np.ndarray, q: float, scale: float) -> np.ndarray:
    return np.exp(output_log_probabilities(counts, q, scale))
