"""The privacy budget on both stores: atomic reservations on per-person accounts, hard ε and δ
caps, refusals that say what is left, the analyst as actor and the worker as agent."""

from __future__ import annotations

import multiprocessing
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select

import privacy.budget as budget
from lineage import ledger
from privacy.budget import Caps, commit, dp_budget_spends, release, remaining, reserve, used
from shuyu.errors import Conflict, PolicyRefused
from shuyu.platform import Platform, open_platform
from shuyu.settings import Settings

PROJECT = "employment-insights"
PERSON = "unit:cn_resident_id"
CAP5 = Caps(5.0, 1e-6)


def test_reserve_commit_and_remaining(any_platform: Platform) -> None:
    r = reserve(
        any_platform,
        PROJECT,
        PERSON,
        1.0,
        "job-1",
        caps=CAP5,
        datasets=("contributions", "residents"),
        actor="alice",
    )
    assert remaining(any_platform, PROJECT, PERSON, 5.0) == pytest.approx(4.0)
    assert remaining(any_platform, PROJECT, "unit:other", 5.0) == 5.0
    commit(r)
    commit(r)  # idempotent
    assert used(any_platform, PROJECT, PERSON) == pytest.approx(1.0)
    with pytest.raises(Conflict, match="already spent"):
        release(r)
    with any_platform.store.read() as conn:
        statuses = conn.execute(
            select(dp_budget_spends.c.dataset, dp_budget_spends.c.status, dp_budget_spends.c.actor)
        ).all()
        assert statuses == [(PERSON, "spent", "alice")]  # a join spends ONCE
        entries = ledger.entries(conn, subject=f"dp-budget:{PROJECT}")
        assert [e.action for e in entries] == ["dp.budget.reserved", "dp.budget.spent"]
        # the analyst who asked is the actor; the process that ran it is the agent
        assert {e.actor for e in entries} == {"alice"}
        assert {e.details["agent"] for e in entries} == {any_platform.actor}
        assert entries[0].details["datasets"] == ["contributions", "residents"]
        assert ledger.verify(conn).ok


def test_release_returns_the_budget(any_platform: Platform) -> None:
    r = reserve(any_platform, PROJECT, PERSON, 3.0, "job-1", caps=CAP5)
    assert remaining(any_platform, PROJECT, PERSON, 5.0) == pytest.approx(2.0)
    release(r, "never started")
    assert remaining(any_platform, PROJECT, PERSON, 5.0) == pytest.approx(5.0)
    with pytest.raises(Conflict, match="already released"):
        commit(r)
    reserve(any_platform, PROJECT, PERSON, 5.0, "job-2", caps=CAP5)  # the whole cap again


def test_refusal_says_how_much_is_left_and_records_nothing_but_the_refusal(
    any_platform: Platform,
) -> None:
    commit(reserve(any_platform, PROJECT, PERSON, 4.3, "job-1", caps=CAP5))
    with pytest.raises(PolicyRefused) as err:
        reserve(any_platform, PROJECT, PERSON, 1.0, "job-2", caps=CAP5, actor="bob")
    assert err.value.message == (
        "project employment-insights has ε=0.7 left of 5.0 per person (unit:cn_resident_id); "
        "this query needs 1.0"
    )
    assert err.value.fix
    with any_platform.store.read() as conn:
        assert conn.execute(select(dp_budget_spends.c.job_id)).scalars().all() == ["job-1"]
        refused = ledger.entries(conn, action="dp.budget.refused")
        assert len(refused) == 1 and refused[0].details["left"]["epsilon"] == pytest.approx(0.7)
        assert refused[0].actor == "bob" and refused[0].details["agent"] == any_platform.actor
    # exactly what is left still fits (float sums such as 4.3 + 0.7 are not refused by rounding)
    reserve(any_platform, PROJECT, PERSON, 0.7, "job-3", caps=CAP5)
    assert remaining(any_platform, PROJECT, PERSON, 5.0) == pytest.approx(0.0, abs=1e-9)


