"""The DP engine after issue 14, beside the engine before it, beside OpenDP's own Polars API.

    A: SELECT district, COUNT(*) AS n, SUM(wage_base) AS s, AVG(wage_base) AS m
       FROM contributions GROUP BY district
    B: SELECT district, MEDIAN(wage_base) AS med FROM contributions GROUP BY district

All three read the same workspace data (pseudonymised resident_id as the privacy unit), keep at
most --k rows per person, clamp wage_base to [1000, 40000] and spend ε = --epsilon on a query.
- after: this tree's `run_dp_query` (DuckDB + OpenDP's exact samplers, grid quantiles);
- before: the `privacy/` package of git revision --before (DuckDB + diffprivlib), extracted to a
  temporary folder and run in a subprocess over the same workspace;
- OpenDP Polars: `dp.Context` over the same rows as a Polars LazyFrame, `truncate_per_group(k)`,
  public district keys, `dp.len()`, `.dp.sum`, `.dp.mean` (and `.dp.median` over our grid).
Times: median of --repeat end-to-end runs (parse/plan, data, noise) in one process each.
Error: median relative error against the true (unbounded, noiseless) values over --draws releases
(ours re-noise one prepared query; OpenDP needs a context per release, so it gets fewer).

Usage: python bench/bench_dp.py [--scale 100] [--repeat 3] [--draws 200] [--epsilon 1] [--k 24]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import duckdb
import numpy as np
import yaml
from common import ROOT, demo_data, ensure_tenant

QUERY_A = "SELECT district, COUNT(*) AS n, SUM(wage_base) AS s, AVG(wage_base) AS m FROM contributions GROUP BY district"
QUERY_B = "SELECT district, MEDIAN(wage_base) AS med FROM contributions GROUP BY district"
BEFORE = "3dea8cd"  # the last commit before issue 14's engine changes
BOUNDS = (1000.0, 40000.0)

BEFORE_RUNNER = textwrap.dedent(
    """
    import json, sys, time
    sys.path.insert(0, sys.argv[1])
    import privacy.engine as engine
    assert engine.__file__.startswith(sys.argv[1]), engine.__file__
    ws, query, k, eps, repeat, draws = sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
    request = {"query": query, "epsilon": eps, "max_contributions": k}
    engine.run_dp_query(ws, request)  # first run builds its cached histograms
    times, rows = [], []
    for _ in range(repeat):
        t = time.perf_counter()
        result = engine.run_dp_query(ws, request)
        times.append(time.perf_counter() - t)
        rows.append(result.table.values.tolist())
    prepared = engine.prepare_dp_query(ws, request)
    failures = 0
    for _ in range(draws):
        try:
            rows.append(prepared.release().table.values.tolist())
        except Exception:
            failures += 1
    print(json.dumps({"times": times, "rows": rows, "failures": failures}, default=float))
    """
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--draws", type=int, default=200)
    parser.add_argument("--epsilon", type=float, default=1.0)
    parser.add_argument("--k", type=int, default=24)
    parser.add_argument("--before", default=BEFORE, help="git revision of the engine before")
    args = parser.parse_args()
    data = demo_data(args.scale)

    from catalog.service import register
    from policies.service import add_grant
    from policies.workspace import build_workspace
    from shuyu.platform import init_home
    from shuyu.settings import Settings

    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        platform, _ = init_home(Settings.from_env({}, home=tmpdir / "home", actor="bench"))
        version = register(platform, data / "contributions.yaml").version
        grant = tmpdir / "grant.yaml"
        grant.write_text(yaml.safe_dump({
            "id": "bench", "project": "bench", "tenant": "bench", "purpose": "public_governance",
            "datasets": {"contributions": {"columns": {
                "resident_id": "pseudonymise", "enterprise_code": "pseudonymise", "district": "keep",
                "month": "keep", "wage_base": "keep", "pension_paid": "keep"}}},
        }))  # fmt: skip
        ensure_tenant(platform, grant)
        add_grant(platform, grant)
        ws = build_workspace(platform, "bench").path

        con = duckdb.connect(str(ws), read_only=True)
        truth_a = {
            r[0]: [float(r[1]), float(r[2]), float(r[3])] for r in con.execute(QUERY_A).fetchall()
        }
        truth_b = {
            r[0]: [float(r[1])]
            for r in con.execute(
                "SELECT district, quantile_cont(wage_base, 0.5) FROM contributions GROUP BY district"
            ).fetchall()
        }
        frame = con.sql(
            "SELECT resident_id, district, wage_base FROM contributions"
        ).to_arrow_table()
        con.close()

        print(f"rows: {version.row_count:,} (scale {args.scale}); epsilon {args.epsilon:g}; "
              f"max_contributions {args.k}; {args.draws} releases for the error")  # fmt: skip
        before_dir = _extract_before(tmpdir, args.before)
        for label, query, truth in (("A", QUERY_A, truth_a), ("B", QUERY_B, truth_b)):
            print(f"\n{label}: {query}")
            after = _ours(ws, query, args)
            before = _before(before_dir, ws, query, args)
            opendp = _opendp(frame, label, args)
            _report(truth, {"after (OpenDP samplers)": after, f"before ({args.before}, diffprivlib)": before,
                            "OpenDP Polars API": opendp})  # fmt: skip


def _ours(ws: Path, query: str, args: argparse.Namespace) -> dict:
    from privacy.engine import prepare_dp_query, run_dp_query

    request = {"query": query, "epsilon": args.epsilon, "max_contributions": args.k}
    run_dp_query(ws, request)  # warm-up (OpenDP's library load)
    times, rows = [], []
    for _ in range(args.repeat):
        started = time.perf_counter()
        result = run_dp_query(ws, request)
        times.append(time.perf_counter() - started)
        rows.append(result.table.values.tolist())
    prepared = prepare_dp_query(ws, request)
    rows += [prepared.release().table.values.tolist() for _ in range(args.draws)]
    return {"times": times, "rows": rows, "failures": 0}


def _extract_before(tmpdir: Path, rev: str) -> Path | None:
    target = tmpdir / "before"
    target.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev, "privacy"], capture_output=True, timeout=60
    )
    if archive.returncode != 0:
        print(f"before: git revision {rev} not available ({archive.stderr.decode()[-200:]})")
        return None
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    return target


def _before(before_dir: Path | None, ws: Path, query: str, args: argparse.Namespace) -> dict | None:
    if before_dir is None:
        return None
    script = before_dir / "run_before.py"
    script.write_text(BEFORE_RUNNER)
    done = subprocess.run(
        [sys.executable, str(script), str(before_dir), str(ws), query, str(args.k),
         str(args.epsilon), str(args.repeat), str(args.draws)],
        capture_output=True, text=True, cwd=str(ROOT), env={"PYTHONPATH": str(ROOT)},
        timeout=3600,
    )  # fmt: skip
    if done.returncode != 0:
        print("before: failed:\n" + done.stderr[-2000:])
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def _opendp(frame, label: str, args: argparse.Namespace) -> dict | None:
    try:
        import opendp.prelude as dp
        import polars as pl
    except ImportError as exc:
        print(f"OpenDP Polars: not run ({exc})")
        return None
    import warnings

    from privacy.quantiles import grid_for

    dp.enable_features("contrib")
    data = pl.from_arrow(frame).lazy()
    n_rows = frame.num_rows
    keys = pl.LazyFrame({"district": ["海勃湾区", "海南区", "乌达区"]})
    grid = [float(x) for x in grid_for(BOUNDS, False).values()]

    def release() -> list[list]:
        ctx = dp.Context.compositor(
            data=data,
            privacy_unit=dp.unit_of(contributions=1, identifier=pl.col("resident_id")),
            privacy_loss=dp.loss_of(epsilon=args.epsilon),
            split_evenly_over=1,
            margins=[  # the public table size: OpenDP's float sums charge rounding per row
                dp.polars.Margin(by=["district"], max_length=n_rows, max_groups=3),
                dp.polars.Margin(max_length=n_rows),
            ],
        )
        wage = pl.col("wage_base").fill_null(BOUNDS[0])
        if label == "A":
            aggs = [
                dp.len().alias("n"),
                wage.dp.sum(BOUNDS).alias("s"),
                wage.dp.mean(BOUNDS).alias("m"),
            ]
        else:
            aggs = [wage.dp.median(grid).alias("med")]
        query = ctx.query().truncate_per_group(args.k).group_by("district").agg(*aggs)
        out = query.with_keys(keys).release().collect()
        return [list(r) for r in out.iter_rows()]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            release()  # warm-up
        except Exception as exc:  # an API this benchmark does not know: say so, go on
            print(f"OpenDP Polars: not run ({type(exc).__name__}: {str(exc)[:300]})")
            return None
        times, rows = [], []
        for _ in range(args.repeat):
            started = time.perf_counter()
            rows.append(release())
            times.append(time.perf_counter() - started)
        rows += [release() for _ in range(max(args.draws // 4, 10))]
    return {"times": times, "rows": rows, "failures": 0}


def _report(truth: dict, engines: dict) -> None:
    names = [name for name, r in engines.items() if r is not None]
    width = max(len(n) for n in names)
    base = None
    for name in names:
        r = engines[name]
        t = statistics.median(r["times"])
        base = base or t
        errors = _relative_errors(r["rows"], truth)
        err = "  ".join(f"{np.median(e):.3e}" for e in errors)
        fails = f"  ({r['failures']} releases FAILED)" if r["failures"] else ""
        print(f"  {name:<{width}}  {t:7.3f} s ({t / base:5.2f}x after)  median relative error "
              f"per aggregate: {err}  over {len(r['rows'])} releases{fails}")  # fmt: skip


def _relative_errors(releases: list[list[list]], truth: dict) -> list[np.ndarray]:
    width = len(next(iter(truth.values())))
    errors: list[list[float]] = [[] for _ in range(width)]
    for release in releases:
        for district, *values in release:
            for j, value in enumerate(values):
                true = truth[district][j]
                errors[j].append(abs(float(value) - true) / abs(true))
    return [np.array(e) for e in errors]


if __name__ == "__main__":
    main()
