"""Attacks on the sandbox, each run for real on both backends (bubblewrap and Docker).

Every attack must end failed with the specific reason, or contained, and the host unchanged.
Each attack is a small Python program placed in the code folder and run as python /code/x.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import stat
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from sandbox import Failure, collect_outputs
from sandbox.base import SandboxRefused, SandboxRequest
from tests.sandbox.conftest import SMALL  # the `job` fixture's default limits

Job = Any  # the `job` fixture: .run(code, limits=, argv=, env=) -> SandboxResult; .layout; .req


def _last_json(result) -> dict:
    lines = [ln for ln in result.log.decode(errors="replace").splitlines() if ln.startswith("{")]
    assert lines, result.log.decode(errors="replace")[-2000:]
    return json.loads(lines[-1])


def _disk_free() -> int:
    st = os.statvfs("/")
    return st.f_bavail * st.f_frsize


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- the job's identity and its view of the filesystem -------------------------------------

IDENTITY = r"""
import json, os, subprocess, duckdb
st = dict(l.split(":\t", 1) for l in open("/proc/self/status").read().splitlines() if ":\t" in l)
out = {"uid": os.getuid(), "euid": os.geteuid(), "gid": os.getgid(), "groups": os.getgroups(),
       "id_u": subprocess.run(["id", "-u"], capture_output=True, text=True).stdout.strip(),
       "capeff": st["CapEff"].strip(), "capprm": st["CapPrm"].strip(), "capbnd": st["CapBnd"].strip(),
       "nnp": st["NoNewPrivs"].strip(), "seccomp": st["Seccomp"].strip()}
con = duckdb.connect("/workspace/workspace.duckdb", read_only=True)
out["rows"] = con.execute("select count(*) from trips").fetchone()[0]
con.close()
def can_write(path, mode="ab"):
    try:
        with open(path, mode) as fh:
            fh.write(b"x")
        return True
    except OSError as e:
        return e.strerror
out["ws_write"] = can_write("/workspace/workspace.duckdb")
out["ws_new"] = can_write("/workspace/new.duckdb", "wb")
out["code_write"] = can_write("/code/x.py")
out["code_new"] = can_write("/code/evil.py", "wb")
out["root_write"] = can_write("/evil", "wb")
out["etc_write"] = can_write("/etc/passwd")
out["venv_write"] = can_write("/opt/shuyu-venv/bin/python")
out["dev_write"] = can_write("/dev/evil", "wb")
out["proc_write"] = can_write("/proc/sys/kernel/hostname", "wb")
out["output_write"] = can_write("/output/ok.txt", "wb")
out["tmp_write"] = can_write("/tmp/ok.txt", "wb")
out["env"] = dict(os.environ)
print(json.dumps(out))
"""


def test_identity_and_filesystem_view(job: Job) -> None:
    res = job.run(IDENTITY)
    assert res.failure is None, res.reason + res.log.decode()[-2000:]
    out = _last_json(res)
    assert out["uid"] == out["euid"] == out["gid"] == 10001
    assert out["id_u"] == "10001" and out["groups"] in ([], [10001])
    # uid 10001 inside is uid 10001 outside too: the file it wrote belongs to 10001 on the host.
    written = (job.layout.output / "ok.txt").stat()
    assert (written.st_uid, written.st_gid) == (10001, 10001)
    assert int(out["capeff"], 16) == 0 and int(out["capprm"], 16) == 0
    assert out["nnp"] == "1"
    assert out["seccomp"] == "2"  # a filter is installed (Docker's default / our denylist)
    assert out["rows"] == 1000  # the workspace is readable...
    for key in (
        "ws_write",
        "ws_new",
        "code_write",
        "code_new",
        "root_write",
        "etc_write",
        "venv_write",
        "dev_write",
        "proc_write",
    ):
        assert out[key] is not True, f"{key} was writable"  # ...and nothing else but /output, /tmp
    assert out["output_write"] is True and out["tmp_write"] is True
    assert set(out["env"]) <= {
        "PATH",
        "HOME",
        "LANG",
        "SHUYU_WORKSPACE",
        "SHUYU_OUTPUT",
        "PYTHONDONTWRITEBYTECODE",
        "TMPDIR",
        "PWD",
        "HOSTNAME",
    }
    assert out["env"]["SHUYU_WORKSPACE"] == "/workspace/workspace.duckdb"


# --- resource exhaustion -----------------------------------------------------------------

FORK_BOMB = r"""
import os
while True:
    try:
        os.fork()
    except OSError:
        pass
