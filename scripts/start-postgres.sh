#!/usr/bin/env bash
# Start Debian's PostgreSQL on loopback and make sure the test role exists. Idempotent.
# Prints the SQLAlchemy URL of the maintenance database on stdout.
set -euo pipefail
ver=$(pg_lsclusters -h 2>/dev/null | awk 'NR==1{print $1}')
cluster=$(pg_lsclusters -h 2>/dev/null | awk 'NR==1{print $2}')
if [ -z "${ver}" ]; then
  echo "error: no PostgreSQL cluster found (fix: apt-get install -y postgresql)" >&2
  exit 1
fi
port=$(pg_lsclusters -h | awk 'NR==1{print $3}')
status=$(pg_lsclusters -h | awk 'NR==1{print $4}')
if [ "$status" != "online" ]; then
  pg_ctlcluster "$ver" "$cluster" start >&2
fi
for _ in $(seq 1 60); do
  pg_isready -q -h 127.0.0.1 -p "$port" && break
  sleep 0.5
done
pg_isready -q -h 127.0.0.1 -p "$port" || { echo "error: PostgreSQL did not start (see /var/log/postgresql/)" >&2; exit 1; }
su postgres -c "psql -q -p $port -tc \"SELECT 1 FROM pg_roles WHERE rolname='shuyu'\"" | grep -q 1 \
  || su postgres -c "psql -q -p $port -c \"CREATE ROLE shuyu LOGIN CREATEDB PASSWORD 'shuyu'\"" >&2
echo "postgresql+psycopg://shuyu:shuyu@127.0.0.1:${port}/postgres"
