"""Contributors and average wage base by district and gender, December 2025."""

import os

import duckdb

con = duckdb.connect(os.environ["SHUYU_WORKSPACE"], read_only=True)
table = con.execute(
    """
    SELECT c.district, r.gender,
           count(DISTINCT c.resident_id) AS contributors,
           round(avg(c.wage_base), 2) AS avg_wage_base
    FROM contributions c JOIN residents r USING (resident_id)
    WHERE c.month = DATE '2025-12-01'
    GROUP BY ALL ORDER BY ALL
    """
).df()
table.to_csv(os.path.join(os.environ["SHUYU_OUTPUT"], "wages_by_district.csv"), index=False)
print(f"{len(table)} cells written")
