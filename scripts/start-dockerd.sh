#!/bin/sh
# Start the Docker engine for the docker sandbox backend, idempotently.
#
# Exit 0 when `docker info` answers (already running, or started here); exit 1 loudly otherwise.
# The engine logs to /var/log/shuyu-dockerd.log. Nothing is ever pulled: the job image is
# imported from the locally built runtime (sandbox/runtime.py).
set -eu

LOG=${SHUYU_DOCKERD_LOG:-/var/log/shuyu-dockerd.log}
SOCK=/var/run/docker.sock
WAIT_S=${SHUYU_DOCKERD_WAIT_S:-60}

engine_ok() {
    timeout 10 docker info >/dev/null 2>&1
}

if engine_ok; then
    exit 0
fi

if ! command -v dockerd >/dev/null 2>&1; then
    echo "start-dockerd: dockerd is not installed (apt-get install -y docker.io)" >&2
    exit 1
fi

# Another start may already be under way (parallel test workers): only one dockerd.
if ! pgrep -x dockerd >/dev/null 2>&1; then
    mkdir -p "$(dirname "$LOG")"
    # setsid: the engine must outlive the shell (and the test session) that started it.
    setsid dockerd >>"$LOG" 2>&1 </dev/null &
fi

i=0
while [ "$i" -lt "$WAIT_S" ]; do
    if [ -S "$SOCK" ] && engine_ok; then
        exit 0
    fi
    sleep 1
    i=$((i + 1))
done

echo "start-dockerd: the Docker engine did not answer within ${WAIT_S}s; last log lines:" >&2
tail -n 20 "$LOG" >&2 || true
exit 1
