"""Choosing the sandbox backend for this deployment (`SHUYU_BACKEND`), with its runtime ready."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from sandbox.base import BACKENDS, SandboxBackend, get_backend
from sandbox.runtime import build_image, ensure_runtime
from shuyu.errors import ValidationError
from shuyu.settings import Settings


def open_backend(
    settings: Settings,
    name: str | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> SandboxBackend:
    name = name or settings.backend
    if name not in BACKENDS:
        raise ValidationError(
            f"unknown sandbox backend {name!r}",
            field="SHUYU_BACKEND",
            fix=f"use one of: {', '.join(BACKENDS)}",
        )

    def report(p: object) -> None:
        if progress is not None:
            progress(
                f"job runtime: {getattr(p, 'step', '')}",
                getattr(p, "done", 0),
                getattr(p, "total", 1),
            )

    runtime = ensure_runtime(settings.runtime_cache, report)
    if name == "docker" and runtime.image_id is None:
        runtime = dataclasses.replace(runtime, image_id=build_image(runtime))
    if name == "docker" and settings.docker_runtime:
        return get_backend(name, runtime, oci_runtime=settings.docker_runtime)
    return get_backend(name, runtime)
