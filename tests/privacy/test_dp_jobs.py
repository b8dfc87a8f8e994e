"""DP attacks as production jobs through the real worker: what the analyst's view shows afterwards."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from jobs import service
from jobs.states import JobState
from jobs.worker import Worker
from lineage import ledger
from privacy.budget import remaining
from privacy.request import DP_FAILED
from shuyu.platform import Platform, open_platform
from shuyu.settings import Settings

PROJECT = "employment-insights"
PROBE = (
    "SELECT COUNT(*) AS n FROM contributions c JOIN enterprises e ON c.enterprise_code = e.credit_code "
    "WHERE e.district = '{district}' AND e.industry = '{industry}' AND e.employees <> 99999999999999999999"
)


def dp_job(tmp_path: Path, name: str, dp: dict) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    spec = {
        "version": 1,
        "name": name,
        "project": PROJECT,
        "purpose": "public_governance",
        "actions": {"dp": {"dp": dp, "outputs": {"dp.csv": {"kind": "table", "context": "n"}}}},
    }
    (folder / "job.yaml").write_text(yaml.safe_dump(spec, allow_unicode=True))
    return folder / "job.yaml"


def as_worker(platform: Platform) -> Platform:
    """The same home and store, opened by the worker process under its own name."""
    settings = Settings.from_env(
        {}, home=platform.home, db_url=platform.settings.db_url, actor="worker-1"
    )
    return open_platform(settings)


def run(platform: Platform, backend, spec: Path):
    job = service.submit(platform, spec)  # submitted by the analyst ("tester")
    worker = as_worker(platform)
    try:
        Worker(worker, backend).run(once=True)
    finally:
        worker.store.dispose()
    return service.view(platform, job.id)


def test_a_cast_probe_job_is_refused_the_same_way_for_a_full_and_an_empty_cell(
    granted: Platform, local_backend, tmp_path: Path
) -> None:
    reasons = []
    for i, (district, industry) in enumerate(
        (("海南区", "制造业"), ("乌达区", "no-such-industry"))
    ):
        query = PROBE.format(district=district, industry=industry)
        view = run(
            granted, local_backend, dp_job(tmp_path, f"probe{i}", {"query": query, "epsilon": 1.0})
        )
        assert view.job.state is JobState.FAILED and view.job.failure == "policy"
        reasons.append(view.job.reason)
        assert view.outputs == []
    assert reasons[0] == reasons[1] and "employees" in reasons[0]
    assert remaining(granted, PROJECT, "contributions") == 5.0  # refused before reading: free


def test_a_dp_job_that_fails_after_reading_is_charged_and_shows_one_fixed_reason(
    granted: Platform, local_backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(*args, **kwargs):
        raise FloatingPointError("underflow with 3991 tied values in 海南区")

    monkeypatch.setattr("privacy.quantiles.noisy_min_index", crash)
    query = "SELECT district, MEDIAN(wage_base) AS m FROM contributions GROUP BY district"
    view = run(granted, local_backend, dp_job(tmp_path, "ties", {"query": query, "epsilon": 2.0}))
    assert view.job.state is JobState.FAILED and view.job.failure == "internal"
    assert view.job.reason == f"action dp: {DP_FAILED}"
    assert view.outputs == []
    assert remaining(granted, PROJECT, "contributions") == pytest.approx(3.0)


def test_budget_ledger_entries_name_the_analyst_as_actor_and_the_worker_as_agent(
    granted: Platform, local_backend, tmp_path: Path
) -> None:
    query = "SELECT district, COUNT(*) AS n FROM contributions GROUP BY district"
    view = run(granted, local_backend, dp_job(tmp_path, "ok", {"query": query, "epsilon": 1.0}))
    assert view.job.state is JobState.REVIEW_PENDING, view.job.reason
    with granted.store.read() as conn:
        entries = ledger.entries(conn, subject=f"dp-budget:{PROJECT}")
    assert [e.action for e in entries] == ["dp.budget.reserved", "dp.budget.spent"]
    assert {e.actor for e in entries} == {"tester"}
    assert {e.details["agent"] for e in entries} == {"worker-1"}