"""


def test_fork_bomb_is_stopped_by_pids_limit(job: Job) -> None:
    res = job.run(FORK_BOMB, limits=replace(SMALL, pids=32, wall_seconds=4))
    assert res.failure == Failure.PIDS, res.reason


MEMORY_BOMB = r"""
hog = []
while True:
    hog.append(b"\x01" * (16 << 20))
"""


def test_memory_bomb_is_killed(job: Job) -> None:
    res = job.run(MEMORY_BOMB, limits=replace(SMALL, memory_bytes=128 * 1024**2))
    assert res.failure == Failure.MEMORY, res.reason
    assert res.exit_code == 137


CPU_SPIN = r"""
import signal
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("spinning", flush=True)
while True:
    pass
"""


def test_cpu_spin_ignoring_sigterm_times_out(job: Job) -> None:
    res = job.run(CPU_SPIN, limits=replace(SMALL, wall_seconds=2))
    assert res.failure == Failure.TIMEOUT, res.reason
    assert res.exit_code is None
    assert b"spinning" in res.log


CLOSED_STDOUT_SPIN = r"""
import os
os.close(1); os.close(2)
while True:
    pass
"""


def test_job_closing_its_output_still_times_out(job: Job) -> None:
    res = job.run(CLOSED_STDOUT_SPIN, limits=replace(SMALL, wall_seconds=2))
    assert res.failure == Failure.TIMEOUT, res.reason


FILL = r"""
import json, os, sys
target = sys.argv[1] if len(sys.argv) > 1 else "/output"
written, err = 0, None
chunk = b"\x00" * (1 << 20)
try:
    for i in range(100000):
        with open(f"{target}/fill-{i}.txt", "wb") as fh:
            fh.write(chunk)
            written += len(chunk)
except OSError as e:
    err = e.strerror
print(json.dumps({"written": written, "err": err}), flush=True)
sys.exit(1 if err else 0)
"""


def test_output_disk_fill_hits_output_limit(job: Job) -> None:
    before = _disk_free()
    res = job.run(FILL, limits=replace(SMALL, output_bytes=8 * 1024**2))
    assert res.failure == Failure.OUTPUT_LIMIT, res.reason
    out = _last_json(res)
    assert out["err"] == "No space left on device"
    assert out["written"] <= 8 * 1024**2
    assert before - _disk_free() < 64 * 1024**2  # the host disk was never written


def test_tmp_disk_fill_is_contained(job: Job) -> None:
    before = _disk_free()
    res = job.run(
        FILL, argv=["python", "/code/x.py", "/tmp"], limits=replace(SMALL, tmp_bytes=8 * 1024**2)
    )
    assert res.failure == Failure.NONZERO_EXIT, res.reason
    out = _last_json(res)
    assert out["err"] == "No space left on device"
    assert out["written"] <= 8 * 1024**2
    assert before - _disk_free() < 64 * 1024**2


BIG_FILE = r"""
with open("/output/big.csv", "wb") as fh:
    for _ in range(4):
        fh.write(b"a" * (1 << 20))
"""


def test_single_oversized_file_hits_file_size_limit(job: Job) -> None:
    res = job.run(BIG_FILE, limits=replace(SMALL, file_size_bytes=1024**2))
    assert res.failure == Failure.FILE_SIZE, res.reason
    assert (job.layout.output / "big.csv").stat().st_size == 1024**2  # cut by the kernel


def test_oversized_file_by_a_native_tool_is_killed_by_sigxfsz(job: Job) -> None:
    res = job.run(
        "",
        argv=["sh", "-c", "head -c 3000000 /dev/zero > /tmp/big.bin"],
        limits=replace(SMALL, file_size_bytes=1024**2),
    )
    assert res.failure == Failure.FILE_SIZE, res.reason
    assert res.exit_code == 128 + 25  # SIGXFSZ


FLOOD = r"""
import sys
line = b"y" * 1023 + b"\n"
for _ in range(16 * 1024):
    sys.stdout.buffer.write(line)
