"""The privacy budget on both stores: atomic reservations, a hard cap, refusals that say what is left."""

from __future__ import annotations

import multiprocessing
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select

import privacy.budget as budget
from lineage import ledger
from privacy.budget import commit, dp_budget_spends, release, remaining, reserve, used
from shuyu.errors import Conflict, PolicyRefused
from shuyu.platform import Platform, open_platform
from shuyu.settings import Settings

PROJECT = "employment-insights"


def cap5(_dataset: str) -> float:
    return 5.0


def test_reserve_commit_and_remaining(any_platform: Platform) -> None:
    r = reserve(any_platform, PROJECT, {"contributions": 1.0, "residents": 1.0}, "job-1", cap5)
    assert remaining(any_platform, PROJECT, "contributions", 5.0) == pytest.approx(4.0)
    assert remaining(any_platform, PROJECT, "residents", cap5) == pytest.approx(4.0)
    assert remaining(any_platform, PROJECT, "enterprises", 5.0) == 5.0
    commit(r)
    commit(r)  # idempotent
    assert used(any_platform, PROJECT, "contributions") == pytest.approx(1.0)
    with pytest.raises(Conflict, match="already spent"):
        release(r)
    with any_platform.store.read() as conn:
        statuses = conn.execute(select(dp_budget_spends.c.dataset, dp_budget_spends.c.status)).all()
        assert sorted(statuses) == [("contributions", "spent"), ("residents", "spent")]
        actions = [e.action for e in ledger.entries(conn, subject=f"dp-budget:{PROJECT}")]
        assert actions == ["dp.budget.reserved", "dp.budget.spent"]
        assert ledger.verify(conn).ok


def test_release_returns_the_budget(any_platform: Platform) -> None:
    r = reserve(any_platform, PROJECT, {"contributions": 3.0}, "job-1", cap5)
    assert remaining(any_platform, PROJECT, "contributions", 5.0) == pytest.approx(2.0)
    release(r, "engine crashed")
    assert remaining(any_platform, PROJECT, "contributions", 5.0) == pytest.approx(5.0)
    with pytest.raises(Conflict, match="already released"):
        commit(r)
    reserve(any_platform, PROJECT, {"contributions": 5.0}, "job-2", cap5)  # the whole cap again


def test_refusal_says_how_much_is_left_and_records_nothing_but_the_refusal(
    any_platform: Platform,
) -> None:
    commit(reserve(any_platform, PROJECT, {"contributions": 4.3}, "job-1", cap5))
    with pytest.raises(PolicyRefused) as err:
        reserve(any_platform, PROJECT, {"contributions": 1.0, "residents": 1.0}, "job-2", cap5)
    assert err.value.message == (
        "project employment-insights has ε=0.7 left of 5.0 on dataset contributions; this query needs 1.0"
    )
    assert err.value.fix
    # all-or-nothing: residents (which had room) was not reserved either
    assert used(any_platform, PROJECT, "residents") == 0.0
    with any_platform.store.read() as conn:
        assert conn.execute(select(dp_budget_spends.c.job_id)).scalars().all() == ["job-1"]
        refused = ledger.entries(conn, action="dp.budget.refused")
        assert len(refused) == 1 and refused[0].details["left"] == pytest.approx(0.7)
    # exactly what is left still fits (float sums such as 4.3 + 0.7 are not refused by rounding)
    reserve(any_platform, PROJECT, {"contributions": 0.7}, "job-3", cap5)
    assert remaining(any_platform, PROJECT, "contributions", 5.0) == pytest.approx(0.0, abs=1e-9)


def test_budget_is_per_project_and_dataset(any_platform: Platform) -> None:
    reserve(any_platform, PROJECT, {"contributions": 5.0}, "job-1", cap5)
    reserve(any_platform, "other-project", {"contributions": 5.0}, "job-2", cap5)
    reserve(any_platform, PROJECT, {"residents": 5.0}, "job-3", cap5)
    with pytest.raises(PolicyRefused, match="ε=0.0 left of 5.0"):
        reserve(any_platform, PROJECT, {"contributions": 0.01}, "job-4", cap5)


