"""The DP engine against SmartNoise SQL on the same query, data, ε and contribution bound.

    SELECT district, COUNT(*), SUM(wage_base), AVG(wage_base) FROM contributions GROUP BY district

Both engines read the project's workspace data (pseudonymised resident_id as the privacy unit),
bound each person to --k rows, clamp wage_base to the manifest bounds [1000, 40000] and spend
ε = --epsilon in total on the query (SmartNoise's per-mechanism ε is set so its own privacy cost
equals it). Times: ours in this process (`run_dp_query`: parse, DuckDB, noise), SmartNoise inside
its subprocess (`execute`, its pandas reader over SQLite; loading the data is reported apart).
Accuracy: median relative error against the true (unbounded, noiseless) values over many
releases; extra releases of both engines re-noise one set of exact aggregates.

Target: ours ≥ 10x faster with median relative error no worse.
Usage: python bench/bench_dp.py [--scale 100] [--repeat 3] [--draws 300] [--epsilon 1.0] [--k 24]
SmartNoise lives in its own venv: bench/envs/setup.sh smartnoise (run automatically if missing).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import yaml
from common import ROOT, demo_data, ensure_tenant

QUERY = "SELECT district, COUNT(*) AS n, SUM(wage_base) AS s, AVG(wage_base) AS m FROM {table} GROUP BY district"
SN_DIR = ROOT / "bench" / "envs" / "smartnoise"
SN_PYTHON = SN_DIR / "bin" / "python"
AGGS = ("n", "s", "m")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3, help="timed end-to-end runs per engine")
    parser.add_argument(
        "--draws", type=int, default=300, help="extra releases for the error estimate"
    )
    parser.add_argument("--epsilon", type=float, default=1.0)
    parser.add_argument("--k", type=int, default=24, help="max_contributions = SmartNoise max_ids")
    args = parser.parse_args()
    data = demo_data(args.scale)

    from catalog.service import register
    from policies.service import add_grant
    from policies.workspace import build_workspace
    from privacy.engine import prepare_dp_query, run_dp_query
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
        truth = {
            r[0]: {"n": float(r[1]), "s": float(r[2]), "m": float(r[3])}
            for r in con.execute(QUERY.format(table="contributions")).fetchall()
        }
        max_rows = con.execute(
            "SELECT max(c) FROM (SELECT count(*) c FROM contributions GROUP BY resident_id)"
        ).fetchone()[0]
        parquet = tmpdir / "contributions.parquet"
        con.execute(
            f"COPY (SELECT resident_id, district, wage_base FROM contributions) TO '{parquet}' (FORMAT parquet)"
        )
        con.close()

        # ---- ours
        request = {"query": QUERY.format(table="contributions"), "epsilon": args.epsilon,
                   "max_contributions": args.k}  # fmt: skip
        started = time.perf_counter()
        run_dp_query(ws, request)  # first run: also builds the cached row-count histograms
        ours_first = time.perf_counter() - started
        ours_times, ours_releases = [], []
        for _ in range(args.repeat):
            started = time.perf_counter()
            result = run_dp_query(ws, request)
            ours_times.append(time.perf_counter() - started)
            ours_releases.append(_frame_rows(result.table))
        prepared = prepare_dp_query(ws, request)
        ours_releases += [_frame_rows(prepared.release().table) for _ in range(args.draws)]

        # ---- SmartNoise SQL
        sn = _smartnoise(tmpdir, parquet, args)

    ours_t = statistics.median(ours_times)
    print(f"rows: {version.row_count:,} (scale {args.scale}); max rows per person: {max_rows}; "
          f"epsilon {args.epsilon:g}; max_contributions / max_ids {args.k}")  # fmt: skip
    print(f"query: {QUERY.format(table='contributions')}")
    print(f"ours (DuckDB + diffprivlib): {ours_t:8.3f} s  (median of {args.repeat}: "
          f"{', '.join(f'{t:.3f}' for t in ours_times)})")  # fmt: skip
    print(
        f"  first run {ours_first:.3f} s (builds the workspace's cached rows-per-person histogram)"
    )
    print(f"  measurements: {json.dumps(result.measurements, ensure_ascii=False)}")
    ours_err = _relative_errors(ours_releases, truth)
    if sn is None:
        print("SmartNoise SQL: not run (see above)")
        for agg in AGGS:
            print(f"  median relative error {agg}: ours {np.median(ours_err[agg]):.3e}")
        return
    sn_t = statistics.median(sn["execute_seconds"])
    print(f"SmartNoise SQL {sn['version']} (pandas reader / SQLite): {sn_t:8.3f} s  (median of "
          f"{len(sn['execute_seconds'])}: {', '.join(f'{t:.3f}' for t in sn['execute_seconds'])}); "
          f"loading {sn['rows']:,} rows into its reader: {sn['load_seconds']:.1f} s (not counted)")  # fmt: skip
    print(f"  privacy cost reported by SmartNoise: epsilon {sn['privacy_cost'][0]:.4g}, "
          f"delta {sn['privacy_cost'][1]:.3g}; per mechanism {sn['epsilon_per_mechanism']:.4g}; "
          f"mechanisms {json.dumps(sn['mechanisms'])}")  # fmt: skip
    ratio = sn_t / ours_t
    print(
        f"speed: ours is {ratio:.1f}x faster (target >= 10x: {'met' if ratio >= 10 else 'NOT met'})"
    )

    sn_releases = [_sn_rows(r) for r in sn["runs"] + sn["draws"]]
    sn_err = _relative_errors(sn_releases, truth)
    print(f"median relative error vs the true values ({len(ours_releases)} releases ours, "
          f"{len(sn_releases)} SmartNoise; 3 districts each):")  # fmt: skip
    verdicts = []
    rng = np.random.default_rng(0)
    for agg in (*AGGS, "all"):
        o = np.concatenate([ours_err[a] for a in AGGS]) if agg == "all" else ours_err[agg]
        s = np.concatenate([sn_err[a] for a in AGGS]) if agg == "all" else sn_err[agg]
        mo, ms = float(np.median(o)), float(np.median(s))
        lo, hi = _ratio_ci(o, s, rng)
        no_worse = mo <= ms or lo <= 1.0  # not worse beyond sampling error (95% bootstrap)
        verdicts.append(no_worse)
        print(f"  {agg:>3}: ours {mo:.3e}  SmartNoise {ms:.3e}  ratio ours/SN {mo / ms:.3f} "
              f"(95% CI {lo:.3f}-{hi:.3f})  {'no worse' if no_worse else 'WORSE'}")  # fmt: skip
    print(f"target (>= 10x faster, median relative error no worse): "
          f"{'met' if ratio >= 10 and all(verdicts) else 'NOT met'}")  # fmt: skip


def _smartnoise(tmpdir: Path, parquet: Path, args: argparse.Namespace) -> dict | None:
    if not SN_PYTHON.exists():
        print("SmartNoise venv missing: running bench/envs/setup.sh smartnoise")
        done = subprocess.run(
            ["bash", str(SN_DIR.parent / "setup.sh"), "smartnoise"], capture_output=True, text=True
        )
        if done.returncode != 0:
            print("SmartNoise SQL could not be installed:\n" + (done.stderr or done.stdout)[-3000:])
            return None
    meta = tmpdir / "smartnoise.yaml"
    meta.write_text(yaml.safe_dump({
        "bench": {"public": {"contributions": {
            "max_ids": args.k, "row_privacy": False, "sample_max_ids": True, "censor_dims": False,
            "resident_id": {"type": "string", "private_id": True},
            "district": {"type": "string"},
            "wage_base": {"type": "float", "lower": 1000, "upper": 40000},
        }}}
    }, allow_unicode=True))  # fmt: skip
    out = tmpdir / "smartnoise.json"
    done = subprocess.run(
        [str(SN_PYTHON), str(SN_DIR / "sn_run.py"), "--data", str(parquet), "--metadata", str(meta),
         "--query", QUERY.format(table="public.contributions"), "--epsilon", str(args.epsilon),
         "--repeat", str(args.repeat), "--draws", str(args.draws), "--out", str(out)],
        capture_output=True, text=True,
    )  # fmt: skip
    if done.returncode != 0:
        print("SmartNoise SQL failed:\n" + done.stderr[-3000:])
        return None
    return json.loads(out.read_text(encoding="utf-8"))


def _frame_rows(frame) -> list[list]:
    return [[r.district, r.n, r.s, r.m] for r in frame.itertuples(index=False)]


def _sn_rows(rows: list[list]) -> list[list]:
    return [[r[0], r[1], r[2], r[3]] for r in rows]


def _relative_errors(releases: list[list[list]], truth: dict) -> dict[str, np.ndarray]:
    errors: dict[str, list[float]] = {a: [] for a in AGGS}
    for release in releases:
        for district, *values in release:
            for agg, value in zip(AGGS, values, strict=True):
                true = truth[district][agg]
                errors[agg].append(abs(float(value) - true) / abs(true))
    return {a: np.array(v) for a, v in errors.items()}


def _ratio_ci(
    ours: np.ndarray, theirs: np.ndarray, rng: np.random.Generator, n: int = 2000
) -> tuple[float, float]:
    ratios = [
        np.median(rng.choice(ours, len(ours))) / np.median(rng.choice(theirs, len(theirs)))
        for _ in range(n)
    ]
    return float(np.quantile(ratios, 0.025)), float(np.quantile(ratios, 0.975))


if __name__ == "__main__":
    main()