sys.stderr.write("done\n")
"""


def test_stdout_flood_is_capped(job: Job) -> None:
    res = job.run(FLOOD, limits=replace(SMALL, log_bytes=64 * 1024))
    assert res.failure is None, res.reason
    assert len(res.log) == 64 * 1024
    assert res.log_truncated


# --- network -----------------------------------------------------------------------------

NETWORK = r"""
import json, os, socket, sys
devs = [l.split(":")[0].strip() for l in open("/proc/net/dev").read().splitlines()[2:]]
routes = open("/proc/net/route").read().splitlines()[1:]
routes6 = [l for l in open("/proc/net/ipv6_route").read().splitlines() if not l.rstrip().endswith(" lo")]
# Safety first: never send a packet out of a sandbox that has more than loopback.
if devs != ["lo"] or routes or routes6:
    print(json.dumps({"unsafe": [devs, routes, routes6]}))
    sys.exit(3)
out = {}
for host, port in [("1.1.1.1", 443), ("172.17.0.1", 2375), ("172.17.0.1", 443),
                   ("2606:4700:4700::1111", 443), ("127.0.0.1", int(os.environ["HOST_PORT"]))]:
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(3)
    try:
        s.connect((host, port))
        out[f"{host}:{port}"] = "connected"
    except OSError as e:
        out[f"{host}:{port}"] = e.errno or str(e)
    finally:
        s.close()
try:
    socket.getaddrinfo("pypi.org", 443)
    out["dns"] = "resolved"
except socket.gaierror as e:
    out["dns"] = str(e)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
try:
    u.sendto(b"x", ("1.1.1.1", 53))
    out["udp"] = "sent"
except OSError as e:
    out["udp"] = e.errno
out["docker_sock"] = os.path.exists("/var/run/docker.sock") or os.path.exists("/run/docker.sock")
print(json.dumps(out))
"""


def test_network_is_unreachable(job: Job) -> None:
    # A service on the host's loopback: the sandbox's own loopback must not reach it.
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.setblocking(False)
    try:
        res = job.run(NETWORK, env={"HOST_PORT": str(server.getsockname()[1])})
        with pytest.raises(BlockingIOError):
            server.accept()
    finally:
        server.close()
    assert res.failure is None, res.reason + res.log.decode()[-1000:]
    out = _last_json(res)
    assert "unsafe" not in out
    for key, value in out.items():
        if key == "dns":
            assert value != "resolved"
        elif key == "docker_sock":
            assert value is False
        else:
            assert value not in ("connected", "sent"), (key, value)
    assert out["1.1.1.1:443"] == 101  # ENETUNREACH: no route at all
    assert out["172.17.0.1:2375"] == 101


# --- host secrets, other projects, processes ---------------------------------------------

SNOOP = r"""
import json, os, hashlib
out = {"found": [], "direct": {}, "procs": [], "environ_hits": []}
names = set(os.environ["LOOK_FOR"].split(","))
for top in os.listdir("/"):
    if top in ("proc", "sys", "dev"):
        continue
    for dirpath, dirnames, filenames in os.walk("/" + top):
        for n in filenames + dirnames:
            if n in names:
                out["found"].append(os.path.join(dirpath, n))
for path in os.environ["HOST_PATHS"].split(","):
    try:
        open(path, "rb").read(16)
        out["direct"][path] = "read"
    except OSError as e:
        out["direct"][path] = e.strerror
try:
    data = open("/etc/shadow", "rb").read()
    out["shadow"] = hashlib.sha256(data).hexdigest()
except OSError as e:
    out["shadow"] = e.strerror
out["workspace_dir"] = sorted(os.listdir("/workspace"))
canary = os.environ["CANARY_NAME"] + "="
for pid in [p for p in os.listdir("/proc") if p.isdigit()]:
    try:
        cmd = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode()
        comm = open(f"/proc/{pid}/comm").read().strip()
    except OSError:
        cmd = comm = "?"
    out["procs"].append([int(pid), comm, cmd])
    try:
        env = open(f"/proc/{pid}/environ", "rb").read()
        if canary.encode() in env:
            out["environ_hits"].append(int(pid))
    except OSError:
        pass
