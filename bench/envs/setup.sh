#!/usr/bin/env bash
# Create one of the benchmarks' separate virtual environments (ACRO, SmartNoise SQL, Presidio), which are
# never project dependencies. Idempotent. Usage: bench/envs/setup.sh acro|smartnoise|presidio
set -euo pipefail
name="${1:?usage: $0 acro|smartnoise|presidio}"
case "$name" in
  acro) module=acro ;;
  smartnoise) module=snsql ;;
  presidio) module=presidio_analyzer ;;
  *) echo "unknown environment $name (use acro, smartnoise or presidio)" >&2; exit 2 ;;
esac
here="$(cd "$(dirname "$0")/$name" && pwd)"
if [ ! -x "$here/bin/python" ]; then
  "${PYTHON:-python3}" -m venv "$here"
fi
"$here/bin/python" -m pip install -q --upgrade pip
"$here/bin/python" -m pip install -q -r "$here/requirements.txt"
"$here/bin/python" -c "import $module; print('$name ready')"
