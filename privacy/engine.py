"""Evaluate a checked DP query over a workspace in DuckDB and release noisy cells.

Pipeline (all inside the platform; the analyst's sandbox never sees a true value):

1. Parse and check the query against the workspace's `_shuyu_columns` (privacy.query).
2. One DuckDB statement over the workspace (ATTACHed read-only), vectorised:
   - filter rows (WHERE, public categories, non-null person key);
   - contribution bounding: keep at most `max_contributions` (k) rows per person, chosen by
     `ROW_NUMBER() OVER (PARTITION BY person ORDER BY hash(person, used columns, seed))`. The
     order depends only on that person's own rows and a secret seed, so adding or removing a
     person changes at most k rows of the bounded relation. As every person has at most k
     rows, they also touch at most k groups with at most k rows each (per-group bound).
     How it is computed depends on cached row-count histograms of the workspace tables (see
     `_strategy`): no ranking when no person can exceed k rows, ranking only the persons above
     k when they hold under half the rows, else ranking everyone. The rows kept are the same;
   - clamp every aggregated value to its manifest bounds [lo, hi];
   - one GROUP BY computing, per group, the true bounded measurements: COUNT(*), COUNT(col),
     COUNT(DISTINCT person), SUM(clamped col), LIST(clamped col) for quantiles.
3. Noise per cell, from diffprivlib's mechanisms (sequential composition over measurements):
   - the query's ε is split EQUALLY over its distinct measurements (AVG(x) = SUM(x) and COUNT(x);
     measurements shared between aggregates are computed once, e.g. SUM(x) with AVG(x));
   - counts: `Geometric` (two-sided geometric), sensitivity k (COUNT(DISTINCT person): k, or the
     number of public cells if smaller) — L1 over the whole vector of cells, so the same noise
     scale protects every cell at once;
   - sums: `Laplace`, sensitivity k * max(|lo|, |hi|), scale b = sensitivity / ε_m;
   - quantiles: diffprivlib's exponential-mechanism `tools.quantile` over the group's bounded,
     clamped values. It treats each row as one individual (sensitivity 1), so it is called with
     ε_m / k: a person's ≤ k rows (spread over groups) then cost at most ε_m in total;
   - AVG = noisy SUM / noisy COUNT(x), clipped to [lo, hi] (NaN when the noisy count is ≤ 0).
     diffprivlib.tools.mean / sum / count_nonzero are NOT used: they treat the group size as
     public or clip with the true count.
4. Groups. With public categories every combination of categories is released, including
   empty ones, so the group set leaks nothing (rows outside the categories are dropped). In
   unknown-keys mode a group is released only if its noisy COUNT(*) ≥ τ, with
       τ = k + ceil((k / ε_c) · ln(k / (δ (1 + α)))),   α = exp(-ε_c / k),
   ε_c the count's share of ε. A group that exists only because of one person has a true
   count ≤ k and that person touches ≤ k groups, so P(any such group released)
   ≤ k · α^(τ-k) / (1 + α) ≤ δ: the release is (ε, δ)-DP.
5. 95% error bounds per cell (data-independent except AVG, which uses only noisy values):
   - Laplace: b · ln(1 / 0.05);
   - geometric: the smallest m with P(|Z| > m) = 2 α^(m+1) / (1 + α) ≤ 0.05, α = exp(-ε_m / Δ);
   - AVG: conservative: 97.5% bounds on the noisy sum (B_s) and on the noisy count (B_c) (union
     bound → 95%); the true mean lies in {s / n : |s - S'| ≤ B_s, |n - N'| ≤ B_c, n ≥ 1}
     ∩ [lo, hi]; the bound is the larger distance from the released mean to that interval's ends;
   - quantiles: none (NaN): the exponential mechanism's error is in ranks, not values.
   These bounds cover the noise only, not the bias from clamping or contribution bounding.
"""

from __future__ import annotations

import json
import math
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path
from typing import Any, Literal

import duckdb
import numpy as np
import pandas as pd
from diffprivlib.accountant import BudgetAccountant
from diffprivlib.mechanisms import Geometric, Laplace
from diffprivlib.tools import quantile as dp_quantile

from privacy.query import (
    Aggregate,
    ColRef,
    DPRequest,
    ParsedQuery,
    as_request,
    parse_dp_query,
    read_columns,
    resolve_units,
)
from shuyu.errors import PlatformError, ValidationError

