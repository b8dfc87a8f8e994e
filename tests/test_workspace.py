"""Workspaces: what reaches them (transformed data only), what never does (keys, clear identifiers)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from policies.workspace import build_workspace
from shuyu.platform import Platform
from tests.conftest import register_and_grant


def raw(demo_dir: Path, sql: str) -> list:
    return [r[0] for r in duckdb.sql(sql.replace("{d}", str(demo_dir))).fetchall()]


@pytest.fixture
def workspace(granted: Platform):
    return build_workspace(granted, "employment-insights")


def test_no_clear_identifier_or_key_anywhere_in_the_workspace_file(
    granted: Platform, workspace, demo_dir: Path
) -> None:
    blob = workspace.path.read_bytes()
    for column in ("resident_id", "name", "mobile", "address"):
        for value in raw(demo_dir, f"SELECT {column} FROM '{{d}}/residents.parquet' LIMIT 200"):
            assert value.encode() not in blob, f"raw {column} found in the workspace file"
    for value in raw(demo_dir, "SELECT credit_code FROM '{d}/enterprises.parquet' LIMIT 100"):
        assert value.encode() not in blob
    for purpose in ("pseudonym", "synthetic"):
        key = granted.project_key("employment-insights", purpose)
        assert key not in blob and key.hex().encode() not in blob
    master = (granted.keys_dir / "pseudonym.key").read_bytes()
    assert master not in blob and master.hex().encode() not in blob


def test_workspace_holds_the_transformed_tables(workspace, demo_dir: Path) -> None:
    con = duckdb.connect(str(workspace.path), read_only=True)
    residents = con.execute("SELECT * FROM residents LIMIT 1").fetchdf()
    assert list(residents.columns) == ["resident_id", "birth_date", "gender", "district"]
    assert residents.birth_date[0].count("-") == 1  # five-year band, e.g. 1985-1989
    n_people = con.execute("SELECT count(DISTINCT resident_id) FROM residents").fetchone()[0]
    assert (
        n_people
        == raw(demo_dir, "SELECT count(DISTINCT resident_id) FROM '{d}/residents.parquet'")[0]
    )
    # pseudonyms join across datasets within the project
    joined = con.execute(
        "SELECT count(*) FROM contributions c JOIN residents r USING (resident_id)"
    ).fetchone()[0]
    assert joined == raw(demo_dir, "SELECT count(*) FROM '{d}/contributions.parquet'")[0]
    capped = con.execute("SELECT max(employees), min(employees) FROM enterprises").fetchone()
    assert capped[0] <= 2000 and capped[1] >= 1
    meta = con.execute(
        "SELECT dataset, snapshot_sha256, policy_hash FROM _shuyu_workspace ORDER BY 1"
    ).fetchall()
    assert [m[0] for m in meta] == ["contributions", "enterprises", "residents"]
    assert {m[0]: m[1] for m in meta} == workspace.snapshots
    assert {m[2] for m in meta} == {workspace.policy_hash}


def test_pseudonyms_differ_across_projects(granted: Platform, workspace, tmp_path: Path) -> None:
    import yaml

    from policies.service import add_grant

    doc = yaml.safe_load(
        (Path(__file__).parent.parent / "examples" / "grant-employment.yaml").read_text()
    )
    doc.update(id="grant-other", project="other-project")
    other_grant = tmp_path / "other.yaml"
    other_grant.write_text(yaml.safe_dump(doc, allow_unicode=True))
    add_grant(granted, other_grant)
    other = build_workspace(granted, "other-project")

    def keys(ws) -> set[str]:
        with duckdb.connect(str(ws.path), read_only=True) as con:
            return {r[0] for r in con.execute("SELECT resident_id FROM residents").fetchall()}

    mine, theirs = keys(workspace), keys(other)
    assert len(mine) == len(theirs) == 5000
    assert not mine & theirs
    assert (
        keys(build_workspace(granted, "employment-insights")) == mine
    )  # stable within the project


def test_a_second_build_reuses_the_cached_workspace(granted: Platform, workspace) -> None:
    again = build_workspace(granted, "employment-insights")
    assert again.cached and again.id == workspace.id and again.path == workspace.path
    assert len(list(granted.workspaces_dir.iterdir())) == 1


def test_new_data_version_builds_a_new_workspace(
    granted: Platform, workspace, demo_dir: Path, tmp_path
) -> None:
    import shutil

    from catalog.service import register

    copy = tmp_path / "d"
    copy.mkdir()
    shutil.copy(demo_dir / "enterprises.yaml", copy)
    duckdb.sql(
        f"COPY (SELECT * FROM '{demo_dir}/enterprises.parquet' LIMIT 50) TO '{copy}/enterprises.parquet'"
    )
    register(granted, copy / "enterprises.yaml")
    rebuilt = build_workspace(granted, "employment-insights")
    assert not rebuilt.cached and rebuilt.id != workspace.id
    assert rebuilt.snapshots["enterprises"] != workspace.snapshots["enterprises"]
    assert workspace.path.exists()


def test_synthetic_twin_has_the_schema_but_no_real_values(
    granted: Platform, workspace, demo_dir: Path
) -> None:
    twin = build_workspace(granted, "employment-insights", "synthetic")
    assert twin.kind == "synthetic" and twin.id != workspace.id
    with (
        duckdb.connect(str(workspace.path), read_only=True) as real,
        duckdb.connect(str(twin.path), read_only=True) as fake,
    ):
        for table in ("residents", "enterprises", "contributions"):
            assert (
                real.execute(f"DESCRIBE {table}").fetchall()
                == fake.execute(f"DESCRIBE {table}").fetchall()
            )
        assert (
            fake.execute("SELECT count(*) FROM residents").fetchone()[0]
            == granted.settings.synthetic_rows
        )
        real_wages = {
            r[0] for r in real.execute("SELECT DISTINCT wage_base FROM contributions").fetchall()
        }
        fake_wages = {
            r[0] for r in fake.execute("SELECT DISTINCT wage_base FROM contributions").fetchall()
        }
        real_keys = {r[0] for r in real.execute("SELECT resident_id FROM residents").fetchall()}
        fake_keys = {r[0] for r in fake.execute("SELECT resident_id FROM residents").fetchall()}
        joined = fake.execute(
            "SELECT count(*) FROM contributions JOIN residents USING (resident_id)"
        ).fetchone()[0]
        districts = {
            r[0] for r in fake.execute("SELECT DISTINCT district FROM residents").fetchall()
        }
        months = fake.execute(
            "SELECT count(DISTINCT month), max(day(month)) FROM contributions"
        ).fetchone()
    assert len(real_wages & fake_wages) < 0.01 * len(fake_wages)
    assert not real_keys & fake_keys
    assert joined > 0, "synthetic identifiers share a pool so joins work in development"
    assert districts <= {"海勃湾区", "海南区", "乌达区"}
    assert months == (24, 1), "a month column (granularity: month) gets every month, as first days"
    blob = twin.path.read_bytes()
    for value in raw(demo_dir, "SELECT name FROM '{d}/residents.parquet' LIMIT 50"):
        assert value.encode() not in blob


@pytest.mark.postgres
def test_workspace_on_postgres_store(tmp_path: Path, pg_url: str, demo_dir: Path) -> None:
    from tests.conftest import make_platform

    platform = register_and_grant(make_platform(tmp_path / "home", pg_url), demo_dir)
    first = build_workspace(platform, "employment-insights")
    assert build_workspace(platform, "employment-insights").id == first.id
    platform.store.dispose()


def test_a_failed_build_leaves_no_file_and_no_record(granted: Platform, monkeypatch) -> None:
    from lineage import ledger

    monkeypatch.setattr(
        ledger, "append", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("crash"))
    )
    with pytest.raises(RuntimeError):
        build_workspace(granted, "employment-insights")
    assert list(granted.workspaces_dir.iterdir()) == []
    assert [p for p in granted.tmp_dir.iterdir()] == []
