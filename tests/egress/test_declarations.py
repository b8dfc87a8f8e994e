"""Tables that lie about themselves, run as production jobs through the real worker (bubblewrap).

Each test is the attacker's job first: row-level data dressed as a table (grouped by a
pseudonym, a wage, an exact date, or a pseudonym renamed `district`), repeated keys, more rows
than the keys allow, counts that disagree with the contributor data, invented contributor keys,
no contributor data at all. Then what the checks concluded, as the reviewer's report shows it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from jobs.states import JobState
from shuyu.platform import Platform
from tests.conftest import GRANT_EXAMPLE, register_and_grant
from tests.test_egress_jobs import checks
from tests.test_jobs import run_production, script_job

DECEMBER = """
import os, duckdb
con = duckdb.connect(os.environ["SHUYU_WORKSPACE"], read_only=True)
con.execute("SET temp_directory='/tmp/x'")
out = os.environ["SHUYU_OUTPUT"]
"""


def report_of(platform: Platform, backend, tmp_path: Path, code: str, output: dict) -> dict:
    spec = script_job(tmp_path, DECEMBER + code, {"result.csv": {"context": "x", **output}})
    view = run_production(platform, backend, spec)
    assert view.job.state is JobState.REVIEW_PENDING, view.job.reason
    return checks(platform, view.job.id)["main/result.csv"]


def notes(report: dict) -> str:
    return "\n".join(report["notes"])


def table(**roles) -> dict:
    return {"kind": "table", **roles}


def test_a_table_grouped_by_pseudonyms_is_blocked(granted: Platform, local_backend, tmp_path):
    report = report_of(
        granted,
        local_backend,
        tmp_path,
        """
con.execute(f"COPY (SELECT resident_id, count(*) AS n FROM contributions GROUP BY 1 LIMIT 50) "
            f"TO '{out}/result.csv' (HEADER)")
""",
        table(group_by=["resident_id"], counts=["n"]),
    )
    assert report["status"] == "blocked"
    assert "resident_id is a pseudonymised identifier" in notes(report)


def test_a_pseudonym_renamed_as_a_district_is_blocked(granted: Platform, local_backend, tmp_path):
    """The keys are neither caught by name nor by the pseudonym scan (cut to 12 characters)."""
    report = report_of(
        granted,
        local_backend,
        tmp_path,
        """
con.execute(f"COPY (SELECT left(resident_id, 12) AS district, count(*) AS n FROM contributions "
            f"GROUP BY 1 LIMIT 50) TO '{out}/result.csv' (HEADER)")
""",
        table(group_by=["district"], counts=["n"]),
    )
    assert report["status"] == "blocked"
    assert "50 row(s) hold keys that are not values of the workspace column" in notes(report)
    assert "50 rows but the group-by columns allow at most 3 groups" in notes(report)


def test_a_table_grouped_by_wage_is_blocked(granted: Platform, local_backend, tmp_path):
    report = report_of(
        granted,
        local_backend,
        tmp_path,
        """
con.execute(f"COPY (SELECT wage_base, count(*) AS n FROM contributions "
            f"WHERE month = DATE '2025-12-01' GROUP BY 1) TO '{out}/result.csv' (HEADER)")
