"""End to end on the demo data: grant, real workspace, DP queries through the budget."""

from __future__ import annotations

import pytest

import privacy.service as service
from lineage import ledger
from policies.workspace import build_workspace
from privacy.budget import remaining, spends
from privacy.engine import prepare_dp_query, run_dp_query
from privacy.request import DEFAULT_DELTA, DP_FAILED, DPQueryFailed
from shuyu.errors import PolicyRefused, ValidationError
from shuyu.platform import Platform

PROJECT = "employment-insights"
DISTRICTS = ["海勃湾区", "海南区", "乌达区"]


@pytest.fixture
def workspace(granted: Platform):
    return build_workspace(granted, PROJECT).path


def test_the_privacy_unit_is_the_pseudonymised_resident_id(granted: Platform, workspace) -> None:
    kinds = service.identifier_kinds(granted, workspace)
    assert kinds[("contributions", "resident_id")] == "cn_resident_id"
    parsed = service.check_dp_query(
        workspace,
        {"query": "SELECT COUNT(*) FROM contributions", "epsilon": 1.0},
        identifier_kinds=kinds,
    )
    assert (parsed.unit.info.dataset, parsed.unit.column) == ("contributions", "resident_id")
    assert parsed.unit.info.transform == "pseudonymise"


def test_district_query_on_the_demo_workspace(workspace) -> None:
    sql = "SELECT district, COUNT(*) AS n, SUM(wage_base) AS s, AVG(wage_base) AS m FROM contributions GROUP BY district"
    request = {"query": sql, "epsilon": 3.0, "max_contributions": 24}
    prepared = prepare_dp_query(workspace, request, seed=1)
    result = prepared.release()
    assert list(result.table["district"]) == DISTRICTS
    true_n = prepared.true[0]
    for i in range(3):
        # relative error of the count is small at this size; within the stated bound
        assert abs(result.table["n"][i] - true_n[i]) <= result.error_bounds["n"][i]
        assert 1000 <= result.table["m"][i] <= 40000


def test_join_and_unknown_keys_on_the_demo_workspace(workspace) -> None:
    joined = run_dp_query(
        workspace,
        {
            "query": "SELECT gender, COUNT(DISTINCT resident_id) AS persons, MEDIAN(wage_base) AS med "
            "FROM contributions JOIN residents USING (resident_id) WHERE month >= DATE '2025-01-01' "
            "GROUP BY gender",
            "epsilon": 2.0,
            "max_contributions": 12,
        },
        seed=2,
    )
    assert list(joined.table["gender"]) == ["男", "女"]
    assert joined.datasets == ("contributions", "residents")
    assert (joined.table["persons"] > 100).all()

    sql = "SELECT birth_date, COUNT(*) AS n FROM residents GROUP BY birth_date"
    with pytest.raises(ValidationError, match="no declared public categories"):
        run_dp_query(workspace, {"query": sql, "epsilon": 1.0})
    bands = run_dp_query(workspace, {"query": sql, "epsilon": 1.0, "unknown_keys": True}, seed=3)
    assert bands.delta == DEFAULT_DELTA and bands.threshold is not None
    assert (bands.table["n"] >= bands.threshold).all()
    assert len(bands.table) >= 10


def test_run_dp_action_reserves_runs_and_spends(granted: Platform, workspace, tmp_path) -> None:
    request = {
        "query": "SELECT gender, COUNT(*) AS n FROM contributions JOIN residents USING (resident_id) GROUP BY gender",
        "epsilon": 1.5,
        "max_contributions": 6,
    }
    result, reservation = service.run_dp_action(
        granted, PROJECT, "job-abc", workspace, request, seed=4, output=tmp_path / "out.parquet"
    )
    assert (tmp_path / "out.parquet").is_file()
    # a join spends once, from the one per-person account both datasets share
    assert (reservation.account, reservation.epsilon) == ("unit:cn_resident_id", 1.5)
    assert reservation.datasets == ("contributions", "residents")
    assert remaining(granted, PROJECT, "contributions") == pytest.approx(3.5)
    assert remaining(granted, PROJECT, "residents") == pytest.approx(3.5)
    assert {s["status"] for s in spends(granted, PROJECT)} == {"spent"}
    with granted.store.read() as conn:
        actions = [e.action for e in ledger.entries(conn, subject=f"dp-budget:{PROJECT}")]
        assert actions == ["dp.budget.reserved", "dp.budget.spent"]
        assert ledger.verify(conn).ok

    # three more such queries would pass the cap of 5.0: the third is refused before running
    service.run_dp_action(granted, PROJECT, "job-2", workspace, request, seed=5)
    service.run_dp_action(granted, PROJECT, "job-3", workspace, request, seed=6)
    with pytest.raises(
        PolicyRefused,
        match=r"ε=0.5 left of 5.0 per person \(unit:cn_resident_id\); this query needs 1.5",
    ):
        service.run_dp_action(granted, PROJECT, "job-4", workspace, request, seed=7)


def test_a_malformed_query_costs_nothing(granted: Platform, workspace) -> None:
    with pytest.raises(ValidationError):
        service.run_dp_action(
            granted,
            PROJECT,
            "job-1",
            workspace,
            {"query": "SELECT * FROM contributions", "epsilon": 1.0},
        )
    assert remaining(granted, PROJECT, "contributions") == 5.0
    assert spends(granted, PROJECT) == []


def test_a_failure_after_the_reservation_spends_and_says_one_fixed_thing(
    granted: Platform, workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args, **kwargs):
        raise RuntimeError("engine crashed at row 17 with value 12345")

    monkeypatch.setattr(service, "run_dp_query", broken)
    with pytest.raises(DPQueryFailed) as err:
        service.run_dp_action(
            granted,
            PROJECT,
            "job-1",
            workspace,
            {"query": "SELECT COUNT(*) FROM contributions", "epsilon": 2.0},
        )
    assert err.value.message == DP_FAILED and "12345" not in str(err.value)
    assert remaining(granted, PROJECT, "contributions") == 3.0  # never free
    assert [s["status"] for s in spends(granted, PROJECT)] == ["spent"]