BETA = 0.05  # error bounds are 1 - BETA = 95%
MAX_CELLS = 100_000  # public-category grids larger than this are refused

MeasureKind = Literal["count", "count_column", "count_distinct", "sum", "quantile"]


@dataclass(frozen=True)
class Measurement:
    key: str
    kind: MeasureKind
    ref: ColRef | None = None
    q: float | None = None
    bounds: tuple[float, float] | None = None


@dataclass(frozen=True)
class Calibrated:
    measurement: Measurement
    epsilon: float
    sensitivity: float
    mechanism: str  # geometric | laplace | exponential
    scale: float | None  # Laplace b; geometric alpha; exponential: per-row epsilon
    error95: float | None  # data-independent 95% bound, None for quantiles


@dataclass
class DPResult:
    """A released DP table and what it cost.

    `table` holds the group columns and the noisy aggregates (in SELECT order). Per output
    column: `mechanisms`, `epsilon_by_column` (ε of the measurements it uses; shared ones count
    for each column that uses them, the query total is `epsilon`) and `error_bounds` (one 95%
    bound per row of `table`; NaN where none is given). `cells()` is the long form with that
    metadata on every cell. `datasets` are the datasets whose budget the query spends.
    """

    table: pd.DataFrame
    epsilon: float
    delta: float
    mechanisms: dict[str, str]
    error_bounds: dict[str, list[float]]
    epsilon_by_column: dict[str, float]
    datasets: tuple[str, ...]
    notes: list[str]
    query: str
    max_contributions: int
    group_columns: tuple[str, ...]
    threshold: float | None = None
    measurements: list[dict[str, Any]] = field(default_factory=list)

    def cells(self) -> pd.DataFrame:
        rows = []
        for i in range(len(self.table)):
            groups = {g: self.table[g].iloc[i] for g in self.group_columns}
            for col in self.mechanisms:
                rows.append(
                    {
                        **groups,
                        "column": col,
                        "value": self.table[col].iloc[i],
                        "epsilon": self.epsilon_by_column[col],
                        "mechanism": self.mechanisms[col],
                        "error95": self.error_bounds[col][i],
                    }
                )
        columns = [*self.group_columns, "column", "value", "epsilon", "mechanism", "error95"]
        return pd.DataFrame(rows, columns=columns)

    def metadata(self) -> dict[str, Any]:
        return {
            "query": self.query,
            "epsilon": self.epsilon,
            "delta": self.delta,
            "max_contributions": self.max_contributions,
            "datasets": list(self.datasets),
            "threshold": self.threshold,
            "columns": {
                c: {
                    "mechanism": self.mechanisms[c],
                    "epsilon": self.epsilon_by_column[c],
                    "error95": [None if _isnan(v) else v for v in self.error_bounds[c]],
                }
                for c in self.mechanisms
            },
            "measurements": self.measurements,
            "notes": self.notes,
        }

    def to_parquet(self, path: Path | str, form: Literal["wide", "cells"] = "wide") -> Path:
        """Write the table (or its cells) with the DP metadata in the Parquet key-value metadata."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        frame = self.table if form == "wide" else self.cells()
        table = pa.Table.from_pandas(frame, preserve_index=False)
        meta = dict(table.schema.metadata or {})
        meta[b"shuyu.dp"] = json.dumps(self.metadata(), ensure_ascii=False, default=str).encode()
        target = Path(path)
        pq.write_table(table.replace_schema_metadata(meta), target)
        return target


def _isnan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


# --------------------------------------------------------------------------- noise helpers


def geometric_alpha(epsilon: float, sensitivity: float) -> float:
    return math.exp(-epsilon / sensitivity)


def geometric_error(epsilon: float, sensitivity: float, beta: float = BETA) -> float:
    """Smallest integer m with P(|Z| > m) ≤ beta for the two-sided geometric noise Z."""
    alpha = geometric_alpha(epsilon, sensitivity)
    # P(|Z| > m) = P(|Z| >= m + 1) = 2 alpha^(m+1) / (1 + alpha)
    m = math.ceil(math.log(beta * (1 + alpha) / 2) / math.log(alpha)) - 1
    while m > 0 and 2 * alpha**m / (1 + alpha) <= beta:  # guard against rounding
        m -= 1
    return float(max(m, 0))


def laplace_error(scale: float, beta: float = BETA) -> float:
    return scale * math.log(1 / beta)


def unknown_keys_threshold(epsilon_count: float, k: int, delta: float) -> float:
    """τ such that a group made by one person (count ≤ k, ≤ k such groups) passes w.p. ≤ δ."""
    alpha = geometric_alpha(epsilon_count, k)
    return float(k + math.ceil((k / epsilon_count) * math.log(k / (delta * (1 + alpha)))))


def avg_interval(
    noisy_sum: float, noisy_count: float, b_sum: float, b_count: float, lo: float, hi: float
) -> tuple[float, float]:
    """Where the true mean lies if |sum error| ≤ b_sum and |count error| ≤ b_count."""
    n1, n2 = max(noisy_count - b_count, 1.0), noisy_count + b_count
    if n2 < 1:
        return lo, hi
    s1, s2 = noisy_sum - b_sum, noisy_sum + b_sum
    low = min(s1 / n1, s1 / n2)
    high = max(s2 / n1, s2 / n2)
    return max(lo, low), min(hi, high)


# --------------------------------------------------------------------------- planning


def _plan(parsed: ParsedQuery, request: DPRequest) -> tuple[list[Calibrated], dict[str, list[str]]]:
    """Measurements, their share of ε and their mechanism; aggregate name -> measurement keys."""
    measurements: dict[str, Measurement] = {}
    uses: dict[str, list[str]] = {}

    def need(m: Measurement) -> str:
        measurements.setdefault(m.key, m)
        return m.key

    for agg in parsed.aggregates:
        uses[agg.name] = _measurements_for(agg, need)
    if parsed.unknown_keys:
        need(Measurement("count", "count"))  # the selection count (released only if asked for)
    k = request.max_contributions
    eps_m = request.epsilon / len(measurements)
    cells = _grid_size(parsed)
    calibrated = []
    for m in measurements.values():
        if m.kind in ("count", "count_column"):
            sens = float(k)
            calibrated.append(
                Calibrated(
                    m,
                    eps_m,
                    sens,
                    "geometric",
                    geometric_alpha(eps_m, sens),
                    geometric_error(eps_m, sens),
                )
            )
        elif m.kind == "count_distinct":
            sens = float(min(k, cells)) if cells else float(k)
            calibrated.append(
                Calibrated(
                    m,
                    eps_m,
                    sens,
                    "geometric",
                    geometric_alpha(eps_m, sens),
                    geometric_error(eps_m, sens),
                )
            )
        elif m.kind == "sum":
            assert m.bounds is not None
            sens = k * max(abs(m.bounds[0]), abs(m.bounds[1]))
            scale = sens / eps_m
            calibrated.append(Calibrated(m, eps_m, sens, "laplace", scale, laplace_error(scale)))
        else:
            calibrated.append(Calibrated(m, eps_m, float(k), "exponential", eps_m / k, None))
    return calibrated, uses


def _measurements_for(agg: Aggregate, need: Any) -> list[str]:
    ref = agg.ref
    col = ref.sql if ref is not None else ""
    if agg.kind == "count":
        return [need(Measurement("count", "count"))]
    if agg.kind == "count_column":
        return [need(Measurement(f"count:{col}", "count_column", ref))]
    if agg.kind == "count_distinct":
        return [need(Measurement("units", "count_distinct", ref))]
    if agg.kind == "sum":
        return [need(Measurement(f"sum:{col}", "sum", ref, None, agg.bounds))]
    if agg.kind == "avg":
        return [
            need(Measurement(f"sum:{col}", "sum", ref, None, agg.bounds)),
            need(Measurement(f"count:{col}", "count_column", ref)),
        ]
    return [need(Measurement(f"quantile:{col}:{agg.q!r}", "quantile", ref, agg.q, agg.bounds))]


def _grid_size(parsed: ParsedQuery) -> int | None:
    if parsed.unknown_keys:
        return None
    return math.prod(len(g.categories or ()) for g in parsed.groups) if parsed.groups else 1


def _sql(
    parsed: ParsedQuery,
    calibrated: list[Calibrated],
    k: int,
    seed: int,
    strategy: Strategy = "window",
) -> tuple[str, list[Any]]:
    """The one statement computing the true bounded measurements per group.

    `strategy` only changes the cost, never the result: "window" ranks every person's rows,
    "split" ranks only persons with more than k rows, "none" is used when no person can
    have more than k rows in this relation (see `_strategy`).
    """
    params: list[Any] = []
    select: list[str] = [f"{parsed.unit.sql} AS __u"]
    hashed = ["__u"]
    for i, g in enumerate(parsed.groups):
        expr = f"CAST({g.ref.sql} AS VARCHAR)" if g.categories is not None else g.ref.sql
        select.append(f"{expr} AS g{i}")
        hashed.append(f"g{i}")
    values: dict[str, str] = {}  # key -> inner column name
    for c in calibrated:
        m = c.measurement
        if m.kind in ("sum", "quantile") and m.ref is not None:
            key = f"v:{m.ref.sql}"
            if key not in values:
                lo, hi = m.bounds  # type: ignore[misc]
                values[key] = f"v{len(values)}"
                select.append(
                    f"least(greatest(CAST({m.ref.sql} AS DOUBLE), {lo!r}::DOUBLE), {hi!r}::DOUBLE) AS {values[key]}"
                )
                hashed.append(values[key])
        if m.kind == "count_column" and m.ref is not None:
            key = f"r:{m.ref.sql}"
            if key not in values:
                values[key] = f"v{len(values)}"
                select.append(f"({m.ref.sql} IS NOT NULL) AS {values[key]}")
                hashed.append(values[key])
    tables = [f'ws."{t.dataset}" AS t{i}' for i, t in enumerate(parsed.tables)]
    source = tables[0]
    if parsed.join_keys is not None:
        a, b = parsed.join_keys
        source += f" JOIN {tables[1]} ON {a.sql} = {b.sql}"
    where = [f"{parsed.unit.sql} IS NOT NULL"]
    if parsed.where_sql:
        where.append(parsed.where_sql)
        params.extend(parsed.where_params)
    for g in parsed.groups:
        if g.categories is not None:
            where.append(f"list_contains(?::VARCHAR[], CAST({g.ref.sql} AS VARCHAR))")
            params.append(list(g.categories))
    inner = f"SELECT {', '.join(select)} FROM {source} WHERE {' AND '.join(where)}"
    order = f"hash({', '.join(hashed)}, ?::UBIGINT)"
    rank = f"QUALIFY row_number() OVER (PARTITION BY __u ORDER BY {order}) <= {int(k)}"
    if strategy == "none":  # no person can have more than k rows here: nothing to drop
        bounded = inner
    elif strategy == "split":  # persons with <= k rows keep them all unsorted; rank the others
        bounded = (
            f"WITH src AS MATERIALIZED (SELECT *, count(*) OVER (PARTITION BY __u) AS __c "
            f"FROM ({inner})) "
            f"SELECT * EXCLUDE (__c) FROM src WHERE __c <= {int(k)} "
            f"UNION ALL SELECT * EXCLUDE (__c) FROM src WHERE __c > {int(k)} {rank}"
        )
        params.append(seed)
    else:
        bounded = f"{inner} {rank}"
        params.append(seed)
    outer: list[str] = [f"g{i}" for i in range(len(parsed.groups))]
    for j, c in enumerate(calibrated):
        m = c.measurement
        if m.kind == "count":
            outer.append(f"count(*) AS m{j}")
        elif m.kind == "count_column":
            outer.append(f"count_if(v{_idx(values, 'r', m)}) AS m{j}")
        elif m.kind == "count_distinct":
            outer.append(f"count(DISTINCT __u) AS m{j}")
        elif m.kind == "sum":
            outer.append(f"coalesce(sum(v{_idx(values, 'v', m)}), 0)::DOUBLE AS m{j}")
        else:
            v = f"v{_idx(values, 'v', m)}"
            outer.append(f"list({v}) FILTER (WHERE {v} IS NOT NULL) AS m{j}")
    group_by = (
        f" GROUP BY {', '.join(f'g{i}' for i in range(len(parsed.groups)))}"
        if parsed.groups
        else ""
    )
    sql = f"SELECT {', '.join(outer)} FROM ({bounded}) AS bounded{group_by}"
    return sql, params


def _idx(values: Mapping[str, str], prefix: str, m: Measurement) -> str:
    assert m.ref is not None
    return values[f"{prefix}:{m.ref.sql}"][1:]


Strategy = Literal["none", "split", "window"]
_STATS: dict[tuple[Any, ...], dict[int, int]] = {}  # workspace column -> {rows per value: values}
_STATS_MAX = 256


def _rows_per_value(
    con: duckdb.DuckDBPyConnection, path: Path, dataset: str, column: str
) -> dict[int, int]:
    """Histogram of rows per non-null value of a workspace column (cached: workspaces are immutable)."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns, dataset, column)
    if key not in _STATS:
        if len(_STATS) >= _STATS_MAX:
            _STATS.clear()
        rows = con.execute(
            f'SELECT c, count(*) FROM (SELECT count(*) AS c FROM ws."{dataset}" '
            f'WHERE "{column}" IS NOT NULL GROUP BY "{column}") GROUP BY c'
        ).fetchall()
        _STATS[key] = {int(c): int(n) for c, n in rows}
    return _STATS[key]


