"""One DP action end to end: check the query, reserve ε, run it, then spend or return the ε.

Order matters: the query is parsed and checked first (a malformed query costs nothing), the
budget is reserved atomically before any true value is computed, and the reservation becomes
`spent` once results exist, or is `released` if the engine failed before producing any.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import duckdb

from catalog.service import get_version
from privacy import budget
from privacy.engine import DPResult, run_dp_query
from privacy.query import ParsedQuery, as_request, load_columns, parse_dp_query, resolve_units
from shuyu.errors import PlatformError
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
    cap_for: Callable[[str], float] | None = None,
    unit_column: str | Mapping[str, str] | None = None,
    output: Path | None = None,
) -> tuple[DPResult, budget.Reservation]:
    """Reserve, run, commit (or release on failure). Returns the result and the spent reservation."""
    request = as_request(query)
    kinds = identifier_kinds(platform, workspace) if unit_column is None else None
    parsed = check_dp_query(workspace, request, unit_column=unit_column, identifier_kinds=kinds)
    delta = request.delta if parsed.unknown_keys else 0.0
    reservation = budget.reserve(
        platform,
        project,
        {d: request.epsilon for d in parsed.datasets},
        job_id,
        cap_for,
        delta=delta,
    )
    try:
        result = run_dp_query(
            workspace, request, seed=seed, unit_column=unit_column, identifier_kinds=kinds
        )
    except BaseException:
        budget.release(reservation)
        raise
    # From here a noisy result exists: the ε is spent even if writing it fails.
    try:
        if output is not None:
            result.to_parquet(output)
    finally:
        budget.commit(reservation)
    return result, reservation
