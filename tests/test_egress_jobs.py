"""Egress checks on real production jobs: what a job tries to smuggle out is caught before review."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
from sqlalchemy import select

from jobs import service
from jobs.states import JobState
from shuyu.platform import Platform
from shuyu.schema import output_checks
from tests.test_jobs import run_production, script_job


def checks(platform: Platform, job_id: str) -> dict[str, dict]:
    with platform.store.read() as conn:
        rows = conn.execute(
            select(output_checks.c.report).where(output_checks.c.job_id == job_id)
        ).all()
    return {r.report["name"]: r.report for r in rows}


def test_pseudonym_keys_in_an_output_block_it(
    granted: Platform, local_backend, tmp_path: Path
) -> None:
    spec = script_job(
        tmp_path,
        """
        import os, duckdb
        con = duckdb.connect(os.environ["SHUYU_WORKSPACE"], read_only=True)
        con.execute("SET temp_directory='/tmp/x'")
        rows = con.execute("SELECT resident_id, count(*) AS n FROM contributions GROUP BY 1 LIMIT 20").fetchall()
        with open(os.path.join(os.environ["SHUYU_OUTPUT"], "result.csv"), "w") as fh:
            fh.write("person,n\\n" + "".join(f"{p},{n}\\n" for p, n in rows))
    """,
    )
    view = run_production(granted, local_backend, spec)
    assert view.job.state is JobState.REVIEW_PENDING
    report = checks(granted, view.job.id)["main/result.csv"]
    assert report["status"] == "blocked"
    kinds = {f["kind"] for f in report["findings"]}
    assert kinds == {"pseudonym_key"}
    assert all(len(f["masked"]) == 32 and "*" in f["masked"] for f in report["findings"])


def test_a_known_raw_identifier_is_caught_by_fingerprint(
    granted: Platform, local_backend, tmp_path, demo_dir
) -> None:
    """An analyst who types in a real resident ID (outside knowledge) cannot get it out."""
    real_id = (
        duckdb.connect()
        .execute(f"SELECT resident_id FROM '{demo_dir}/residents.parquet' LIMIT 1")
        .fetchone()[0]
    )
    fake_but_valid = "11010519491231002X"  # valid check character, not in any dataset
    spec = script_job(
        tmp_path,
        f"""
        import os
        with open(os.path.join(os.environ["SHUYU_OUTPUT"], "result.csv"), "w") as fh:
            fh.write("note,n\\nlooked up {real_id.lower()},12\\n")
        print("debug {fake_but_valid}")
    """,
    )
    view = run_production(granted, local_backend, spec)
    found = checks(granted, view.job.id)
    kinds = {f["kind"] for f in found["main/result.csv"]["findings"]}
    assert "raw_identifier" in kinds and "cn_resident_id" in kinds
    assert found["main/result.csv"]["status"] == "blocked"
    assert real_id not in json.dumps(found, ensure_ascii=False)
    log = found["log:main"]
    assert {f["kind"] for f in log["findings"]} == {"cn_resident_id"}
    assert log["status"] == "review"


def test_small_cells_go_to_review_with_the_failing_cells(
    granted: Platform, local_backend, tmp_path
) -> None:
    spec = script_job(
        tmp_path,
        """
        import os
        open(os.path.join(os.environ["SHUYU_OUTPUT"], "result.csv"), "w").write(
            "district,n\\n海勃湾区,120\\n海南区,3\\n乌达区,0\\n")
    """,
        outputs={
            "result.csv": {
                "kind": "table",
                "group_by": ["district"],
                "counts": ["n"],
                "context": "x",
            }
        },
    )
    view = run_production(granted, local_backend, spec)
    report = checks(granted, view.job.id)["main/result.csv"]
    assert report["status"] == "review"
    failing = {
        c["key"]["district"]: c["rules"] for c in report["sdc"]["cells"] if c["status"] == "fail"
    }
    assert set(failing) == {"海南区", "乌达区"}
    assert "threshold" in failing["海南区"]


def test_microdata_that_is_not_k_anonymous_is_blocked(
    granted: Platform, local_backend, tmp_path
) -> None:
    spec = script_job(
        tmp_path,
        """
        import os, duckdb
        con = duckdb.connect(os.environ["SHUYU_WORKSPACE"], read_only=True)
        con.execute("SET temp_directory='/tmp/x'")
        con.execute(f"COPY (SELECT birth_date, gender, district FROM residents LIMIT 300) "
                    f"TO '{os.environ['SHUYU_OUTPUT']}/people.csv' (HEADER)")
    """,
        outputs={
            "people.csv": {
                "kind": "microdata",
                "quasi_identifiers": ["birth_date", "gender", "district"],
                "context": "x",
            }
        },
    )
    view = run_production(granted, local_backend, spec)
    report = checks(granted, view.job.id)["main/people.csv"]
    assert report["microdata"]["k_anonymity"]["min_class_size"] < 5
    assert report["status"] == "blocked"


DP_SPEC = {
    "query": "SELECT district, COUNT(*) AS n, AVG(wage_base) AS avg_wage FROM contributions GROUP BY district",
    "epsilon": 3.0,
    "max_contributions": 24,
}


def dp_job(tmp_path: Path, name: str) -> Path:
    import yaml

    folder = tmp_path / name
    folder.mkdir()
    spec = {
        "version": 1,
        "name": name,
        "project": "employment-insights",
        "purpose": "public_governance",
        "actions": {
            "dp": {"dp": DP_SPEC, "outputs": {"dp.csv": {"kind": "table", "context": "noisy"}}}
        },
    }
    (folder / "job.yaml").write_text(yaml.safe_dump(spec, allow_unicode=True))
    return folder / "job.yaml"


def test_dp_actions_run_in_the_platform_and_spend_the_budget(
    granted: Platform, local_backend, tmp_path
) -> None:
    from privacy import budget

    first = run_production(granted, local_backend, dp_job(tmp_path, "first"))
    assert first.job.state is JobState.REVIEW_PENDING, first.job.reason
    (out,) = [o for o in first.outputs if o["status"] == "collected"]
    stored = granted.resolve(out["stored_path"])
    table = duckdb.connect().execute(f"SELECT * FROM read_csv('{stored}')").df()
    assert sorted(table["district"]) == sorted(["海勃湾区", "海南区", "乌达区"])
    assert out["declared"]["dp"]["epsilon"] == pytest.approx(3.0)
    assert budget.remaining(granted, "employment-insights", "contributions") == pytest.approx(2.0)
    second = run_production(granted, local_backend, dp_job(tmp_path, "second"))
    assert second.job.state is JobState.FAILED and second.job.failure == "policy"
    assert "2" in second.job.reason and "left" in second.job.reason
    assert budget.remaining(granted, "employment-insights", "contributions") == pytest.approx(2.0)
    assert service.view(granted, second.job.id).outputs == []
