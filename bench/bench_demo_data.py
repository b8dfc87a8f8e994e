"""Benchmark: generate the demo data at a given scale and check the "under 120 s" target.

    python bench/bench_demo_data.py [--scale 100] [--seed 20261127] [--keep DIR]

Exits 1 when the target is missed, so it can gate CI.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

import duckdb  # noqa: E402

from catalog.demo_data import generate_demo_data  # noqa: E402

TARGET_SECONDS = 120.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=100)
    parser.add_argument("--seed", type=int, default=20261127)
    parser.add_argument("--keep", type=Path, help="write here instead of a deleted temp dir")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="shuyu-bench-") as tmp:
        out = args.keep or Path(tmp)
        started = time.perf_counter()
        generate_demo_data(out, scale=args.scale, seed=args.seed)
        elapsed = time.perf_counter() - started
        con = duckdb.connect()
        counts = {
            name: con.execute(f"SELECT count(*) FROM '{out / name}.parquet'").fetchall()[0][0]
            for name in ("residents", "enterprises", "contributions")
        }
        con.close()
        size_mb = sum(p.stat().st_size for p in out.glob("*.parquet")) / 1e6

    print(
        f"scale {args.scale}, seed {args.seed}, {os.cpu_count()} CPUs, duckdb {duckdb.__version__}"
    )
    print(f"elapsed: {elapsed:.2f} s")
    print(f"contribution rows: {counts['contributions']:,}")
    print(f"residents: {counts['residents']:,}, enterprises: {counts['enterprises']:,}")
    print(f"parquet size: {size_mb:.1f} MB")
    met = elapsed < TARGET_SECONDS
    verdict = "MET" if met else "MISSED"
    print(f"target under {TARGET_SECONDS:.0f} s: {verdict} ({elapsed:.2f} s)")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
