"""Shared benchmark set-up: demo data at a scale, cached between runs, and a platform over it."""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CACHE = ROOT / "bench" / "out"


def demo_data(scale: int) -> Path:
    """Generate once per scale; later runs reuse it (the generator is deterministic)."""
    from catalog.demo_data import generate_demo_data

    out = CACHE / f"demo-scale-{scale}"
    if not (out / "contributions.yaml").exists():
        started = time.perf_counter()
        generate_demo_data(out, scale=scale)
        print(f"generated scale-{scale} demo data in {time.perf_counter() - started:.1f} s")
    return out


def median_seconds(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def ensure_tenant(platform, grant_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Grants name a registered tenant: register the one this grant names."""
    import yaml

    from shuyu.tenancy import add_tenant, list_tenants

    tenant = yaml.safe_load(Path(grant_path).read_text(encoding="utf-8"))["tenant"]
    if tenant not in {t["name"] for t in list_tenants(platform)}:
        add_tenant(platform, tenant)
