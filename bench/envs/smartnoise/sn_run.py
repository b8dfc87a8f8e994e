"""Run one query with SmartNoise SQL; runs inside bench/envs/smartnoise (its own venv).

Called by bench/bench_dp.py. Times are measured here, inside the subprocess:
- load: reading the Parquet file and PandasReader's copy into its in-memory SQLite database
  (SmartNoise has no DuckDB reader; the pandas reader is its DataFrame path);
- execute: `reader.execute(query)` end to end (rewritten SQL with per-person reservoir sampling
  in SQLite, then noise), repeated --repeat times.
For the error comparison, --draws further releases reuse the exact aggregates of one run
(`execute(..., pre_aggregated=...)`), so they differ only by noise, like the main engine's.

The per-mechanism ε is set so that `get_privacy_cost(query)` equals --epsilon (the total the
other engine spends): SmartNoise gives every mechanism the configured ε and composes them.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import time

import pandas as pd
import snsql
from snsql import Privacy


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--metadata", required=True)
    parser.add_argument("--query", required=True)
    parser.add_argument("--epsilon", type=float, required=True, help="total ε of the query")
    parser.add_argument("--delta", type=float, default=1e-6)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--draws", type=int, default=300)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    started = time.perf_counter()
    df = pd.read_parquet(args.data)
    probe = snsql.from_df(
        df.head(1000), privacy=Privacy(epsilon=1.0, delta=args.delta), metadata=args.metadata
    )
    cost_at_1, _ = probe.get_privacy_cost(args.query)
    per_mechanism = args.epsilon / float(cost_at_1)
    privacy = Privacy(epsilon=per_mechanism, delta=args.delta)
    reader = snsql.from_df(df, privacy=privacy, metadata=args.metadata)
    load_seconds = time.perf_counter() - started
    cost = reader.get_privacy_cost(args.query)

    times, runs = [], []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        result = reader.execute(args.query)
        times.append(time.perf_counter() - t0)
        runs.append(result)

    subquery, _ = reader._rewrite_ast(reader.parse_query_string(args.query))
    exact = reader._get_reader(subquery)._execute_ast(subquery)
    draws = [reader.execute(args.query, pre_aggregated=exact) for _ in range(args.draws)]

    mechanisms = [
        {
            "mechanism": type(m).__name__,
            "epsilon": float(m.epsilon),
            "scale": float(getattr(m, "scale", 0.0)),
        }
        for m in reader._get_mechanisms(subquery)
        if m is not None
    ]
    with open(args.out, "w", encoding="utf-8") as fh:
        json.dump(
            {
                "version": importlib.metadata.version("smartnoise-sql"),
                "rows": len(df),
                "load_seconds": load_seconds,
                "execute_seconds": times,
                "privacy_cost": [float(cost[0]), float(cost[1])],
                "epsilon_per_mechanism": per_mechanism,
                "mechanisms": mechanisms,
                "runs": [_rows(r) for r in runs],
                "draws": [_rows(r) for r in draws],
                "rewritten_sql": str(subquery),
            },
            fh,
            ensure_ascii=False,
            default=str,
        )


def _rows(result: list) -> list:
    return [list(r) for r in result[1:]]  # drop the header row


if __name__ == "__main__":
    main()
