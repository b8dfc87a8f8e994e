"""One budget per person: every dataset keyed by the same person identifier shares an account.

The attacks: spend the whole cap on `residents`, then the whole cap again on `contributions`
(the same residents); pile up thousands of unknown-keys queries whose δ was never capped; race
queries on two datasets of the same person at the same time. Each through the DP service on real
DuckDB and on both stores.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import yaml

import privacy.service as service
from jobs.spec import load_spec
from lineage import ledger
from policies.grant import PrivacyBudget
from privacy.budget import Caps, spends, used
from privacy.budget_view import budget_view
from privacy.request import as_request
from shuyu.errors import PolicyRefused, ValidationError
from shuyu.platform import Platform

from .helpers import employment_like, visits

PROJECT = "employment-insights"
PERSON = "unit:resident_id"  # the unit column stands in for the kind on hand-made workspaces


def ask(platform: Platform, ws: Path, sql: str, epsilon: float, job: str, caps: Caps, **extra):
    request = {"query": sql, "epsilon": epsilon, **extra}
    return service.run_dp_action(
        platform, PROJECT, job, ws, request, caps=caps, unit_column="resident_id"
    )


def test_two_datasets_of_the_same_persons_share_one_budget(
    any_platform: Platform, tmp_path: Path
) -> None:
    ws = employment_like(tmp_path / "w.duckdb")
    caps = Caps(1.0, 1e-6)
    ask(any_platform, ws, "SELECT gender, COUNT(*) FROM residents GROUP BY gender", 0.6, "j1", caps)
    with pytest.raises(PolicyRefused, match=r"ε=0.4 left of 1.0 per person \(unit:resident_id\)"):
        ask(any_platform, ws, "SELECT COUNT(*) FROM contributions", 0.6, "j2", caps)
    # a join of both spends once from the shared account, not once per dataset
    _, reservation = ask(
        any_platform,
        ws,
        "SELECT gender, COUNT(*) FROM contributions JOIN residents USING (resident_id) GROUP BY gender",
        0.4,
        "j3",
        caps,
    )
    assert reservation.datasets == ("contributions", "residents")
    assert used(any_platform, PROJECT, PERSON) == pytest.approx(1.0)
    assert [(s["dataset"], s["epsilon"]) for s in spends(any_platform, PROJECT)] == [
        (PERSON, 0.6),
        (PERSON, 0.4),
    ]


def test_on_the_demo_grant_residents_and_contributions_are_one_person_account(
    granted: Platform,
) -> None:
    from policies.workspace import build_workspace

    ws = build_workspace(granted, PROJECT).path
    request = {"query": "SELECT gender, COUNT(*) FROM residents GROUP BY gender", "epsilon": 3.0}
    service.run_dp_action(granted, PROJECT, "j1", ws, request, actor="alice")
    with pytest.raises(PolicyRefused, match=r"ε=2.0 left of 5.0 per person"):
        service.run_dp_action(
            granted,
            PROJECT,
            "j2",
            ws,
            {"query": "SELECT district, SUM(wage_base) FROM contributions GROUP BY district",
             "epsilon": 3.0, "max_contributions": 12},
            actor="alice",
        )  # fmt: skip
    (view,) = budget_view(granted, PROJECT)
    assert view.account == "unit:cn_resident_id"
    assert view.datasets == ("contributions", "residents")
    assert (view.epsilon_used, view.epsilon_cap, view.delta_cap) == (3.0, 5.0, 1e-6)
    assert "Each person identified by cn_resident_id" in view.guarantee
    assert "(3, 0)-differentially private" in view.guarantee
    assert "(ε = 5, δ = 1e-06)" in view.guarantee
    with granted.store.read() as conn:
        entries = ledger.entries(conn, subject=f"dp-budget:{PROJECT}")
        assert {e.actor for e in entries} == {"alice"}  # the analyst, with the platform as agent
        assert {e.details["agent"] for e in entries} == {granted.actor}


def test_delta_is_capped_per_person_under_many_small_unknown_keys_queries(
    any_platform: Platform, tmp_path: Path
) -> None:
    """2,500 unknown-keys queries at δ = 1e-3 were all accepted and a unique key was published."""
    rows = [(f"p{i}", "a", 1.0, None, f"note{i % 3}", "2025-03-01") for i in range(300)]
    ws = visits(tmp_path / "w.duckdb", rows)
    grant = PrivacyBudget(epsilon=100.0, delta=1e-6, delta_queries=10)
    sql = "SELECT note, COUNT(*) AS n FROM visits GROUP BY note"

    def run(job: str, **extra):
        request = {"query": sql, "epsilon": 0.01, "unknown_keys": True, **extra}
        return service.run_dp_action(
            any_platform, PROJECT, job, ws, request, grant=grant, unit_column="person_id"
        )

    with pytest.raises(PolicyRefused, match=r"δ=1e-06 left of 1e-06"):
        run("greedy", delta=1e-3)
    accepted = 0
    for i in range(2_500):
        try:
            result, reservation = run(f"job-{i}")
        except PolicyRefused as exc:
            assert exc.field == "dp.delta"
            break
        assert result.delta == reservation.delta == pytest.approx(1e-7)  # δ / delta_queries
        accepted += 1
    assert accepted == 10
    # public categories need no δ: still answered from the ε left
    service.run_dp_action(
        any_platform,
        PROJECT,
        "pure",
        ws,
        {"query": "SELECT district, COUNT(*) FROM visits GROUP BY district", "epsilon": 0.01},
        grant=grant,
        unit_column="person_id",
    )


def test_concurrent_queries_on_two_datasets_of_one_person_never_pass_the_cap(
    any_platform: Platform, tmp_path: Path
) -> None:
    ws = employment_like(tmp_path / "w.duckdb")
    caps = Caps(3.0, 1e-6)
    queries = ["SELECT COUNT(*) FROM residents", "SELECT COUNT(*) FROM contributions"]
    barrier = threading.Barrier(8)
    outcomes: list[str] = []
    lock = threading.Lock()

    def worker(i: int) -> None:
        barrier.wait()
        try:
            ask(any_platform, ws, queries[i % 2], 1.0, f"job-{i}", caps)
            outcome = "ok"
        except PolicyRefused:
            outcome = "refused"
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["ok"] * 3 + ["refused"] * 5
    assert used(any_platform, PROJECT, PERSON) == pytest.approx(3.0)
    with any_platform.store.read() as conn:
        assert ledger.verify(conn).ok


def test_a_spec_with_a_vanishing_epsilon_is_refused_at_validation(tmp_path: Path) -> None:
    """ε = 1e-300 made the noise scale overflow; it is refused before anything is reserved."""
    spec = {
        "version": 1,
        "name": "tiny-eps",
        "project": PROJECT,
        "purpose": "public_governance",
        "actions": {
            "dp": {
                "dp": {"query": "SELECT COUNT(*) FROM contributions", "epsilon": 1e-300},
                "outputs": {"dp.csv": {"kind": "table", "context": "noisy"}},
            }
        },
    }
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(ValidationError) as err:
        load_spec(path)
    assert "epsilon" in str(err.value)
    with pytest.raises(ValidationError, match="below the engine's minimum"):
        as_request({"query": "SELECT COUNT(*) FROM contributions", "epsilon": 1e-300})


def test_unknown_keys_without_a_delta_budget_is_refused_before_anything_is_spent(
    platform: Platform, tmp_path: Path
) -> None:
    ws = visits(
        tmp_path / "w.duckdb", [(f"p{i}", "a", 1.0, None, "n", "2025-03-01") for i in range(9)]
    )
    request = {"query": "SELECT note, COUNT(*) FROM visits GROUP BY note", "epsilon": 1.0,
               "unknown_keys": True}  # fmt: skip
    with pytest.raises(ValidationError, match="needs delta > 0"):
        service.run_dp_action(
            platform, PROJECT, "j", ws, request,
            grant=PrivacyBudget(delta=0.0), unit_column="person_id",
        )  # fmt: skip
    assert spends(platform, PROJECT) == []


def test_the_budget_view_is_readable_from_the_cli_and_the_api(granted: Platform) -> None:
    """`shuyu budget PROJECT` and GET /api/projects/PROJECT/budget print the same accounts and
    the guarantee in words; without spending, nothing is used."""
    import json

    from click.testing import CliRunner
    from fastapi.testclient import TestClient

    from api.cli import main as cli
    from api.http import create_app
    from tests.identities import enrol

    out = CliRunner().invoke(
        cli, ["budget", PROJECT, "--json"], env={"SHUYU_HOME": str(granted.home)}
    )
    assert out.exit_code == 0, out.output
    (account,) = json.loads(out.output)
    assert account["account"] == "unit:cn_resident_id"
    assert (account["epsilon_used"], account["epsilon_cap"]) == (0, 5.0)
    assert "protected by one shared budget" in account["guarantee"]
    li = enrol(granted, "li", "analyst", projects=(PROJECT,))
    client = TestClient(create_app(granted.settings))
    answer = client.get(f"/api/projects/{PROJECT}/budget", headers=li)
    assert answer.status_code == 200, answer.text
    assert answer.json() == [account]