def test_the_cap_comes_from_the_grant_by_default(granted: Platform) -> None:
    assert remaining(granted, PROJECT, "contributions") == 5.0
    reserve(granted, PROJECT, {"contributions": 2.5}, "job-1")
    assert remaining(granted, PROJECT, "contributions") == 2.5
    with pytest.raises(PolicyRefused, match="ε=2.5 left of 5.0"):
        reserve(granted, PROJECT, {"contributions": 3.0}, "job-2")


# --------------------------------------------------------------------------- concurrency


def _slow_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Widen the race window between reading the used budget and recording the reservation."""
    real = budget._used

    def slow(conn, project, dataset):
        value = real(conn, project, dataset)
        time.sleep(0.05)
        return value

    monkeypatch.setattr(budget, "_used", slow)


def _race_threads(platform: Platform, n: int = 8) -> tuple[int, list[str]]:
    barrier = threading.Barrier(n)
    ok: list[int] = []
    refused: list[str] = []
    lock = threading.Lock()

    def worker(i: int) -> None:
        barrier.wait()
        try:
            reserve(platform, PROJECT, {"contributions": 1.0}, f"job-{i}", cap5)
            with lock:
                ok.append(i)
        except PolicyRefused as exc:
            with lock:
                refused.append(exc.message)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return len(ok), refused


def test_concurrent_reservations_never_pass_the_cap_threads(
    any_platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    _slow_reads(monkeypatch)
    succeeded, refused = _race_threads(any_platform)
    assert succeeded == 5
    assert refused == ["project employment-insights has ε=0.0 left of 5.0 on dataset contributions; "
                       "this query needs 1.0"] * 3  # fmt: skip
    assert used(any_platform, PROJECT, "contributions") == pytest.approx(5.0)
    with any_platform.store.read() as conn:
        assert ledger.verify(conn).ok
        assert len(ledger.entries(conn, action="dp.budget.reserved")) == 5
        assert len(ledger.entries(conn, action="dp.budget.refused")) == 3


@pytest.mark.postgres
def test_without_the_row_lock_postgres_would_overspend(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Negative control: the same race with the account lock removed does pass the cap."""
    from tests.conftest import make_platform

    platform = make_platform(tmp_path / "home", pg_url)
    try:
        _slow_reads(monkeypatch)
        monkeypatch.setattr(budget, "_lock_accounts", lambda conn, project, datasets: None)
        succeeded, _ = _race_threads(platform)
        assert succeeded > 5
    finally:
        platform.store.dispose()


def _process_worker(home: str, db_url: str, i: int, barrier, results) -> None:  # type: ignore[no-untyped-def]
    platform = open_platform(Settings.from_env({}, home=Path(home), db_url=db_url, actor=f"w{i}"))
    real = budget._used

    def slow(conn, project, dataset):  # widen the read-check-insert window, as in the thread test
        value = real(conn, project, dataset)
        time.sleep(0.05)
        return value

    budget._used = slow
    try:
        barrier.wait(timeout=120)  # every interpreter is up and connected: go together
        reserve(platform, PROJECT, {"contributions": 1.0}, f"job-{i}", cap5)
        results.put(True)
    except PolicyRefused:
        results.put(False)
    finally:
        platform.store.dispose()


def test_concurrent_reservations_never_pass_the_cap_processes(any_platform: Platform) -> None:
    url = any_platform.settings.db_url or ""
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(8), ctx.Queue()
    procs = [
        ctx.Process(target=_process_worker, args=(str(any_platform.home), url, i, barrier, results))
        for i in range(8)
    ]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=180) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert sum(outcomes) == 5
    assert used(any_platform, PROJECT, "contributions") == pytest.approx(5.0)
    with any_platform.store.read() as conn:
        assert ledger.verify(conn).ok
