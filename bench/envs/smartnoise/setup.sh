#!/usr/bin/env bash
# Create the separate SmartNoise SQL virtual environment used by bench/bench_dp.py. Idempotent.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
python="${PYTHON:-python3}"
if [ ! -x "$here/bin/python" ]; then
  "$python" -m venv "$here"
fi
"$here/bin/python" -m pip install -q --upgrade pip
"$here/bin/python" -m pip install -q -r "$here/requirements.txt"
"$here/bin/python" -c "import snsql; print('smartnoise-sql ready')"
