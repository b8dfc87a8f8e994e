"""Differencing attacks through the real worker: two tables that each pass, one small cell between them.

The attacker asks the platform itself (trusted `table:` actions, so each table is verified and
passes on its own) for contributors by district, and again without one industry: in the demo
data one district has only a handful of December contributors in 信息技术, so the difference
between the two tables counts them. Within one job, and across jobs of the project (the
earlier job's outputs are held for review), the output is flagged naming both cells.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from egress_review.differencing import MAX_LISTED, HeldTable, _compare
from jobs.states import JobState
from shuyu.platform import Platform
from tests.test_egress_jobs import checks
from tests.test_jobs import run_production, script_job

BY_DISTRICT = (
    "SELECT c.district, COUNT(DISTINCT c.resident_id) AS contributors "
    "FROM contributions c JOIN enterprises e ON c.enterprise_code = e.credit_code "
    "WHERE c.month = DATE '2025-12-01'{extra} GROUP BY c.district"
)
ALL = BY_DISTRICT.format(extra="")
WITHOUT_IT = BY_DISTRICT.format(extra=" AND e.industry <> '信息技术'")


def tables_job(tmp_path: Path, name: str, queries: dict[str, str]) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    actions = {
        action: {
            "table": {"query": query},
            "outputs": {f"{action}.csv": {"kind": "table", "context": "各区缴费人数"}},
        }
        for action, query in queries.items()
    }
    spec = {
        "version": 1,
        "name": name,
        "project": "employment-insights",
        "purpose": "public_governance",
        "actions": actions,
    }
    (folder / "job.yaml").write_text(yaml.safe_dump(spec, allow_unicode=True), encoding="utf-8")
    return folder / "job.yaml"


def differences(report: dict) -> list[dict]:
    return (report.get("sdc") or {}).get("differencing") or []


def test_a_table_and_the_same_table_with_one_more_filter_are_flagged(
    granted: Platform, local_backend, tmp_path: Path
) -> None:
    view = run_production(
        granted, local_backend, tables_job(tmp_path, "twice", {"all": ALL, "without": WITHOUT_IT})
    )
    assert view.job.state is JobState.REVIEW_PENDING, view.job.reason
    found = checks(granted, view.job.id)
    for name, other in (
        ("all/all.csv", "without/without.csv"),
        ("without/without.csv", "all/all.csv"),
    ):
        report = found[name]
        assert report["sdc"]["declarations"]["verification"] == "platform"
        assert all(c["status"] == "pass" for c in report["sdc"]["cells"]), "each cell passes alone"
        assert report["status"] == "review"
        (flag,) = {
            (d["this"]["key"]["district"], d["other"]["output"]) for d in differences(report)
        }
        assert flag == ("海勃湾区", other)
        entry = differences(report)[0]
        assert entry["this"]["output"] == name and entry["other"]["job"] == view.job.id
        assert 0 < entry["difference"] < 10
        assert abs(entry["this"]["value"] - entry["other"]["value"]) == entry["difference"]
        assert any(n.startswith("differencing:") and other in n for n in report["notes"])


def test_a_later_job_differencing_against_a_held_output_is_flagged(
    granted: Platform, local_backend, tmp_path: Path
) -> None:
    first = run_production(granted, local_backend, tables_job(tmp_path, "first", {"all": ALL}))
    assert checks(granted, first.job.id)["all/all.csv"]["status"] == "pass"
    second = run_production(
        granted, local_backend, tables_job(tmp_path, "second", {"without": WITHOUT_IT})
    )
    report = checks(granted, second.job.id)["without/without.csv"]
    assert report["status"] == "review"
    (entry,) = differences(report)
    assert entry["other"]["job"] == first.job.id and entry["other"]["output"] == "all/all.csv"
    assert entry["this"]["key"] == entry["other"]["key"] == {"district": "海勃湾区"}
    assert entry["other"]["value"] - entry["this"]["value"] == entry["difference"] < 10


def test_a_total_against_a_table_that_sums_to_it_minus_a_few_is_flagged(
    granted: Platform, local_backend, tmp_path: Path
) -> None:
    """Roll-up: the districts' counts sum to 2100, the 'total' says 2096."""
    spec = script_job(
        tmp_path,
        """
        import os
        out = os.environ["SHUYU_OUTPUT"]
        open(f"{out}/by_district.csv", "w").write("district,n\\n海勃湾区,1200\\n海南区,500\\n乌达区,400\\n")
        open(f"{out}/total.csv", "w").write("n\\n2096\\n")
    """,
        {
            "by_district.csv": {
                "kind": "table",
                "group_by": ["district"],
                "counts": ["n"],
                "context": "x",
            },
            "total.csv": {"kind": "table", "counts": ["n"], "context": "x"},
        },
    )
    view = run_production(granted, local_backend, spec)
    total = checks(granted, view.job.id)["main/total.csv"]
    (entry,) = differences(total)
    assert entry["other"]["output"] == "main/by_district.csv" and entry["difference"] == 4
    assert entry["this"]["value"] == 2096 and entry["other"]["value"] == 2100


