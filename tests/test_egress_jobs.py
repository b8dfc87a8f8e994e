"""Egress checks on real production jobs: what a job tries to smuggle out is caught before review."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pyarrow.parquet as pq  # type: ignore[import-untyped]
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


def analyst_sees(platform: Platform, job_id: str) -> str:
    return json.dumps(service.view(platform, job_id).to_dict(), ensure_ascii=False, default=str)


def test_rows_hidden_in_parquet_metadata_by_a_job_are_blocked(
    granted: Platform, sandbox_backend, tmp_path
) -> None:
    """A 3-row table carrying 200 rows of (pseudonym, wage) in its key-value metadata."""
    spec = script_job(
        tmp_path,
        """
        import json, os, duckdb
        import pyarrow as pa, pyarrow.parquet as pq
        con = duckdb.connect(os.environ["SHUYU_WORKSPACE"], read_only=True)
        con.execute("SET temp_directory='/tmp/x'")
        rows = con.execute("SELECT resident_id, wage_base FROM contributions LIMIT 200").fetchall()
        table = pa.table({"district": ["海勃湾区", "海南区", "乌达区"], "n": [120, 80, 45]})
        table = table.replace_schema_metadata({"notes": json.dumps(rows)})
        pq.write_table(table, os.path.join(os.environ["SHUYU_OUTPUT"], "result.parquet"))
        with open("/output/hidden.txt", "w") as fh:
            fh.write(rows[0][0])
    """,
        outputs={
            "result.parquet": {
                "kind": "table",
                "group_by": ["district"],
                "counts": ["n"],
                "context": "x",
            }
        },
    )
    view = run_production(granted, sandbox_backend, spec)
    assert view.job.state is JobState.REVIEW_PENDING, view.job.reason
    report = checks(granted, view.job.id)["main/result.parquet"]
    assert report["status"] == "blocked"
    assert {(f["column"], f["kind"]) for f in report["findings"]} == {
        ("parquet key-value metadata", "pseudonym_key")
    }
    held = granted.jobs_dir / view.job.id / "collected" / "main" / "result.parquet"
    hidden_rows = json.loads(pq.read_schema(held).metadata[b"notes"])
    assert len(hidden_rows) == 200
    hidden_file = [o for o in view.outputs if o["path"] == "hidden.txt"]
    assert hidden_file and hidden_file[0]["status"] == "undeclared"
    seen = analyst_sees(granted, view.job.id)
    stored = json.dumps(checks(granted, view.job.id), ensure_ascii=False)
    for pseudonym, _wage in hidden_rows[:20]:
        assert pseudonym not in seen and pseudonym not in stored


def test_a_decompression_bomb_from_a_job_is_blocked_unread(
    granted: Platform, sandbox_backend, tmp_path
) -> None:
    spec = script_job(
        tmp_path,
        """
        import duckdb
        duckdb.connect().execute(
            "COPY (SELECT repeat('x', 1700) AS district, 1 AS n FROM range(1000000)) "
            "TO '/output/result.parquet' (COMPRESSION zstd, ROW_GROUP_SIZE 1000000)")
    """,
        outputs={"result.parquet": {"kind": "table", "counts": ["n"], "context": "x"}},
    )
    view = run_production(granted, sandbox_backend, spec)
    assert view.job.state is JobState.REVIEW_PENDING, view.job.reason
    report = checks(granted, view.job.id)["main/result.parquet"]
    assert (report["status"], report["unreadable"]) == ("blocked", "too_many_rows")


def test_a_checker_over_its_memory_limit_blocks_the_job_outputs(
    granted: Platform, local_backend, tmp_path
) -> None:
    """Even with the row cap set too high, the check process's memory limit holds: blocked."""
    import dataclasses

    from jobs.worker import Worker

    limited = dataclasses.replace(
        granted,
        settings=dataclasses.replace(
            granted.settings,
            check_max_rows=10_000_000,
            check_max_mb=100_000,
            check_memory_mb=200,
        ),
    )
    spec = script_job(
        tmp_path,
        """
        import duckdb
        duckdb.connect().execute(
            "COPY (SELECT repeat('x', 1700) AS district, 1 AS n FROM range(1000000)) "
            "TO '/output/result.parquet' (COMPRESSION zstd, ROW_GROUP_SIZE 1000000)")
    """,
        outputs={"result.parquet": {"kind": "table", "counts": ["n"], "context": "x"}},
    )
    job = service.submit(limited, spec)
    Worker(limited, local_backend).run(once=True)
    view = service.view(limited, job.id)
    assert view.job.state is JobState.REVIEW_PENDING, view.job.reason
    report = checks(limited, view.job.id)["main/result.parquet"]
    assert report["status"] == "blocked"
    assert report["unreadable"] in ("checker_memory", "checker_crashed")
    assert "0 pass" in view.job.reason


