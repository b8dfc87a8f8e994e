"""Privacy-unit domains: which budget account a query spends from.

The privacy unit is the person, not the dataset: a resident who appears in `residents` and in
`contributions` must not lose the sum of two caps. So an account is one per (project, kind of
person key): every dataset of a project whose privacy unit is a pseudonymised identifier of
the same kind (e.g. `cn_resident_id`) shares one (ε, δ) account, and a query over a join of
two such datasets spends once from it. The account is named `unit:<identifier kind>`; when a
caller names the unit column explicitly and the manifests' kinds are unknown (tests, tools),
the column name stands in for the kind.
"""

from __future__ import annotations

from collections.abc import Mapping

from catalog.service import get_version
from privacy.parsed import ColRef
from privacy.schema import UNIT_IDENTIFIER_KIND
from shuyu.platform import Platform

PREFIX = "unit:"


def account_for(unit: ColRef, identifier_kinds: Mapping[tuple[str, str], str | None] | None) -> str:
    """The account of a query whose privacy unit is `unit`."""
    kind = (identifier_kinds or {}).get((unit.info.dataset, unit.column))
    return f"{PREFIX}{kind or unit.column}"


def dataset_accounts(platform: Platform, project: str) -> dict[str, str]:
    """dataset -> account, for the person-level datasets of the project's active grant."""
    from policies.service import active_policy

    accounts: dict[str, str] = {}
    with platform.store.read() as conn:
        _, policy = active_policy(conn, project)
        for name, granted in policy.datasets.items():
            version = None if granted.version == "latest" else int(granted.version)
            manifest = get_version(conn, name, version).manifest
            kinds = [
                spec.identifier_kind
                for column, spec in manifest.columns.items()
                if column in granted.transforms
                and granted.transforms[column].name == "pseudonymise"
                and spec.identifier_kind == UNIT_IDENTIFIER_KIND
            ]
            if kinds:
                accounts[name] = f"{PREFIX}{kinds[0]}"
    return accounts


def resolve_account(platform: Platform, project: str, name: str) -> str:
    """An account name as is; a dataset name mapped to its account (itself if it has none)."""
    if name.startswith(PREFIX):
        return name
    try:
        return dataset_accounts(platform, project).get(name, name)
    except Exception:  # no active grant or catalog entry: the name is the account
        return name
