"""The DP request: the knobs of a job's `dp:` block, validated, and the error for a refused query.

A DP query arrives as text plus ε, a per-person contribution cap, δ and the unknown-keys opt-in.
This module checks those knobs before anything touches a workspace, and holds the description of
the accepted query form (`FORM`, `SUPPORTED`) that every refusal's `fix` points back to, so the
parse-tree checks in the other `privacy` modules all raise the same kind of `ValidationError` on
field `dp.query`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shuyu.errors import PlatformError, ValidationError

FIELD = "dp.query"
DEFAULT_DELTA = 1e-7  # engine runs without a budget account (development runs on the twin)
MAX_DELTA = 1e-3
MAX_EPSILON = 10.0
# Below this a query's noise drowns every answer, and ε near the float limits (1e-300) makes the
# noise scale overflow: refused at validation, before anything is reserved or read.
MIN_EPSILON = 1e-3
# The one message an analyst sees for ANY failure after a DP query started to read data: it must
# not depend on the data (which literal overflowed, which group crashed). The ε is spent.
DP_FAILED = "the DP query could not be completed; its epsilon is spent"
SUPPORTED = (
    "COUNT(*), COUNT(DISTINCT <person key>), SUM(col), AVG(col), QUANTILE(col, q), MEDIAN(col)"
)
FORM = "SELECT <group columns>, <aggregates> FROM <dataset> [JOIN ...] [WHERE ...] [GROUP BY ...]"


class DPQueryFailed(PlatformError):
    """A DP query failed after it read data: the fixed message, the ε spent, details in the log."""

    def __init__(self) -> None:
        super().__init__(DP_FAILED, field=FIELD, fix="the operator log has details")


def fail(message: str, fix: str | None = None) -> ValidationError:
    """The error for a refused DP query: names the problem, and by default the accepted form."""
    return ValidationError(message, field=FIELD, fix=fix or f"write {FORM} using {SUPPORTED}")


@dataclass(frozen=True)
class DPRequest:
    """What the engine needs from a job's `dp:` block (jobs.spec.DPQuery plus two engine knobs).

    `delta` is only consumed in unknown-keys mode (thresholded group release); with public
    categories the release is pure ε-DP and δ spent is 0. None: not asked for; the budget
    service derives it from the account's δ cap (privacy.service), the bare engine uses
    DEFAULT_DELTA. `unknown_keys` is the explicit opt-in.
    """

    query: str
    epsilon: float
    max_contributions: int = 1
    delta: float | None = None
    unknown_keys: bool = False


def as_request(query: Any) -> DPRequest:
    """Accept a DPRequest, a jobs.spec.DPQuery (or any object with those attributes) or a mapping."""
    if isinstance(query, DPRequest):
        request = query
    else:
        get = query.get if isinstance(query, Mapping) else (lambda k, d=None: getattr(query, k, d))
        delta = get("delta", None)
        request = DPRequest(
            query=get("query"),  # type: ignore[arg-type]  # checked below
            epsilon=get("epsilon"),  # type: ignore[arg-type]
            max_contributions=get("max_contributions", 1),
            delta=delta,
            unknown_keys=bool(get("unknown_keys", False)),
        )
    if not isinstance(request.query, str) or not request.query.strip():
        raise fail("the DP query is empty", fix=f"write {FORM}")
    eps = request.epsilon
    if (
        isinstance(eps, bool)
        or not isinstance(eps, int | float)
        or not math.isfinite(eps)
        or eps <= 0
    ):
        raise ValidationError(
            f"epsilon must be a positive number, not {eps!r}",
            field="dp.epsilon",
            fix="e.g. epsilon: 1.0",
        )
    if eps < MIN_EPSILON:
        raise ValidationError(
            f"epsilon {eps:g} is below the engine's minimum of {MIN_EPSILON:g} per query",
            field="dp.epsilon",
            fix=f"use epsilon of at least {MIN_EPSILON:g}; smaller values release only noise",
        )
    if eps > MAX_EPSILON:
        raise ValidationError(
            f"epsilon {eps:g} is above the engine's maximum of {MAX_EPSILON:g} per query",
            field="dp.epsilon",
            fix="split the analysis into several queries or ask for less",
        )
    k = request.max_contributions
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= 1000:
        raise ValidationError(
            f"max_contributions must be a whole number from 1 to 1000, not {k!r}",
            field="dp.max_contributions",
            fix="e.g. max_contributions: 12 (rows kept per person)",
        )
    d = request.delta
    if d is not None and (
        isinstance(d, bool) or not isinstance(d, int | float) or not 0 <= d <= MAX_DELTA
    ):
        raise ValidationError(
            f"delta must be between 0 and {MAX_DELTA:g}, not {d!r}",
            field="dp.delta",
            fix="use a small delta such as 1e-6 (well below 1 / number of persons)",
        )
    return DPRequest(
        request.query.strip().rstrip(";").strip(),
        float(eps),
        k,
        None if d is None else float(d),
        request.unknown_keys,
    )
