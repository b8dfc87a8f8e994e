"""Personal-information scan throughput: `scan_table` over a 1M-row x 5-column output.

The table mixes what job outputs hold (integers, Chinese text, hex hashes, floats, codes) with
a few planted identifiers, and is written as Parquet and as CSV. Prints cells/second for the
pattern detectors alone and with the linkage tests (fingerprints of 200k raw identifiers and a
workspace of 100k pseudonyms), wall-clock and CPU seconds (the CPU figure is the one to compare
on a busy machine). Print only: no thresholds.
Usage: python bench/bench_detect.py [--rows 1000000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path

import common  # noqa: F401  (puts the repository on sys.path)
import duckdb

PLANTED_ROWS = (3, 4_242, 250_000, 777_777, 999_999)  # resident ID + mobile in `note`
EMAIL_EVERY = 50_000  # an e-mail address in `ref`
RAW_ROW, PSEUDONYM_ROW = 500_000, 600_000  # a fingerprinted name, a pseudonym of the project


def write_table(
    con: duckdb.DuckDBPyConnection, rows: int, rid: str, pseudonym: str, target: Path
) -> None:
    planted = ", ".join(str(r) for r in PLANTED_ROWS if r <= rows)
    fmt = "(FORMAT parquet)" if target.suffix == ".parquet" else "(HEADER)"
    con.execute(
        f"""COPY (SELECT
              i AS id,
              CASE WHEN i IN ({planted}) THEN '复核 身份证 {rid} 电话13812345678'
                   WHEN i = {RAW_ROW} THEN '姓名42'
                   ELSE '乌海市 第' || i || '条 记录' END AS note,
              CASE WHEN i = {PSEUDONYM_ROW} THEN '{pseudonym}' ELSE md5(i::VARCHAR) END AS code,
              (i * 7919 % 1000003)::DOUBLE / 7 AS amount,
              CASE WHEN i % {EMAIL_EVERY} = 0 THEN 'mail user' || i || '@example.com'
                   ELSE 'R' || lpad((i * 37)::VARCHAR, 10, '0') END AS ref
            FROM range(1, {rows} + 1) t(i)) TO '{target}' {fmt}"""
    )


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from catalog.idcodes import resident_id_check_char
    from egress_review.detect import scan_table
    from egress_review.extract import ReadLimits
    from egress_review.fingerprints import FingerprintSet, build_fingerprints
    from policies.transforms import parse_transform, sql_expression

    body = "15030219690621225"
    rid = body + resident_id_check_char(body)
    cells = args.rows * 5
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        con = duckdb.connect()
        con.execute("SET enable_progress_bar = false")

        # Linkage sets: fingerprints of 2 x 100k synthetic identifiers, 100k pseudonyms.
        snapshot = tmp_path / "snapshot.parquet"
        con.execute(
            f"""COPY (SELECT '150302' || (19500101 + i % 500000)::VARCHAR
                             || lpad((i % 1000)::VARCHAR, 4, '0') AS resident_id,
                        '姓名' || i AS name FROM range(100000) t(i)) TO '{snapshot}'"""
        )
        key = os.urandom(32)
        fp_file = tmp_path / "fp.parquet"
        started = time.perf_counter()
        n_fp = build_fingerprints(snapshot, ["resident_id", "name"], key, fp_file, label="rs")
        print(f"built {n_fp:,} fingerprints in {time.perf_counter() - started:.2f} s")
        fingerprints = FingerprintSet([fp_file], key)
        workspace = tmp_path / "ws.duckdb"
        with duckdb.connect(str(workspace)) as ws:
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
                f"CREATE TABLE residents AS SELECT {expr} AS resident_id "
                f"FROM read_parquet('{snapshot}')",
                {"key": os.urandom(32).hex()},
            )
            pseudonym = ws.execute("SELECT resident_id FROM residents LIMIT 1").fetchone()[0]  # type: ignore[index]

        started = time.perf_counter()
        tables = [tmp_path / "output.parquet", tmp_path / "output.csv"]
        for table in tables:
            write_table(con, args.rows, rid, pseudonym, table)
        print(
            f"wrote {args.rows:,} rows x 5 columns as Parquet and CSV "
            f"in {time.perf_counter() - started:.1f} s ({os.cpu_count()} CPUs)"
        )

        print(f"\nscan_table over {cells:,} cells (median of {args.repeat}):")
        for table in tables:
            for label, kwargs in (
                ("patterns", {}),
                (
                    "patterns + fingerprints + pseudonyms",
                    {"fingerprints": fingerprints, "pseudonyms": workspace},
                ),
            ):
                walls, cpus = [], []
                for _ in range(args.repeat):
                    started, cpu = time.perf_counter(), cpu_seconds()
                    findings = scan_table(
                        table,
                        table.name,
                        limits=ReadLimits(max_rows=args.rows),  # a benchmark, not an output
                        **kwargs,  # type: ignore[arg-type]
                    )
                    walls.append(time.perf_counter() - started)
                    cpus.append(cpu_seconds() - cpu)
                wall, cpu = statistics.median(walls), statistics.median(cpus)
                counts: dict[str, int] = {}
                for f in findings:
                    counts[f.kind] = counts.get(f.kind, 0) + 1
                print(
                    f"  {table.suffix[1:]:8s} {label:37s} {wall:6.2f} s "
                    f"{cells / wall / 1e6:5.2f} M cells/s | CPU {cpu:6.2f} s "
                    f"{cells / cpu / 1e6:5.2f} M cells/CPU-s | {len(findings)} findings {counts}"
                )


if __name__ == "__main__":
    main()
