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

step "4. Register the operator company (tenant) and grant the datasets to its project employment-insights"
shuyu tenant add 乌海市数据运营有限公司 --title "乌海市数据运营有限公司 (operator)"
shuyu grant add examples/grant-employment.yaml
shuyu grant list

step "4b. People: real-name records, confidentiality agreement, passwords, tokens, project membership"
shuyu user add li --role analyst --tenant 乌海市数据运营有限公司 --display-name 李明
shuyu user realname li --resident-id-stdin <<< "11010519491231002X"   # kept only as a keyed HMAC
shuyu user nda li --signed-on 2026-01-05
shuyu project member employment-insights li
SECRETS="$SHUYU_HOME/tmp"
printf 'demo pass phrase 数域 2026\n' > "$SECRETS/li.password"
shuyu user password li --password-stdin < "$SECRETS/li.password"
shuyu token create li --label demo --days 7 --json \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])' > "$SECRETS/li.token"
echo "li's API token is in $SECRETS/li.token (shown once, stored hashed)"
shuyu user add wang --role reviewer --org 乌海市大数据中心 --display-name 王芳
shuyu user add zhao --role auditor --display-name 赵强
shuyu user list
shuyu project list

step "5. Build the project's workspace and its synthetic twin (DuckDB, after the transforms)"
shuyu workspace build employment-insights
shuyu workspace build employment-insights --synthetic
shuyu workspace build employment-insights   # the second build reuses the cached one

step "6. Build the job runtime for the sandbox (debootstrap; cached after the first run)"
shuyu sandbox build-image --backend "${SHUYU_BACKEND:-local}"

step "7. Development run of the sample job on the synthetic twin: outputs and log shown to the analyst"
shuyu job run --dev examples/jobs/employment/job.yaml

step "8. Production run over HTTP: li signs in (password, CSRF, session cookie), submits with an API token; a worker runs it in the sandbox, outputs held"
PORT="${SHUYU_DEMO_PORT:-8765}"
shuyu serve --port "$PORT" > "$SHUYU_HOME/tmp/serve.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 50); do python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$PORT/api/health')" 2>/dev/null && break; sleep 0.2; done
JOB=$(python3 scripts/demo_http.py "http://127.0.0.1:$PORT" "$SECRETS/li.token" "$SECRETS/li.password")
echo "submitted $JOB"
shuyu worker --once
echo "what li reads over HTTP (the fixed vocabulary):"
python3 -c "import json,sys,urllib.request as u; r=u.Request(sys.argv[1], headers={'Authorization': 'Bearer '+open(sys.argv[2]).read().strip()}); print(json.dumps(json.load(u.urlopen(r)), ensure_ascii=False, indent=1))" "http://127.0.0.1:$PORT/api/jobs/$JOB" "$SECRETS/li.token"
echo "what the host console reads:"
shuyu job status "$JOB"
kill $SERVER; trap - EXIT

step "9. The automated egress checks of that job (what a reviewer sees first; values masked)"
shuyu checks show "$JOB"

step "10. An analyst checks a table locally before submitting (same rules; ACRO layout with --format acro)"
printf 'district,contributors\n海勃湾区,120\n海南区,4\n乌达区,37\n' > "$SHUYU_HOME/tmp/precheck.csv"
shuyu check "$SHUYU_HOME/tmp/precheck.csv" --counts contributors || echo "(exit $?: one cell fails the threshold rule)"

step "11. Everything above is in the tamper-evident ledger"
shuyu ledger list
shuyu ledger verify