out["own_env_hit"] = canary in os.environ
print(json.dumps(out))
"""


def test_host_files_other_projects_and_processes_are_invisible(
    job: Job, monkeypatch, canary: str
) -> None:
    monkeypatch.setenv("SHUYU_HOST_CANARY", canary)  # the platform's own env must not leak in
    lay = job.layout
    host_paths = [
        str(lay.secret),
        str(lay.other_workspace),
        str(lay.workspace),
        str(lay.home),
        "/var/run/docker.sock",
        "/root/.bash_history",
    ]
    res = job.run(
        SNOOP,
        env={
            "LOOK_FOR": "platform.key,other-project.duckdb,platform-home",
            "HOST_PATHS": ",".join(host_paths),
            "CANARY_NAME": "SHUYU_HOST_CANARY",
        },
    )
    assert res.failure is None, res.reason + res.log.decode()[-1000:]
    out = _last_json(res)
    assert out["found"] == []
    assert all(v != "read" for v in out["direct"].values()), out["direct"]
    assert out["shadow"] != _sha(Path("/etc/shadow"))  # never the host's shadow file
    assert out["workspace_dir"] == ["workspace.duckdb"]
    assert out["environ_hits"] == [] and out["own_env_hit"] is False
    # Only the sandbox's own processes, in a fresh pid namespace: the job (and for bubblewrap
    # its tiny init), nothing of the host's.
    assert {comm for _, comm, _ in out["procs"]} <= {"python", "bwrap"}, out["procs"]
    assert {pid for pid, _, _ in out["procs"]} <= {1, 2, 3}, out["procs"]
    assert not any(
        lay.home.name in cmd or "pytest" in cmd
        for _, _, cmd in out["procs"]
        if "/code/x.py" not in cmd
    ), out["procs"]


# --- hostile outputs ---------------------------------------------------------------------

HOSTILE_OUTPUTS = r"""
import json, os, stat
out = {}
os.symlink("/etc/passwd", "/output/passwd.csv")
os.symlink(os.environ["SECRET"], "/output/key.txt")
os.mkdir("/output/sub")
os.symlink("/etc", "/output/etcdir")
with open("/output/a.csv", "w") as fh:
    fh.write("x,y\n1,2\n")
os.link("/output/a.csv", "/output/b.csv")
for name, src in [("ws", "/workspace/workspace.duckdb"), ("py", "/opt/shuyu-venv/bin/python3")]:
    try:
        os.link(src, f"/output/{name}.parquet")
        out[f"link_{name}"] = "linked"
    except OSError as e:
        out[f"link_{name}"] = e.strerror
