"""Grants: validation against the catalog, each transform's effect, revocation."""

from __future__ import annotations

import copy
from pathlib import Path

import duckdb
import pytest
import yaml

from policies.service import add_grant, list_grants, revoke_grant
from policies.transforms import Transform, sql_expression
from shuyu.errors import Conflict, PolicyRefused, ValidationError
from shuyu.platform import Platform
from tests.conftest import GRANT_EXAMPLE, ensure_tenant

BASE = yaml.safe_load(GRANT_EXAMPLE.read_text(encoding="utf-8"))


@pytest.fixture
def registered(platform: Platform, demo_dir: Path) -> Platform:
    from catalog.service import register

    for name in ("residents", "enterprises", "contributions"):
        register(platform, demo_dir / f"{name}.yaml")
    ensure_tenant(platform)
    return platform


def write_grant(tmp_path: Path, change=None, name: str = "grant.yaml") -> Path:
    doc = copy.deepcopy(BASE)
    if change:
        change(doc)
    path = tmp_path / name
    path.write_text(
        yaml.safe_dump(doc, allow_unicode=True, default_flow_style=False), encoding="utf-8"
    )
    return path


def cols(doc, dataset="residents"):
    return doc["datasets"][dataset]["columns"]


@pytest.mark.parametrize(
    ("change", "field", "text"),
    [
        (
            lambda d: cols(d).update(shoe_size="keep"),
            "datasets.residents.columns.shoe_size",
            "no column shoe_size",
        ),
        (
            lambda d: cols(d).update(gender="scramble"),
            "datasets.residents.columns.gender",
            "unknown transform",
        ),
        (
            lambda d: d["datasets"].update(taxes={"columns": {"x": "keep"}}),
            "datasets.taxes",
            "no dataset taxes",
        ),
        (
            lambda d: d.update(valid_from="2019-01-01", valid_until="2020-01-01"),
            "valid_until",
            "expired",
        ),
        (
            lambda d: cols(d).update(name="keep"),
            "datasets.residents.columns.name",
            "direct identifier",
        ),
        (
            lambda d: cols(d).update(mobile={"mask": {"keep_prefix": 3}}),
            "datasets.residents.columns.mobile",
            "direct identifier",
        ),
        (
            lambda d: cols(d).update(gender={"generalise": "year"}),
            "datasets.residents.columns.gender",
            "does not fit gender of type string",
        ),
        (
            lambda d: cols(d).update(district={"top_bottom_code": {}}),
            "datasets.residents.columns.district",
            "only numeric",
        ),
        (
            lambda d: cols(d).update(birth_date={"mask": {}}),
            "datasets.residents.columns.birth_date",
            "only string",
        ),
        (lambda d: d.update(purpose="profit"), "purpose", "Input should be"),
        (
            lambda d: d["dp"].update(per_dataset={"taxes": 1.0}),
            "dp.per_dataset.taxes",
            "does not include",
        ),
        (
            lambda d: d["disclosure"].update(min_count=0),
            "disclosure.min_count",
            "greater than or equal",
        ),
        (
            lambda d: cols(d, "residents").update({c: "drop" for c in cols(d, "residents")}),
            "datasets.residents.columns",
            "every column",
        ),
    ],
)
def test_invalid_grants_name_file_field_and_store_nothing(
    registered: Platform, tmp_path, change, field, text
) -> None:
    path = write_grant(tmp_path, change)
    with pytest.raises(ValidationError) as err:
        add_grant(registered, path)
    assert err.value.file == str(path)
    assert err.value.field == field
    assert text in str(err.value)
    assert list_grants(registered) == []


def test_grant_defaults_to_five_years_and_acro_thresholds(registered: Platform, tmp_path) -> None:
    policy = add_grant(registered, write_grant(tmp_path))
    assert (policy.valid_until.year - policy.valid_from.year) == 5
    d = policy.disclosure
    assert (
        d.min_count,
        d.dominance_n,
        d.dominance_k,
        d.p_percent,
        d.zeros_disclosive,
        d.min_dof,
        d.k_anonymity,
    ) == (10, 2, 0.90, 0.10, True, 10, 5)
    assert policy.dp.epsilon_for("contributions") == 5.0
    assert (
        "name" not in policy.datasets["residents"].transforms
    )  # dropped columns never reach a workspace
    assert policy.free_of_charge


