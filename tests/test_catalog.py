"""Catalog registration: snapshots, versions, classification, and every kind of bad input."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pytest
import yaml
from sqlalchemy import select

from catalog.service import list_datasets, register, show
from lineage import ledger
from shuyu.errors import PolicyRefused, ValidationError
from shuyu.platform import Platform
from shuyu.schema import dataset_versions, datasets


def copy_dataset(demo_dir: Path, target: Path, name: str = "enterprises") -> Path:
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy(demo_dir / f"{name}.parquet", target)
    shutil.copy(demo_dir / f"{name}.yaml", target)
    return target / f"{name}.yaml"


def edit_manifest(path: Path, change) -> Path:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(doc)
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def assert_nothing_registered(platform: Platform) -> None:
    with platform.store.read() as conn:
        assert conn.execute(select(datasets)).all() == []
        assert conn.execute(select(dataset_versions)).all() == []
        assert ledger.entries(conn) == []
    assert list(platform.snapshots_dir.iterdir()) == []
    assert list(platform.tmp_dir.iterdir()) == []


def test_register_makes_an_immutable_content_addressed_snapshot(
    any_platform: Platform, demo_dir: Path
) -> None:
    result = register(any_platform, demo_dir / "residents.yaml")
    v = result.version
    assert result.created and v.version == 1 and v.row_count == 5000
    assert not v.snapshot_path.is_absolute(), "the store holds no host path"
    snapshot = any_platform.resolve(v.snapshot_path)
    assert snapshot == any_platform.snapshots_dir / v.sha256 / "data.parquet"
    import hashlib

    assert hashlib.sha256(snapshot.read_bytes()).hexdigest() == v.sha256
    assert snapshot.stat().st_mode & 0o777 == 0o400, "read-only, and only for the platform"
    with any_platform.store.read() as conn:
        (entry,) = ledger.entries(conn, action="dataset.registered")
    assert entry.details["sha256"] == v.sha256


def test_same_content_is_not_a_new_version_changed_content_is(
    platform: Platform, demo_dir: Path, tmp_path
) -> None:
    manifest = copy_dataset(demo_dir, tmp_path / "d")
    first = register(platform, manifest).version
    assert not register(platform, manifest).created
    parquet = tmp_path / "d" / "enterprises.parquet"
    duckdb.sql(
        f"COPY (SELECT * FROM '{parquet}' LIMIT 100) TO '{tmp_path}/small.parquet' (FORMAT parquet)"
    )
    shutil.copy(tmp_path / "small.parquet", parquet)
    second = register(platform, manifest).version
    assert (second.version, second.row_count) == (2, 100)
    assert platform.resolve(first.snapshot_path).exists(), "the old version stays"
    assert [v["version"] for v in show(platform, "enterprises")["versions"]] == [1, 2]
    assert [d.version for d in list_datasets(platform)] == [2]


def test_core_data_is_refused(platform: Platform, demo_dir: Path, tmp_path) -> None:
    manifest = edit_manifest(
        copy_dataset(demo_dir, tmp_path / "d"), lambda d: d.update(classification="核心")
    )
    with pytest.raises(PolicyRefused, match="core") as err:
        register(platform, manifest)
    assert err.value.field == "classification"
    assert_nothing_registered(platform)


@pytest.mark.parametrize(
    ("change", "field", "text"),
    [
        (
            lambda d: d["columns"]["industry"].update(type="integer"),
            "columns.industry.type",
            "VARCHAR",
        ),
        (lambda d: d["columns"].pop("employees"), "columns.employees", "does not declare"),
        (
            lambda d: d["columns"].update(extra={"type": "string", "role": "attribute"}),
            "columns.extra",
            "not in the file",
        ),
        (lambda d: d.update(files=["missing.parquet"]), "files.0", "not found"),
        (
            lambda d: d["columns"]["industry"].update(role="secret"),
            "columns.industry.role",
            "Input should be",
        ),
        (lambda d: d.pop("owner_department"), "owner_department", "missing"),
        (lambda d: d.update(colour="blue"), "colour", "unknown field"),
        (
            lambda d: d["columns"]["employees"].update(bounds=[10, 1]),
            "columns.employees",
            "low <= high",
        ),
        (lambda d: d.update(name="Bad Name"), "name", "lower-case"),
    ],
)
def test_bad_manifests_name_file_field_and_leave_nothing(
    platform: Platform, demo_dir: Path, tmp_path, change, field, text
) -> None:
    manifest = edit_manifest(copy_dataset(demo_dir, tmp_path / "d"), change)
    with pytest.raises(ValidationError) as err:
        register(platform, manifest)
    assert err.value.field == field
    assert text in str(err.value)
    assert err.value.file is not None
    assert_nothing_registered(platform)


def test_malformed_yaml_names_the_line(platform: Platform, tmp_path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ncolumns: {a: [1, 2}\n", encoding="utf-8")
    with pytest.raises(ValidationError, match="line 2") as err:
        register(platform, bad)
    assert err.value.file == str(bad)
    assert_nothing_registered(platform)


def test_gbk_csv_is_read_when_declared(platform: Platform, tmp_path) -> None:
    from catalog.demo_data import write_gbk_csv_sample

    manifest = write_gbk_csv_sample(tmp_path)
    version = register(platform, manifest).version
    names = duckdb.sql(f"SELECT * FROM '{platform.resolve(version.snapshot_path)}'").df()
    assert version.row_count == len(names) > 0
    assert any("医院" in str(v) for v in names.iloc[:, 0])


def test_gbk_csv_declared_as_utf8_says_where_and_how_to_fix(platform: Platform, tmp_path) -> None:
    from catalog.demo_data import write_gbk_csv_sample

    manifest = edit_manifest(write_gbk_csv_sample(tmp_path), lambda d: d.pop("encoding"))
    with pytest.raises(ValidationError, match="not valid utf-8 at byte") as err:
        register(platform, manifest)
    assert err.value.fix == "set `encoding: gbk` in the manifest"
    assert_nothing_registered(platform)


def test_csv_with_values_that_do_not_fit_the_types(platform: Platform, tmp_path) -> None:
    (tmp_path / "t.csv").write_text("name,beds\n甲医院,12\n乙医院,many\n", encoding="utf-8")
    manifest = tmp_path / "t.yaml"
    manifest.write_text(
        yaml.safe_dump(
            {
                "name": "t",
                "title": "t",
                "owner_department": "卫健委",
                "update_frequency": "once",
                "classification": "general",
                "files": ["t.csv"],
                "columns": {
                    "name": {"type": "string", "role": "attribute"},
                    "beds": {"type": "integer", "role": "attribute"},
                },
            },
            allow_unicode=True,
        ),
        encoding="utf-8",
    )
    with pytest.raises(ValidationError, match="many"):
        register(platform, manifest)
    assert_nothing_registered(platform)


def test_not_a_parquet_file(platform: Platform, demo_dir: Path, tmp_path) -> None:
    manifest = copy_dataset(demo_dir, tmp_path / "d")
    (tmp_path / "d" / "enterprises.parquet").write_bytes(b"this is not parquet")
    with pytest.raises(ValidationError, match="not a readable Parquet file"):
        register(platform, manifest)
    assert_nothing_registered(platform)


def test_a_registration_that_fails_half_way_leaves_nothing_behind(
    platform: Platform, demo_dir: Path, monkeypatch
) -> None:
    """The snapshot is already in place when the ledger write fails: it must be removed again."""

    def broken_append(*args, **kwargs):
        raise RuntimeError("disk full while writing the ledger")

    monkeypatch.setattr(ledger, "append", broken_append)
    with pytest.raises(RuntimeError):
        register(platform, demo_dir / "residents.yaml")
    assert_nothing_registered(platform)


def test_cli_prints_one_error_line_and_exits_non_zero(tmp_path) -> None:
    import subprocess
    import sys

    env = {"SHUYU_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"}
    subprocess.run(
        [sys.executable, "-m", "api.cli", "init"], env=env, check=True, capture_output=True
    )
    done = subprocess.run(
        [sys.executable, "-m", "api.cli", "catalog", "add", str(tmp_path / "nope.yaml")],
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "nope.yaml" in lines[0] and "not found" in lines[0]
    as_json = subprocess.run(
        [sys.executable, "-m", "api.cli", "catalog", "add", str(tmp_path / "nope.yaml"), "--json"],
        env=env,
        capture_output=True,
        text=True,
    )
    import json

    assert json.loads(as_json.stderr)["error"] == "invalid"


def test_a_changed_manifest_over_the_same_data_is_a_new_version(
    platform: Platform, demo_dir: Path, tmp_path
) -> None:
    manifest = copy_dataset(demo_dir, tmp_path / "d")
    first = register(platform, manifest).version
    edit_manifest(manifest, lambda d: d["columns"]["name"].update(role="direct_identifier"))
    second = register(platform, manifest)
    assert second.created and second.version.version == 2
    assert second.version.sha256 == first.sha256, "the snapshot is shared"
    assert second.version.manifest.columns["name"].role == "direct_identifier"
    assert list((platform.snapshots_dir / first.sha256).glob("fingerprints-*.parquet")), (
        "the new direct identifier is fingerprinted too"
    )
    assert not register(platform, manifest).created
