"""Job overhead: a trivial job from submit to outputs collected, on each backend, side by side.

Targets (issue 3): median under 0.5 s with the local backend and under 1.5 s with Docker.
Also jobs per minute with two workers. Usage: python bench/bench_jobs.py [--runs 15]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path

import yaml
from common import ROOT, demo_data, ensure_tenant

TRIVIAL = 'import os\nopen(os.path.join(os.environ["SHUYU_OUTPUT"], "result.csv"), "w").write("n\\n1\\n")\n'


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--throughput-jobs", type=int, default=20)
    args = parser.parse_args()

    from catalog.service import register
    from jobs import service
    from jobs.backends import open_backend
    from jobs.worker import Worker
    from policies.service import add_grant
    from policies.workspace import build_workspace
    from shuyu.platform import init_home
    from shuyu.settings import Settings

    data = demo_data(1)
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        platform, _ = init_home(Settings.from_env({}, home=tmp_path / "home", actor="bench"))
        for name in ("residents", "enterprises", "contributions"):
            register(platform, data / f"{name}.yaml")
        ensure_tenant(platform, ROOT / "examples" / "grant-employment.yaml")
        add_grant(platform, ROOT / "examples" / "grant-employment.yaml")
        build_workspace(platform, "employment-insights")
        spec = tmp_path / "job" / "job.yaml"
        spec.parent.mkdir()
        (spec.parent / "main.py").write_text(TRIVIAL)
        spec.write_text(
            yaml.safe_dump(
                {
                    "version": 1,
                    "name": "trivial",
                    "project": "employment-insights",
                    "purpose": "public_governance",
                    "actions": {
                        "main": {
                            "run": "python main.py",
                            "outputs": {"result.csv": {"kind": "table", "context": "bench"}},
                        }
                    },
                }
            )
        )
        results = {}
        for name in ("local", "docker"):
            backend = open_backend(platform.settings, name)
            worker = Worker(platform, backend)
            times = []
            for _ in range(args.runs + 1):
                started = time.perf_counter()
                job = service.submit(platform, spec)
                worker.run(once=True)
                assert service.view(platform, job.id).job.state.value == "review_pending"
                times.append(time.perf_counter() - started)
            median = statistics.median(times[1:])  # first run warms caches
            for _ in range(args.throughput_jobs):
                service.submit(platform, spec)
            started = time.perf_counter()
            threads = [
                threading.Thread(
                    target=Worker(platform, backend, name=f"{name}-{i}").run, kwargs={"once": True}
                )
                for i in range(2)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            per_minute = args.throughput_jobs / (time.perf_counter() - started) * 60
            results[name] = (median, per_minute)

    targets = {"local": 0.5, "docker": 1.5}
    print(
        f"{'backend':8} {'median submit→collected':>24} {'target':>8} {'jobs/min (2 workers)':>22}"
    )
    for name, (median, per_minute) in results.items():
        verdict = "met" if median < targets[name] else "NOT met"
        print(
            f"{name:8} {median * 1000:21.0f} ms {targets[name]:6.1f} s {per_minute:18.0f}      ({verdict})"
        )
    print(f"docker/local overhead ratio: {results['docker'][0] / results['local'][0]:.1f}x")


if __name__ == "__main__":
    main()
