"""The trusted differential-privacy engine: restricted queries, bounded contributions, a hard budget.

`query` parses a DP query (a small SELECT form) against a workspace's column metadata and checks
every literal against its column; `engine` evaluates it in DuckDB and adds noise drawn exactly by
OpenDP (`noise`, `quantiles`); `budget` reserves and spends (ε, δ) per (project, privacy-unit
account) atomically in the metadata store (`accounts`: one account per kind of person key);
`budget_view` says what an account guarantees a person; `service` ties them together for one job
action (check, reserve, run, spend — a failure after reading data is spent and says `DP_FAILED`).
"""

from privacy.budget import (
    Caps,
    Reservation,
    commit,
    dp_budget_accounts,
    dp_budget_spends,
    release,
    remaining,
    reserve,
)
from privacy.budget_view import AccountView, budget_view
from privacy.engine import DPResult, run_dp_query
from privacy.query import DPRequest, ParsedQuery, load_columns, parse_dp_query
from privacy.request import DP_FAILED, DPQueryFailed

__all__ = [
    "DP_FAILED",
    "AccountView",
    "Caps",
    "DPQueryFailed",
    "DPRequest",
    "DPResult",
    "ParsedQuery",
    "Reservation",
    "budget_view",
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