""",
        table(group_by=["wage_base"], counts=["n"]),
    )
    assert report["status"] == "blocked"
    assert "contributions.wage_base is a sensitive value" in notes(report)


@pytest.fixture
def exact_dates(platform: Platform, demo_dir: Path, tmp_path: Path) -> Platform:
    """A grant that keeps birth dates exact (a steward's choice the checks must not rely on)."""
    grant = yaml.safe_load(GRANT_EXAMPLE.read_text(encoding="utf-8"))
    grant["datasets"]["residents"]["columns"]["birth_date"] = "keep"
    path = tmp_path / "grant.yaml"
    path.write_text(yaml.safe_dump(grant, allow_unicode=True), encoding="utf-8")
    return register_and_grant(platform, demo_dir, path)


def test_a_table_grouped_by_exact_dates_is_blocked(exact_dates: Platform, local_backend, tmp_path):
    report = report_of(
        exact_dates,
        local_backend,
        tmp_path,
        """
con.execute(f"COPY (SELECT birth_date, count(*) AS n FROM residents GROUP BY 1) "
            f"TO '{out}/result.csv' (HEADER)")
""",
        table(group_by=["birth_date"], counts=["n"]),
    )
    assert report["status"] == "blocked"
    assert "residents.birth_date is an exact date" in notes(report)


def test_repeated_keys_are_blocked(granted: Platform, local_backend, tmp_path):
    """Two rows for one district, the second hidden behind a trailing space."""
    report = report_of(
        granted,
        local_backend,
        tmp_path,
        """
open(f"{out}/result.csv", "w").write("district,n\\n海勃湾区,120\\n海南区,95\\n海南区 ,14\\n乌达区,80\\n")
""",
        table(group_by=["district"], counts=["n"]),
    )
    assert report["status"] == "blocked"
    assert "repeat on 1 row(s)" in notes(report)


def test_more_rows_than_the_categories_allow_is_blocked(granted: Platform, local_backend, tmp_path):
    report = report_of(
        granted,
        local_backend,
        tmp_path,
        """
rows = ["海勃湾区", "海南区", "乌达区", "海南区(东)", "海南区(西)"]
open(f"{out}/result.csv", "w").write("district,n\\n" + "".join(f"{d},{50 + i}\\n" for i, d in enumerate(rows)))
""",
        table(group_by=["district"], counts=["n"]),
    )
    assert report["status"] == "blocked"
    assert "5 rows but the group-by columns allow at most 3 groups" in notes(report)


HONEST = """
con.execute(
    "CREATE TEMP VIEW december AS SELECT district, resident_id AS contributor, wage_base AS avg_wage "
    "FROM contributions WHERE month = DATE '2025-12-01'")
os.makedirs(f"{out}/_contributors", exist_ok=True)
con.execute(f"COPY (SELECT * FROM december) TO '{out}/_contributors/c.parquet' (FORMAT parquet)")
table = con.execute("SELECT district, count(DISTINCT contributor) AS n, round(avg(avg_wage), 2) "
                    "AS avg_wage FROM december GROUP BY 1 ORDER BY 1").df()
"""
HELPED = table(
    group_by=["district"],
    counts=["n"],
    values=["avg_wage"],
    statistics=["count", "mean"],
    contributors="_contributors/c.parquet",
)


def test_counts_that_disagree_with_the_contributor_data_are_blocked(
    granted: Platform, local_backend, tmp_path
):
    """A small cell claims to be large so that it passes the threshold on the job's word."""
    report = report_of(
        granted,
        local_backend,
        tmp_path,
        HONEST
        + """
con.execute("CREATE TEMP VIEW few AS SELECT * FROM december WHERE contributor IN "
            "(SELECT contributor FROM december WHERE district = '乌达区' LIMIT 3)")
os.remove(f"{out}/_contributors/c.parquet")
con.execute(f"COPY (SELECT * FROM december WHERE district <> '乌达区' UNION ALL SELECT * FROM few) "
            f"TO '{out}/_contributors/c.parquet' (FORMAT parquet)")
table.to_csv(f"{out}/result.csv", index=False)
""",
        HELPED,
    )
    assert report["status"] == "blocked"
    assert "disagree with its contributor data: n (1 cell(s)), avg_wage (1 cell(s))" in notes(
        report
    )
    persons = {
        c["key"]["district"]: c["value"]
        for c in report["sdc"]["cells"]
        if c["column"] == "persons (platform)"
    }
    assert persons["乌达区"] == 3, "the threshold sees the persons behind the cell"


def test_invented_contributor_keys_leave_the_table_unverified(
    granted: Platform, local_backend, tmp_path
):
    """A consistent lie: table and helper agree, but the helper's persons do not exist."""
    report = report_of(
        granted,
        local_backend,
        tmp_path,
        """
os.makedirs(f"{out}/_contributors", exist_ok=True)
con.execute(f"COPY (SELECT ['海勃湾区', '海南区', '乌达区'][1 + i % 3] AS district, md5(i::VARCHAR) AS contributor, "
            f"5000.0 + i AS avg_wage FROM range(300) t(i)) TO '{out}/_contributors/c.parquet' (FORMAT parquet)")
con.execute(f"COPY (SELECT district, count(*) AS n, avg(avg_wage) AS avg_wage FROM "
            f"'{out}/_contributors/c.parquet' GROUP BY 1) TO '{out}/result.csv' (HEADER)")
""",
        HELPED,
    )
    assert report["status"] == "review"
    assert report["sdc"]["declarations"]["verification"] == "unverified"
    assert "300 contributor key(s) in the contributor data are not persons" in notes(report)


def test_a_table_without_contributor_data_never_passes(granted: Platform, local_backend, tmp_path):
    report = report_of(
        granted,
        local_backend,
        tmp_path,
        """
open(f"{out}/result.csv", "w").write("district,n\\n海勃湾区,1200\\n海南区,950\\n乌达区,800\\n")
""",
        table(group_by=["district"], counts=["n"]),
    )
    assert all(c["status"] == "pass" for c in report["sdc"]["cells"]), "every cell looks safe"
    assert report["status"] == "review"
    assert report["sdc"]["declarations"]["verification"] == "unverified"
    assert "rest on the job's word" in notes(report)


def test_a_table_backed_by_real_contributor_data_passes(granted: Platform, local_backend, tmp_path):
    report = report_of(
        granted,
        local_backend,
        tmp_path,
        HONEST + 'table.to_csv(f"{out}/result.csv", index=False)\n',
        HELPED,
    )
    assert report["status"] == "pass", report["notes"]
    assert report["sdc"]["declarations"]["verification"] == "helper"


def test_a_count_table_backed_by_contributor_data_passes(
    granted: Platform, local_backend, tmp_path
):
    """Counts alone can be backed by contributor data (no magnitude columns needed)."""
    report = report_of(
        granted,
        local_backend,
        tmp_path,
        HONEST + 'table[["district", "n"]].to_csv(f"{out}/result.csv", index=False)\n',
        table(group_by=["district"], counts=["n"], contributors="_contributors/c.parquet"),
    )
    assert report["status"] == "pass", report["notes"]
    assert report["sdc"]["declarations"]["verification"] == "helper"


def test_an_undeclared_table_goes_to_review(granted: Platform, local_backend, tmp_path):
    report = report_of(
        granted,
        local_backend,
        tmp_path,
        'open(f"{out}/result.csv", "w").write("district,n\\n海勃湾区,1200\\n")\n',
        table(),
    )
    assert report["status"] == "review"
    assert "nothing to verify" in notes(report)


def test_text_in_a_count_column_is_blocked(granted: Platform, local_backend, tmp_path):
    """Suppressed-looking cells that carry text instead of a number."""
    report = report_of(
        granted,
        local_backend,
        tmp_path,
        'open(f"{out}/result.csv", "w").write("district,n\\n海勃湾区,1200\\n海南区,男 1985\\n")\n',
        table(group_by=["district"], counts=["n"]),
    )
    assert report["status"] == "blocked"
    assert "n: 1 cell(s) are not numbers" in notes(report)
