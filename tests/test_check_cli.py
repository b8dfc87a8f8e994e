"""`shuyu check`: the platform's checks on a local file, for analysts, in our and ACRO's layouts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def shuyu(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "api.cli", *args],
        cwd=Path(__file__).parent.parent,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "SHUYU_HOME": str(cwd)},
    )


def test_check_reports_failing_cells_and_exits_non_zero(tmp_path: Path) -> None:
    table = tmp_path / "t.csv"
    table.write_text("district,n\n海勃湾区,120\n海南区,3\n乌达区,11\n", encoding="utf-8")
    done = shuyu("check", str(table), "--counts", "n", "--json", cwd=tmp_path)
    assert done.returncode == 1
    report = json.loads(done.stdout)
    failing = [c["key"]["district"] for c in report["sdc"]["cells"] if c["status"] == "fail"]
    assert failing == ["海南区"]


def test_clean_table_passes(tmp_path: Path) -> None:
    table = tmp_path / "t.csv"
    table.write_text("district,n\n海勃湾区,120\n海南区,30\n", encoding="utf-8")
    done = shuyu("check", str(table), "--counts", "n", "--json", cwd=tmp_path)
    assert done.returncode == 0 and json.loads(done.stdout)["status"] == "pass"


def test_acro_layout(tmp_path: Path) -> None:
    table = tmp_path / "t.csv"
    table.write_text("district,n\nA,120\nB,3\n", encoding="utf-8")
    done = shuyu("check", str(table), "--counts", "n", "--format", "acro", cwd=tmp_path)
    results = json.loads(done.stdout)["results"]["t.csv"]
    assert results["status"] == "fail"
    sdc = results["files"][0]["sdc"]
    assert sdc["summary"]["threshold"] == 1
    assert sdc["cells"]["threshold"] == [[1, 1]]  # row B, column n


def test_identifiers_block_a_file(tmp_path: Path) -> None:
    table = tmp_path / "people.csv"
    table.write_text("who,n\n11010519491231002X,12\n", encoding="utf-8")
    done = shuyu("check", str(table), "--counts", "n", "--json", cwd=tmp_path)
    assert done.returncode == 1
    report = json.loads(done.stdout)
    assert report["status"] == "blocked" and report["findings"][0]["kind"] == "cn_resident_id"
    assert "11010519491231002X" not in done.stdout


def test_enforce_k_writes_a_k_anonymous_copy(tmp_path: Path) -> None:
    import duckdb

    people = tmp_path / "people.csv"
    duckdb.sql(
        "COPY (SELECT (1950 + (range * 7) % 50)::INT AS birth_year, "
        "CASE WHEN range % 2 = 0 THEN '男' ELSE '女' END AS gender FROM range(200)) "
        f"TO '{people}' (HEADER)"
    )
    before = shuyu(
        "check",
        str(people),
        "--kind",
        "microdata",
        "--qi",
        "birth_year,gender",
        "--json",
        cwd=tmp_path,
    )
    assert before.returncode == 1 and json.loads(before.stdout)["status"] == "blocked"
    fixed = tmp_path / "people_k.csv"
    after = shuyu(
        "check",
        str(people),
        "--kind",
        "microdata",
        "--qi",
        "birth_year,gender",
        "--enforce-k",
        str(fixed),
        "--generalise",
        "birth_year=band:10",
        "--json",
        cwd=tmp_path,
    )
    report = json.loads(after.stdout)
    assert after.returncode == 0 and report["status"] == "pass"
    assert report["microdata"]["k_anonymity"]["min_class_size"] >= 5
    assert fixed.is_file()


def test_model_output_with_too_few_degrees_of_freedom_goes_to_review(tmp_path: Path) -> None:
    from egress_review.service import check_output
    from policies.grant import DisclosureRules

    model = tmp_path / "model.csv"
    model.write_text("term,estimate,residual_dof\nintercept,1.5,6\nage,0.2,6\n", encoding="utf-8")
    declared = {"kind": "table", "dof": "residual_dof", "context": "regression"}
    result = check_output(model, "model.csv", declared, DisclosureRules())
    assert result.status == "review"
    assert any("'dof': 6.0" in note and "fail" in note for note in result.notes)
    model.write_text("term,estimate,residual_dof\nintercept,1.5,400\n", encoding="utf-8")
    assert any(
        "pass" in n for n in check_output(model, "model.csv", declared, DisclosureRules()).notes
    )