def _strategy(con: duckdb.DuckDBPyConnection, path: Path, parsed: ParsedQuery, k: int) -> Strategy:
    """The cheapest way to bound contributions that gives the same rows as ranking everyone.

    From per-column row-count histograms of the (immutable) workspace tables: if no person can
    have more than k rows in the query's relation, bounding is a no-op; for one table, when
    persons above k hold under half the rows, only they are ranked. Only the running time
    depends on this choice (a timing side channel common to every SQL engine), not the output.
    """
    unit = parsed.unit
    per_person = _rows_per_value(con, path, parsed.tables[unit.table].dataset, unit.column)
    if parsed.join_keys is None:
        total = sum(c * n for c, n in per_person.items())
        over = sum(c * n for c, n in per_person.items() if c > k)
        if over == 0:
            return "none"
        return "split" if 2 * over < total else "window"
    a, b = parsed.join_keys
    other = b if a.table == unit.table else a
    per_key = _rows_per_value(con, path, parsed.tables[other.table].dataset, other.column)
    # a person's rows in the join <= their rows x the most rows any join key has on the other side
    bound = max(per_person, default=0) * max(per_key, default=0)
    return "none" if bound <= k else "window"


# --------------------------------------------------------------------------- preparation / release


@dataclass
class PreparedDPQuery:
    """True bounded measurements of one query, ready for noise. Never leaves the platform.

    `release()` may be called once per budget reservation; repeated releases of the same
    prepared query each cost the full ε (tests use this to draw many releases cheaply).
    """

    request: DPRequest
    parsed: ParsedQuery
    calibrated: list[Calibrated]
    uses: dict[str, list[str]]
    keys: list[tuple[Any, ...]]  # group values, one tuple per cell
    true: list[list[Any]]  # per measurement (calibrated order), one value per cell
    threshold: float | None

    def release(self, random_state: int | np.random.RandomState | None = None) -> DPResult:
        if isinstance(random_state, int | np.integer):
            rs: np.random.RandomState | None = np.random.RandomState(int(random_state))
        else:
            rs = random_state
        # exponential-mechanism draws need a RandomState; without a seed: fresh OS entropy
        rs_q = (
            rs
            if rs is not None
            else np.random.RandomState(np.random.MT19937(np.random.SeedSequence()))
        )
        k = self.request.max_contributions
        noisy: list[list[Any]] = []
        for c, values in zip(self.calibrated, self.true, strict=True):
            m = c.measurement
            if c.mechanism == "geometric":
                mech = Geometric(epsilon=c.epsilon, sensitivity=int(c.sensitivity), random_state=rs)
                noisy.append([mech.randomise(int(v)) for v in values])
            elif c.mechanism == "laplace":
                mech_l = Laplace(
                    epsilon=c.epsilon, delta=0.0, sensitivity=c.sensitivity, random_state=rs
                )
                noisy.append([mech_l.randomise(float(v)) for v in values])
            else:
                assert m.bounds is not None and m.q is not None
                out = []
                for arr in values:
                    array = np.asarray(arr if arr is not None else [], dtype=float)
                    out.append(
                        float(
                            dp_quantile(
                                array,
                                m.q,
                                epsilon=c.epsilon / k,
                                bounds=m.bounds,
                                random_state=rs_q,
                                accountant=BudgetAccountant(),
                            )
                        )
                    )
                noisy.append(out)
        by_key = {c.measurement.key: (c, noisy[j]) for j, c in enumerate(self.calibrated)}
        n = len(self.keys)
        keep = list(range(n))
        if self.threshold is not None:
            counts = by_key["count"][1]
            keep = [i for i in range(n) if counts[i] >= self.threshold]

        group_names = [g.name for g in self.parsed.groups]
        data: dict[str, list[Any]] = {
            g: [self.keys[i][j] for i in keep] for j, g in enumerate(group_names)
        }
        mechanisms: dict[str, str] = {}
        errors: dict[str, list[float]] = {}
        eps_col: dict[str, float] = {}
        for agg in self.parsed.aggregates:
            used = [by_key[key] for key in self.uses[agg.name]]
            eps_col[agg.name] = sum(c.epsilon for c, _ in used)
            if agg.kind == "avg":
                (cs, sums), (cc, counts) = used
                lo, hi = agg.bounds  # type: ignore[misc]
                b_s = laplace_error(cs.scale, BETA / 2)  # type: ignore[arg-type]
                b_c = geometric_error(cc.epsilon, cc.sensitivity, BETA / 2)
                vals, errs = [], []
                for i in keep:
                    if counts[i] <= 0:
                        vals.append(math.nan)
                        errs.append(math.nan)
                        continue
                    avg = float(min(max(sums[i] / counts[i], lo), hi))
                    a_lo, a_hi = avg_interval(sums[i], counts[i], b_s, b_c, lo, hi)
                    vals.append(avg)
                    errs.append(
                        float(max(avg - a_lo, a_hi - avg, 0.0)) if a_lo <= a_hi else float(hi - lo)
                    )
                data[agg.name] = vals
                errors[agg.name] = errs
                mechanisms[agg.name] = "laplace sum / geometric count"
            else:
                c, values = used[0]
                data[agg.name] = [values[i] for i in keep]
                bound = c.error95 if c.error95 is not None else math.nan
                errors[agg.name] = [bound] * len(keep)
                mechanisms[agg.name] = {
                    "geometric": "geometric",
                    "laplace": "laplace",
                    "exponential": "exponential (diffprivlib quantile)",
                }[c.mechanism]
        table = pd.DataFrame(
            {name: data[name] for name in self.parsed.output}, columns=list(self.parsed.output)
        )
        for agg in self.parsed.aggregates:
            if agg.kind in ("count", "count_column", "count_distinct"):
                table[agg.name] = table[agg.name].astype("int64")
            else:
                table[agg.name] = table[agg.name].astype("float64")
        return DPResult(
            table=table,
            epsilon=self.request.epsilon,
            delta=self.request.delta if self.parsed.unknown_keys else 0.0,
            mechanisms={a.name: mechanisms[a.name] for a in self.parsed.aggregates},
            error_bounds={a.name: errors[a.name] for a in self.parsed.aggregates},
            epsilon_by_column={a.name: eps_col[a.name] for a in self.parsed.aggregates},
            datasets=self.parsed.datasets,
            notes=self._notes(),
            query=self.parsed.sql,
            max_contributions=k,
            group_columns=tuple(group_names),
            threshold=self.threshold,
            measurements=[
                {
                    "measurement": c.measurement.key.replace('"', ""),
                    "mechanism": c.mechanism,
                    "epsilon": c.epsilon,
                    "sensitivity": c.sensitivity,
                    "scale": c.scale,
                    "error95": c.error95,
                }
                for c in self.calibrated
            ],
        )

    def _notes(self) -> list[str]:
        k = self.request.max_contributions
        m = len(self.calibrated)
        notes = [
            f"privacy unit: {self.parsed.unit.info.dataset}.{self.parsed.unit.column} "
            f"(pseudonymised); at most {k} row(s) per person kept (seeded random choice)",
            f"epsilon {self.request.epsilon:g} split equally over {m} measurement(s) "
            f"({self.request.epsilon / m:.6g} each; sequential composition)",
            "values are clamped to the manifest bounds before aggregation",
            "95% error bounds cover the noise only (not clamping or contribution-bounding bias); "
            "AVG bounds are conservative; quantiles have none",
            "noisy counts are not clamped at 0 (unbiased); clamping afterwards is free post-processing",
        ]
        if self.threshold is not None:
            notes.append(
                f"unknown keys: a group is released only if its noisy row count >= {self.threshold:g} "
                f"(delta {self.request.delta:g}); released counts are therefore biased upwards"
            )
        else:
            notes.append(
                "every combination of the public categories is released, including empty ones"
            )
        notes.extend(self.parsed.notes)
        return notes


