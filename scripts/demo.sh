#!/usr/bin/env bash
# The main job end to end on the embedded defaults (SQLite, local files), in a fresh demo home.
set -euo pipefail
export SHUYU_HOME="${SHUYU_HOME:-$PWD/.shuyu/demo}"
DATA="${SHUYU_DEMO_DATA:-$PWD/.shuyu/demo-data}"
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

rm -rf "$SHUYU_HOME"
step "1. Initialise the platform home at $SHUYU_HOME (store, folders, keys with mode 0600)"
shuyu init

step "2. Generate deterministic synthetic Wuhai-like public data"
shuyu demo-data --out "$DATA" --scale "${SHUYU_DEMO_SCALE:-1}"

step "3. Register the datasets in the catalog (content-addressed, immutable snapshots)"
for name in residents enterprises contributions; do
  shuyu catalog add "$DATA/$name.yaml"
done
shuyu catalog list
shuyu catalog show residents

step "4. Grant them to the project employment-insights (public governance, five years)"
shuyu grant add examples/grant-employment.yaml
shuyu grant list

step "4b. Register the people who use the HTTP API and their roles (deny by default)"
shuyu user add li --role analyst
shuyu user add wang --role reviewer
shuyu user add zhao --role auditor
shuyu user list

step "5. Build the project's workspace and its synthetic twin (DuckDB, after the transforms)"
shuyu workspace build employment-insights
shuyu workspace build employment-insights --synthetic
shuyu workspace build employment-insights   # the second build reuses the cached one

step "6. Build the job runtime for the sandbox (debootstrap; cached after the first run)"
shuyu sandbox build-image --backend "${SHUYU_BACKEND:-local}"

step "7. Development run of the sample job on the synthetic twin: outputs and log shown to the analyst"
shuyu job run --dev examples/jobs/employment/job.yaml

step "8. Production run: submitted to the queue, run by a worker in the sandbox, outputs held by the platform"
JOB=$(shuyu job submit examples/jobs/employment/job.yaml --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
echo "submitted $JOB"
shuyu worker --once
shuyu job status "$JOB"

step "9. The automated egress checks of that job (what a reviewer sees first; values masked)"
shuyu checks show "$JOB"

step "10. An analyst checks a table locally before submitting (same rules; ACRO layout with --format acro)"
printf 'district,contributors\n海勃湾区,120\n海南区,4\n乌达区,37\n' > "$SHUYU_HOME/tmp/precheck.csv"
shuyu check "$SHUYU_HOME/tmp/precheck.csv" --counts contributors || echo "(exit $?: one cell fails the threshold rule)"

step "11. Everything above is in the tamper-evident ledger"
shuyu ledger list
shuyu ledger verify