def test_the_delta_cap_refuses_many_small_queries(any_platform: Platform) -> None:
    """The attack: 2,500 unknown-keys queries at δ = 1e-3 each were all accepted before."""
    caps = Caps(100.0, 1e-6)
    with pytest.raises(PolicyRefused, match=r"δ=1e-06 left of 1e-06 .* needs δ=0.001"):
        reserve(any_platform, PROJECT, PERSON, 0.01, "job-big", delta=1e-3, caps=caps)
    accepted = 0
    for i in range(2_500):
        try:
            commit(reserve(any_platform, PROJECT, PERSON, 0.01, f"job-{i}", delta=1e-7, caps=caps))
            accepted += 1
        except PolicyRefused as exc:
            assert exc.field == "dp.delta"
            break
    assert accepted == 10  # 10 x 1e-7 = the cap
    # a pure-ε query (public categories, δ = 0) is still fine
    reserve(any_platform, PROJECT, PERSON, 0.01, "job-pure", caps=caps)


def test_budget_is_per_project_and_account(any_platform: Platform) -> None:
    reserve(any_platform, PROJECT, PERSON, 5.0, "job-1", caps=CAP5)
    reserve(any_platform, "other-project", PERSON, 5.0, "job-2", caps=CAP5)
    reserve(any_platform, PROJECT, "unit:enterprise", 5.0, "job-3", caps=CAP5)
    with pytest.raises(PolicyRefused, match="ε=0.0 left of 5.0"):
        reserve(any_platform, PROJECT, PERSON, 0.01, "job-4", caps=CAP5)


def test_the_caps_come_from_the_grant_by_default(granted: Platform) -> None:
    # every person-level dataset of the grant maps to the one resident account
    assert remaining(granted, PROJECT, "contributions") == 5.0
    reserve(granted, PROJECT, PERSON, 2.5, "job-1", datasets=("residents",))
    assert remaining(granted, PROJECT, "contributions") == 2.5
    assert remaining(granted, PROJECT, "residents") == 2.5
    with pytest.raises(PolicyRefused, match="ε=2.5 left of 5.0"):
        reserve(granted, PROJECT, PERSON, 3.0, "job-2", datasets=("contributions",))


# --------------------------------------------------------------------------- concurrency


def _slow_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Widen the race window between reading the used budget and recording the reservation."""
    real = budget._used

    def slow(conn, project, account):
        value = real(conn, project, account)
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
            # half the queries read residents, half contributions: one person, one account
            dataset = ("residents",) if i % 2 else ("contributions",)
            reserve(platform, PROJECT, PERSON, 1.0, f"job-{i}", caps=CAP5, datasets=dataset)
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
    assert refused == ["project employment-insights has ε=0.0 left of 5.0 per person "
                       "(unit:cn_resident_id); this query needs 1.0"] * 3  # fmt: skip
    assert used(any_platform, PROJECT, PERSON) == pytest.approx(5.0)
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
        monkeypatch.setattr(budget, "_lock_account", lambda conn, project, account: None)
        succeeded, _ = _race_threads(platform)
        assert succeeded > 5
    finally:
        platform.store.dispose()


def _process_worker(home: str, db_url: str, i: int, barrier, results) -> None:  # type: ignore[no-untyped-def]
    platform = open_platform(Settings.from_env({}, home=Path(home), db_url=db_url, actor=f"w{i}"))
    real = budget._used

    def slow(conn, project, account):  # widen the read-check-insert window, as in the thread test
        value = real(conn, project, account)
        time.sleep(0.05)
        return value

    budget._used = slow
    try:
        barrier.wait(timeout=120)  # every interpreter is up and connected: go together
        dataset = ("residents",) if i % 2 else ("contributions",)
        reserve(platform, PROJECT, PERSON, 1.0, f"job-{i}", caps=CAP5, datasets=dataset)
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
    assert used(any_platform, PROJECT, PERSON) == pytest.approx(5.0)
    with any_platform.store.read() as conn:
        assert ledger.verify(conn).ok
