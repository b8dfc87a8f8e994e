"""SDC for tables: each rule's boundary, hand-computed tables, review paths, suppression, ACRO layout."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from egress_review.acro_format import ACRO_KEYS, table_sdc, to_acro_results, write_results_json
from egress_review.sdc import CellResult, TableReport, check_dof, check_table
from egress_review.suppression import (
    add_margins,
    determined_by_rank,
    primary_suppress,
    recoverable_cells,
    round_table,
    round_to_base,
    secondary_suppress,
)
from policies.grant import DisclosureRules
from shuyu.errors import ValidationError

RULES = DisclosureRules()  # min_count=10, n=2, k=0.90, p=0.10, zeros disclosive, min_dof=10
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def one_cell(values: list[float], rules: DisclosureRules = RULES, **kw) -> CellResult:
    """Check a single magnitude cell whose contributors have `values`."""
    table = pd.DataFrame({"g": ["x"], "total": [float(np.nansum(values))]})
    contrib = pd.DataFrame({"g": ["x"] * len(values), "total": values})
    report = check_table(
        table,
        group_by=["g"],
        values=["total"],
        rules=rules,
        contributors=contrib,
        stats="sum",
        **kw,
    )
    assert len(report.cells) == 1
    return report.cells[0]


def count_cell(count: float, rules: DisclosureRules = RULES) -> CellResult:
    table = pd.DataFrame({"g": ["x"], "n": [count]})
    return check_table(table, group_by=["g"], counts=["n"], rules=rules).cells[0]


# ------------------------------------------------------------------------------------ threshold


@FAST
@given(st.integers(min_value=1, max_value=200))
def test_threshold_boundary_exactly_n_passes_n_minus_1_fails(n: int) -> None:
    rules = DisclosureRules(min_count=n)
    assert count_cell(n, rules).status == "pass"
    below = count_cell(n - 1, rules)
    assert below.status == "fail" and "threshold" in below.rules
    assert below.numbers["count"] == n - 1 and below.numbers["min_count"] == n


@FAST
@given(st.integers(min_value=2, max_value=60))
def test_threshold_on_contributor_count_of_magnitude_cells(n: int) -> None:
    rules = DisclosureRules(min_count=n)
    ok = one_cell([5.0] * (n - 1) + [6.0], rules)  # n contributors, far from any dominance
    assert "threshold" not in ok.rules and ok.numbers["n"] == n
    low = one_cell([5.0] * (n - 2) + [6.0], rules)
    assert "threshold" in low.rules and low.status == "fail" and low.numbers["n"] == n - 1


def test_zero_count_fails_when_zeros_are_disclosive_and_not_otherwise() -> None:
    zero = count_cell(0)
    assert zero.status == "fail" and set(zero.rules) == {"threshold", "zeros"}
    lax = DisclosureRules(zeros_disclosive=False)
    assert count_cell(0, lax).status == "pass"
    assert count_cell(3, lax).rules == ("threshold",)


def test_negative_or_blank_counts() -> None:
    neg = count_cell(-1)
    assert neg.status == "review" and neg.rules == ("negative",)
    blank = count_cell(np.nan)  # already suppressed by the analyst
    assert blank.status == "pass" and blank.numbers.get("suppressed") is True


# ------------------------------------------------------------------------------------ dominance


@FAST
@given(
    st.integers(min_value=1, max_value=19).flatmap(
        lambda p: st.tuples(st.just(p), st.integers(min_value=p + 1, max_value=20))
    )
)
def test_nk_boundary_exactly_k_passes_above_fails(pq: tuple[int, int]) -> None:
    p, q = pq
    rules = DisclosureRules(dominance_n=2, dominance_k=p / q)
    # top two are p and p, then 2(q-p) contributors of 1: top-2 share = 2p / 2q = k exactly
    at_k = [float(p), float(p)] + [1.0] * (2 * (q - p))
    assert Fraction(2 * p, int(sum(at_k))) == Fraction(p, q)
    assert "nk-rule" not in one_cell(at_k, rules).rules
    # one more unit for the largest: (2p+1)/(2q+1) > p/q
    above = [float(p + 1), float(p)] + [1.0] * (2 * (q - p))
    cell = one_cell(above, rules)
    assert "nk-rule" in cell.rules and cell.status == "fail"
    assert cell.numbers["top_n_share"] == pytest.approx((2 * p + 1) / (2 * q + 1))


@FAST
@given(
    st.integers(min_value=1, max_value=9).flatmap(
        lambda a: st.tuples(st.just(a), st.integers(min_value=a + 1, max_value=50))
    ),
    st.integers(min_value=1, max_value=50),
)
def test_p_percent_boundary(ab: tuple[int, int], second: int) -> None:
    a, b = ab
    rules = DisclosureRules(p_percent=a / b)
    largest = float(b)
    second = float(min(second, b))
    # total - largest - second = a = p * largest exactly: passes; one unit less: fails
    at_p = [largest, second] + [1.0] * a
    cell = one_cell(at_p, rules)
    assert "p-ratio" not in cell.rules
    assert cell.numbers["p_remainder"] == a
    below = [largest, second] + [1.0] * (a - 1)
    assert "p-ratio" in one_cell(below, rules).rules


def test_dominance_known_answers() -> None:
    # contributors 100, 1 x 11: total 111, top-2 = 101, share 0.9099 > 0.90 -> nk fails;
    # remainder = 111 - 100 - 1 = 10 = 0.10 x 100 -> p% exactly at the boundary, passes
    cell = one_cell([100.0] + [1.0] * 11)
    assert cell.rules == ("nk-rule",)
    assert cell.numbers["n"] == 12
    assert cell.numbers["top_n_sum"] == 101 and cell.numbers["total"] == 111
    assert cell.numbers["p_remainder"] == 10 and cell.numbers["p_ratio"] == pytest.approx(0.1)
    # contributors 50, 45, 1 x 10: total 105, top-2 = 95 -> share 0.905 > 0.9 fails;
    # remainder 10 >= 0.1 x 50 = 5 -> p% passes
    assert one_cell([50.0, 45.0] + [1.0] * 10).rules == ("nk-rule",)
    # contributors 100, 5, 2 x 10: total 125, top-2 105 -> 0.84 passes nk; remainder 20 >= 10
    assert one_cell([100.0, 5.0] + [2.0] * 10).status == "pass"
    # contributors 100, 80, 1 x 8 (10 units): total 188, top-2 180 -> 0.957 fails nk;
    # remainder 8 < 0.1 x 100 = 10 -> p% fails too
    assert one_cell([100.0, 80.0] + [1.0] * 8).rules == ("nk-rule", "p-ratio")


def test_contributor_id_sums_a_contributors_records_before_dominance() -> None:
    # enterprise E has 5 records of 20 (100 in all); 10 others have 1 each.
    # as records: top-2 = 40 of 110 -> 0.36, fine; as contributors: 100 + 1 of 110 -> 0.918
    contrib = pd.DataFrame(
        {
            "g": ["x"] * 15,
            "firm": ["E"] * 5 + [f"o{i}" for i in range(10)],
            "wage": [20.0] * 5 + [1.0] * 10,
        }
    )
    table = pd.DataFrame({"g": ["x"], "wage": [110.0]})
    by_record = check_table(
        table, group_by=["g"], values=["wage"], rules=RULES, contributors=contrib
    )
    assert by_record.cells[0].status == "pass" and by_record.cells[0].numbers["n"] == 15
    by_firm = check_table(
        table,
        group_by=["g"],
        values=["wage"],
        rules=RULES,
        contributors=contrib,
        contributor_id="firm",
    )
    cell = by_firm.cells[0]
    assert cell.numbers["n"] == 11 and cell.numbers["largest"] == 100
    assert "nk-rule" in cell.rules and "p-ratio" in cell.rules


# ------------------------------------------------------------------------------------ review paths


def test_negative_contributions_go_to_review_not_pass() -> None:
    cell = one_cell([10.0] * 11 + [-3.0])
    assert cell.status == "review" and "negative" in cell.rules
    assert cell.numbers["negatives"] == 1
    assert "nk-rule" not in cell.rules and "p-ratio" not in cell.rules


def test_negative_published_value_without_contributors_is_review() -> None:
    table = pd.DataFrame({"g": ["a", "b"], "n": [20, 20], "change": [-5.0, 5.0]})
    report = check_table(table, group_by=["g"], counts=["n"], values=["change"], rules=RULES)
    a, b = (c for c in report.cells if c.column == "change")
    assert a.status == "review" and "negative" in a.rules
    assert b.status == "review" and b.rules == ("dominance-unchecked",)


def test_missing_contributor_data_means_review() -> None:
    table = pd.DataFrame({"g": ["a", "b"], "n": [25, 4], "mean_wage": [5000.0, 7000.0]})
    report = check_table(table, group_by=["g"], counts=["n"], values=["mean_wage"], rules=RULES)
    by_key = {(c.key["g"], c.column): c for c in report.cells}
    assert by_key[("a", "n")].status == "pass"
    assert by_key[("a", "mean_wage")].status == "review"
    assert by_key[("a", "mean_wage")].rules == ("dominance-unchecked",)
    # the threshold still applies through the counts column: fail wins over review
    assert by_key[("b", "mean_wage")].status == "fail"
    assert by_key[("b", "mean_wage")].rules == ("threshold", "dominance-unchecked")
    assert any("without contributor data" in n for n in report.notes)
    assert not report.ok and report.summary["review"] == 1 and report.summary["fail"] == 2


def test_no_counts_no_contributors_is_review_not_pass() -> None:
    table = pd.DataFrame({"g": ["a"], "median_wage": [5000.0]})
    cell = check_table(
        table, group_by=["g"], values=["median_wage"], rules=RULES, stats="median"
    ).cells[0]
    assert cell.status == "review" and cell.rules == ("count-unknown",)


def test_missing_contributor_values_and_all_same_values_are_review() -> None:
    cell = one_cell([5.0] * 12 + [np.nan])
    assert "missing" in cell.rules and "all-values-are-same" in cell.rules
    assert cell.status == "review" and cell.numbers["missing"] == 1 and cell.numbers["n"] == 12


def test_min_max_statistics() -> None:
    table = pd.DataFrame({"g": ["a", "b"], "n": [12, 3], "top": [9000.0, 9500.0]})
    report = check_table(
        table, group_by=["g"], counts=["n"], values=["top"], rules=RULES, stats="max"
    )
    a, b = (c for c in report.cells if c.column == "top")
    assert a.status == "pass"  # a max passes only once the cell passes the threshold
    assert b.status == "fail" and b.rules == ("threshold",)
    unknown = check_table(
        table.drop(columns="n"), group_by=["g"], values=["top"], rules=RULES, stats="max"
    )
    assert {c.status for c in unknown.cells} == {"review"}
    assert unknown.cells[0].rules == ("min-max",)


def test_dof() -> None:
    assert check_dof(10, RULES).status == "pass"
    low = check_dof(9, RULES)
    assert (
        low.status == "fail" and low.rules == ("dof",) and low.numbers == {"dof": 9, "min_dof": 10}
    )
    assert check_dof(None, RULES).status == "review"


# ------------------------------------------------------------------------------------ whole tables


def hand_table() -> tuple[pd.DataFrame, pd.DataFrame]:
    """district x sex, count and mean wage, with the contributors behind it.

    A/F: 12 people of 1000 each                         -> count 12, mean 1000: all same -> review
    A/M: 11 people: 90000 and 10 x 1000                 -> count 11, total 100000,
         top-2 = 91000 = 0.91 > 0.90 -> nk fails; remainder 9000 >= 0.1 x 90000 -> p% passes
    B/F: 3 people: 2000, 3000, 4000                     -> count 3 < 10 -> threshold fails
    B/M: 15 people: 1000..15000 step 1000 (total 120000) -> top-2 29000 = 0.24; remainder
         91000 >= 1500 -> passes
    """
    rows = (
        [("A", "F", 1000.0)] * 12
        + [("A", "M", 90000.0)]
        + [("A", "M", 1000.0)] * 10
        + [("B", "F", v) for v in (2000.0, 3000.0, 4000.0)]
        + [("B", "M", 1000.0 * i) for i in range(1, 16)]
    )
    contrib = pd.DataFrame(rows, columns=["district", "sex", "wage"])
    table = contrib.groupby(["district", "sex"], as_index=False).agg(
        people=("wage", "size"), mean_wage=("wage", "mean")
    )
    return table, contrib


def hand_report():
    """The hand-computed table and its report (contributor data given)."""
    table, contrib = hand_table()
    report = check_table(
        table,
        group_by=["district", "sex"],
        counts=["people"],
        values={"mean_wage": "wage"},
        rules=RULES,
        contributors=contrib,
    )
    return table, contrib, report


def test_known_answer_table() -> None:
    table, contrib, report = hand_report()
    got = {(c.key["district"], c.key["sex"], c.column): (c.status, c.rules) for c in report.cells}
    assert got == {
        ("A", "F", "people"): ("pass", ()),
        ("A", "M", "people"): ("pass", ()),
        ("B", "F", "people"): ("fail", ("threshold",)),
        ("B", "M", "people"): ("pass", ()),
        ("A", "F", "mean_wage"): ("review", ("all-values-are-same",)),
        ("A", "M", "mean_wage"): ("fail", ("nk-rule",)),
        ("B", "F", "mean_wage"): ("fail", ("threshold",)),
        ("B", "M", "mean_wage"): ("pass", ()),
    }
    am = next(
        c
        for c in report.cells
        if c.key == {"district": "A", "sex": "M"} and c.column == "mean_wage"
    )
    assert am.numbers["top_n_share"] == pytest.approx(0.91)
    assert am.numbers["p_remainder"] == 9000
    assert report.summary == {
        "cells": 8,
        "rows": 4,
        "pass": 4,
        "fail": 3,
        "review": 1,
        "suppressed": 0,
        "rules": {"threshold": 2, "nk-rule": 1, "all-values-are-same": 1},
    }
    assert report.status == "fail" and not report.ok and report.blocked
    assert json.loads(json.dumps(report.to_dict()))["cells"][0]["key"] == {
        "district": "A",
        "sex": "F",
    }
    mask = report.mask()
    assert mask.to_dict("list") == {
        "people": [False, False, True, False],
        "mean_wage": [False, True, True, False],
    }


def test_paths_relations_and_key_types(tmp_path: Path) -> None:
    """Table as CSV (dates become text), contributors as Parquet and as a DuckDB relation."""
    _, contrib = hand_table()
    contrib["month"] = pd.Timestamp("2025-01-01")
    contrib.loc[contrib["wage"] == 90000.0, "wage"] = 900000.0
    # A: 23 people, 12 x 1000 + 900000 + 10 x 1000 = 922000; top-2 901000 = 0.977 > 0.9 and
    #    remainder 21000 < 0.1 x 900000 -> fails both dominance rules
    # B: 18 people, 9000 + 120000 = 129000; top-2 29000 = 0.22 -> passes
    table = contrib.groupby(["district", "month"], as_index=False).agg(
        people=("wage", "size"), total=("wage", "sum")
    )
    table_path = tmp_path / "t.csv"
    table.to_csv(table_path, index=False)  # month is read back as the text "2025-01-01"
    contrib_path = tmp_path / "c.parquet"
    contrib.to_parquet(contrib_path)
    con = duckdb.connect()
    for source in (contrib_path, contrib, con.read_parquet(str(contrib_path))):
        report = check_table(
            table_path,
            group_by=["district", "month"],
            counts=["people"],
            values={"total": "wage"},
            rules=RULES,
            contributors=source,
            stats="sum",
        )
        got = {(c.key["district"], c.column): (c.status, c.rules) for c in report.cells}
        assert got == {
            ("A", "people"): ("pass", ()),
            ("B", "people"): ("pass", ()),
            ("A", "total"): ("fail", ("nk-rule", "p-ratio")),
            ("B", "total"): ("pass", ()),
        }
        a = next(c for c in report.cells if c.key["district"] == "A" and c.column == "total")
        assert a.numbers["n"] == 23 and a.numbers["total"] == 922000


def test_complete_adds_implied_zeros() -> None:
    table = pd.DataFrame({"a": ["x", "x", "y"], "b": [1, 2, 1], "n": [30, 40, 50]})
    report = check_table(table, group_by=["a", "b"], counts=["n"], rules=RULES, complete=True)
    assert report.summary["cells"] == 4
    added = report.cells[3]
    assert added.key == {"a": "y", "b": 2} and set(added.rules) == {"threshold", "zeros"}


def test_bad_declarations_are_explained() -> None:
    table = pd.DataFrame({"g": ["a"], "n": [3]})
    with pytest.raises(ValidationError, match="no column"):
        check_table(table, group_by=["g"], counts=["count"], rules=RULES)
    with pytest.raises(ValidationError, match="nothing to check"):
        check_table(table, group_by=["g"], rules=RULES)
    with pytest.raises(ValidationError, match="unknown statistic"):
        check_table(table, group_by=["g"], values=["n"], rules=RULES, stats="geomean")


@FAST
@given(st.lists(st.floats(min_value=0, max_value=1e6, allow_nan=False), min_size=1, max_size=40))
def test_dominance_matches_a_direct_computation(values: list[float]) -> None:
    """Vectorised rules agree with a plain-Python evaluation of the same definitions."""
    cell = one_cell(values)
    ordered = sorted(values, reverse=True)
    total = sum(values)
    top2 = sum(ordered[:2])
    second = ordered[1] if len(ordered) > 1 else 0.0
    tol = 1e-9 * total
    want_nk = total > 0 and top2 - 0.9 * total > tol
    want_p = total > 0 and 0.1 * ordered[0] - (total - ordered[0] - second) > tol
    assert ("nk-rule" in cell.rules) == want_nk
    assert ("p-ratio" in cell.rules) == want_p
    assert ("threshold" in cell.rules) == (len(values) < 10)


# ------------------------------------------------------------------------------------ suppression


def test_primary_suppression_blanks_failing_cells() -> None:
    table, contrib, report = hand_report()
    out, mask = primary_suppress(table, report)
    assert out["people"].isna().tolist() == [False, False, True, False]
    assert out["mean_wage"].isna().tolist() == [False, True, True, False]
    assert str(out["people"].dtype) == "Int64"
    again = check_table(
        out,
        group_by=["district", "sex"],
        counts=["people"],
        values={"mean_wage": "wage"},
        rules=RULES,
        contributors=contrib,
    )
    assert again.summary["fail"] == 0 and again.summary["suppressed"] == 3


def test_rounding() -> None:
    assert (
        round_to_base(12, 5) == 10
        and round_to_base(12.5, 5) == 15
        and round_to_base(-12.5, 5) == -15
    )
    assert np.isnan(round_to_base(np.nan, 5))
    s = round_to_base(pd.Series([1, 2, 3, 7, 8, 10, 22]), 10)
    assert s.tolist() == [0, 0, 0, 10, 10, 10, 20]
    tab = pd.DataFrame([[3, 7], [12, 24]], index=["a", "b"], columns=["x", "y"])
    # consistent: cells 5, 5 / 10, 25 -> row totals 10, 35; column totals 15, 30; grand 45
    cons = round_table(tab, 5)
    assert cons.table.loc["Total"].tolist() == [15, 30, 45]
    assert cons.table["Total"].tolist() == [10, 35, 45]
    assert (cons.table.iloc[:-1, :-1].sum(axis=0) == cons.table.iloc[-1, :-1]).all()
    # independent: true totals 10, 36 / 15, 31 / 46 rounded -> 10, 35 / 15, 30 / 45
    ind = round_table(tab, 5, margins="independent")
    assert ind.table.loc["Total"].tolist() == [15, 30, 45]
    assert "independently" in ind.note and "consistent" in cons.note
    assert (round_table(tab, 10).table.to_numpy() % 10 == 0).all()


def test_single_suppression_is_recoverable_and_secondary_fixes_it() -> None:
    tab = pd.DataFrame(
        [[20, 3, 15, 40], [12, 25, 30, 18], [50, 14, 2, 22], [33, 27, 19, 11]],
        index=list("ABCD"),
        columns=list("wxyz"),
    )
    prim = tab < 5  # (A, x) = 3 and (C, y) = 2
    naive = np.zeros((5, 5), dtype=bool)
    naive[:4, :4] = prim.to_numpy()
    rec = recoverable_cells(tab, naive)
    # row A total 78 - 20 - 15 - 40 = 3: recovered exactly
    assert {(r["cell"], r["value"]) for r in rec} == {(("A", "x"), 3.0), (("C", "y"), 2.0)}
    mask = secondary_suppress(tab, prim)
    assert mask.shape == (5, 5) and mask.index[-1] == "Total"
    assert recoverable_cells(tab, mask) == []
    # the cheapest complement: (A, y) = 15 and (C, x) = 14 close the rectangle A/C x x/y
    assert set(map(tuple, np.argwhere(mask.to_numpy()))) == {(0, 1), (0, 2), (2, 1), (2, 2)}


def test_bridge_between_two_blocks_is_found_by_the_cut_argument() -> None:
    # two 2x2 blocks of blanks, rows {0,1} x cols {0,1} and rows {2,3} x cols {2,3}, joined by
    # the blank (1, 2): every row and column has >= 2 blanks, so single-unknown elimination
    # finds nothing, but (1, 2) is a bridge: summing rows 0-1 minus columns 0-1 gives it.
    tab = pd.DataFrame(np.arange(1, 26).reshape(5, 5) % 7 + 1)
    mask = np.zeros((6, 6), dtype=bool)
    for i, j in [(0, 0), (0, 1), (1, 0), (1, 1), (2, 2), (2, 3), (3, 2), (3, 3), (1, 2)]:
        mask[i, j] = True
    rec = recoverable_cells(tab, mask)
    assert [(r["position"], r["via"]) for r in rec] == [((1, 2), "cut")]
    assert rec[0]["value"] == tab.iat[1, 2]
    assert determined_by_rank(tab, mask) == {(1, 2)}


def test_one_row_table_needs_margin_suppression() -> None:
    tab = pd.DataFrame([[3, 20, 30]], index=["A"], columns=["x", "y", "z"])
    mask = secondary_suppress(tab, tab < 5)
    assert recoverable_cells(tab, mask) == []
    assert mask.loc["Total"].any()  # the column total of a 1-row table is the cell itself


def test_without_margins_nothing_is_added() -> None:
    tab = pd.DataFrame([[3, 20], [30, 40]])
    mask = secondary_suppress(tab, tab < 5, with_margins=False)
    assert mask.to_numpy().sum() == 1 and recoverable_cells(tab, mask) == []


@st.composite
def tables_and_masks(draw):
    m = draw(st.integers(min_value=1, max_value=6))
    n = draw(st.integers(min_value=1, max_value=6))
    cells = draw(st.lists(st.integers(min_value=0, max_value=60), min_size=m * n, max_size=m * n))
    flags = draw(st.lists(st.booleans(), min_size=m * n, max_size=m * n))
    tab = pd.DataFrame(np.array(cells).reshape(m, n))
    return tab, np.array(flags).reshape(m, n)


@settings(max_examples=300, deadline=None)
@given(tables_and_masks())
def test_after_secondary_suppression_nothing_is_recoverable(tm) -> None:
    tab, prim = tm
    mask = secondary_suppress(tab, prim)
    full = mask.to_numpy()
    m, n = tab.shape
    assert (full[:m, :n] >= prim).all()  # primary cells stay blank
    assert recoverable_cells(tab, mask) == []
    assert determined_by_rank(tab, full) == set()  # independent linear-algebra proof
    if prim.any():
        # every line (incl. margins) holding a blank holds at least two
        assert set(full.sum(axis=0)) <= set(range(0, 100)) - {1}
        assert set(full.sum(axis=1)) <= set(range(0, 100)) - {1}


@settings(max_examples=200, deadline=None)
@given(tables_and_masks(), st.integers(min_value=0, max_value=2**31))
def test_recoverable_cells_agrees_with_rank_on_any_mask(tm, seed: int) -> None:
    tab, _ = tm
    m, n = tab.shape
    rng = np.random.default_rng(seed)
    mask = rng.random((m + 1, n + 1)) < rng.random()
    found = recoverable_cells(tab, mask)
    assert {r["position"] for r in found} == determined_by_rank(tab, mask)
    aug = add_margins(tab).to_numpy(dtype=float)
    for r in found:
        assert r["value"] == aug[r["position"]]


# ------------------------------------------------------------------------------------ ACRO layout


def test_acro_results_layout(tmp_path: Path) -> None:
    table, contrib, report = hand_report()
    doc = to_acro_results({"wages.csv": report}, timestamp="2026-01-01T00:00:00")
    assert doc["version"].startswith("0.4")
    rec = doc["results"]["wages.csv"]
    assert set(rec) >= {
        "uid",
        "status",
        "type",
        "properties",
        "files",
        "outcome",
        "command",
        "summary",
        "timestamp",
        "comments",
        "exception",
    }
    assert rec["status"] == "fail" and rec["type"] == "table"
    sdc = rec["files"][0]["sdc"]
    assert set(ACRO_KEYS) <= set(sdc["summary"]) and set(ACRO_KEYS) <= set(sdc["cells"])
    assert sdc["summary"]["suppressed"] is False
    # columns: district(0) sex(1) people(2) mean_wage(3); rows as in the table
    assert sdc["cells"]["threshold"] == [[2, 2], [2, 3]]
    assert sdc["cells"]["nk-rule"] == [[1, 3]]
    assert sdc["cells"]["p-ratio"] == []
    assert sdc["cells"]["all-values-are-same"] == [[0, 3]]
    assert sdc["summary"]["threshold"] == 2 and sdc["summary"]["nk-rule"] == 1
    assert (
        rec["summary"].startswith("fail; ")
        and "threshold: 2 cells may need suppressing" in rec["summary"]
    )
    assert rec["outcome"]["mean_wage"]["1"] == "nk-rule; " and rec["outcome"]["people"]["0"] == "ok"
    path = write_results_json(tmp_path, {"wages.csv": report})
    assert json.loads(path.read_text())["results"]["wages.csv"]["uid"] == "wages.csv"
    assert table_sdc(report, suppressed=True)["summary"]["suppressed"] is True


def test_report_is_a_dataclass_with_list_of_cells() -> None:
    table, contrib = hand_table()
    report = check_table(table, group_by=["district", "sex"], counts=["people"], rules=RULES)
    assert isinstance(report, TableReport) and all(isinstance(c, CellResult) for c in report.cells)
    assert report.failing() == [c for c in report.cells if c.status != "pass"]


def test_negative_values_matter_for_magnitudes_only() -> None:
    # a median of values that include negatives (e.g. year-on-year changes) is not a dominance case
    contrib = pd.DataFrame({"g": ["x"] * 12, "change": [-3.0, -1.0] + [2.0] * 10})
    table = pd.DataFrame({"g": ["x"], "n": [12], "change": [2.0]})
    median = check_table(
        table,
        group_by=["g"],
        counts=["n"],
        values=["change"],
        rules=RULES,
        contributors=contrib,
        stats="median",
    )
    assert all(c.status == "pass" for c in median.cells)
    total = check_table(
        table,
        group_by=["g"],
        counts=["n"],
        values=["change"],
        rules=RULES,
        contributors=contrib,
        stats="sum",
    )
    assert next(c for c in total.cells if c.column == "change").rules == ("negative",)


def test_keys_of_different_types_are_matched() -> None:
    import datetime as dt

    contrib = pd.DataFrame(
        {
            "d": pd.Categorical(["a"] * 12 + ["b"] * 12),
            "day": [dt.date(2025, 1, 1)] * 24,
            "n_kids": [2.0] * 24,
            "v": [10.0] * 11 + [11.0] + [5.0] * 11 + [500.0],
        }
    )
    # the table has text keys (as read from CSV) and an integer where the data has a float
    table = pd.DataFrame(
        {"d": ["a", "b"], "day": ["2025-01-01"] * 2, "n_kids": [2, 2], "v": [121.0, 555.0]}
    )
    report = check_table(
        table,
        group_by=["d", "day", "n_kids"],
        values=["v"],
        rules=RULES,
        contributors=contrib,
        stats="sum",
    )
    got = {c.key["d"]: (c.status, c.numbers["n"]) for c in report.cells}
    # b: 500 + 5 of 555 -> 0.91 > 0.9 fails nk; a: 21 of 121 passes
    assert got == {"a": ("pass", 12), "b": ("fail", 12)}