def test_tables_far_apart_are_not_flagged(granted: Platform, local_backend, tmp_path: Path) -> None:
    same_district = ALL.replace("WHERE", "WHERE c.district <> '乌达区' AND")
    view = run_production(
        granted, local_backend, tables_job(tmp_path, "apart", {"all": ALL, "two": same_district})
    )
    found = checks(granted, view.job.id)
    assert found["all/all.csv"]["status"] == "pass", found["all/all.csv"]["notes"]
    assert differences(found["two/two.csv"]) == []


def held(name: str, frame: pd.DataFrame, group_by: tuple[str, ...]) -> HeldTable:
    keys = frame[list(group_by)].astype("string")
    return HeldTable(
        "job", name, group_by, ("n",), pd.concat([keys, frame[["n"]].astype(float)], axis=1)
    )


@settings(max_examples=60, deadline=None)
@given(
    counts=st.lists(st.integers(0, 500), min_size=1, max_size=12),
    deltas=st.lists(st.integers(-15, 15), min_size=12, max_size=12),
    threshold=st.integers(2, 12),
)
def test_exactly_the_cells_that_differ_by_less_than_the_threshold_are_named(
    counts: list[int], deltas: list[int], threshold: int
) -> None:
    keys = [f"g{i}" for i in range(len(counts))]
    a = pd.DataFrame({"k": keys, "n": counts})
    b = pd.DataFrame({"k": keys, "n": [c + d for c, d in zip(counts, deltas, strict=False)]})
    found = _compare(held("a", a, ("k",)), held("b", b, ("k",)), threshold)
    expected = {k for k, d in zip(keys, deltas, strict=False) if 0 < abs(d) < threshold}
    named = {f["this"]["key"]["k"] for f in found}
    assert named == expected and len(found) <= MAX_LISTED
    assert all(f["difference"] == abs(f["this"]["value"] - f["other"]["value"]) for f in found)
    # rolled up to a total: the sum differs by the sum of the deltas
    total = pd.DataFrame({"n": [sum(counts)]})
    rolled = _compare(held("total", total, ()), held("a", b, ("k",)), threshold)
    diff = abs(sum(deltas[: len(counts)]))
    assert [f["difference"] for f in rolled] == ([diff] if 0 < diff < threshold else [])


def test_a_total_and_the_total_minus_one_group_are_flagged_with_both_cells(
    granted: Platform, local_backend, tmp_path: Path
) -> None:
    total = (
        "SELECT COUNT(DISTINCT c.resident_id) AS contributors FROM contributions c "
        "JOIN enterprises e ON c.enterprise_code = e.credit_code "
        "WHERE c.month = DATE '2025-12-01' AND c.district = '海勃湾区'"
    )
    minus_one = total + " AND e.industry <> '信息技术'"
    view = run_production(
        granted, local_backend, tables_job(tmp_path, "totals", {"total": total, "minus": minus_one})
    )
    found = checks(granted, view.job.id)
    report = found["minus/minus.csv"]
    assert report["status"] == "review"
    (entry,) = differences(report)
    assert entry["this"] | {"value": None} == {
        "output": "minus/minus.csv",
        "key": {},
        "column": "contributors",
        "value": None,
    }
    assert entry["other"]["output"] == "total/total.csv"
    assert 0 < entry["other"]["value"] - entry["this"]["value"] == entry["difference"] < 10
    assert differences(found["total/total.csv"])[0]["other"]["output"] == "minus/minus.csv"
