"""The metadata store and ledger on real SQLite and real PostgreSQL."""

from __future__ import annotations

import stat
import threading

import pytest
from sqlalchemy import select, update

from lineage import ledger
from lineage.actions import LedgerAction
from shuyu.errors import PlatformError
from shuyu.platform import Platform, open_platform
from shuyu.schema import datasets
from shuyu.schema import ledger as ledger_table
from shuyu.settings import Settings
from tests.conftest import make_platform


def test_init_creates_keys_readable_only_by_owner(any_platform: Platform) -> None:
    keys = any_platform.keys_dir
    assert stat.S_IMODE(keys.stat().st_mode) == 0o700
    for name in ("pseudonym.key", "signing_ed25519.pem"):
        assert stat.S_IMODE((keys / name).stat().st_mode) == 0o600
    assert len((keys / "pseudonym.key").read_bytes()) == 32


def test_init_is_idempotent_and_never_replaces_keys(any_platform: Platform) -> None:
    before = (any_platform.keys_dir / "pseudonym.key").read_bytes()
    again = make_platform(any_platform.home, any_platform.settings.db_url)
    assert (again.keys_dir / "pseudonym.key").read_bytes() == before


def test_project_keys_differ_between_projects(platform: Platform) -> None:
    assert platform.project_key("a") == platform.project_key("a")
    assert platform.project_key("a") != platform.project_key("b")


def test_ledger_chain_verifies_and_detects_tampering(any_platform: Platform) -> None:
    with any_platform.store.transaction() as conn:
        for i in range(5):
            ledger.append(
                conn, "alice", LedgerAction.WORKSPACE_BUILT, f"thing:{i}", {"n": i, "名": "值"}
            )
    with any_platform.store.read() as conn:
        assert ledger.verify(conn).ok
        assert [e.subject for e in ledger.entries(conn, subject="thing:")] == [
            f"thing:{i}" for i in range(5)
        ]
    with any_platform.store.transaction() as conn:
        conn.execute(update(ledger_table).where(ledger_table.c.seq == 3).values(actor="mallory"))
    with any_platform.store.read() as conn:
        result = ledger.verify(conn)
    assert not result.ok and result.first_bad_seq == 3


def test_ledger_detects_a_deleted_entry(any_platform: Platform) -> None:
    with any_platform.store.transaction() as conn:
        for i in range(3):
            ledger.append(conn, "alice", LedgerAction.WORKSPACE_BUILT, f"thing:{i}", {})
        conn.execute(ledger_table.delete().where(ledger_table.c.seq == 2))
    with any_platform.store.read() as conn:
        assert not ledger.verify(conn).ok


def test_failed_transaction_leaves_neither_change_nor_ledger_entry(any_platform: Platform) -> None:
    from shuyu.canonical import utcnow

    with pytest.raises(RuntimeError), any_platform.store.transaction() as conn:
        conn.execute(datasets.insert().values(name="half", created_at=utcnow()))
        ledger.append(conn, "alice", LedgerAction.DATASET_REGISTERED, "dataset:half", {})
        raise RuntimeError("crash in the middle")
    with any_platform.store.read() as conn:
        assert conn.execute(select(datasets)).all() == []
        assert ledger.entries(conn) == []


def test_concurrent_appends_keep_one_unbroken_chain(any_platform: Platform) -> None:
    def writer(name: str) -> None:
        for i in range(10):
            with any_platform.store.transaction() as conn:
                ledger.append(conn, name, LedgerAction.WORKSPACE_BUILT, f"{name}:{i}", {})

    threads = [threading.Thread(target=writer, args=(f"w{n}",)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with any_platform.store.read() as conn:
        result = ledger.verify(conn)
    assert result.ok and result.entries == 40


def test_open_platform_without_init_says_what_to_do(tmp_path) -> None:
    with pytest.raises(PlatformError) as err:
        open_platform(Settings.from_env({}, home=tmp_path / "nowhere"))
    assert "shuyu init" in str(err.value)


def test_unreadable_home_is_a_clear_error(tmp_path) -> None:
    import os

    if os.geteuid() == 0:
        # root reads anything; an unreadable home for root is a home that is not a folder
        (tmp_path / "file-home").write_text("x")
        with pytest.raises(PlatformError):
            open_platform(Settings.from_env({}, home=tmp_path / "file-home"))
    else:  # pragma: no cover - CI runs as root
        home = tmp_path / "home"
        make_platform(home)
        home.chmod(0)
        with pytest.raises(PlatformError, match="not readable"):
            open_platform(Settings.from_env({}, home=home))


def test_unreachable_database_is_a_platform_error(tmp_path) -> None:
    platform = make_platform(tmp_path / "home")
    broken = Settings.from_env(
        {}, home=platform.home, db_url="postgresql+psycopg://nobody:x@127.0.0.1:1/none"
    )
    with (
        pytest.raises(PlatformError, match="fix:|metadata store") as err,
        open_platform(broken).store.read() as conn,
    ):
        conn.execute(select(datasets))
    assert "x@" not in str(err.value)  # the password is never shown


def test_the_ledger_refuses_an_action_outside_the_closed_set(platform: Platform) -> None:
    """Auditors query a closed vocabulary: a free string never becomes a ledger action."""
    with pytest.raises(ValueError), platform.store.transaction() as conn:
        ledger.append(conn, "alice", "job.vanished", "job:x", {})  # type: ignore[arg-type]


def test_every_job_state_has_its_ledger_action() -> None:
    from lineage.actions import job_transition
    from shuyu.vocabulary import JobState

    assert {job_transition(s).value for s in JobState} == {f"job.{s.value}" for s in JobState}
