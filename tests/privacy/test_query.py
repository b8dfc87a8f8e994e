"""The DP query form: what is accepted, what is refused and what the refusal says."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from privacy.query import as_request, load_columns, parse_dp_query, resolve_units
from shuyu.errors import ValidationError

from .helpers import employment_like


@pytest.fixture(scope="module")
def schema(tmp_path_factory: pytest.TempPathFactory):
    return load_columns(employment_like(tmp_path_factory.mktemp("ws") / "ws.duckdb"))


def parse(schema, sql: str, unknown_keys: bool = False):
    return parse_dp_query(sql, schema, resolve_units(schema), unknown_keys=unknown_keys)


ACCEPTED = [
    # (query, datasets, groups, aggregate kinds)
    ("SELECT COUNT(*) FROM contributions", ("contributions",), (), ("count",)),
    (
        "SELECT district, COUNT(*), SUM(wage_base), AVG(wage_base) FROM contributions GROUP BY district",
        ("contributions",),
        ("district",),
        ("count", "sum", "avg"),
    ),
    (
        "select district as d, count(*) as n, quantile(wage_base, 0.9) as p90, median(pension_paid) "
        "from contributions group by district;",
        ("contributions",),
        ("d",),
        ("count", "quantile", "quantile"),
    ),
    (
        "SELECT district, COUNT(DISTINCT resident_id) FROM contributions GROUP BY ALL",
        ("contributions",),
        ("district",),
        ("count_distinct",),
    ),
    (
        "SELECT gender, AVG(wage_base) FROM contributions JOIN residents USING (resident_id) GROUP BY gender",
        ("contributions", "residents"),
        ("gender",),
        ("avg",),
    ),
    (
        "SELECT r.gender, c.district, COUNT(*) FROM contributions c JOIN residents r "
        "ON c.resident_id = r.resident_id GROUP BY r.gender, c.district",
        ("contributions", "residents"),
        ("gender", "district"),
        ("count",),
    ),
    (
        "SELECT e.industry, SUM(c.wage_base) FROM contributions c JOIN enterprises e "
        "ON c.enterprise_code = e.credit_code GROUP BY e.industry",
        ("contributions", "enterprises"),
        ("industry",),
        ("sum",),
    ),
    (
        "SELECT COUNT(*), MEAN(wage_base), COUNT(wage_base) FROM contributions WHERE district IN ('海南区', '乌达区') "
        "AND month BETWEEN DATE '2025-01-01' AND '2025-06-01' AND NOT (district = '海南区' OR month < '2024-03-01') "
        "AND month IS NOT NULL",
        ("contributions",),
        (),
        ("count", "avg", "count_column"),
    ),
    ("SELECT SUM(e.employees) FROM contributions c JOIN enterprises e ON c.enterprise_code = e.credit_code",
     ("contributions", "enterprises"), (), ("sum",)),
]  # fmt: skip


@pytest.mark.parametrize(("sql", "datasets", "groups", "kinds"), ACCEPTED)
def test_accepted(schema, sql, datasets, groups, kinds) -> None:
    parsed = parse(schema, sql)
    assert parsed.datasets == datasets
    assert tuple(g.name for g in parsed.groups) == groups
    assert tuple(a.kind for a in parsed.aggregates) == kinds
    assert parsed.unit.column == "resident_id"
    assert not parsed.unknown_keys


REJECTED = [
    # (query, words the message must contain)
    ("SELECT * FROM contributions", "SELECT * would release raw rows"),
    ("SELECT wage_base FROM contributions", "must aggregate"),
    ("SELECT district FROM contributions GROUP BY district", "must aggregate"),
    ("SELECT district, COUNT(*) FROM contributions", "without GROUP BY"),
    ("SELECT COUNT(*) FROM (SELECT * FROM contributions)", "subqueries are not supported"),
    ("SELECT COUNT(*) FROM contributions WHERE district IN (SELECT district FROM residents)", "subqueries"),
    ("SELECT COUNT(*) FROM contributions UNION SELECT COUNT(*) FROM residents", "UNION is not supported"),
    ("SELECT SUM(wage_base) OVER () FROM contributions", "window functions are not supported"),
    ("WITH x AS (SELECT * FROM contributions) SELECT COUNT(*) FROM x", "WITH"),
    ("SELECT SUM(bonus) FROM contributions", "has no bounds in the manifest"),
    ("SELECT AVG(bonus) FROM contributions", "has no bounds"),
    ("SELECT MEDIAN(bonus) FROM contributions", "has no bounds"),
    ("SELECT SUM(month) FROM contributions", "needs a numeric column"),
    ("SELECT birth_date, COUNT(*) FROM residents GROUP BY birth_date", "no declared public categories"),
    ("SELECT enterprise_code, COUNT(*) FROM contributions GROUP BY enterprise_code", "identifier"),
    ("SELECT wage_base, COUNT(*) FROM contributions GROUP BY wage_base", "sensitive column"),
    ("SELECT COUNT(*) FROM contributions WHERE wage_base > 5000", "sensitive column"),
    ("SELECT COUNT(*) FROM contributions WHERE resident_id = 'abc'", "identifiers or pseudonyms"),
    ("SELECT COUNT(*) FROM contributions WHERE district LIKE '海%'", "not a simple predicate"),
    ("SELECT COUNT(*) FROM contributions WHERE month = 5", "is a date"),
    ("SELECT COUNT(*) FROM contributions WHERE district = 3", "is text"),
    ("SELECT COUNT(*) FROM contributions WHERE district = NULL", "IS NULL"),
    ("SELECT COUNT(*) FROM contributions WHERE district = $1", "parameters"),
    ("SELECT MIN(wage_base) FROM contributions", "MIN/MAX"),
    ("SELECT MAX(wage_base) FROM contributions", "MIN/MAX"),
    ("SELECT SUM(wage_base * 2) FROM contributions", "plain column"),
    ("SELECT COUNT(*) + 1 FROM contributions", "expressions are not allowed in SELECT"),
    ("SELECT upper(district), COUNT(*) FROM contributions GROUP BY district", "UPPER() is not allowed"),
    ("SELECT COUNT(DISTINCT district) FROM contributions", "only supported on the person key"),
    ("SELECT COUNT(*) FILTER (WHERE district = '海南区') FROM contributions", "FILTER"),
    ("SELECT SUM(DISTINCT wage_base) FROM contributions", "DISTINCT is only supported"),
    ("SELECT QUANTILE(wage_base, [0.1, 0.9]) FROM contributions", "one literal q"),
    ("SELECT QUANTILE(wage_base, 1.5) FROM contributions", "in [0, 1]"),
    ("SELECT DISTINCT district FROM contributions", "DISTINCT"),
    ("SELECT district, COUNT(*) FROM contributions GROUP BY district HAVING COUNT(*) > 10", "HAVING"),
    ("SELECT district, COUNT(*) FROM contributions GROUP BY district ORDER BY 2", "ORDER BY"),
    ("SELECT COUNT(*) FROM contributions LIMIT 1", "LIMIT"),
    ("SELECT district, COUNT(*) FROM contributions GROUP BY ROLLUP (district)", "ROLLUP"),
    ("SELECT COUNT(*) FROM nosuch", "not in this project's workspace"),
    ("SELECT COUNT(*) FROM _shuyu_columns", "not in this project's workspace"),
    ("SELECT COUNT(*) FROM main.contributions", "qualified table names"),
    ("SELECT COUNT(*) FROM read_parquet('/etc/passwd')", "table functions are not supported"),
    ("SELECT COUNT(*) FROM '/etc/passwd'", "not in this project's workspace"),
    ("SELECT COUNT(*) FROM enterprises", "no privacy unit"),
    ("SELECT COUNT(*) FROM contributions, residents", "cross joins"),
    ("SELECT COUNT(*) FROM contributions LEFT JOIN residents USING (resident_id)", "LEFT JOIN"),
    ("SELECT COUNT(*) FROM contributions c JOIN residents r ON c.district = r.district", "person key"),
    ("SELECT COUNT(*) FROM contributions c JOIN enterprises e ON c.district = e.district", "not a granted join"),
    ("SELECT COUNT(*) FROM contributions c JOIN residents r USING (resident_id) JOIN enterprises e "
     "ON c.enterprise_code = e.credit_code", "at most one JOIN"),
    ("SELECT district, COUNT(*) FROM contributions JOIN residents USING (resident_id) GROUP BY district",
     "ambiguous"),
    ("SELECT nosuch, COUNT(*) FROM contributions GROUP BY nosuch", "no column nosuch"),
    ("SELECT COUNT(*) AS n, SUM(wage_base) AS n FROM contributions", "both named 'n'"),
    ("SELECT district, gender, COUNT(*) FROM contributions JOIN residents USING (resident_id) "
     "GROUP BY c.district", "not a table of this query"),
    ("SELECT district, COUNT(*) FROM contributions GROUP BY 1", "by position"),
    ("SELECT COUNT(*) FROM contributions; DROP TABLE contributions", "one SELECT statement"),
    ("SELECT COUNT(*) FROM contributions; SELECT COUNT(*) FROM residents", "exactly one SELECT"),
    ("DELETE FROM contributions", "one SELECT statement"),
    ("SELEC COUNT(*) FROM contributions", "not valid SQL"),
    ("", "empty"),
]  # fmt: skip


@pytest.mark.parametrize(("sql", "words"), REJECTED)
def test_rejected(schema, sql, words) -> None:
    with pytest.raises(ValidationError) as err:
        parse(schema, sql)
    assert err.value.field == "dp.query"
    assert words in err.value.message, err.value.message
    assert err.value.fix, f"no fix for: {err.value.message}"


def test_unknown_keys_needs_the_opt_in(schema) -> None:
    sql = "SELECT birth_date, COUNT(*) FROM residents GROUP BY birth_date"
    with pytest.raises(ValidationError, match="unknown-keys mode"):
        parse(schema, sql)
    parsed = parse(schema, sql, unknown_keys=True)
    assert parsed.unknown_keys and parsed.groups[0].categories is None
    # the opt-in never allows grouping by identifiers or sensitive values
    with pytest.raises(ValidationError, match="identifier"):
        parse(schema, "SELECT resident_id, COUNT(*) FROM residents GROUP BY resident_id", True)
    with pytest.raises(ValidationError, match="sensitive"):
        parse(schema, "SELECT wage_base, COUNT(*) FROM contributions GROUP BY wage_base", True)


def test_top_bottom_code_tightens_the_manifest_bounds(schema) -> None:
    parsed = parse(
        schema,
        "SELECT SUM(e.employees) FROM contributions c JOIN enterprises e ON c.enterprise_code = e.credit_code",
    )
    assert parsed.aggregates[0].bounds == (1.0, 2000.0)


def test_literals_are_bound_not_spliced(schema) -> None:
    parsed = parse(schema, "SELECT COUNT(*) FROM contributions WHERE district = 'x'' OR 1=1 --'")
    assert "OR 1=1" not in (parsed.where_sql or "")
    assert parsed.where_params == ("x' OR 1=1 --",)


def test_request_accepts_the_job_spec_model() -> None:
    from jobs.spec import DPQuery

    request = as_request(
        DPQuery(query="SELECT COUNT(*) FROM contributions;", epsilon=0.5, max_contributions=3)
    )
    assert request.query == "SELECT COUNT(*) FROM contributions"
    assert (request.epsilon, request.max_contributions, request.delta) == (0.5, 3, None)
    with pytest.raises(ValidationError, match="delta"):
        as_request({"query": "SELECT COUNT(*) FROM t", "epsilon": 1.0, "delta": 0.5})
    with pytest.raises(ValidationError, match="epsilon"):
        as_request({"query": "SELECT COUNT(*) FROM t", "epsilon": 0})


def test_error_text_carries_where_and_how_to_fix(schema) -> None:
    with pytest.raises(ValidationError) as err:
        parse(schema, "SELECT SUM(bonus) FROM contributions")
    text = str(err.value)
    assert text.startswith("dp.query: ")
    assert "add `bounds: [low, high]`" in text


def test_workspace_that_is_not_one(tmp_path: Path) -> None:
    import duckdb

    from shuyu.errors import PlatformError

    duckdb.connect(str(tmp_path / "x.duckdb")).close()
    with pytest.raises(PlatformError, match="not a shuyu workspace"):
        load_columns(tmp_path / "x.duckdb")


FRAGMENTS = [
    "SELECT", "COUNT(*)", "SUM(wage_base)", "AVG(bonus)", "district", ",", "FROM", "contributions",
    "residents", "JOIN", "USING (resident_id)", "WHERE", "district = '海南区'", "GROUP BY", "ALL",
    "(", ")", "UNION", "OVER ()", "*", "1", ";", "AS x", "HAVING", "resident_id", "DISTINCT",
    "QUANTILE(wage_base, 0.5)", "month >= DATE '2025-01-01'", "OR", "AND", "NOT", "'", "--",
]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=14)
    | st.text(max_size=80).map(lambda t: [t])
)
def test_any_input_is_accepted_or_refused_cleanly(schema, parts) -> None:
    """Whatever the text, the parser answers with a result or a ValidationError, nothing else."""
    try:
        parsed = parse(schema, " ".join(parts))
    except ValidationError as exc:
        assert exc.field == "dp.query" and exc.fix
    else:
        assert parsed.aggregates and parsed.unit.column == "resident_id"
