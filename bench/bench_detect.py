"""Personal-information scan throughput: `scan_table` over a 1M-row x 5-column output.

The table mixes what job outputs hold (integers, Chinese text, hex hashes, floats, codes) with
a few planted identifiers, and is written as Parquet and as CSV. Prints cells/second for the
pattern detectors alone and with the linkage tests (fingerprints of 100k raw identifiers and a
workspace of 100k pseudonyms). Print only: no thresholds.
Usage: python bench/bench_detect.py [--rows 1000000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import duckdb
from common import median_seconds

PLANTED_ROWS = (3, 4_242, 250_000, 777_777, 999_999)


def write_table(con: duckdb.DuckDBPyConnection, rows: int, rid: str, target: Path) -> None:
    planted = ", ".join(str(r) for r in PLANTED_ROWS if r <= rows)
    fmt = "(FORMAT parquet)" if target.suffix == ".parquet" else "(HEADER)"
    con.execute(
        f"""COPY (SELECT
              i AS id,
              CASE WHEN i IN ({planted}) THEN '复核 身份证 {rid} 电话13812345678'
                   ELSE '乌海市 第' || i || '条 记录' END AS note,
              md5(i::VARCHAR) AS code,
              (i * 7919 % 1000003)::DOUBLE / 7 AS amount,
              CASE WHEN i % 50000 = 0 THEN 'mail user' || i || '@example.com'
                   ELSE 'R' || lpad((i * 37)::VARCHAR, 10, '0') END AS ref
            FROM range(1, {rows} + 1) t(i)) TO '{target}' {fmt}"""
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from catalog.idcodes import resident_id_check_char
    from egress_review.detect import scan_table
    from egress_review.fingerprints import FingerprintSet, build_fingerprints
    from policies.transforms import parse_transform, sql_expression

    body = "15030219690621225"
    rid = body + resident_id_check_char(body)
    cells = args.rows * 5
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        con = duckdb.connect()
        con.execute("SET enable_progress_bar = false")
        started = time.perf_counter()
        tables = [tmp_path / "output.parquet", tmp_path / "output.csv"]
        for table in tables:
            write_table(con, args.rows, rid, table)
        print(
            f"wrote {args.rows:,} rows x 5 columns as Parquet and CSV in {time.perf_counter() - started:.1f} s"
        )

        # Linkage sets: fingerprints of 100k synthetic identifiers, a workspace of 100k pseudonyms.
        snapshot = tmp_path / "snapshot.parquet"
        con.execute(
            f"""COPY (SELECT '150302' || (19500101 + i % 500000)::VARCHAR || lpad((i % 1000)::VARCHAR, 4, '0') AS resident_id,
                        '姓名' || i AS name FROM range(100000) t(i)) TO '{snapshot}'"""
        )
        key = os.urandom(32)
        fp_file = tmp_path / "fp.parquet"
        started = time.perf_counter()
        n_fp = build_fingerprints(
            snapshot, ["resident_id", "name"], key, fp_file, label="residents"
        )
        print(f"built {n_fp:,} fingerprints in {time.perf_counter() - started:.2f} s")
        fingerprints = FingerprintSet([fp_file], key)
        workspace = tmp_path / "ws.duckdb"
        ws = duckdb.connect(str(workspace))
        ws.execute(
            "CREATE TABLE _shuyu_columns (dataset VARCHAR, column_name VARCHAR, type VARCHAR, "
            "role VARCHAR, transform VARCHAR, bounds VARCHAR, categories VARCHAR[])"
        )
        ws.execute(
            "INSERT INTO _shuyu_columns VALUES ('residents', 'resident_id', 'string', "
            "'direct_identifier', '\"pseudonymise\"', NULL, NULL)"
        )
        expr = sql_expression("resident_id", "string", parse_transform("pseudonymise"))
        ws.execute(
            f"CREATE TABLE residents AS SELECT {expr} AS resident_id FROM read_parquet('{snapshot}')",
            {"key": os.urandom(32).hex()},
        )
        ws.close()

        print(f"\nscan_table over {cells:,} cells (median of {args.repeat}):")
        for table in tables:
            for label, kwargs in (
                ("patterns", {}),
                (
                    "patterns + fingerprints + pseudonyms",
                    {"fingerprints": fingerprints, "pseudonyms": workspace},
                ),
            ):
                findings = scan_table(table, table.name, **kwargs)  # type: ignore[arg-type]
                seconds = median_seconds(
                    lambda t=table, k=kwargs: scan_table(t, t.name, **k), args.repeat
                )  # type: ignore[misc]
                counts: dict[str, int] = {}
                for f in findings:
                    counts[f.kind] = counts.get(f.kind, 0) + 1
                print(
                    f"  {table.suffix[1:]:8s} {label:38s} {seconds:6.2f} s  "
                    f"{cells / seconds / 1e6:5.2f} M cells/s  findings: {len(findings)} {counts}"
                )


if __name__ == "__main__":
    main()
