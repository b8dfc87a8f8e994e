#!/bin/sh
# Build (or find cached) the job runtime, and import it into Docker when the engine answers.
#
#   scripts/build-runtime.sh [CACHE_DIR]      default: $SHUYU_RUNTIME_CACHE or /var/cache/shuyu/runtime
#
# Needs root and debootstrap (apt-get install -y debootstrap). Cold build about a minute;
# afterwards instant until the recipe (Debian suite, pinned Python packages) changes.
set -eu
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
CACHE=${1:-${SHUYU_RUNTIME_CACHE:-/var/cache/shuyu/runtime}}
exec "$PY" - "$CACHE" <<'PYEOF'
import sys, time
from pathlib import Path
from sandbox.runtime import build_image, ensure_runtime

start = time.monotonic()
last = None

def show(p):
    global last
    line = f"[{p.done}/{p.total}] {p.step}: {p.detail}"[:150]
    if line != last:
        print(line, flush=True)
        last = line

rt = ensure_runtime(Path(sys.argv[1]), show)
print(f"runtime: {rt.rootfs} (recipe {rt.recipe_hash}, duckdb {rt.duckdb_version}) "
      f"in {time.monotonic() - start:.0f} s")
try:
    import docker
    docker.from_env(timeout=10).ping()
except Exception as exc:  # noqa: BLE001
    print(f"docker: engine not reachable ({exc}); image not imported")
else:
    print(f"docker image: {build_image(rt)}")
PYEOF