def test_checks_that_cannot_run_fail_the_job_as_internal(
    granted: Platform, local_backend, tmp_path
) -> None:
    """Fail closed: when the checks themselves cannot start, nothing reaches review."""
    from jobs.runner import JobRun
    from jobs.worker import Worker

    spec = script_job(
        tmp_path,
        """
        open("/output/result.csv", "w").write("district,n\\n海南区,80\\n")
    """,
    )
    job = service.submit(granted, spec)
    worker = Worker(granted, local_backend)
    assert worker.claim() == job.id
    assert JobRun(granted, local_backend, job.id, actor="w").execute().state is (
        JobState.CHECKS_PENDING
    )
    for broken in granted.snapshots_dir.glob("*/fingerprints*.parquet"):
        broken.write_bytes(b"not the fingerprints")
    checked = worker.check(job.id)
    assert (checked.state, checked.failure) == (JobState.FAILED, "internal")
    assert checked.reason.startswith("egress checks could not run")
    assert checks(granted, job.id) == {}


def test_the_checks_do_not_move_jobs() -> None:
    """The checks return their outcome and the worker moves the job: no egress_review module
    imports the jobs package (the words both read live in ``shuyu.vocabulary``)."""
    import ast

    root = Path(__file__).resolve().parent.parent / "egress_review"
    importers = set()
    for source in root.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            if any(n == "jobs" or n.startswith("jobs.") for n in names):
                importers.add(source.stem)
    assert importers == set()


def test_pseudonyms_in_figure_text_are_blocked(granted: Platform, local_backend, tmp_path) -> None:
    """Figures go to a reviewer's eyes, but text a viewer does not show is read by the checks."""
    spec = script_job(
        tmp_path,
        """
        import os, struct, zlib, duckdb
        con = duckdb.connect(os.environ["SHUYU_WORKSPACE"], read_only=True)
        con.execute("SET temp_directory='/tmp/x'")
        keys = [r[0] for r in con.execute("SELECT resident_id FROM contributions LIMIT 30").fetchall()]
        with open("/output/chart.svg", "w") as fh:
            fh.write('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
                     '<title>wages</title><desc>' + " ".join(keys) + '</desc></svg>')
        def chunk(kind, data):
            return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        png = (b"\\x89PNG\\r\\n\\x1a\\n"
               + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0))
               + chunk(b"zTXt", b"Comment\\0\\0" + zlib.compress(" ".join(keys).encode()))
               + chunk(b"IDAT", zlib.compress(b"\\0\\0"))
               + chunk(b"IEND", b""))
        open("/output/chart.png", "wb").write(png)
    """,
        outputs={
            "chart.svg": {"kind": "figure", "context": "x"},
            "chart.png": {"kind": "figure", "context": "x"},
        },
    )
    view = run_production(granted, local_backend, spec)
    assert view.job.state is JobState.REVIEW_PENDING, view.job.reason
    found = checks(granted, view.job.id)
    for name, place in (("main/chart.svg", "svg text"), ("main/chart.png", "png zTXt")):
        assert found[name]["status"] == "blocked"
        assert {(f["column"], f["kind"]) for f in found[name]["findings"]} == {
            (place, "pseudonym_key")
        }
    svg = (granted.jobs_dir / view.job.id / "collected" / "main" / "chart.svg").read_text()
    keys = svg.split("<desc>")[1].split("</desc>")[0].split()
    seen = analyst_sees(granted, view.job.id)
    stored = json.dumps(found, ensure_ascii=False)
    assert all(k not in seen and k not in stored for k in keys)
    assert "0 pass, 0 need review, 2 blocked" in view.job.reason
