"""One DP action end to end: check the query, reserve (ε, δ), run it, spend.

Order matters: the query is parsed and checked first, reading only column metadata (a malformed
query, or a literal its column cannot hold, costs nothing and is refused with its reason); the
budget is then reserved atomically on the query's privacy-unit account (privacy.accounts)
before any true value is computed; from that moment the reservation is SPENT whatever happens.
A failure after the reservation (the engine, the writer, anything) reaches the analyst only as
`DPQueryFailed` with one fixed message, so neither the failure nor its text can depend on the
data, and nothing is refunded: a failure is never free.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import duckdb

from catalog.service import get_version
from policies.grant import PrivacyBudget
from privacy import budget
from privacy.accounts import account_for
from privacy.engine import DPResult, run_dp_query
from privacy.query import ParsedQuery, as_request, load_columns, parse_dp_query, resolve_units
from privacy.request import DPQueryFailed
from shuyu.errors import PlatformError, ValidationError
from shuyu.platform import Platform


def identifier_kinds(
    platform: Platform, workspace: Path | str
) -> dict[tuple[str, str], str | None]:
    """(dataset, column) -> manifest identifier_kind, for the dataset versions in the workspace."""
    try:
        con = duckdb.connect(str(workspace), read_only=True)
        try:
            rows = con.execute("SELECT dataset, dataset_version FROM _shuyu_workspace").fetchall()
        finally:
            con.close()
    except duckdb.Error as exc:
        raise PlatformError(f"cannot read the workspace {workspace}") from exc
    kinds: dict[tuple[str, str], str | None] = {}
    with platform.store.read() as conn:
        for dataset, version in rows:
            manifest = get_version(conn, dataset, int(version)).manifest
            for name, spec in manifest.columns.items():
                kinds[(dataset, name)] = spec.identifier_kind
    return kinds


def check_dp_query(
    workspace: Path | str,
    query: Any,
    *,
    unit_column: str | Mapping[str, str] | None = None,
    identifier_kinds: Mapping[tuple[str, str], str | None] | None = None,
) -> ParsedQuery:
    """Parse and check only (no data read beyond column metadata): for validation at submit time."""
    request = as_request(query)
    schema = load_columns(workspace)
    units = resolve_units(schema, unit_column, identifier_kinds)
    return parse_dp_query(request.query, schema, units, unknown_keys=request.unknown_keys)


def run_dp_action(
    platform: Platform,
    project: str,
    job_id: str,
    workspace: Path | str,
    query: Any,
    *,
    seed: int | None = None,
    grant: PrivacyBudget | None = None,
    caps: budget.Caps | None = None,
    unit_column: str | Mapping[str, str] | None = None,
    output: Path | None = None,
    actor: str | None = None,
) -> tuple[DPResult, budget.Reservation]:
    """Check, reserve, run, spend. Returns the result and the spent reservation.

    `grant` is the project's grant DP settings (default: the active grant's); `caps` overrides
    its caps (tests). An unknown-keys query's δ is the job's own if it set one, else the
    grant's `delta / delta_queries`. `actor` is the analyst who submitted the job.
    """
    request = as_request(query)
    kinds = identifier_kinds(platform, workspace) if unit_column is None else None
    parsed = check_dp_query(workspace, request, unit_column=unit_column, identifier_kinds=kinds)
    if grant is None and (caps is None or (parsed.unknown_keys and request.delta is None)):
        grant = _active_grant_dp(platform, project)
    if caps is None:
        assert grant is not None
        caps = budget.Caps(grant.epsilon_cap(parsed.datasets), grant.delta)
    delta = 0.0
    if parsed.unknown_keys:
        if request.delta is not None:
            delta = request.delta
        else:
            assert grant is not None
            delta = grant.delta_per_query
        if delta <= 0:  # refused here, before anything is reserved or read
            raise ValidationError(
                "unknown-keys mode needs delta > 0 (the chance a one-person group is released)",
                field="dp.delta",
                fix="group by columns with public categories, or ask for a δ budget in the grant",
            )
        request = replace(request, delta=delta)
    reservation = budget.reserve(
        platform,
        project,
        account_for(parsed.unit, kinds),
        request.epsilon,
        job_id,
        delta=delta,
        caps=caps,
        datasets=parsed.datasets,
        actor=actor,
    )
    # From here the query reads data: the (ε, δ) is spent whatever happens.
    try:
        result = run_dp_query(
            workspace, request, seed=seed, unit_column=unit_column, identifier_kinds=kinds
        )
        if output is not None:
            result.to_parquet(output)
    except Exception as exc:
        budget.commit(reservation, reason="failed after reading data")
        raise DPQueryFailed() from exc
    except BaseException:
        budget.commit(reservation, reason="interrupted after reading data")
        raise
    budget.commit(reservation)
    return result, reservation


def _active_grant_dp(platform: Platform, project: str) -> PrivacyBudget:
    from policies.service import active_policy

    with platform.store.read() as conn:
        _, policy = active_policy(conn, project)
    return policy.dp
