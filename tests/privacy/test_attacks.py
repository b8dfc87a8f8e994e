"""Issue 14's defects as the analyst sent them, on real DuckDB and both stores.

Each test is the query an attacker would submit (an existence probe through a failing cast, a
quantile over heavily tied data, a low-bit read of released sums), run through the DP service
that a production job uses, then the assertion on what the attacker sees afterwards and what it
cost them.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import pandas as pd
import pytest

import privacy.predicates as predicates
import privacy.service as service
from privacy import noise
from privacy.budget import Caps, spends, used
from privacy.engine import prepare_dp_query
from privacy.request import DP_FAILED, DPQueryFailed
from shuyu.errors import ValidationError
from shuyu.platform import Platform

from .helpers import Col, person, write_workspace

PROJECT = "employment-insights"
CAPS = Caps(5.0, 1e-6)
STAFF = [
    person(),
    Col("district", "VARCHAR", "string", "quasi_identifier", categories=["a", "b", "c"]),
    Col("employees", "BIGINT", "integer", "attribute", bounds=[1, 2000]),
    Col("value", "DOUBLE", "float", "sensitive", bounds=[0, 100]),
]


def staff(path: Path, target: bool) -> Path:
    """50 persons in district a; with `target`, one more person alone in district c."""
    rows = [(f"p{i}", "a", 10 + i, float(i % 100)) for i in range(50)]
    if target:
        rows.append(("target", "c", 7, 100.0))
    return write_workspace(path, {"staff": (STAFF, rows)})


def ask(platform: Platform, ws: Path, sql: str, epsilon: float = 1.0, job: str = "job", **extra):
    request = {"query": sql, "epsilon": epsilon, "max_contributions": 1, **extra}
    return service.run_dp_action(
        platform, PROJECT, job, ws, request, caps=CAPS, unit_column="person_id"
    )


# --------------------------------------------------------------------------- 1. no free failures

PROBES = [
    "SELECT COUNT(*) AS n FROM staff WHERE district = 'c' AND employees <> 99999999999999999999",
    "SELECT COUNT(*) AS n FROM staff WHERE district = 'c' AND employees IN (1, 99999999999999999999)",
    "SELECT COUNT(*) AS n FROM staff WHERE district = 'c' AND employees < 1e400",
    "SELECT COUNT(*) AS n FROM staff WHERE district = 'c' AND employees BETWEEN 5 AND 30000",
    "SELECT COUNT(*) AS n FROM staff WHERE district = 'c' OR employees = -5",
]


@pytest.mark.parametrize("probe", PROBES)
def test_a_failing_cast_existence_probe_is_refused_before_reading_whatever_the_data(
    any_platform: Platform, tmp_path: Path, probe: str
) -> None:
    seen = []
    for target in (False, True):
        ws = staff(tmp_path / f"{target}.duckdb", target)
        with pytest.raises(ValidationError) as err:
            ask(any_platform, ws, probe)
        seen.append(str(err.value))
    empty, present = seen
    assert empty == present  # the refusal does not depend on whether the cell has anyone
    assert "employees" in empty and ("outside" in empty or "finite" in empty)
    assert used(any_platform, PROJECT, "unit:person_id") == 0.0  # nothing was read


def test_if_a_query_ever_fails_after_reading_it_is_charged_and_says_one_fixed_thing(
    any_platform: Platform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defence in depth: the same probe with the literal check switched off (the old parser)
    reaches DuckDB; whatever happens there, the ε is spent and the message is the fixed one."""
    monkeypatch.setattr(predicates, "_check_fits", lambda *args: None)
    outcomes = []
    for i, target in enumerate((False, True)):
        ws = staff(tmp_path / f"{target}.duckdb", target)
        try:
            ask(any_platform, ws, PROBES[0], job=f"job-{i}")
            outcomes.append("released")
        except DPQueryFailed as exc:
            assert exc.message == DP_FAILED and str(exc) == str(DPQueryFailed())
            outcomes.append("failed")
        assert used(any_platform, PROJECT, "unit:person_id") == pytest.approx(i + 1.0)
    assert "failed" in outcomes  # the old probe does break the engine on one of the two...
    assert {s["status"] for s in spends(any_platform, PROJECT)} == {"spent"}  # ...never free


def ties(path: Path, zeros: int, n: int = 5000, extra: list | None = None) -> Path:
    rows = [(f"p{i}", "a", 10, 0.0 if i < zeros else float(1 + i % 100)) for i in range(n)]
    return write_workspace(path, {"staff": (STAFF, rows + (extra or []))})


def test_a_quantile_over_heavy_ties_neither_crashes_nor_depends_on_one_person(
    any_platform: Platform, tmp_path: Path
) -> None:
    """3,991 zeros of 5,000 crashed diffprivlib's quantile (3,990 did not), and was refunded."""
    sql = "SELECT MEDIAN(value) AS m, QUANTILE(value, 0.9) AS p90 FROM staff"
    for i, zeros in enumerate((3990, 3991, 4999, 5000)):
        ws = ties(tmp_path / f"{zeros}.duckdb", zeros)
        result, reservation = ask(any_platform, ws, sql, 1.0, job=f"job-{i}")
        assert reservation.epsilon == 1.0
        for column in ("m", "p90"):
            value = float(result.table[column][0])
            assert 0 <= value <= 100 and math.isclose(value * 40, round(value * 40))  # on the grid
    assert used(any_platform, PROJECT, "unit:person_id") == pytest.approx(4.0)


