"""The budget view: per account, what has been spent and what it guarantees a person, in words.

Accounting choice (said here and in the README): the caps are enforced with BASIC sequential
composition, ε and δ add up. Every mechanism of the engine is pure ε-DP (discrete Laplace,
Laplace, noisy max) except the unknown-keys threshold, which adds its δ; under basic
composition the per-person statement is the plain sum, which is what a grant's caps mean and
what a steward can check by adding the ledger's numbers. zCDP would let many small queries
compose more tightly (a pure ε_i-DP release is ε_i²/2-zCDP; ρ = Σ ε_i²/2 converts to
(ρ + 2·sqrt(ρ·ln(1/δ')), δ')-DP), so the view also prints that bound for information; the
platform never spends on it, because it only wins after many small queries and needs a δ' the
grant did not set aside.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from sqlalchemy import select

from privacy.accounts import dataset_accounts
from privacy.budget import grant_caps
from shuyu.platform import Platform
from shuyu.schema import dp_budget_accounts, dp_budget_spends


@dataclass(frozen=True)
class AccountView:
    account: str
    datasets: tuple[str, ...]
    epsilon_used: float
    delta_used: float
    epsilon_cap: float
    delta_cap: float
    queries: int
    zcdp_epsilon: float | None  # the zCDP bound at δ' = delta_cap, for information
    guarantee: str

    def to_dict(self) -> dict[str, object]:
        """JSON-safe: caps unknown without an active grant are null, not NaN."""
        return {
            k: (None if isinstance(v, float) and math.isnan(v) else v)
            for k, v in dataclasses.asdict(self).items()
        }


def zcdp_epsilon(epsilons: list[float], delta: float) -> float | None:
    """(ε, δ)-DP implied by composing pure ε_i-DP releases as zCDP, at the given δ."""
    if not epsilons or delta <= 0:
        return None
    rho = sum(e * e / 2 for e in epsilons)
    return rho + 2 * math.sqrt(rho * math.log(1 / delta))


def budget_view(platform: Platform, project: str) -> list[AccountView]:
    """Every budget account of the project (and every person-level one the grant makes), for
    platform staff and the project's members (another project is not found)."""
    from shuyu.access import enforced
    from shuyu.permissions import check_can_read_jobs, check_can_read_project

    with enforced(platform, "budget.read", f"project:{project}"):
        check_can_read_jobs(platform.user)
        check_can_read_project(platform.user, project)
    try:
        mapping = dataset_accounts(platform, project)
        caps = grant_caps(platform, project)
    except Exception:  # no active grant: only what was recorded
        mapping, caps = {}, None
    with platform.store.read() as conn:
        names = set(
            conn.execute(
                select(dp_budget_accounts.c.dataset).where(dp_budget_accounts.c.project == project)
            ).scalars()
        )
        rows = conn.execute(
            select(dp_budget_spends.c.dataset, dp_budget_spends.c.epsilon, dp_budget_spends.c.delta)
            .where(
                dp_budget_spends.c.project == project,
                dp_budget_spends.c.status.in_(("reserved", "spent")),
            )
            .order_by(dp_budget_spends.c.at)
        ).all()
    names |= set(mapping.values())
    views = []
    for account in sorted(names):
        eps = [float(r.epsilon) for r in rows if r.dataset == account]
        deltas = [float(r.delta) for r in rows if r.dataset == account]
        datasets = tuple(sorted(d for d, a in mapping.items() if a == account))
        eps_cap = caps.epsilon if caps else float("nan")
        delta_cap = caps.delta if caps else float("nan")
        used_e, used_d = sum(eps), sum(deltas)
        z = zcdp_epsilon([e for e in eps], delta_cap) if caps else None
        views.append(
            AccountView(
                account,
                datasets,
                used_e,
                used_d,
                eps_cap,
                delta_cap,
                len(eps),
                z,
                guarantee(account, datasets, used_e, used_d, eps_cap, delta_cap, z),
            )
        )
    return views


def guarantee(
    account: str,
    datasets: tuple[str, ...],
    eps: float,
    delta: float,
    eps_cap: float,
    delta_cap: float,
    zcdp: float | None,
) -> str:
    """The person-level guarantee of an account, in plain words."""
    kind = account.removeprefix("unit:")
    where = f" ({', '.join(datasets)})" if datasets else ""
    text = (
        f"Each person identified by {kind} in this project's data{where} is protected by one "
        f"shared budget. So far, everything released from it together is ({eps:.4g}, {delta:.3g})"
        f"-differentially private for that person: whether or not their records are in the data "
        f"changes the probability of any set of results by at most a factor of e^{eps:.4g} "
        f"≈ {math.exp(min(eps, 700)):.4g}, plus at most {delta:.3g}. "
    )
    if math.isnan(eps_cap):
        text += "There is no active grant: nothing more can be spent."
    else:
        text += (
            f"The grant caps this at (ε = {eps_cap:.4g}, δ = {delta_cap:.3g}); queries that "
            "would pass it are refused."
        )
    if zcdp is not None and zcdp < eps:
        text += (
            f" (For information: composed as zCDP, the same releases are also "
            f"({zcdp:.4g}, {delta + delta_cap:.3g})-DP; the platform enforces the simple sum.)"
        )
    return text
