"""Reviewer mitigations on real tables: suppression that cannot be undone by subtraction, rounding."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from egress_review.mitigate import mitigate_table as mitigate
from egress_review.sdc import check_table
from egress_review.suppression import recoverable_cells
from policies.grant import DisclosureRules
from shuyu.errors import ValidationError


def mitigate_table(table, target, *, group_by, counts, values, method, rules):
    report = check_table(table, group_by=group_by, counts=counts, values=values, rules=rules)
    return mitigate(table, target, report, method=method)


TABLE = pd.DataFrame(
    {
        "district": ["A", "A", "A", "B", "B", "B", "C", "C", "C"],
        "industry": ["coal", "chem", "retail"] * 3,
        "n": [120, 3, 40, 80, 25, 33, 60, 44, 51],
    }
)


def test_suppression_blanks_the_failing_cell_and_enough_others(tmp_path: Path) -> None:
    out = tmp_path / "fixed.csv"
    done = mitigate_table(
        TABLE,
        out,
        group_by=["district", "industry"],
        counts=["n"],
        values=[],
        method="suppress",
        rules=DisclosureRules(),
    )
    published = pd.read_csv(out).set_index("district")
    assert pd.isna(published.loc["A", "chem"]), "the cell of 3 is blanked"
    assert done.primary == 1 and done.secondary >= 3
    blanks = published.isna()
    assert (blanks.sum(axis=1)[blanks.sum(axis=1) > 0] >= 2).all(), "no row with a single blank"
    assert (blanks.sum(axis=0)[blanks.sum(axis=0) > 0] >= 2).all(), "no column with a single blank"
    interior = TABLE.pivot(index="district", columns="industry", values="n")
    assert (
        recoverable_cells(interior, blanks.loc[:, list(interior.columns) + ["Total"]].to_numpy())
        == []
    )


def test_rounding_publishes_multiples_of_the_base_that_add_up(tmp_path: Path) -> None:
    out = tmp_path / "rounded.csv"
    mitigate_table(
        TABLE,
        out,
        group_by=["district", "industry"],
        counts=["n"],
        values=[],
        method="round:5",
        rules=DisclosureRules(),
    )
    published = pd.read_csv(out).set_index("district")
    assert (published % 5 == 0).all().all()
    interior = published.drop(index="Total", columns="Total")
    assert (interior.sum(axis=1) == published["Total"].drop("Total")).all()


def test_one_way_tables_get_primary_suppression_and_a_warning(tmp_path: Path) -> None:
    out = tmp_path / "fixed.csv"
    one_way = pd.DataFrame({"district": ["A", "B", "C"], "n": [120, 3, 40]})
    done = mitigate_table(
        one_way,
        out,
        group_by=["district"],
        counts=["n"],
        values=[],
        method="suppress",
        rules=DisclosureRules(),
    )
    assert pd.isna(pd.read_csv(out)["n"][1]) and done.primary == 1
    assert "do not publish totals" in done.notes[0]


def test_unknown_mitigation(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="unknown mitigation"):
        mitigate_table(
            TABLE,
            tmp_path / "x.csv",
            group_by=["district", "industry"],
            counts=["n"],
            values=[],
            method="shuffle",
            rules=DisclosureRules(),
        )
