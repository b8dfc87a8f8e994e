"""Evaluate a checked DP query over a workspace in DuckDB and release noisy cells.

Pipeline (all inside the platform; the analyst's sandbox never sees a true value):

1. Parse and check the query against the workspace's `_shuyu_columns` (privacy.query). Every
   WHERE literal is checked there against its column's type and bounds, so nothing in the
   statement below can fail because of the data.
2. One DuckDB statement over the workspace (ATTACHed read-only), vectorised (privacy.bounding):
   - filter rows (WHERE, public categories, non-null person key);
   - contribution bounding: keep at most `max_contributions` (k) rows per person, chosen by
     `ROW_NUMBER() OVER (PARTITION BY person ORDER BY hash(person, used columns, seed))`. The
     order depends only on that person's own rows and a secret seed, so adding or removing a
     person changes at most k rows of the bounded relation. As every person has at most k
     rows, they also touch at most k groups with at most k rows each (per-group bound). The
     ranking is always computed the same way, whatever the data (run time ~ public sizes);
   - clamp every aggregated value to its manifest bounds [lo, hi];
   - one GROUP BY computing, per group, the true bounded measurements: COUNT(*), COUNT(col),
     COUNT(DISTINCT person), SUM(clamped col), and rows per public grid point for quantiles.
3. Noise per cell, sampled exactly by OpenDP (privacy.noise; sequential composition):
   - the query's ε is split EQUALLY over its distinct measurements (AVG(x) = SUM(x) and COUNT(x);
     measurements shared between aggregates are computed once, e.g. SUM(x) with AVG(x));
   - counts: discrete Laplace (two-sided geometric), sensitivity k (COUNT(DISTINCT person): k,
     or the number of public cells if smaller) — L1 over the whole vector of cells;
   - sums: Laplace on a public lattice 2^g, sensitivity k · max(|lo|, |hi|), scale
     b ≥ sensitivity / ε_m (raised by OpenDP's rounding charge);
   - quantiles: report-noisy-min over integer scores of a public grid from the bounds
     (privacy.quantiles), Gumbel scale 2 · k · Δ1 / ε_m; ties cannot break it;
   - AVG = noisy SUM / noisy COUNT(x), clipped to [lo, hi] (NaN when the noisy count is ≤ 0).
4. Groups. With public categories every combination of categories is released, including
   empty ones, so the group set leaks nothing (rows outside the categories are dropped). In
   unknown-keys mode a group is released only if its noisy COUNT(*) ≥ τ, with
       τ = k + ceil((k / ε_c) · ln(k / (δ (1 + α)))),   α = exp(-ε_c / k),
   ε_c the count's share of ε. A group that exists only because of one person has a true
   count ≤ k and that person touches ≤ k groups, so P(any such group released)
   ≤ k · α^(τ-k) / (1 + α) ≤ δ: the release is (ε, δ)-DP.
5. 95% error bounds per cell (data-independent except AVG, which uses only noisy values):
   - Laplace: b · ln(1 / 0.05);
   - geometric: the smallest m with P(|Z| > m) = 2 α^(m+1) / (1 + α) ≤ 0.05, α = exp(-ε_m / Δ);
   - AVG: conservative: 97.5% bounds on the noisy sum (B_s) and on the noisy count (B_c) (union
     bound → 95%); the true mean lies in {s / n : |s - S'| ≤ B_s, |n - N'| ≤ B_c, n ≥ 1}
     ∩ [lo, hi]; the bound is the larger distance from the released mean to that interval's ends;
   - quantiles: none (NaN): the mechanism's error is in ranks, not values.
   These bounds cover the noise only, not the bias from clamping or contribution bounding.

Failures: once the statement has started to read data, any failure raises `DPQueryFailed`
with one fixed message (privacy.request.DP_FAILED) and the caller spends the ε regardless.

Where each step lives: parsing in `privacy.query`; the measurements, their ε share and noise
scales in `privacy.calibration`; contribution bounding and the true-value statement (step 2)
in `privacy.bounding`; the samplers in `privacy.noise` and `privacy.quantiles`;
post-processing into the table, thresholds and bounds (steps 4-5) in `privacy.release`; the
`DPResult` model in `privacy.dp_result`. This module runs the pipeline.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, replace
from itertools import product
from pathlib import Path
from typing import Any

import duckdb

from privacy import noise
from privacy.bounding import _sql
from privacy.calibration import (
    BETA,
    MAX_CELLS,
    Calibrated,
    MeasureKind,
    Measurement,
    Mechanism,
    _grid_size,
    _plan,
    avg_interval,
    geometric_alpha,
    geometric_error,
    laplace_error,
    unknown_keys_threshold,
)
from privacy.dp_result import DPResult
from privacy.quantiles import counts_vector, release_quantile
from privacy.query import (
    DEFAULT_DELTA,
    DPRequest,
    ParsedQuery,
    as_request,
    parse_dp_query,
    read_columns,
    resolve_units,
)
from privacy.release import publish
from privacy.request import DPQueryFailed
from shuyu.errors import PlatformError, ValidationError

# The engine's interface, including what moved to the modules above (callers import it from here).
__all__ = [
    "BETA",
    "MAX_CELLS",
    "Calibrated",
    "DPResult",
    "MeasureKind",
    "Measurement",
    "Mechanism",
    "PreparedDPQuery",
    "avg_interval",
    "geometric_alpha",
    "geometric_error",
    "laplace_error",
    "prepare_dp_query",
    "run_dp_query",
    "unknown_keys_threshold",
]


@dataclass
class PreparedDPQuery:
    """True bounded measurements of one query, ready for noise. Never leaves the platform.

    `release()` may be called once per budget reservation; repeated releases of the same
    prepared query each cost the full ε (tests use this to draw many releases cheaply).
    """

    request: DPRequest
    parsed: ParsedQuery
    calibrated: list[Calibrated]
    uses: dict[str, list[str]]
    keys: list[tuple[Any, ...]]  # group values, one tuple per cell
    true: list[list[Any]]  # per measurement (calibrated order), one value per cell
    threshold: float | None

    def release(self) -> DPResult:
        """One noisy draw of every measurement (OpenDP's secure randomness, never seeded)."""
        noisy: list[list[Any]] = []
        for c, values in zip(self.calibrated, self.true, strict=True):
            m = c.measurement
            if c.mechanism is Mechanism.GEOMETRIC:
                noisy.append(noise.discrete_laplace([int(v) for v in values], c.scale))
            elif c.mechanism is Mechanism.LAPLACE:
                noisy.append(noise.laplace([float(v) for v in values], c.scale))
            else:
                assert m.q is not None
                grid = m.grid
                noisy.append(
                    [
                        release_quantile(counts_vector(h, grid.points), grid, m.q, c.scale)
                        for h in values
                    ]
                )
        return publish(
            self.request,
            self.parsed,
            self.calibrated,
            self.uses,
            self.keys,
            noisy,
            self.threshold,
        )


def prepare_dp_query(
    workspace: Path | str,
    query: Any,
    *,
    seed: int | None = None,
    unit_column: str | Mapping[str, str] | None = None,
    identifier_kinds: Mapping[tuple[str, str], str | None] | None = None,
    threads: int | None = None,
) -> PreparedDPQuery:
    """Parse, check and evaluate the true bounded measurements (no noise yet)."""
    request = as_request(query)
    path = Path(workspace)
    if not path.is_file():
        raise PlatformError(
            f"workspace {path} does not exist", fix="build the project's workspace first"
        )
    con = duckdb.connect()
    try:
        if threads:
            con.execute(f"SET threads = {int(threads)}")
        con.execute(f"ATTACH '{_sql_string(str(path))}' AS ws (READ_ONLY)")
        schema = read_columns(con, "ws")
        units = resolve_units(schema, unit_column, identifier_kinds)
        parsed = parse_dp_query(request.query, schema, units, unknown_keys=request.unknown_keys)
        if parsed.unknown_keys and request.delta is not None and request.delta <= 0:
            raise ValidationError(
                "unknown-keys mode needs delta > 0 (the chance a one-person group is released)",
                field="dp.delta",
                fix="set delta: 1e-6, or group by columns with public categories",
            )
        grid = _grid_size(parsed)
        if grid is not None and grid > MAX_CELLS:
            raise ValidationError(
                f"the public categories of the GROUP BY columns make {grid:,} cells (max {MAX_CELLS:,})",
                field="dp.query",
                fix="group by fewer columns",
            )
        if request.delta is None:
            request = replace(request, delta=DEFAULT_DELTA)
        calibrated, uses = _plan(parsed, request)
        bound_seed = seed if seed is not None else secrets.randbits(63)
        sql, params = _sql(
            parsed, calibrated, request.max_contributions, int(bound_seed) & (2**64 - 1)
        )
        try:
            rows = con.execute(sql, params).fetchall()
        except Exception as exc:
            # From here data has been read: one fixed message (DuckDB's may quote data values).
            raise DPQueryFailed() from exc
    finally:
        con.close()

    ng = len(parsed.groups)
    found = {tuple(r[:ng]): r[ng:] for r in rows}
    if parsed.unknown_keys:
        keys = sorted(found, key=lambda t: tuple((v is None, str(v)) for v in t))
    else:
        keys = (
            [tuple(p) for p in product(*(g.categories or () for g in parsed.groups))]
            if ng
            else [()]
        )
    empty: list[Any] = [None if c.mechanism is Mechanism.NOISY_MAX else 0 for c in calibrated]
    true = [[(found.get(key) or empty)[j] for key in keys] for j in range(len(calibrated))]
    if not parsed.groups and not rows:
        true = [[e] for e in empty]
    threshold = None
    if parsed.unknown_keys:
        count = next(c for c in calibrated if c.measurement.key == "count")
        threshold = unknown_keys_threshold(
            count.epsilon, request.max_contributions, request.delta or DEFAULT_DELTA
        )
    return PreparedDPQuery(request, parsed, calibrated, uses, keys, true, threshold)


def run_dp_query(
    workspace: Path | str,
    query: Any,
    *,
    seed: int | None = None,
    unit_column: str | Mapping[str, str] | None = None,
    identifier_kinds: Mapping[tuple[str, str], str | None] | None = None,
    threads: int | None = None,
) -> DPResult:
    """Run one DP query (a jobs.spec.DPQuery, a DPRequest or a mapping) over a workspace file.

    `seed` makes the contribution bounding reproducible (tests, audits); without it the choice
    of kept rows comes from the OS's secure randomness. The noise is never seeded (OpenDP).
    The caller spends the budget: see privacy.budget / privacy.service.
    """
    prepared = prepare_dp_query(
        workspace,
        query,
        seed=seed,
        unit_column=unit_column,
        identifier_kinds=identifier_kinds,
        threads=threads,
    )
    try:
        return prepared.release()
    except Exception as exc:  # after the data was read: one fixed message
        raise DPQueryFailed() from exc


def _sql_string(text: str) -> str:
    return text.replace("'", "''")