def prepare_dp_query(
    workspace: Path | str,
    query: Any,
    *,
    seed: int | None = None,
    unit_column: str | Mapping[str, str] | None = None,
    identifier_kinds: Mapping[tuple[str, str], str | None] | None = None,
    threads: int | None = None,
) -> PreparedDPQuery:
    """Parse, check and evaluate the true bounded measurements (no noise yet)."""
    request = as_request(query)
    path = Path(workspace)
    if not path.is_file():
        raise PlatformError(
            f"workspace {path} does not exist", fix="build the project's workspace first"
        )
    con = duckdb.connect()
    try:
        if threads:
            con.execute(f"SET threads = {int(threads)}")
        con.execute(f"ATTACH '{_sql_string(str(path))}' AS ws (READ_ONLY)")
        schema = read_columns(con, "ws")
        units = resolve_units(schema, unit_column, identifier_kinds)
        parsed = parse_dp_query(request.query, schema, units, unknown_keys=request.unknown_keys)
        if parsed.unknown_keys and request.delta <= 0:
            raise ValidationError(
                "unknown-keys mode needs delta > 0 (the chance a one-person group is released)",
                field="dp.delta",
                fix="set delta: 1e-6, or group by columns with public categories",
            )
        grid = _grid_size(parsed)
        if grid is not None and grid > MAX_CELLS:
            raise ValidationError(
                f"the public categories of the GROUP BY columns make {grid:,} cells (max {MAX_CELLS:,})",
                field="dp.query",
                fix="group by fewer columns",
            )
        calibrated, uses = _plan(parsed, request)
        bound_seed = seed if seed is not None else secrets.randbits(63)
        strategy = _strategy(con, path, parsed, request.max_contributions)
        sql, params = _sql(
            parsed,
            calibrated,
            request.max_contributions,
            int(bound_seed) & (2**64 - 1),
            strategy,
        )
        try:
            rows = con.execute(sql, params).fetchall()
        except duckdb.Error as exc:
            # DuckDB's message may quote data values: keep it for the operator only.
            raise PlatformError(
                "the DP engine could not evaluate the query",
                fix="check the query; the operator log has details",
            ) from exc
    finally:
        con.close()

    ng = len(parsed.groups)
    found = {tuple(r[:ng]): r[ng:] for r in rows}
    if parsed.unknown_keys:
        keys = sorted(found, key=lambda t: tuple((v is None, str(v)) for v in t))
    else:
        keys = (
            [tuple(p) for p in product(*(g.categories or () for g in parsed.groups))]
            if ng
            else [()]
        )
    empty: list[Any] = [[] if c.mechanism == "exponential" else 0 for c in calibrated]
    true = [[(found.get(key) or empty)[j] for key in keys] for j in range(len(calibrated))]
    if not parsed.groups and not rows:
        true = [[e] for e in empty]
    threshold = None
    if parsed.unknown_keys:
        count = next(c for c in calibrated if c.measurement.key == "count")
        threshold = unknown_keys_threshold(count.epsilon, request.max_contributions, request.delta)
    return PreparedDPQuery(request, parsed, calibrated, uses, keys, true, threshold)


def run_dp_query(
    workspace: Path | str,
    query: Any,
    *,
    seed: int | None = None,
    unit_column: str | Mapping[str, str] | None = None,
    identifier_kinds: Mapping[tuple[str, str], str | None] | None = None,
    threads: int | None = None,
) -> DPResult:
    """Run one DP query (a jobs.spec.DPQuery, a DPRequest or a mapping) over a workspace file.

    `seed` makes the contribution bounding and the noise reproducible (tests, audits); without
    it both come from the OS's secure randomness. The caller spends the budget: see
    privacy.budget / privacy.service.
    """
    prepared = prepare_dp_query(
        workspace,
        query,
        seed=seed,
        unit_column=unit_column,
        identifier_kinds=identifier_kinds,
        threads=threads,
    )
    return prepared.release(seed)


def _sql_string(text: str) -> str:
    return text.replace("'", "''")
