"""Sandboxes for untrusted analysis code: one interface, two backends (bubblewrap, Docker).

runtime = ensure_runtime(settings.runtime_cache)          # build/cache the job rootfs
backend = get_backend("local", runtime)                     # or "docker"
backend.prepare(req); result = backend.execute(req)
report = collect_outputs(req.output_dir, declared, max_files, max_bytes, dest)
backend.cleanup(req.run_id)                                 # after collecting
"""

from .base import (
    BACKENDS,
    Failure,
    Limits,
    SandboxBackend,
    SandboxRefused,
    SandboxRequest,
    SandboxResult,
    SandboxUnavailable,
    get_backend,
)
from .collect import CollectedFile, CollectionReport, RefusedFile, collect_outputs
from .runtime import BuildProgress, Runtime, build_image, ensure_runtime

__all__ = [
    "BACKENDS",
    "BuildProgress",
    "CollectedFile",
    "CollectionReport",
    "Failure",
    "Limits",
    "RefusedFile",
    "Runtime",
    "SandboxBackend",
    "SandboxRefused",
    "SandboxRequest",
    "SandboxResult",
    "SandboxUnavailable",
    "build_image",
    "collect_outputs",
    "ensure_runtime",
    "get_backend",
]
