"""Contributors and average wage base by district and gender, December 2025.

Also writes the contributor-level data behind each cell (held by the platform for the
dominance and p% checks, never released).
"""

import os

import duckdb

out = os.environ["SHUYU_OUTPUT"]
con = duckdb.connect(os.environ["SHUYU_WORKSPACE"], read_only=True)
con.execute("SET temp_directory = '/tmp/duckdb-spill'")  # the workspace folder is read-only
con.execute(
    """
    CREATE TEMP VIEW december AS
    SELECT c.district, r.gender, c.resident_id AS contributor, c.wage_base
    FROM contributions c JOIN residents r USING (resident_id)
    WHERE c.month = DATE '2025-12-01'
    """
)
table = con.execute(
    """
    SELECT district, gender, count(DISTINCT contributor) AS contributors,
           round(avg(wage_base), 2) AS avg_wage_base
    FROM december GROUP BY ALL ORDER BY ALL
    """
).df()
table.to_csv(os.path.join(out, "wages_by_district.csv"), index=False)
os.makedirs(os.path.join(out, "_contributors"), exist_ok=True)
con.execute(
    f"""COPY (SELECT district, gender, contributor, wage_base AS avg_wage_base FROM december)
        TO '{out}/_contributors/wages_by_district.parquet' (FORMAT parquet)"""
)
print(f"{len(table)} cells written")
