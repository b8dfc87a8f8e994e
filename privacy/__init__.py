"""The trusted differential-privacy engine: restricted queries, bounded contributions, a hard budget.

`query` parses a DP query (a small SELECT form) against a workspace's column metadata; `engine`
evaluates it in DuckDB and adds calibrated noise with diffprivlib's mechanisms; `budget` reserves
and spends ε per (project, dataset) atomically in the metadata store; `service` ties the three
together for one job action (reserve, run, commit or release).
"""

from privacy.budget import (
    Reservation,
    commit,
    dp_budget_accounts,
    dp_budget_spends,
    release,
    remaining,
    reserve,
)
from privacy.engine import DPResult, run_dp_query
from privacy.query import DPRequest, ParsedQuery, load_columns, parse_dp_query

__all__ = [
    "DPRequest",
    "DPResult",
    "ParsedQuery",
    "Reservation",
    "commit",
    "dp_budget_accounts",
    "dp_budget_spends",
    "load_columns",
    "parse_dp_query",
    "release",
    "remaining",
    "reserve",
    "run_dp_query",
]
