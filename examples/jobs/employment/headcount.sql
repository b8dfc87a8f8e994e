SELECT e.industry, count(DISTINCT c.resident_id) AS contributors
FROM contributions c JOIN enterprises e ON e.credit_code = c.enterprise_code
WHERE c.month = DATE '2025-12-01'
GROUP BY ALL
ORDER BY ALL
