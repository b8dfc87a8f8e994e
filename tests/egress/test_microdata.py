"""Microdata checks: k-anonymity, l-diversity, re-identification risk, k-anonymisation."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from egress_review.acro_format import to_acro_results
from egress_review.microdata import (
    band,
    check_microdata,
    enforce_k,
    individual_risk,
    prefix,
    sample_frequencies,
    year,
)
from policies.grant import DisclosureRules
from shuyu.errors import ValidationError

RULES = DisclosureRules()  # k_anonymity=5, l_diversity=2


def people() -> pd.DataFrame:
    """Three equivalence classes on (sex, band):

    (F, 20-29): rows 0-5, 6 records, diagnoses A A A A A B -> distinct l 2,
                entropy l = exp(-(5/6 ln 5/6 + 1/6 ln 1/6)) = exp(0.4506) = 1.5692
    (M, 20-29): rows 6-10, 5 records, diagnoses A B C A B  -> distinct l 3
    (M, 30-39): rows 11-12, 2 records, diagnoses C C       -> distinct l 1, too small for k=5
    """
    return pd.DataFrame(
        {
            "sex": ["F"] * 6 + ["M"] * 7,
            "band": ["20-29"] * 11 + ["30-39"] * 2,
            "diag": list("AAAAAB") + list("ABCAB") + list("CC"),
            "wage": [float(x) for x in range(13)],
        },
        index=[f"p{i}" for i in range(13)],
    )


def test_k_anonymity_known_answer() -> None:
    rep = check_microdata(
        people(), quasi_identifiers=["sex", "band"], sensitive=["diag"], rules=RULES
    )
    k = rep.k_anonymity
    assert k is not None
    assert (k.min_class_size, k.n_classes, k.violating_count) == (2, 3, 2)
    assert k.violating_rows == ["p11", "p12"] and k.status == "fail"
    assert rep.status == "fail" and rep.blocked and not rep.ok


def test_l_diversity_known_answer() -> None:
    rep = check_microdata(
        people(), quasi_identifiers=["sex", "band"], sensitive=["diag"], rules=RULES
    )
    d = rep.l_diversity["diag"]
    assert d.min_distinct_l == 1 and d.violating_classes == 1 and d.violating_rows == 2
    # the smallest entropy l among the classes with more than one value is (F, 20-29)'s
    h = -(5 / 6 * math.log(5 / 6) + 1 / 6 * math.log(1 / 6))
    assert math.exp(h) == pytest.approx(1.5692, abs=1e-4)
    assert d.min_entropy_l == pytest.approx(1.0)  # (M, 30-39): one value, entropy 0 -> l = 1
    assert (
        d.entropy_violating_classes == 2
    )  # 1.0 and 1.5692 are below 2; exp(H) of A B C A B is 2.87
    assert d.status == "fail"


def test_risk_known_answer() -> None:
    # 1/f per record: 6 x 1/6 + 5 x 1/5 + 2 x 1/2 = 3 expected re-identifications = one per class
    rep = check_microdata(people(), quasi_identifiers=["sex", "band"], sensitive=[], rules=RULES)
    assert rep.risk is not None
    assert rep.risk.global_risk == pytest.approx(3.0)
    assert rep.risk.global_risk_rate == pytest.approx(3 / 13)
    assert rep.risk.max_risk == pytest.approx(0.5)
    assert rep.risk.records_at_risk == 2  # risk 1/2 > 1/k = 1/5
    assert rep.risk.individual["p0"] == pytest.approx(1 / 6)


def test_risk_with_weights_follows_sdcmicro_approximation() -> None:
    f = np.array([1, 2, 4, 3])
    big_f = np.array([10.0, 8.0, 4.0, 30.0])
    r = individual_risk(f, big_f)
    p1, p2, p4 = 0.1, 0.25, 0.1
    assert r[0] == pytest.approx(p1 / (1 - p1) * math.log(1 / p1))  # f = 1: 0.2558
    assert r[1] == pytest.approx(p2 / (1 - p2) - (p2 / (1 - p2)) ** 2 * math.log(1 / p2))
    assert r[2] == pytest.approx(1 / 4)  # F = f: the population is the file, risk 1/f
    assert r[3] == pytest.approx(p4 / (3 - (1 - p4)))
    assert individual_risk(np.array([1, 2, 5])).tolist() == pytest.approx([1, 0.5, 0.2])
    df = people().assign(w=10.0)
    rep = check_microdata(df, quasi_identifiers=["sex", "band"], rules=RULES, weights="w")
    assert rep.risk is not None and "Benedetti-Franconi" in rep.risk.estimator
    assert rep.risk.max_risk < 0.5  # weights make every class 10x larger in the population


def test_missing_quasi_identifiers_are_wildcards() -> None:
    df = pd.DataFrame({"a": ["x", "x", None, "y"], "b": [1, 2, 1, None]})
    f, _ = sample_frequencies(df, ["a", "b"])
    # row 0 (x, 1) matches itself and row 2 (*, 1); row 1 (x, 2) only itself;
    # row 2 (*, 1) matches rows 0, 2 and 3 (y, *); row 3 (y, *) matches rows 2 and 3
    assert f.tolist() == [2, 1, 3, 2]
    rep = check_microdata(df, quasi_identifiers=["a", "b"], rules=DisclosureRules(k_anonymity=2))
    assert rep.k_anonymity is not None and rep.k_anonymity.violating_rows == [1]
    assert any("wildcard" in n for n in rep.notes)


def test_no_quasi_identifiers_means_review() -> None:
    rep = check_microdata(people(), quasi_identifiers=[], sensitive=["diag"], rules=RULES)
    assert rep.status == "review" and not rep.blocked and not rep.ok


def test_passing_file() -> None:
    df = pd.DataFrame({"sex": ["F", "M"] * 10, "diag": list("AB") * 5 + list("BA") * 5})
    rep = check_microdata(df, quasi_identifiers=["sex"], sensitive=["diag"], rules=RULES)
    assert rep.status == "pass" and rep.ok
    assert rep.l_diversity["diag"].min_entropy_l == pytest.approx(2.0)
    assert to_acro_results({"people.parquet": rep})["results"]["people.parquet"]["status"] == "pass"


def test_unknown_column_is_explained() -> None:
    with pytest.raises(ValidationError, match="no column"):
        check_microdata(people(), quasi_identifiers=["age"], rules=RULES)


def decade(s: pd.Series) -> pd.Series:
    """A custom generaliser: dates to their decade."""
    return (pd.to_datetime(s).dt.year // 10 * 10).astype("Int64")


def test_enforce_k_generalises_then_suppresses_and_logs() -> None:
    rng = np.random.default_rng(7)
    n = 2000
    df = pd.DataFrame(
        {
            "age": rng.integers(18, 90, n),
            "sex": rng.choice(["M", "F"], n),
            "birth": pd.to_datetime("1950-01-01")
            + pd.to_timedelta(rng.integers(0, 20000, n), unit="D"),
            "zip": rng.choice([f"{i:05d}" for i in range(10100, 10160)], n),
        }
    )
    before = df.copy()
    out, log = enforce_k(
        df,
        ["age", "sex", "birth", "zip"],
        5,
        {
            "age": [band(10), band(20)],
            "birth": [year(), decade],
            "zip": [prefix(4), prefix(3)],
        },
    )
    pd.testing.assert_frame_equal(df, before)  # the input is not modified
    f, _ = sample_frequencies(out, ["age", "sex", "birth", "zip"])
    assert f.min() >= 5
    rep = check_microdata(out, quasi_identifiers=["age", "sex", "birth", "zip"], rules=RULES)
    assert rep.k_anonymity is not None and rep.k_anonymity.status == "pass"
    steps = [e["step"] for e in log]
    assert steps[0] == "start" and steps[-1] == "result" and "generalise" in steps
    result = log[-1]
    assert result["violating_rows"] == 0 and result["min_class_size"] >= 5
    suppressed = sum(e["cells"] for e in log if e["step"] == "suppress")
    assert suppressed == sum(result["suppressed_cells"].values())
    assert int(out[["age", "sex", "birth", "zip"]].isna().sum().sum()) == suppressed
    assert suppressed <= 0.05 * n  # generalisation went on until local suppression was small
    assert out["age"].dropna().str.match(r"^\d+-\d+$").all()


def test_enforce_k_local_suppression_only() -> None:
    # 6 x (F, 1) and one (M, 2): the lone record needs its QIs blanked (wildcards)
    df = pd.DataFrame({"sex": ["F"] * 6 + ["M"], "grade": [1] * 6 + [2]})
    out, log = enforce_k(df, ["sex", "grade"], 5)
    # blanking one QI of (M, 2) is not enough: (*, 2) and (M, *) match only the record itself;
    # blanking both makes it (*, *), which matches all 7 records
    assert out.iloc[:6].astype(object).values.tolist() == [["F", 1]] * 6
    assert out.iloc[6].isna().all()
    assert [e["step"] for e in log] == ["start", "suppress", "suppress", "result"]
    assert log[-1]["suppressed_cells"] == {"sex": 1, "grade": 1}
    assert sample_frequencies(out, ["sex", "grade"])[0].tolist() == [7] * 7


def test_enforce_k_impossible_is_logged() -> None:
    df = pd.DataFrame({"sex": ["F", "M"], "grade": [1, 2]})
    out, log = enforce_k(df, ["sex", "grade"], 5)
    assert any(e["step"] == "unresolved" for e in log)
    assert log[-1]["violating_rows"] == 2


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.integers(min_value=2, max_value=6),
    st.lists(
        st.tuples(st.integers(0, 4), st.sampled_from("abc"), st.integers(0, 99)),
        min_size=6,
        max_size=80,
    ),
)
def test_enforce_k_always_reaches_k(k: int, rows: list[tuple[int, str, int]]) -> None:
    df = pd.DataFrame(rows, columns=["g", "c", "age"])
    if len(df) < k:
        return
    out, log = enforce_k(df, ["g", "c", "age"], k, {"age": [band(10), band(50)]})
    f, _ = sample_frequencies(out, ["g", "c", "age"])
    assert f.min() >= k
    assert log[-1]["violating_rows"] == 0


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["x", "y", None]), st.sampled_from([1, 2, None])),
        min_size=1,
        max_size=30,
    )
)
def test_wildcard_frequencies_match_brute_force(rows) -> None:
    df = pd.DataFrame(rows, columns=["a", "b"]).astype({"b": "Int64"})
    f, _ = sample_frequencies(df, ["a", "b"])
    vals = [tuple(None if pd.isna(v) else v for v in r) for r in df.itertuples(index=False)]

    def match(u, v) -> bool:
        return all(x is None or y is None or x == y for x, y in zip(u, v, strict=True))

    assert f.tolist() == [sum(match(u, v) for v in vals) for u in vals]
