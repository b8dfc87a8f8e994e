"""The synthetic Wuhai demo data: valid identifiers, consistent joins, deterministic bytes."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import duckdb
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from stdnum.cn import ric, uscc
from stdnum.exceptions import InvalidComponent

from catalog import idcodes
from catalog.demo_data import DATASETS, generate_demo_data, write_gbk_csv_sample

PARQUET_TYPES = {"string": "VARCHAR", "integer": "BIGINT", "float": "DOUBLE", "date": "DATE"}
PREFIX_DISTRICT = {"150302": "海勃湾区", "150303": "海南区", "150304": "乌达区"}
DATASET_NAMES = ["residents", "enterprises", "contributions"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    calls: list[tuple[str, int, int]] = []
    manifests = generate_demo_data(out, scale=1, progress=lambda *a: calls.append(a))
    assert manifests == [out / f"{n}.yaml" for n in DATASET_NAMES]
    assert [c[1:] for c in calls] == [(i, 6) for i in range(1, 7)]
    assert {c[0] for c in calls} == {
        f"{n}.{ext}" for n in DATASET_NAMES for ext in ("parquet", "yaml")
    }
    return out


def rows(demo: Path, sql: str) -> list[tuple]:
    con = duckdb.connect()
    try:
        for name in DATASET_NAMES:
            con.execute(f"CREATE VIEW {name} AS SELECT * FROM '{demo / name}.parquet'")
        return con.execute(sql).fetchall()
    finally:
        con.close()


# --------------------------------------------------------------------------- check characters


def test_check_chars_match_published_examples() -> None:
    assert idcodes.resident_id_check_char("11010519491231002") == "X"  # GB 11643 example
    assert idcodes.org_code_check_char("60003734") == "1"
    assert idcodes.uscc_check_char("91110000600037341") == "L"
    assert idcodes.is_valid_uscc("91110000600037341L")
    assert not idcodes.is_valid_uscc("91110000600037342L")  # organisation check char wrong


@settings(max_examples=200, deadline=None)
@given(st.text("0123456789", min_size=17, max_size=17))
def test_resident_id_check_char_agrees_with_stdnum(body: str) -> None:
    assert idcodes.resident_id_check_char(body) == ric.calc_check_digit(body + "0")


@settings(max_examples=200, deadline=None)
@given(st.text(idcodes.USCC_ALPHABET, min_size=17, max_size=17))
def test_uscc_check_char_agrees_with_stdnum(body: str) -> None:
    assert idcodes.uscc_check_char(body) == uscc.calc_check_digit(body)


def test_sql_check_chars_equal_python() -> None:
    import random

    rnd = random.Random(7)
    ids = ["".join(rnd.choices("0123456789", k=17)) for _ in range(300)]
    orgs = ["".join(rnd.choices(idcodes.ORG_CODE_ALPHABET, k=8)) for _ in range(300)]
    usccs = ["".join(rnd.choices(idcodes.USCC_ALPHABET, k=17)) for _ in range(300)]
    con = duckdb.connect()
    got = con.execute(
        f"SELECT {idcodes.resident_id_check_sql('a')}, {idcodes.org_code_check_sql('b')}, "
        f"{idcodes.uscc_check_sql('c')} FROM (SELECT unnest($1) a, unnest($2) b, unnest($3) c)",
        [ids, orgs, usccs],
    ).fetchall()
    assert [g[0] for g in got] == [idcodes.resident_id_check_char(x) for x in ids]
    assert [g[1] for g in got] == [idcodes.org_code_check_char(x) for x in orgs]
    assert [g[2] for g in got] == [idcodes.uscc_check_char(x) for x in usccs]
    assert {g[1] for g in got} >= {"X", "0"}  # both special cases of GB 11714 exercised


# --------------------------------------------------------------------------- residents


def test_resident_ids_are_valid_and_consistent(demo: Path) -> None:
    data = rows(demo, "SELECT resident_id, birth_date, gender, district FROM residents")
    assert len(data) == 5000
    assert len({r[0] for r in data}) == 5000
    for rid, birth, gender, district in data:
        assert idcodes.is_valid_resident_id(rid), rid
        assert ric.calc_check_digit(rid) == rid[-1], rid
        assert ric.get_birth_date(rid) == birth
        assert (int(rid[16]) % 2 == 1) == (gender == "男")
        assert PREFIX_DISTRICT[rid[:6]] == district
        if birth.year >= 1983:
            assert ric.is_valid(rid), rid
            assert ric.get_birth_place(rid)["county"] == district
        else:
            # stdnum also demands that the region code existed in the birth year; its table
            # dates Wuhai's district codes from 1983, so (real) older residents fail only that.
            with pytest.raises(InvalidComponent):
                ric.get_birth_place(rid)
    assert sum(r[1].year < 1983 for r in data) > 0


def test_resident_columns_look_real(demo: Path) -> None:
    data = rows(demo, "SELECT name, mobile, address, district FROM residents")
    assert len({r[1] for r in data}) == len(data)  # mobiles are unique
    for name, mobile, address, district in data:
        assert 2 <= len(name) <= 4
        assert re.fullmatch(r"1[3-9]\d{9}", mobile), mobile
        assert re.fullmatch(rf"乌海市{district}\w+?\d+号\d单元\d{{3,4}}", address), address


def test_corrupted_check_char_fails_validation(demo: Path) -> None:
    (rid, code), *_ = rows(
        demo, "SELECT r.resident_id, e.credit_code FROM residents r, enterprises e LIMIT 1"
    )
    bad_rid = rid[:-1] + ("0" if rid[-1] != "0" else "1")
    bad_code = code[:-1] + ("0" if code[-1] != "0" else "1")
    assert ric.calc_check_digit(rid) == rid[-1] and uscc.is_valid(code)
    assert not ric.is_valid(bad_rid) and not idcodes.is_valid_resident_id(bad_rid)
    assert not uscc.is_valid(bad_code) and not idcodes.is_valid_uscc(bad_code)


# --------------------------------------------------------------------------- enterprises


def test_credit_codes_are_valid(demo: Path) -> None:
    data = rows(demo, "SELECT credit_code, district FROM enterprises")
    assert len(data) == 300
    assert len({r[0] for r in data}) == 300
    for code, district in data:
        assert uscc.is_valid(code), code
        assert idcodes.is_valid_uscc(code), code  # embedded GB 11714 check char too
        assert PREFIX_DISTRICT[code[2:8]] == district


# --------------------------------------------------------------------------- contributions


def test_contributions_join_and_stay_in_bounds(demo: Path) -> None:
    (n, orphans_r, orphans_e, wrong_district, lo, hi, bad_pension, bad_month), *_ = rows(
        demo,
        """SELECT count(*),
             count(*) FILTER (WHERE c.resident_id NOT IN (SELECT resident_id FROM residents)),
             count(*) FILTER (WHERE e.credit_code IS NULL),
             count(*) FILTER (WHERE e.district IS DISTINCT FROM c.district),
             min(wage_base), max(wage_base),
             count(*) FILTER (WHERE pension_paid <> round(wage_base * 0.16, 2)),
             count(*) FILTER (WHERE day(month) <> 1
                              OR month NOT BETWEEN DATE '2024-01-01' AND DATE '2025-12-01')
           FROM contributions c LEFT JOIN enterprises e ON e.credit_code = c.enterprise_code""",
    )
    assert n >= 100_000
    assert orphans_r == orphans_e == wrong_district == bad_pension == bad_month == 0
    assert lo >= 1000 and hi <= 40000


def test_each_resident_has_one_job_and_a_run_of_months(demo: Path) -> None:
    per_person = rows(
        demo,
        """SELECT count(*), count(DISTINCT enterprise_code), count(DISTINCT month),
             date_diff('month', min(month), max(month)) + 1
           FROM contributions GROUP BY resident_id""",
    )
    assert all(jobs == 1 and months == n == span for n, jobs, months, span in per_person)
    assert len({p[0] for p in per_person}) > 10  # counts per person vary


def test_values_respect_manifest_bounds_and_categories(demo: Path) -> None:
    for name in DATASET_NAMES:
        for column, (_, _, extra, _) in DATASETS[name]["columns"].items():
            if isinstance(extra, tuple):
                lo, hi = (f"DATE '{b}'" if isinstance(b, str) else b for b in extra)
                sql = f"SELECT count(*) FROM {name} WHERE {column} NOT BETWEEN {lo} AND {hi}"
            elif isinstance(extra, list):
                sql = f"SELECT count(*) FROM {name} WHERE {column} NOT IN ({str(extra)[1:-1]})"
            else:
                sql = f"SELECT count(*) FROM {name} WHERE {column} IS NULL"
            assert rows(demo, sql) == [(0,)], (name, column)


# --------------------------------------------------------------------------- manifests


def test_manifest_columns_equal_parquet_schema(demo: Path) -> None:
    for name in DATASET_NAMES:
        manifest = yaml.safe_load((demo / f"{name}.yaml").read_text(encoding="utf-8"))
        assert manifest["name"] == name and manifest["files"] == [f"{name}.parquet"]
        schema = rows(demo, f"DESCRIBE {name}")
        declared = [(col, PARQUET_TYPES[spec["type"]]) for col, spec in manifest["columns"].items()]
        assert [(r[0], r[1]) for r in schema] == declared, name


def test_manifests_parse_as_documented(demo: Path) -> None:
    expected = {
        "residents": ("乌海市公安局", "important"),
        "enterprises": ("乌海市市场监督管理局", "general"),
        "contributions": ("乌海市人力资源和社会保障局", "important"),
    }
    for name, (department, classification) in expected.items():
        text = (demo / f"{name}.yaml").read_text(encoding="utf-8")
        assert "合成演示数据" in text and "\\u" not in text  # readable Chinese, not escapes
        data = yaml.safe_load(text)
        assert (data["owner_department"], data["classification"]) == (department, classification)
        for spec in data["columns"].values():
            if "bounds" in spec and spec["type"] == "date":
                assert all(isinstance(b, str) for b in spec["bounds"])  # quoted ISO dates
    catalog_manifest = pytest.importorskip("catalog.manifest")
    for name in DATASET_NAMES:
        assert catalog_manifest.load_manifest(demo / f"{name}.yaml").name == name


def test_gbk_csv_sample(tmp_path: Path) -> None:
    manifest = write_gbk_csv_sample(tmp_path)
    raw = (tmp_path / "hospitals_gbk.csv").read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    lines = raw.decode("gbk").splitlines()
    assert lines[0] == "hospital_name,district,beds" and len(lines) == 21
    assert all(line.split(",")[1] in PREFIX_DISTRICT.values() for line in lines[1:])
    data = yaml.safe_load(manifest.read_text(encoding="utf-8"))
    assert data["encoding"] == "gbk" and data["files"] == ["hospitals_gbk.csv"]
    assert list(data["columns"]) == lines[0].split(",")


# --------------------------------------------------------------------------- determinism


def _digests(out: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.iterdir())}


def test_same_seed_gives_identical_bytes(tmp_path: Path, demo: Path) -> None:
    generate_demo_data(tmp_path / "a")
    generate_demo_data(tmp_path / "b")
    first = _digests(tmp_path / "a")
    assert sorted(first) == sorted(f"{n}.{x}" for n in DATASET_NAMES for x in ("parquet", "yaml"))
    assert first == _digests(tmp_path / "b") == _digests(demo)
    generate_demo_data(tmp_path / "c", seed=1)
    other = _digests(tmp_path / "c")
    assert all(other[f"{n}.parquet"] != first[f"{n}.parquet"] for n in DATASET_NAMES)


def test_rejects_bad_scale(tmp_path: Path) -> None:
    for scale in (0, -1, 10_000, 1.5):
        with pytest.raises(ValueError, match="scale"):
            generate_demo_data(tmp_path, scale=scale)  # type: ignore[arg-type]
    assert not any(tmp_path.iterdir())