os.mkfifo("/output/pipe.csv")
try:
    os.mknod("/output/null.txt", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    out["mknod"] = "created"
except OSError as e:
    out["mknod"] = e.strerror
with open("/output/sub/ok.csv", "w") as fh:
    fh.write("k,v\na,1\nb,2\n")
with open("/output/notes.exe", "wb") as fh:
    fh.write(b"MZ")
with open("/output/fake.png", "wb") as fh:
    fh.write(b"not a png")
print(json.dumps(out))
"""


def test_hostile_outputs_are_refused_by_collection(job: Job, tmp_path: Path) -> None:
    lay = job.layout
    secret_before = _sha(lay.secret)
    res = job.run(HOSTILE_OUTPUTS, env={"SECRET": str(lay.secret)})
    assert res.failure is None, res.reason + res.log.decode()[-1000:]
    out = _last_json(res)
    assert out["link_ws"] != "linked" and out["link_py"] != "linked"
    assert out["mknod"] != "created"
    dest = tmp_path / "collected"
    declared = [
        "passwd.csv",
        "key.txt",
        "a.csv",
        "b.csv",
        "pipe.csv",
        "sub",
        "etcdir/passwd",
        "fake.png",
        "../platform-home/.shuyu/keys/platform.key",
        "/etc/passwd",
    ]
    report = collect_outputs(lay.output, declared, max_files=10, max_bytes=1024**2, dest=dest)
    assert [f.path for f in report.accepted] == ["sub/ok.csv"]
    assert report.accepted[0].rows == 2 and report.accepted[0].columns == 2
    reasons = {r.path: r.reason for r in report.refused}
    assert reasons["passwd.csv"] == "symbolic link"
    assert reasons["key.txt"] == "symbolic link"
    assert "hard link" in reasons["a.csv"] and "hard link" in reasons["b.csv"]
    assert reasons["pipe.csv"] == "FIFO (named pipe)"
    assert "symbolic link" in reasons["etcdir"]
    assert "not a PNG" in reasons["fake.png"]
    assert "'..'" in reasons["../platform-home/.shuyu/keys/platform.key"]
    assert "relative" in reasons["/etc/passwd"]
    assert {u.path for u in report.undeclared} == {"notes.exe"}
    copied = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
    assert copied == ["sub/ok.csv"]
    assert _sha(lay.secret) == secret_before


# --- privilege ---------------------------------------------------------------------------

PRIVILEGE = r"""
import ctypes, json, os, subprocess
out = {}
libc = ctypes.CDLL(None, use_errno=True)
out["suid_id"] = subprocess.run(["/code/suid-id", "-u"], capture_output=True, text=True).stdout.strip()
out["suid_id_g"] = subprocess.run(["/code/suid-id", "-g"], capture_output=True, text=True).stdout.strip()
try:
    os.setuid(0)
    out["setuid"] = "root"
except OSError as e:
    out["setuid"] = e.strerror
for cmd in (["unshare", "-U", "true"], ["unshare", "-r", "true"], ["unshare", "-m", "true"],
            ["unshare", "-n", "true"], ["mount", "-t", "tmpfs", "none", "/tmp"]):
    r = subprocess.run(cmd, capture_output=True, text=True)
    out[" ".join(cmd)] = r.returncode
CLONE_NEWUSER, CLONE_NEWNS = 0x10000000, 0x00020000
for name, flags in (("unshare_user", CLONE_NEWUSER), ("unshare_ns", CLONE_NEWNS)):
    rc = libc.unshare(flags)
    out[name] = rc if rc == 0 else ctypes.get_errno()
os.makedirs("/tmp/m", exist_ok=True)
rc = libc.mount(b"none", b"/tmp/m", b"tmpfs", 0, None)
out["mount"] = rc if rc == 0 else ctypes.get_errno()
rc = libc.chroot(b"/tmp")
out["chroot"] = rc if rc == 0 else ctypes.get_errno()
print(json.dumps(out))
"""


def test_setuid_mount_and_user_namespaces_give_nothing(job: Job, runtime) -> None:
    suid = job.layout.code / "suid-id"
    shutil.copy(runtime.rootfs / "usr/bin/id", suid)
    os.chown(suid, 0, 0)
    os.chmod(suid, 0o4755 | stat.S_ISGID)
    res = job.run(PRIVILEGE)
    assert res.failure is None, res.reason + res.log.decode()[-1000:]
    out = _last_json(res)
    assert out["suid_id"] == "10001" and out["suid_id_g"] == "10001"  # setuid bit has no effect
    assert out["setuid"] != "root"
    for key in (
        "unshare -U true",
        "unshare -r true",
        "unshare -m true",
        "unshare -n true",
        "mount -t tmpfs none /tmp",
    ):
        assert out[key] != 0, key
    for key in ("unshare_user", "unshare_ns", "mount", "chroot"):
        assert out[key] != 0, (key, out[key])


# --- the interface's contract ------------------------------------------------------------

HAPPY = r"""
import duckdb, os
con = duckdb.connect(os.environ["SHUYU_WORKSPACE"], read_only=True)
con.execute("COPY (SELECT district, count(*) AS n FROM trips GROUP BY 1 ORDER BY 1) TO '/output/by_district.csv'")
con.execute("COPY (SELECT * FROM trips) TO '/output/trips.parquet' (FORMAT parquet)")
print("ok")
"""


def test_happy_path_execute_collect_cleanup(job: Job, tmp_path: Path) -> None:
    res = job.run(HAPPY)
    assert res.failure is None and res.exit_code == 0, res.reason + res.log.decode()[-1000:]
    job.backend.prepare(job.req)  # idempotent: nothing changes, outputs stay
    assert res.log.strip() == b"ok" and not res.log_truncated
    assert job.backend.execute(job.req) == res  # idempotent: same result, not a second run
    report = collect_outputs(
        job.layout.output,
        ["by_district.csv", "trips.parquet"],
        max_files=5,
        max_bytes=16 * 1024**2,
        dest=tmp_path / "dest",
    )
    assert report.ok, report
    got = {f.path: (f.rows, f.columns) for f in report.accepted}
    assert got == {"by_district.csv": (7, 2), "trips.parquet": (1000, 2)}
    for f in report.accepted:
        assert hashlib.sha256((tmp_path / "dest" / f.path).read_bytes()).hexdigest() == f.sha256


def test_prepare_refuses_unsafe_requests(job: Job, backend, layout) -> None:
    (layout.output / "stale.csv").write_text("a\n")
    req = SandboxRequest(
        run_id="t-refuse",
        argv=["python", "-c", "1"],
        workspace=layout.workspace,
        code_dir=layout.code,
        output_dir=layout.output,
    )
    with pytest.raises(SandboxRefused, match="empty"):
        backend.prepare(req)
    (layout.output / "stale.csv").unlink()
    bad = replace(req, workspace=layout.home / "missing.duckdb")
    with pytest.raises(SandboxRefused, match="not found"):
        backend.prepare(bad)
    link = layout.home / "link.duckdb"
    link.symlink_to(layout.other_workspace)
    with pytest.raises(SandboxRefused, match="regular file"):
        backend.prepare(replace(req, workspace=link))
    layout.workspace.chmod(0o600)
    try:
        with pytest.raises(SandboxRefused, match="not readable"):
            backend.prepare(req)
    finally:
        layout.workspace.chmod(0o644)
    backend.cleanup("t-refuse")
    assert "t-refuse" not in backend.list_leftovers()


CRASHING_PLATFORM = r"""
import json, os, sys
from pathlib import Path
from sandbox import SandboxRequest, ensure_runtime, get_backend
a = json.loads(sys.argv[1])
backend = get_backend(a["backend"], ensure_runtime(Path(a["cache"])))
req = SandboxRequest(run_id=a["run_id"], argv=["python", "-c", "print(1)"],
                     workspace=Path(a["workspace"]), code_dir=Path(a["code"]),
                     output_dir=Path(a["output"]))
backend.prepare(req)
assert backend.execute(req).failure is None
assert a["run_id"] not in backend.list_leftovers()  # its owner (this process) is alive
os._exit(0)  # crash: no cleanup
"""


def test_leftovers_are_found_and_cleaned_after_a_crash(job: Job, backend, layout, runtime) -> None:
    import subprocess
    import sys

    run_id = "t-crash-" + os.urandom(4).hex()
    layout.runs.append(run_id)  # the fixture cleans up even if this test fails
    args = {
        "backend": backend.name,
        "cache": str(runtime.rootfs.parent.parent),
        "run_id": run_id,
        "workspace": str(layout.workspace),
        "code": str(layout.code),
        "output": str(layout.output),
    }
    done = subprocess.run(
        [sys.executable, "-c", CRASHING_PLATFORM, json.dumps(args)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    # The platform restarts: the run is a leftover now that its owner is gone...
    assert run_id in backend.list_leftovers()
    backend.cleanup(run_id)
    # ...and cleanup removes it entirely (cgroups, /output tmpfs, container).
    assert run_id not in backend.list_leftovers()
    assert not any(layout.output.iterdir())


def test_terminate_stops_a_running_job(job: Job) -> None:
    import threading
    import time

    done = {}

    def run() -> None:
        done["res"] = job.run("import time\nprint('started', flush=True)\ntime.sleep(60)")

    t = threading.Thread(target=run)
    t.start()
    time.sleep(2.0)
    job.backend.terminate(job.req.run_id)
    job.backend.terminate(job.req.run_id)  # idempotent
    t.join(timeout=20)
    assert not t.is_alive()
    res = done["res"]
    assert res.failure == Failure.INTERNAL and "terminated" in res.reason


NEIGHBOUR = r"""
import json, os, sys, time
me = sys.argv[1]
open(f"/output/{me}.txt", "w").write(me)
time.sleep(1.5)  # both runs are alive at the same time
print(json.dumps({"me": me, "output": sorted(os.listdir("/output")),
                  "procs": len([p for p in os.listdir("/proc") if p.isdigit()])}))
"""


def test_two_runs_at_once_do_not_see_each_other(backend, layout) -> None:
    import threading

    (layout.code / "x.py").write_text(NEIGHBOUR)
    reqs = []
    for name in ("a", "b"):
        out = layout.home / "jobs" / f"n-{name}" / "output"
        out.mkdir(parents=True)
        reqs.append(
            SandboxRequest(
                run_id=f"t-nb-{name}-{os.urandom(3).hex()}",
                argv=["python", "/code/x.py", name],
                workspace=layout.workspace,
                code_dir=layout.code,
                output_dir=out,
                limits=SMALL,
            )
        )
    results = {}
    try:
        for req in reqs:
            backend.prepare(req)
        threads = [
            threading.Thread(target=lambda r=r: results.__setitem__(r.run_id, backend.execute(r)))
            for r in reqs
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    finally:
        for req in reqs:
            backend.cleanup(req.run_id)
    for req, name in zip(reqs, ("a", "b"), strict=True):
        res = results[req.run_id]
        assert res.failure is None, res.reason + res.log.decode()[-1000:]
        out = _last_json(res)
        assert out["output"] == [f"{name}.txt"]
        assert out["procs"] <= 2
        assert not any(req.output_dir.iterdir())
