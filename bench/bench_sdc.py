"""Benchmark: our table SDC (egress_review.sdc.check_table) against ACRO's crosstab SDC.

Both tools get the same contributor-level rows (one row per contributor: a row label, a column
label, a value) in memory as a pandas DataFrame, the same thresholds (ACRO's defaults = our
DisclosureRules defaults: threshold 10, n=2, k=0.9, p=0.1, zeros disclosive), and produce the same
two outputs per table: a frequency table and a mean table. ACRO runs in its own virtualenv
(bench/envs/acro, `pip install acro`) in a subprocess and times itself there, excluding start-up
and data loading; we time ours in this process the same way.

    python bench/bench_sdc.py [--scale 100] [--repeat 5] [--threads 1]

Times are the best of --repeat runs (the machine may be shared; the medians are printed too).
DuckDB uses every CPU unless --threads is given; ACRO (pandas) is single-threaded.

Tables (demo data, scale 100):
  district_month   all 10.5 M contributions, district x month, count and mean wage_base
  industry_month   high earners (wage_base >= 25000), industry x month, count and mean
  industry_size    enterprises, industry x employee-size band, count and mean registered capital

Our timings: "check" = check_table on the analyst's table (already computed) plus the contributor
rows; "table+check" also builds the table from the rows (ACRO's crosstab builds it too), which is
the like-for-like figure used for the ratio.

The failing cells are compared per rule by (row label, column label): threshold and zeros on the
count table, threshold / p-ratio / nk-rule on the mean table. ACRO 1.x names them
MinimumThresholdCheck, PresenceOfZeroCheck, PPercentCheck, NKCheck. (ACRO 1.x's nk test is
">= k", ours "> k" as in the SDAP rule and ACRO 0.4: they differ only for a cell exactly at k.)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ACRO_PYTHON = ROOT / "bench" / "envs" / "acro" / "bin" / "python"
WORK = ROOT / "bench" / "out" / "sdc"
THREADS = [0]
ACRO_NAMES = {
    "MinimumThresholdCheck": "threshold",
    "PresenceOfZeroCheck": "zeros",
    "PPercentCheck": "p-ratio",
    "NKCheck": "nk-rule",
}


# --------------------------------------------------------------------------------------------
# the ACRO side: runs inside bench/envs/acro (stdlib + pandas + acro only)


def acro_worker(spec_path: str) -> None:
    import logging

    import pandas as pd
    from acro import ACRO
    from acro.version import __version__

    logging.disable(logging.INFO)
    spec = json.loads(Path(spec_path).read_text())
    acro = ACRO(suppress=False)
    out: dict = {"version": __version__, "config": acro.config, "tables": {}}
    for t in spec["tables"]:
        df = pd.read_parquet(t["path"])
        for c in ("r", "c"):
            df[c] = df[c].astype("category")
        res: dict = {"seconds": [], "cells": {}}
        for _ in range(spec["repeat"]):
            started = time.perf_counter()
            counts = acro.crosstab(df["r"], df["c"])
            count_rec = acro.results.get_index(-1)
            means = acro.crosstab(df["r"], df["c"], values=df["v"], aggfunc="mean")
            mean_rec = acro.results.get_index(-1)
            res["seconds"].append(time.perf_counter() - started)
        for kind, table, rec in (("count", counts, count_rec), ("mean", means, mean_rec)):
            cells: dict = {}
            for check, positions in rec.sdc["cells"].items():
                cells[check] = [[str(table.index[i]), str(table.columns[j])] for i, j in positions]
            res["cells"][kind] = cells
            res.setdefault("status", {})[kind] = rec.status
        res["rows"] = len(df)
        out["tables"][t["name"]] = res
    print(json.dumps(out))


# --------------------------------------------------------------------------------------------
# our side


def prepare(scale: int) -> dict[str, Path]:
    """Contributor rows per benchmark table (r, c, v) as Parquet, from the demo data."""
    sys.path.insert(0, str(ROOT))
    import duckdb

    from bench.common import demo_data

    data = demo_data(scale)
    WORK.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    contributions = str(data / "contributions.parquet")
    enterprises = str(data / "enterprises.parquet")
    queries = {
        "district_month": f"""
            SELECT district AS r, strftime(month, '%Y-%m') AS c, wage_base AS v
            FROM '{contributions}'""",
        "industry_month": f"""
            SELECT e.industry AS r, strftime(x.month, '%Y-%m') AS c, x.wage_base AS v
            FROM '{contributions}' x JOIN '{enterprises}' e ON x.enterprise_code = e.credit_code
            WHERE x.wage_base >= 25000""",
        "industry_size": f"""
            SELECT industry AS r,
                   CASE WHEN employees < 10 THEN '0-9' WHEN employees < 50 THEN '10-49'
                        WHEN employees < 250 THEN '50-249' WHEN employees < 1000 THEN '250-999'
                        ELSE '1000+' END AS c,
                   registered_capital AS v
            FROM '{enterprises}'""",
    }
    paths = {}
    for name, sql in queries.items():
        path = WORK / f"{name}-scale-{scale}.parquet"
        if not path.exists():
            con.execute(f"COPY ({sql} ORDER BY r, c) TO '{path}' (FORMAT parquet)")
        paths[name] = path
    return paths


def ours(path: Path, repeat: int) -> dict:
    import duckdb
    import pandas as pd

    from egress_review.sdc import check_table
    from policies.grant import DisclosureRules

    rules = DisclosureRules()
    base = duckdb.connect()
    if THREADS[0]:
        base.execute(f"SET threads = {THREADS[0]}")
    df = pd.read_parquet(path)
    for c in ("r", "c"):
        df[c] = df[c].astype("category")

    def build() -> pd.DataFrame:
        con = base.cursor()  # as check_table does: a cursor on a shared in-memory database
        con.register("contrib_rows", df)
        table = con.execute(
            "SELECT r::VARCHAR AS r, c::VARCHAR AS c, n, mean FROM ("
            "SELECT r, c, count(v) AS n, avg(v) AS mean FROM contrib_rows GROUP BY r, c"
            ") ORDER BY r, c"
        ).df()
        con.close()
        return table

    def check(table: pd.DataFrame, contributors):
        return check_table(
            table,
            group_by=["r", "c"],
            counts=["n"],
            values={"mean": "v"},
            rules=rules,
            contributors=contributors,
            stats={"mean": "mean"},
            complete=True,
        )

    table = build()
    report = check(table, df)  # warm-up
    t_check, t_full, t_path = [], [], []
    for _ in range(repeat):
        started = time.perf_counter()
        check(table, df)
        t_check.append(time.perf_counter() - started)
        started = time.perf_counter()
        report = check(build(), df)
        t_full.append(time.perf_counter() - started)
        started = time.perf_counter()
        check(table, path)
        t_path.append(time.perf_counter() - started)
    cells: dict[str, dict[str, set]] = {"count": {}, "mean": {}}
    for cell in report.cells:
        kind = "count" if cell.column == "n" else "mean"
        for rule in cell.rules:
            cells[kind].setdefault(rule, set()).add((str(cell.key["r"]), str(cell.key["c"])))
    return {
        "check": min(t_check),
        "full": min(t_full),
        "path": min(t_path),
        "full_median": statistics.median(t_full),
        "cells": cells,
        "summary": report.summary,
        "rows": len(df),
        "status": report.status,
    }


def run_acro(paths: dict[str, Path], repeat: int) -> dict | None:
    if not ACRO_PYTHON.exists():
        print("ACRO venv missing: running bench/envs/setup.sh acro")
        setup = ACRO_PYTHON.parent.parent.parent / "setup.sh"
        done = subprocess.run(["bash", str(setup), "acro"], capture_output=True, text=True)
        if done.returncode != 0:
            print(f"ACRO could not be installed: {done.stderr.strip()[-400:]}")
            return None
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "spec.json"
        spec.write_text(
            json.dumps(
                {
                    "repeat": repeat,
                    "tables": [{"name": n, "path": str(p)} for n, p in paths.items()],
                }
            )
        )
        done = subprocess.run(
            [str(ACRO_PYTHON), str(Path(__file__).resolve()), "--acro-worker", str(spec)],
            capture_output=True,
            text=True,
            cwd=tmp,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
        )
    if done.returncode != 0:
        print("ACRO run failed:\n" + done.stderr[-3000:])
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def compare(our: dict, acro: dict) -> list[tuple[str, str, int, int, bool]]:
    rows = []
    wanted = {"count": ("threshold", "zeros"), "mean": ("threshold", "p-ratio", "nk-rule")}
    for kind, rules in wanted.items():
        theirs: dict[str, set] = {}
        for check, cells in acro["cells"][kind].items():
            name = ACRO_NAMES.get(check)
            if name:
                theirs[name] = {tuple(c) for c in cells}
        for rule in rules:
            a = our["cells"][kind].get(rule, set())
            b = theirs.get(rule, set())
            rows.append((kind, rule, len(a), len(b), a == b))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="DuckDB threads (0: all CPUs)")
    parser.add_argument("--acro-worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.acro_worker:
        acro_worker(args.acro_worker)
        return

    paths = prepare(args.scale)
    if args.threads:
        from egress_review import sdc

        sdc._cursor().execute(f"SET threads = {args.threads}")  # database-wide setting
        THREADS[0] = args.threads
    print(f"ACRO comparison at demo scale {args.scale}, best of {args.repeat} runs\n")
    acro = run_acro(paths, args.repeat)
    if acro:
        print(
            f"ACRO {acro['version']} (pandas, single-threaded), config: "
            f"threshold={acro['config']['safe_threshold']} nk=({acro['config']['safe_nk_n']}, "
            f"{acro['config']['safe_nk_k']}) p={acro['config']['safe_pratio_p']} "
            f"zeros_are_disclosive={acro['config']['zeros_are_disclosive']}"
        )
    threads = args.threads or os.cpu_count()
    print(f"ours: DuckDB {__import__('duckdb').__version__} ({threads} threads)\n")
    header = (
        f"{'table':<16}{'rows':>12}{'cells':>7}{'ACRO s':>10}{'ours s':>10}"
        f"{'(check)':>10}{'(path)':>10}{'ratio':>8}  same failing cells"
    )
    print(header)
    print("-" * len(header))
    all_same = True
    details = []
    medians: list[tuple[str, float, float]] = []
    for name, path in paths.items():
        mine = ours(path, args.repeat)
        line = f"{name:<16}{mine['rows']:>12,}{mine['summary']['rows']:>7}"
        if acro:
            theirs = acro["tables"][name]
            t_acro = min(theirs["seconds"])
            medians.append((name, statistics.median(theirs["seconds"]), mine["full_median"]))
            rows = compare(mine, theirs)
            same = all(r[4] for r in rows)
            all_same &= same
            details.append((name, rows, mine["status"], theirs["status"]))
            line += (
                f"{t_acro:>10.3f}{mine['full']:>10.3f}{mine['check']:>10.3f}"
                f"{mine['path']:>10.3f}{t_acro / mine['full']:>7.1f}x  {'yes' if same else 'NO'}"
            )
        else:
            line += f"{'-':>10}{mine['full']:>10.3f}{mine['check']:>10.3f}{mine['path']:>10.3f}"
        print(line)
    if acro:
        print("\nfailing cells per rule (ours / ACRO):")
        for name, rows, s_ours, s_acro in details:
            parts = [
                f"{kind}.{rule} {a}/{b}{'' if ok else ' DIFFER'}" for kind, rule, a, b, ok in rows
            ]
            print(f"  {name:<16}" + ", ".join(parts))
            print(
                f"  {'':<16}status ours {s_ours}; ACRO count {s_acro['count']}, mean {s_acro['mean']}"
            )
        print(
            "\nmedians (ACRO s / ours s / ratio): "
            + "; ".join(f"{n} {a:.3f} / {o:.3f} / {a / o:.1f}x" for n, a, o in medians)
        )
        print(f"all failing cells agree: {'yes' if all_same else 'NO'}")
    print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(
        "\nACRO s = count + mean crosstab with SDC; ours s = build the table + check_table "
        "(contributors in memory); (check) = check_table only; (path) = contributors read "
        "from Parquet by DuckDB"
    )


if __name__ == "__main__":
    main()
