"""Workspace overhead: the same GROUP BY on the project's workspace and on the raw Parquet.

Target (issue 2): the workspace query costs at most 1.2x the raw-Parquet query, side by side.
Usage: python bench/bench_workspace.py [--scale 100] [--repeat 7]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import duckdb
import yaml
from common import demo_data, ensure_tenant, median_seconds

QUERY = "SELECT district, count(*), avg(wage_base) FROM {table} GROUP BY ALL"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    data = demo_data(args.scale)

    from catalog.service import register
    from policies.service import add_grant
    from policies.workspace import build_workspace
    from shuyu.platform import init_home
    from shuyu.settings import Settings

    with tempfile.TemporaryDirectory() as tmp:
        platform, _ = init_home(Settings.from_env({}, home=Path(tmp) / "home", actor="bench"))
        started = time.perf_counter()
        version = register(platform, data / "contributions.yaml").version
        registered = time.perf_counter() - started
        grant = Path(tmp) / "grant.yaml"
        grant.write_text(
            yaml.safe_dump(
                {
                    "id": "bench",
                    "project": "bench",
                    "tenant": "bench",
                    "purpose": "public_governance",
                    "datasets": {
                        "contributions": {
                            "columns": {
                                "resident_id": "pseudonymise",
                                "enterprise_code": "pseudonymise",
                                "district": "keep",
                                "month": "keep",
                                "wage_base": "keep",
                                "pension_paid": "keep",
                            }
                        }
                    },
                }
            )
        )
        ensure_tenant(platform, grant)
        add_grant(platform, grant)
        started = time.perf_counter()
        ws = build_workspace(platform, "bench")
        built = time.perf_counter() - started

        raw = duckdb.connect()
        raw_sql = QUERY.format(table=f"read_parquet('{platform.resolve(version.snapshot_path)}')")
        work = duckdb.connect(str(ws.path), read_only=True)
        work_sql = QUERY.format(table="contributions")
        assert sorted(raw.execute(raw_sql).fetchall()) == sorted(work.execute(work_sql).fetchall())
        t_raw = median_seconds(lambda: raw.execute(raw_sql).fetchall(), args.repeat)
        t_work = median_seconds(lambda: work.execute(work_sql).fetchall(), args.repeat)

    ratio = t_work / t_raw
    print(f"rows: {version.row_count:,}  (scale {args.scale})")
    print(
        f"register contributions: {registered:.2f} s   build workspace (2 pseudonymised columns): {built:.2f} s"
    )
    print(f"query on raw Parquet:  {t_raw * 1000:8.1f} ms (median of {args.repeat})")
    print(f"query on workspace:    {t_work * 1000:8.1f} ms (median of {args.repeat})")
    print(
        f"ratio workspace/raw:   {ratio:.2f}x  (target <= 1.20x: {'met' if ratio <= 1.2 else 'NOT met'})"
    )


if __name__ == "__main__":
    main()
