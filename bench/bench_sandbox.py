"""Overhead of one trivial sandboxed job, per backend: prepare + execute + collect + cleanup.

    .venv/bin/python bench/bench_sandbox.py [--runs 20] [--backends local,docker]

Needs root, bubblewrap and (for docker) the engine: scripts/start-dockerd.sh starts it.
The job runtime is built first if it is not cached yet (about a minute, once).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import duckdb  # noqa: E402

from sandbox import (  # noqa: E402
    Limits,
    SandboxRequest,
    build_image,
    collect_outputs,
    ensure_runtime,
    get_backend,  # noqa: E402
)

JOB = ["python", "-c", "open('/output/one.txt', 'w').write('1'); print(1)"]
LIMITS = Limits(wall_seconds=60, memory_bytes=512 * 1024**2, pids=64)


def bench(name: str, runs: int, root: Path) -> list[float]:
    runtime = ensure_runtime()
    if name == "docker":
        subprocess.run(["sh", str(REPO / "scripts/start-dockerd.sh")], check=True, timeout=120)
        runtime = replace(runtime, image_id=build_image(runtime))
    backend = get_backend(name, runtime)
    ok, why = backend.available()
    if not ok:
        raise SystemExit(f"{name}: not available: {why}")
    workspace = root / "workspace.duckdb"
    if not workspace.exists():
        con = duckdb.connect(str(workspace))
        con.execute("CREATE TABLE t AS SELECT 1 AS x")
        con.close()
        workspace.chmod(0o644)
    code = root / "code"
    code.mkdir(exist_ok=True)
    times = []
    for i in range(runs + 1):  # the first run warms caches and is not counted
        out = root / f"{name}-{i}" / "output"
        dest = root / f"{name}-{i}" / "collected"
        out.mkdir(parents=True)
        req = SandboxRequest(
            run_id=f"bench-{name}-{os.getpid()}-{i}",
            argv=JOB,
            workspace=workspace,
            code_dir=code,
            output_dir=out,
            limits=LIMITS,
        )
        t0 = time.perf_counter()
        backend.prepare(req)
        res = backend.execute(req)
        report = collect_outputs(out, ["one.txt"], 10, 1024**2, dest)
        backend.cleanup(req.run_id)
        elapsed = time.perf_counter() - t0
        if res.failure is not None or not report.ok:
            raise SystemExit(f"{name}: run {i} failed: {res.reason} {res.log[-500:]!r}")
        if i:
            times.append(elapsed)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--backends", default="local,docker")
    args = parser.parse_args()
    names = [n.strip() for n in args.backends.split(",") if n.strip()]
    results: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="shuyu-bench-") as tmp:
        for name in names:
            results[name] = bench(name, args.runs, Path(tmp))

    def ms(x: float) -> str:
        return f"{x * 1000:8.1f} ms"

    print(f"trivial job, {args.runs} runs each (prepare + execute + collect + cleanup)")
    print(f"{'':10}" + "".join(f"{n:>14}" for n in names))
    rows = [
        ("median", statistics.median),
        ("min", min),
        ("max", max),
        ("p90", lambda xs: sorted(xs)[int(0.9 * (len(xs) - 1))]),
    ]
    for label, fn in rows:
        print(f"{label:10}" + "".join(f"{ms(fn(results[n])):>14}" for n in names))


if __name__ == "__main__":
    main()