def test_one_active_grant_per_project_and_revocation(registered: Platform, tmp_path) -> None:
    add_grant(registered, write_grant(tmp_path))
    with pytest.raises(Conflict, match="revoke it first"):
        add_grant(registered, write_grant(tmp_path, lambda d: d.update(id="grant-2")))
    revoke_grant(registered, "grant-employment-2026", "tenant left")
    add_grant(registered, write_grant(tmp_path, lambda d: d.update(id="grant-2")))
    statuses = {g["id"]: g["status"] for g in list_grants(registered)}
    assert statuses == {"grant-employment-2026": "revoked", "grant-2": "active"}
    with pytest.raises(Conflict):
        revoke_grant(registered, "grant-employment-2026", "again")


def test_revoked_grant_builds_no_workspace(registered: Platform, tmp_path) -> None:
    from policies.workspace import build_workspace

    add_grant(registered, write_grant(tmp_path))
    revoke_grant(registered, "grant-employment-2026", "audit finding")
    with pytest.raises(PolicyRefused, match="no active grant"):
        build_workspace(registered, "employment-insights")


def run(expr: str, values: list, duck_type: str, key: str = "k") -> list:
    con = duckdb.connect()
    con.execute(f"CREATE TABLE t (c {duck_type})")
    con.executemany("INSERT INTO t VALUES (?)", [[v] for v in values])
    params = {"key": key} if "$key" in expr else {}
    return [r[0] for r in con.execute(f"SELECT {expr} FROM t", params).fetchall()]


def test_generalise_transforms() -> None:
    import datetime as dt

    dates = [dt.date(1987, 6, 1), dt.date(1990, 1, 1), None]
    year = sql_expression("c", "date", Transform("generalise", {"to": "year"}))
    assert run(year, dates, "DATE") == [1987, 1990, None]
    band = sql_expression("c", "date", Transform("generalise", {"to": "five_year_band"}))
    assert run(band, dates, "DATE") == ["1985-1989", "1990-1994", None]
    age = sql_expression(
        "c", "date", Transform("generalise", {"to": "age_band", "width": 10, "as_of": "2026-01-01"})
    )
    assert run(age, dates, "DATE") == ["30-39", "30-39", None]
    ages = sql_expression("c", "integer", Transform("generalise", {"to": "age_band", "width": 5}))
    assert run(ages, [0, 34, 35], "BIGINT") == ["0-4", "30-34", "35-39"]
    district = sql_expression("c", "string", Transform("generalise", {"to": "district"}))
    assert run(district, ["150302001", "150304", "110101"], "VARCHAR") == [
        "海勃湾区",
        "乌达区",
        "110101",
    ]


def test_mask_and_top_bottom_code() -> None:
    mask = sql_expression(
        "c", "string", Transform("mask", {"keep_prefix": 3, "keep_suffix": 2, "char": "*"})
    )
    assert run(mask, ["13812345678", "abcd", None], "VARCHAR") == ["138******78", "****", None]
    clamp = sql_expression(
        "c", "float", Transform("top_bottom_code", {"lower": 1000, "upper": 30000})
    )
    assert run(clamp, [5.0, 2000.0, 99999.0], "DOUBLE") == [1000, 2000.0, 30000]


def test_pseudonyms_are_stable_within_a_key_and_differ_across_keys() -> None:
    expr = sql_expression("c", "string", Transform("pseudonymise", {}))
    ids = ["150302198706011234", "150302198706011234", "150303199001010021"]
    a = run(expr, ids, "VARCHAR", key="project-a")
    b = run(expr, ids, "VARCHAR", key="project-b")
    assert a[0] == a[1] != a[2]
    assert len(a[0]) == 32 and all(c in "0123456789abcdef" for c in a[0])
    assert not set(a) & set(b)
    assert run(expr, [None], "VARCHAR") == [None]
