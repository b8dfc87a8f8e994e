"""Runs inside the sandbox for `run: sql FILE` actions: one query over the workspace, one output.

Copied into the job's read-only code folder by the platform; it holds no secrets.
Usage: python run_sql.py QUERY_FILE OUTPUT_PATH
"""

import os
import sys

import duckdb


def main() -> None:
    query_file, output = sys.argv[1], sys.argv[2]
    with open(query_file, encoding="utf-8") as fh:
        query = fh.read().strip().rstrip(";")
    con = duckdb.connect(os.environ["SHUYU_WORKSPACE"], read_only=True)
    con.execute("SET temp_directory = '/tmp/duckdb-spill'")  # the workspace folder is read-only
    fmt = {".csv": "csv, HEADER true", ".parquet": "parquet", ".json": "json, ARRAY true"}[
        os.path.splitext(output)[1]
    ]
    os.makedirs(os.path.dirname(output) or ".", exist_ok=True)
    con.execute(f"COPY ({query}) TO '{output}' (FORMAT {fmt})")
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