def test_a_crash_in_the_quantile_sampler_is_charged_with_the_fixed_message(
    any_platform: Platform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(*args, **kwargs):
        raise ZeroDivisionError("0/0 in the exponential mechanism at 3991 ties")

    monkeypatch.setattr("privacy.quantiles.noisy_min_index", crash)
    ws = ties(tmp_path / "w.duckdb", 3991)
    with pytest.raises(DPQueryFailed) as err:
        ask(any_platform, ws, "SELECT MEDIAN(value) AS m FROM staff", 1.0)
    assert err.value.message == DP_FAILED and "3991" not in str(err.value)
    assert used(any_platform, PROJECT, "unit:person_id") == 1.0


@pytest.mark.parametrize("q", [0.5, 0.9, 0.1])
@pytest.mark.parametrize("k", [1, 3])
def test_neighbouring_datasets_with_heavy_ties_give_quantiles_within_e_to_the_epsilon(
    tmp_path: Path, q: float, k: int
) -> None:
    """The exact output distributions on D and on D plus one person (k rows, placed at the
    tie or at the far end) differ by at most a factor e^ε at every grid point."""
    from privacy.quantiles import counts_vector, output_log_probabilities

    epsilon = 1.0
    sql = {
        "query": f"SELECT QUANTILE(value, {q}) AS x FROM staff",
        "epsilon": epsilon,
        "max_contributions": k,
    }
    base = ties(tmp_path / "d.duckdb", 3991)
    worst = 0.0
    for where in (0.0, 100.0, 55.0):
        extra = [("neighbour", "a", 10, where)] * (k + 2)  # more rows than k: bounded to k
        other = ties(tmp_path / f"d-{where}.duckdb", 3991, extra=extra)
        dists = []
        for ws in (base, other):
            prepared = prepare_dp_query(ws, sql, unit_column="person_id", seed=1)
            (c,) = prepared.calibrated
            counts = counts_vector(prepared.true[0][0], c.measurement.grid.points)
            dists.append(output_log_probabilities(counts, q, c.scale))
        worst = max(worst, float(abs(dists[0] - dists[1]).max()))
    assert worst <= epsilon + 1e-9
    assert worst > epsilon / 10  # the neighbour does move the distribution: the test has teeth


def test_the_quantile_sampler_draws_the_stated_distribution(tmp_path: Path) -> None:
    from privacy.quantiles import counts_vector, output_probabilities, release_quantile

    ws = ties(tmp_path / "d.duckdb", 3991)
    sql = {"query": "SELECT MEDIAN(value) AS x FROM staff", "epsilon": 0.05}
    prepared = prepare_dp_query(ws, sql, unit_column="person_id", seed=1)
    (c,) = prepared.calibrated
    grid = c.measurement.grid
    counts = counts_vector(prepared.true[0][0], grid.points)
    expected = output_probabilities(counts, 0.5, c.scale)
    draws = [release_quantile(counts, grid, 0.5, c.scale) for _ in range(1500)]
    index = pd.Series([round((d - grid.lo) / grid.step) for d in draws]).value_counts(
        normalize=True
    )
    observed = index.reindex(range(grid.points), fill_value=0.0).to_numpy()
    assert abs(observed - expected).sum() / 2 < 0.08  # total variation, ~3x its sampling noise


# --------------------------------------------------------------------------- 2. exact noise


def test_the_low_bits_of_released_sums_cannot_rule_out_either_hypothesis(tmp_path: Path) -> None:
    """Mironov's attack: the analyst makes a cell small with WHERE, then reads the released
    sum's low bits (through the CSV the job gets) to rule out "target present" or "cell empty".
    Every released value lies on a lattice 2^g fixed by the public scale, and every point of it
    can be released under both hypotheses: nothing in the low bits can rule either out."""
    sql = {"query": "SELECT district, SUM(value) AS s FROM staff GROUP BY district", "epsilon": 1.0}
    lattice = set()
    released: dict[bool, list[float]] = {}
    for target in (False, True):
        ws = staff(tmp_path / f"{target}.duckdb", target)
        prepared = prepare_dp_query(ws, sql, unit_column="person_id", seed=1)
        (c,) = prepared.calibrated
        g = noise.lattice_exponent(c.scale)
        lattice.add(g)
        values = []
        for _ in range(200):
            csv = io.StringIO()
            prepared.release().table.to_csv(csv, index=False)  # what the runner writes
            table = pd.read_csv(io.StringIO(csv.getvalue()))
            values.append(float(table.set_index("district").loc["c", "s"]))
        released[target] = values
    (g,) = lattice  # the lattice depends on the public scale only, not on the data
    assert g <= math.log2(200) - 30
    for target, values in released.items():
        assert all((v / 2.0**g).is_integer() for v in values), target
        assert len(set(values)) > 150  # real noise, not a constant
    # both true sums (0 and 100) are lattice points too, so each hypothesis can produce each value
    assert (0 / 2.0**g).is_integer() and (100 / 2.0**g).is_integer()


def test_the_low_bit_check_does_catch_floating_point_laplace() -> None:
    """The same lattice check on diffprivlib's float Laplace (the old mechanism) fails."""
    from diffprivlib.mechanisms import Laplace

    mech = Laplace(epsilon=1.0, sensitivity=100.0)
    g = noise.lattice_exponent(100.0)
    values = [mech.randomise(100.0) for _ in range(200)]
    assert sum((v / 2.0**g).is_integer() for v in values) < 20
