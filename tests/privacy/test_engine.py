"""The DP engine on real DuckDB workspaces: noise scale, error bounds, contribution bounding, groups."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from scipy import stats

from privacy import noise
from privacy.engine import (
    geometric_error,
    laplace_error,
    prepare_dp_query,
    run_dp_query,
    unknown_keys_threshold,
)
from shuyu.errors import ValidationError

from .helpers import visits

DRAWS = 20_000


def q(sql: str, epsilon: float = 1.0, k: int = 1, **extra):
    return {"query": sql, "epsilon": epsilon, "max_contributions": k, **extra}


def rows_for(n: int, district: str = "a", value: float = 50.0, person: str = "p"):
    return [(f"{person}{i}", district, value, None, "x", "2025-03-01") for i in range(n)]


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    """300 persons, one row each, spread over districts a/b/c, values 0..99."""
    rows = [
        (f"p{i}", "abc"[i % 3], float(i % 100), None, f"n{i % 2}", "2025-03-01") for i in range(300)
    ]
    return visits(tmp_path / "tiny.duckdb", rows)


def within(empirical: float, theoretical: float, tolerance: float) -> bool:
    return abs(empirical / theoretical - 1) <= tolerance


# --------------------------------------------------------------------------- noise scale


@pytest.mark.parametrize("k", [1, 4])
def test_count_and_sum_noise_have_the_stated_scale(tiny: Path, k: int) -> None:
    prepared = prepare_dp_query(
        tiny, q("SELECT COUNT(*) AS n, SUM(value) AS s FROM visits", 1.0, k), seed=7
    )
    true_n, true_s = prepared.true[0][0], prepared.true[1][0]
    assert (true_n, true_s) == (300, sum(float(i % 100) for i in range(300)))
    count, total = prepared.calibrated
    eps_m = 0.5  # ε split equally over the two measurements
    b = k * 100 / eps_m  # Laplace, sensitivity k * max(|0|, |100|)
    assert count.scale == k / eps_m  # discrete Laplace scale Δ / ε: α = exp(-ε / Δ)
    assert total.scale == pytest.approx(b, rel=1e-6)  # raised only by OpenDP's rounding charge
    assert total.scale >= b
    # the engine's own samplers at those scales (one vectorised OpenDP call each)
    z = np.array(noise.discrete_laplace([true_n] * DRAWS, count.scale), dtype=float) - true_n
    x = np.array(noise.laplace([true_s] * DRAWS, total.scale)) - true_s

    alpha = math.exp(-eps_m / k)  # geometric, sensitivity k
    geo_mad, geo_var = 2 * alpha / (1 - alpha**2), 2 * alpha / (1 - alpha) ** 2
    lap_mad, lap_var = b, 2 * b * b

    # mean absolute deviation: relative standard error ~0.7% at n = 20,000, so ±5% is > 6 SE
    assert within(np.abs(z).mean(), geo_mad, 0.05)
    assert within(np.abs(x).mean(), lap_mad, 0.05)
    assert within(z.var(), geo_var, 0.10)
    assert within(x.var(), lap_var, 0.10)
    # unbiased
    assert abs(z.mean()) < 5 * math.sqrt(geo_var / DRAWS)
    assert abs(x.mean()) < 5 * math.sqrt(lap_var / DRAWS)
    # the whole Laplace distribution, not just its scale
    assert stats.kstest(x, "laplace", args=(0, b)).pvalue > 1e-3

    # the same checks reject a wrong scale: twice the noise, and even 10% more
    assert not within(np.abs(x).mean(), 2 * lap_mad, 0.05)
    assert not within(np.abs(x).mean(), 1.1 * lap_mad, 0.05)
    assert not within(x.var(), (2 * b) ** 2 * 2, 0.10)
    assert stats.kstest(x, "laplace", args=(0, 2 * b)).pvalue < 1e-10
    alpha2 = math.exp(-eps_m / (2 * k))  # a geometric with twice the scale
    assert not within(np.abs(z).mean(), 2 * alpha2 / (1 - alpha2**2), 0.05)
    assert not within(z.var(), 2 * alpha2 / (1 - alpha2) ** 2, 0.10)

    # and the release path draws from them: 400 full releases, same spread within 15%
    released = [prepared.release().table.iloc[0] for _ in range(400)]
    assert within(np.mean([abs(r["s"] - true_s) for r in released]), lap_mad, 0.15)
    assert within(np.mean([abs(r["n"] - true_n) for r in released]), geo_mad, 0.2)


def test_count_distinct_and_count_column_use_geometric_with_sensitivity_k(tiny: Path) -> None:
    result = run_dp_query(
        tiny,
        q("SELECT COUNT(DISTINCT person_id) AS p, COUNT(value) AS c FROM visits", 1.0, 5),
        seed=1,
    )
    assert result.mechanisms == {"p": "geometric", "c": "geometric"}
    # one cell: a person touches at most min(k, cells) = 1 cell for the distinct count
    sens = {m["measurement"]: m["sensitivity"] for m in result.measurements}
    assert sens == {"units": 1.0, "count:t0.value": 5.0}


# --------------------------------------------------------------------------- error bounds


def test_error_bound_formulas() -> None:
    assert laplace_error(10.0) == pytest.approx(10 * math.log(20))
    for eps, sens in [(0.05, 1), (0.5, 1), (1.0, 12), (2.0, 1)]:
        m = geometric_error(eps, sens)
        alpha = math.exp(-eps / sens)

        def tail(j: int, a: float = alpha) -> float:  # P(|Z| > j)
            return 2 * a ** (j + 1) / (1 + a)

        assert tail(m) <= 0.05 and (m == 0 or tail(m - 1) > 0.05)


def test_95_percent_bounds_cover_the_truth_about_95_percent_of_the_time(tiny: Path) -> None:
    prepared = prepare_dp_query(
        tiny,
        q(
            "SELECT district, COUNT(*) AS n, SUM(value) AS s, AVG(value) AS m FROM visits GROUP BY district",
            0.15,
        ),
        seed=3,
    )
    # the truth per district, from the bounded true measurements (count, sum, count(value))
    true_n = np.array(prepared.true[0], dtype=float)
    true_s = np.array(prepared.true[1], dtype=float)
    true_m = true_s / np.array(prepared.true[2], dtype=float)
    hits = {"n": 0, "s": 0, "m": 0}
    total = 0
    for _ in range(2_500):
        result = prepared.release()
        t = result.table
        total += len(t)
        for col, truth in (("n", true_n), ("s", true_s), ("m", true_m)):
            err = np.abs(t[col].to_numpy(dtype=float) - truth)
            bound = np.array(result.error_bounds[col], dtype=float)
            hits[col] += int(np.sum(err <= bound))
    coverage = {c: h / total for c, h in hits.items()}
    print("coverage", coverage)
    assert 0.93 <= coverage["n"] <= 0.97, coverage
    assert 0.93 <= coverage["s"] <= 0.97, coverage
    assert coverage["m"] >= 0.95, coverage  # AVG's bound is conservative by construction


# --------------------------------------------------------------------------- contribution bounding


def heavy_rows(extra_people: int = 5):
    """Person `heavy` has 100 rows in district a (values 1..100); others one row in b."""
    rows = [("heavy", "a", float(v), None, "x", "2025-03-01") for v in range(1, 101)]
    rows += rows_for(extra_people, "b", 10.0)
    return rows


def test_a_person_with_100_rows_contributes_at_most_max_contributions(tmp_path: Path) -> None:
    ws = visits(tmp_path / "w.duckdb", heavy_rows())
    sql = "SELECT district, COUNT(*) AS n, SUM(value) AS s, COUNT(DISTINCT person_id) AS p FROM visits GROUP BY district"
    for seed in (None, 1, 2, 3):
        prepared = prepare_dp_query(ws, q(sql, 1.0, 3), seed=seed)
        by_district = dict(
            zip([k[0] for k in prepared.keys], zip(*prepared.true, strict=True), strict=True)
        )
        n, s, p = by_district["a"]
        assert (n, p) == (3, 1)
        assert 1 + 2 + 3 <= s <= 98 + 99 + 100
        assert by_district["b"] == (5, 50.0, 5)
        assert by_district["c"] == (0, 0.0, 0)
    # with a large ε the released count shows the bound too: near 3, nowhere near 100. Noise is
    # no longer seedable (exact samplers), so the tolerance is far beyond the 95% error bound
    # (P(|noise| > 40) is below 1e-15 at this scale) yet far below the unbounded count.
    released = run_dp_query(ws, q(sql, 10.0, 3), seed=5).table.set_index("district")
    assert geometric_error(10.0 / 3, 3) < 40
    assert abs(released.loc["a", "n"] - 3) <= 40


def test_the_kept_rows_are_a_seeded_random_choice_that_only_depends_on_the_persons_own_rows(
    tmp_path: Path,
) -> None:
    sql = q("SELECT district, SUM(value) AS s FROM visits GROUP BY district", 1.0, 3)
    small = visits(tmp_path / "small.duckdb", heavy_rows(5))
    big = visits(tmp_path / "big.duckdb", heavy_rows(500))  # other persons added
    picked = {}
    for seed in range(8):
        a = prepare_dp_query(small, sql, seed=seed).true[0][0]
        b = prepare_dp_query(big, sql, seed=seed).true[0][0]
        assert a == b  # stable: other persons' rows do not change which rows `heavy` keeps
        assert a == prepare_dp_query(small, sql, seed=seed).true[0][0]  # reproducible
        picked[seed] = a
    assert len(set(picked.values())) > 4  # and it is a random choice, not the first rows


def test_a_person_in_several_groups_counts_once_in_distinct_counts_with_k_1(tmp_path: Path) -> None:
    rows = [("multi", d, 1.0, None, "x", "2025-03-01") for d in "abc"] + rows_for(4, "c")
    ws = visits(tmp_path / "w.duckdb", rows)
    prepared = prepare_dp_query(
        ws,
        q("SELECT district, COUNT(DISTINCT person_id) AS p FROM visits GROUP BY district", 1.0, 1),
        seed=0,
    )
    assert sum(prepared.true[0]) == 5


# --------------------------------------------------------------------------- groups


def test_every_public_category_is_released_even_empty_ones(tmp_path: Path) -> None:
    rows = rows_for(20, "a") + rows_for(5, "zzz", person="q")  # zzz is not a declared category
    ws = visits(tmp_path / "w.duckdb", rows)
    result = run_dp_query(
        ws, q("SELECT district, COUNT(*) AS n FROM visits GROUP BY district"), seed=1
    )
    assert list(result.table["district"]) == ["a", "b", "c"]
    filtered = run_dp_query(
        ws,
        q("SELECT district, COUNT(*) AS n FROM visits WHERE district = 'b' GROUP BY district"),
        seed=1,
    )
    assert list(filtered.table["district"]) == ["a", "b", "c"]
    prepared = prepare_dp_query(
        ws, q("SELECT district, COUNT(*) AS n FROM visits GROUP BY district"), seed=1
    )
    assert prepared.true == [[20, 0, 0]]  # rows outside the categories are dropped, never released
    assert result.delta == 0.0


def test_unknown_keys_release_only_groups_above_the_noisy_threshold(tmp_path: Path) -> None:
    rows = [(f"p{i}", "a", 1.0, None, "common", "2025-03-01") for i in range(400)]
    rows.append(("loner", "a", 1.0, None, "only-one-person", "2025-03-01"))
    ws = visits(tmp_path / "w.duckdb", rows)
    sql = "SELECT note, COUNT(*) AS n FROM visits GROUP BY note"
    with pytest.raises(ValidationError, match="unknown-keys"):
        run_dp_query(ws, q(sql))
    with pytest.raises(ValidationError, match="delta"):
        run_dp_query(ws, q(sql, unknown_keys=True, delta=0.0))
    prepared = prepare_dp_query(ws, q(sql, 1.0, 1, unknown_keys=True, delta=1e-6), seed=0)
    tau = prepared.threshold
    alpha = math.exp(-1.0)
    assert (
        tau
        == unknown_keys_threshold(1.0, 1, 1e-6)
        == 1 + math.ceil(math.log(1 / (1e-6 * (1 + alpha))))
    )
    seen = set()
    for _ in range(500):
        result = prepared.release()
        seen.update(result.table["note"])
        assert result.delta == 1e-6 and result.threshold == tau
    assert seen == {"common"}
    assert any("unknown keys" in n for n in result.notes)


def test_unknown_keys_selection_count_is_added_and_charged(tmp_path: Path) -> None:
    ws = visits(tmp_path / "w.duckdb", rows_for(50, "a"))
    result = run_dp_query(
        ws,
        q("SELECT note, SUM(value) AS s FROM visits GROUP BY note", 1.0, 2, unknown_keys=True),
        seed=1,
    )
    assert [m["measurement"] for m in result.measurements] == ["sum:t0.value", "count"]
    assert result.epsilon_by_column == {"s": 0.5}
    assert list(result.table.columns) == ["note", "s"]


# --------------------------------------------------------------------------- quantiles


def test_quantiles_use_noisy_max_on_the_public_grid_with_scale_2k_over_epsilon(tiny: Path) -> None:
    sql = "SELECT district, MEDIAN(value) AS m, QUANTILE(value, 0.9) AS p90 FROM visits GROUP BY district"
    prepared = prepare_dp_query(tiny, q(sql, 2.0, 4), seed=1)
    median, p90 = prepared.calibrated
    # ε_m = 2 / 2 measurements; one row moves a score by max(num, den - num): 1 for q = 1/2,
    # 9 for q = 9/10; a person has at most k = 4 rows; the scores are not monotone: factor 2
    assert median.scale == pytest.approx(2 * 4 * 1 / 1.0)
    assert p90.scale == pytest.approx(2 * 4 * 9 / 1.0)
    assert noise.noisy_min_epsilon(4 * 1, median.scale) <= 1.0 + 1e-12
    assert noise.noisy_min_epsilon(4 * 9, p90.scale) <= 1.0 + 1e-12
    grid = median.measurement.grid
    assert (grid.lo, grid.step, grid.points) == (0.0, 0.025, 4001)  # from the bounds [0, 100]
    # the engine sees integer counts per grid point only
    assert all(sum(h.values()) == 100 for h in prepared.true[0])
    result = prepared.release()
    assert result.mechanisms["m"] == "noisy-max quantile on a public grid"
    assert all(math.isnan(b) for b in result.error_bounds["m"])
    on_grid = set(np.round(grid.values(), 9))
    assert all(round(v, 9) in on_grid for v in [*result.table["m"], *result.table["p90"]])


def test_median_is_accurate_with_a_large_budget(tmp_path: Path) -> None:
    rows = [(f"p{i}", "a", float(i % 100), None, "x", "2025-03-01") for i in range(2000)]
    ws = visits(tmp_path / "w.duckdb", rows)
    prepared = prepare_dp_query(ws, q("SELECT MEDIAN(value) AS m FROM visits", 5.0), seed=1)
    values = [prepared.release().table["m"][0] for _ in range(100)]
    assert abs(np.median(values) - 49.5) < 2


# --------------------------------------------------------------------------- results


def test_results_carry_epsilon_mechanism_and_error_bounds(tiny: Path, tmp_path: Path) -> None:
    result = run_dp_query(
        tiny,
        q(
            "SELECT district, COUNT(*) AS n, SUM(value) AS s, AVG(value) AS m FROM visits GROUP BY district",
            0.9,
            2,
        ),
        seed=11,
    )
    assert list(result.table.columns) == ["district", "n", "s", "m"]
    assert result.epsilon == 0.9 and result.delta == 0.0 and result.datasets == ("visits",)
    assert result.mechanisms == {
        "n": "geometric",
        "s": "laplace",
        "m": "laplace sum / geometric count",
    }
    # three measurements (count, sum, count(value)) at 0.3 each; AVG uses two of them
    assert result.epsilon_by_column == pytest.approx({"n": 0.3, "s": 0.3, "m": 0.6})
    assert sum(m["epsilon"] for m in result.measurements) == pytest.approx(0.9)
    b = 2 * 100 / 0.3
    assert result.error_bounds["s"] == pytest.approx([b * math.log(20)] * 3, rel=1e-6)
    assert result.error_bounds["n"] == [geometric_error(0.3, 2)] * 3
    assert all(e > 0 for e in result.error_bounds["m"])
    assert result.table["n"].dtype == np.int64

    cells = result.cells()
    assert len(cells) == 9 and set(cells.columns) == {
        "district",
        "column",
        "value",
        "epsilon",
        "mechanism",
        "error95",
    }
    path = result.to_parquet(tmp_path / "out.parquet")
    meta = json.loads(pq.read_schema(path).metadata[b"shuyu.dp"])
    assert meta["epsilon"] == 0.9 and meta["columns"]["s"]["mechanism"] == "laplace"
    assert pq.read_table(path).num_rows == 3

    sql = "SELECT district, COUNT(*) AS n, SUM(value) AS s FROM visits GROUP BY district"
    again = prepare_dp_query(tiny, q(sql, 0.9, 2), seed=11)
    assert (
        again.true == prepare_dp_query(tiny, q(sql, 0.9, 2), seed=11).true
    )  # audits: reproducible


def test_without_a_seed_releases_differ(tiny: Path) -> None:
    sql = q("SELECT SUM(value) AS s FROM visits", 0.5)
    assert run_dp_query(tiny, sql).table["s"][0] != run_dp_query(tiny, sql).table["s"][0]


def test_workspace_is_opened_read_only(tiny: Path) -> None:
    import os

    before = (tiny.stat().st_mtime_ns, tiny.stat().st_size)
    run_dp_query(tiny, q("SELECT COUNT(*) FROM visits"), seed=1)
    assert (tiny.stat().st_mtime_ns, tiny.stat().st_size) == before
    assert not os.path.exists(str(tiny) + ".wal")


@pytest.mark.parametrize("k", [1, 3, 100])
def test_one_bounding_strategy_whatever_the_data(tmp_path: Path, k: int) -> None:
    """Adding a person with more than k rows changed the strategy (and the run time) before:
    now the statement the engine runs is the same text with the same parameters."""
    import duckdb

    from privacy.bounding import _sql
    from privacy.calibration import _plan
    from privacy.query import as_request, parse_dp_query, read_columns, resolve_units

    sql = "SELECT district, COUNT(*) AS n, SUM(value) AS s, COUNT(DISTINCT person_id) AS p FROM visits GROUP BY district"
    statements = []
    for name, rows in (("flat", rows_for(300, "b")), ("heavy", heavy_rows(299))):
        ws = visits(tmp_path / f"{name}.duckdb", rows)
        con = duckdb.connect()
        con.execute(f"ATTACH '{ws}' AS ws (READ_ONLY)")
        schema = read_columns(con, "ws")
        parsed = parse_dp_query(sql, schema, resolve_units(schema))
        calibrated, _ = _plan(parsed, as_request(q(sql, 1.0, k)))
        statements.append(_sql(parsed, calibrated, k, 42))
        con.close()
    assert statements[0] == statements[1]
    assert "row_number() OVER (PARTITION BY __u" in statements[0][0]
