"""`table:` actions: the platform computes the table itself, so the checks use its own numbers.

Run through the real worker and sandboxes (the example job mixes a `table:`, a `run: sql` and a
`dp:` action): the table is produced outside the sandbox, its contributor data is held and never
staged for later actions, and the egress report marks it verified by the platform.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd
import pytest
import yaml

from jobs.dev import run_dev
from jobs.states import JobState
from shuyu.errors import ValidationError
from shuyu.platform import Platform
from tests.test_egress_jobs import checks
from tests.test_jobs import example_job, run_production


def table_job(tmp_path: Path, query: str, output: dict | None = None, name: str = "tbl") -> Path:
    folder = tmp_path / name
    folder.mkdir()
    spec = {
        "version": 1,
        "name": name,
        "project": "employment-insights",
        "purpose": "public_governance",
        "actions": {
            "main": {
                "table": {"query": query},
                "outputs": {"result.csv": output or {"kind": "table", "context": "test table"}},
            }
        },
    }
    (folder / "job.yaml").write_text(yaml.safe_dump(spec, allow_unicode=True), encoding="utf-8")
    return folder / "job.yaml"


def test_example_table_is_computed_by_the_platform_on_the_twin(
    granted: Platform, local_backend, tmp_path: Path
) -> None:
    result = run_dev(granted, example_job(tmp_path), local_backend)
    assert result.job.state is JobState.COMPLETED, result.job.reason
    table = pd.read_csv(result.output_dir / "wages" / "wages_by_district.csv")
    assert list(table.columns) == ["district", "gender", "contributors", "avg_wage_base"]
    assert not table.duplicated(["district", "gender"]).any()
    assert (table["contributors"] > 0).all()
    assert "wages" not in result.logs, "no sandbox ran for the table"
    held = [o for o in result.outputs if o["status"].startswith("helper")]
    assert [o["path"] for o in held] == ["_platform/contributors.parquet"]
    assert not (result.output_dir / "wages" / "_platform").exists(), "never shown"
    assert (result.output_dir / "headcount" / "headcount_by_industry.csv").is_file()


def test_a_table_action_passes_end_to_end_verified_by_the_platform(
    granted: Platform, sandbox_backend, tmp_path: Path
) -> None:
    spec = table_job(
        tmp_path,
        "SELECT district, COUNT(DISTINCT resident_id) AS contributors, AVG(wage_base) AS avg_wage "
        "FROM contributions WHERE month = DATE '2025-12-01' GROUP BY district",
        {"kind": "table", "group_by": ["district"], "context": "各区缴费人数"},
    )
    view = run_production(granted, sandbox_backend, spec)
    assert view.job.state is JobState.REVIEW_PENDING, view.job.reason
    report = checks(granted, view.job.id)["main/result.csv"]
    assert report["status"] == "pass", report["notes"]
    assert report["sdc"]["declarations"]["verification"] == "platform"
    checked = {c["column"] for c in report["sdc"]["cells"]}
    assert {"contributors", "avg_wage"} <= checked
    # the held contributor rows are the platform's, keyed by workspace persons
    helper = next(o for o in view.outputs if o["status"] == "helper")
    persons = duckdb.sql(
        f"SELECT count(DISTINCT contributor) FROM read_parquet('{granted.resolve(helper['stored_path'])}')"
    ).fetchall()[0][0]
    collected = next(o for o in view.outputs if o["status"] == "collected")
    table = pd.read_csv(granted.resolve(collected["stored_path"]))
    assert persons == table["contributors"].sum()


def test_a_table_action_refuses_row_level_keys_before_reading_data(
    granted: Platform, local_backend, tmp_path: Path
) -> None:
    """The attacker asks the platform itself for a per-person table: refused at parse."""
    spec = table_job(
        tmp_path,
        "SELECT resident_id, COUNT(*) AS n FROM contributions GROUP BY resident_id",
        name="perperson",
    )
    view = run_production(granted, local_backend, spec)
    assert view.job.state is JobState.FAILED
    assert view.job.failure == "policy"
    assert "pseudonymised identifier" in (view.job.reason or "")


@pytest.mark.parametrize(
    ("query", "why"),
    [
        ("SELECT wage_base, COUNT(*) AS n FROM contributions GROUP BY wage_base", "sensitive"),
        ("SELECT district, COUNT(*) AS n FROM contributions GROUP BY district ORDER BY n", "ORDER"),
        ("SELECT gender, MAX(resident_id) AS m FROM residents GROUP BY gender", "numeric"),
        (
            "SELECT district, COUNT(*) AS n FROM contributions GROUP BY district HAVING n > 3",
            "HAVING",
        ),
        (
            "SELECT district, n FROM (SELECT district, COUNT(*) AS n FROM contributions GROUP BY 1)",
            "",
        ),
    ],
)
def test_the_table_parser_refuses_what_the_dp_parser_refuses(
    granted: Platform, query: str, why: str
) -> None:
    from aggregation.keys import monthly_dates
    from aggregation.query import parse_table_query
    from policies.workspace import build_workspace
    from privacy.schema import read_columns

    ws = build_workspace(granted, "employment-insights", "synthetic")
    con = duckdb.connect()
    con.execute("ATTACH ? AS ws (READ_ONLY)", [str(ws.path)])
    schema = read_columns(con, "ws")
    with pytest.raises(ValidationError) as err:
        parse_table_query(query, schema, monthly=monthly_dates(con, "ws", schema))
    assert err.value.field == "table.query"
    assert why in err.value.message


def test_a_declaration_that_disagrees_with_the_query_fails_the_job(
    granted: Platform, local_backend, tmp_path: Path
) -> None:
    spec = table_job(
        tmp_path,
        "SELECT district, COUNT(*) AS n FROM contributions GROUP BY district",
        {"kind": "table", "group_by": ["gender"], "context": "x"},
        name="mismatch",
    )
    view = run_production(granted, local_backend, spec)
    assert view.job.state is JobState.FAILED and view.job.failure == "policy"
    assert "declares group_by" in (view.job.reason or "")


def test_a_table_action_spec_is_one_table_without_helper(tmp_path: Path) -> None:
    from jobs.spec import load_spec

    spec = table_job(
        tmp_path,
        "SELECT district, COUNT(*) AS n FROM contributions GROUP BY district",
        {"kind": "table", "contributors": "c.parquet", "counts": ["n"], "context": "x"},
    )
    with pytest.raises(ValidationError, match="no contributors"):
        load_spec(spec)


def test_min_and_max_are_computed_verified_and_checked_as_extremes(
    granted: Platform, local_backend, tmp_path: Path
) -> None:
    spec = table_job(
        tmp_path,
        "SELECT district, COUNT(DISTINCT resident_id) AS n, MIN(wage_base) AS low, "
        "MAX(wage_base) AS high FROM contributions WHERE month = DATE '2025-12-01' "
        "GROUP BY district",
        name="extremes",
    )
    view = run_production(granted, local_backend, spec)
    report = checks(granted, view.job.id)["main/result.csv"]
    assert report["sdc"]["declarations"]["verification"] == "platform", report["notes"]
    stored = next(o for o in view.outputs if o["status"] == "collected")
    table = pd.read_csv(granted.resolve(stored["stored_path"]))
    assert (table["low"] <= table["high"]).all()
    by_column = {c["column"] for c in report["sdc"]["cells"]}
    assert {"n", "low", "high", "persons (platform)"} <= by_column
