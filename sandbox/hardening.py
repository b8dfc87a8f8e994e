"""Every hardened default of the sandboxes, declared once.

Both backends read their identities, paths, environment, mount options and security flags from
here, so a reviewer audits one file and a change of policy cannot drift between backends.
"""

from __future__ import annotations

import re
from pathlib import Path

# Who the job runs as, inside AND outside the sandbox: never root, never the platform's user.
ANALYST_USER = "analyst"
ANALYST_UID = 10001
ANALYST_GID = 10001

# Where things appear inside the sandbox.
WORKSPACE_DIR = "/workspace"
WORKSPACE_PATH = "/workspace/workspace.duckdb"
CODE_PATH = "/code"
OUTPUT_PATH = "/output"
TMP_PATH = "/tmp"

# The runtime's virtualenv (built by sandbox/runtime.py).
VENV = "/opt/shuyu-venv"
SANDBOX_PATH_VAR = f"{VENV}/bin:/usr/local/bin:/usr/bin:/bin"

# The whole environment of a job: nothing of the platform's own environment is inherited.
FIXED_ENV: dict[str, str] = {
    "PATH": SANDBOX_PATH_VAR,
    "HOME": TMP_PATH,
    "LANG": "C.UTF-8",
    "SHUYU_WORKSPACE": WORKSPACE_PATH,
    "SHUYU_OUTPUT": OUTPUT_PATH,
    # The rootfs is read-only: do not even try to write caches next to the code.
    "PYTHONDONTWRITEBYTECODE": "1",
    "TMPDIR": TMP_PATH,
}

# run_id: used in cgroup names, mount sources, container names and labels.
RUN_ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")

# Labels: how leftovers are found again after a crash of the platform.
LABEL_RUN_ID = "shuyu.run_id"
LABEL_MANAGED = "shuyu.managed"
CGROUP_PARENT = "shuyu-runs"  # /sys/fs/cgroup/<controller>/shuyu-runs/<neutral run name>
OUTPUT_MOUNT_SOURCE_PREFIX = "shuyu-run-"  # + the run's neutral name: its /output tmpfs
CONTAINER_NAME_PREFIX = "shuyu-"

# Host-side /output: a size-capped tmpfs owned by the analyst, no devices, no setuid, no exec.
OUTPUT_TMPFS_FLAGS = ("nosuid", "nodev", "noexec")
OUTPUT_TMPFS_MODE = "0770"
# In-sandbox /tmp: size-capped tmpfs; exec allowed (some libraries JIT or unpack there).
TMP_TMPFS_MODE = "1777"
TMP_TMPFS_FLAGS = ("nosuid", "nodev")
SHM_BYTES = 64 * 1024**2  # /dev/shm cap (POSIX semaphores, multiprocessing), at most tmp_bytes

# Docker: the security options the engine applies (its default seccomp profile stays on).
DOCKER_SECURITY_OPT = ("no-new-privileges:true",)
DOCKER_CAP_DROP = ("ALL",)
DOCKER_NETWORK_MODE = "none"
DOCKER_IPC_MODE = "private"
DOCKER_LOG_CONFIG = {"type": "none"}  # logs are streamed by attach with a byte cap, never on disk

# bubblewrap: namespaces, no capabilities, no nested user namespaces, a new session (no TIOCSTI).
BWRAP_FLAGS = (
    "--unshare-all",
    "--unshare-user",
    "--disable-userns",
    "--new-session",
    "--die-with-parent",
    "--cap-drop",
    "ALL",
    "--clearenv",
    "--hostname",
    "sandbox",
)

# Where the local backend stages a run's inputs inside its private mount namespace.
STAGE_DIR = Path("/run/shuyu-sandbox-stage")
# Where each run's inputs are staged under a neutral name before any backend binds them
# (sandbox/stage.py): the sandbox's mount table shows these paths, never the platform home's.
RUN_STAGE_ROOT = Path("/run/shuyu")
# Which platform process owns each prepared run: a run is a leftover only once its owner died.
OWNERS_DIR = Path("/run/shuyu-sandbox/owners")

# Timeouts of the platform's own external calls (seconds).
CALL_TIMEOUT_S = 30.0
KILL_GRACE_S = 5.0  # after SIGKILL, how long to wait for the processes to be gone
OUTPUT_FULL_SLACK_BYTES = 64 * 1024  # an /output with less free space than this counts as full
