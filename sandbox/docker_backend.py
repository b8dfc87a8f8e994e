"""The Docker backend: the same runtime as an image pinned by ID, under the engine's limits.

Every container carries the label shuyu.run_id, so a crashed platform finds its leftovers.
No network, read-only root, no capabilities, no_new_privs, Docker's default seccomp profile,
uid 10001. Logs never touch the engine's disk (log driver "none"): they are read live from
the attach stream with a byte cap. Optional OCI runtime (e.g. "runsc" for gVisor).
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any

from shuyu.errors import ShuyuError

from .base import SandboxRequest, SandboxResult, SandboxUnavailable
from .cgroups import RunCgroups, leftover_run_ids
from .common import (
    Evidence,
    FrameDecoder,
    LogCapture,
    check_request,
    claim_run,
    file_at_size_cap,
    internal_result,
    leftovers,
    mount_output,
    output_full,
    output_mount_run_ids,
    pump,
    release_run,
    result,
    unmount_output,
)
from .hardening import (
    ANALYST_GID,
    ANALYST_UID,
    CALL_TIMEOUT_S,
    CGROUP_PARENT,
    CODE_PATH,
    CONTAINER_NAME_PREFIX,
    DOCKER_CAP_DROP,
    DOCKER_IPC_MODE,
    DOCKER_LOG_CONFIG,
    DOCKER_NETWORK_MODE,
    DOCKER_SECURITY_OPT,
    KILL_GRACE_S,
    LABEL_MANAGED,
    LABEL_RUN_ID,
    OUTPUT_PATH,
    SHM_BYTES,
    TMP_PATH,
    TMP_TMPFS_FLAGS,
    TMP_TMPFS_MODE,
    WORKSPACE_PATH,
)
from .runtime import Runtime, build_image
from .stage import neutral_name, stage_inputs, unstage


class DockerBackend:
    """Runs jobs as Docker containers on the local engine (never pulls)."""

    name = "docker"

    def __init__(
        self, runtime: Runtime, *, oci_runtime: str | None = None, client: Any = None
    ) -> None:
        self.runtime = runtime
        self.oci_runtime = oci_runtime
        self._client = client
        self._image_id: str | None = None
        self._lock = threading.Lock()
        self._results: dict[str, SandboxResult] = {}
        self._terminated: set[str] = set()

    # -- interface -------------------------------------------------------------------------

    def available(self) -> tuple[bool, str]:
        try:
            client = self._engine()
            client.ping()
            info = client.info()
        except Exception as exc:  # noqa: BLE001 - any failure means "not available", with why
            return False, f"Docker engine not reachable: {exc} (run scripts/start-dockerd.sh)"
        if self.oci_runtime and self.oci_runtime not in (info.get("Runtimes") or {}):
            return False, f"OCI runtime {self.oci_runtime!r} is not configured in the engine"
        if "name=seccomp" not in " ".join(info.get("SecurityOptions") or []):
            return False, "the engine has no seccomp support; refusing to run untrusted code"
        if self.runtime.image_id is None and not self.runtime.rootfs.is_dir():
            return False, "no job runtime image and no rootfs to import it from"
        return (
            True,
            f"Docker {info.get('ServerVersion', '?')}, cgroup driver {info.get('CgroupDriver')}",
        )

    def prepare(self, req: SandboxRequest) -> None:
        ok, why = self.available()
        if not ok:
            raise SandboxUnavailable(f"docker sandbox unavailable: {why}")
        check_request(req)
        claim_run(req.run_id, self.name)
        image_id = self._image()
        # A parent cgroup of our own: its pids.peak survives the container's own group.
        RunCgroups(req.run_id).create_parent(pids=req.limits.pids)
        mount_output(req)
        with self._lock:
            if req.run_id in self._results:  # already ran: its container is gone on purpose
                return
        if self._find(req.run_id):
            return
        self._create(req, image_id)

    def execute(self, req: SandboxRequest) -> SandboxResult:
        with self._lock:
            if req.run_id in self._results:
                return self._results[req.run_id]
        started = time.monotonic()
        try:
            self.prepare(req)
        except ShuyuError as exc:
            return internal_result(f"sandbox not prepared: {exc}", req.limits, started)
        try:
            res = self._run(req, started)
        except Exception as exc:  # noqa: BLE001 - engine errors become a closed failure
            with contextlib.suppress(Exception):
                self.terminate(req.run_id)
            res = internal_result(f"Docker engine error: {exc}", req.limits, started)
        with self._lock:
            self._results[req.run_id] = res
        return res

    def terminate(self, run_id: str) -> None:
        with self._lock:
            self._terminated.add(run_id)
        for container in self._find(run_id):
            with contextlib.suppress(Exception):
                container.kill()

    def cleanup(self, run_id: str) -> None:
        import docker.errors  # type: ignore[import-untyped]

        for container in self._find(run_id):
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True)
        RunCgroups(run_id).remove()
        unmount_output(run_id)
        unstage(run_id)
        release_run(run_id)
        with self._lock:
            self._results.pop(run_id, None)
            self._terminated.discard(run_id)

    def list_leftovers(self) -> list[str]:
        """Runs still present whose owning platform process is gone (crash recovery)."""
        found = set(output_mount_run_ids()) | leftover_run_ids()
        with contextlib.suppress(Exception):
            for container in self._engine().containers.list(
                all=True, filters={"label": LABEL_RUN_ID}
            ):
                found.add(container.labels.get(LABEL_RUN_ID, ""))
        return leftovers(found, self.name)

    # -- internals -------------------------------------------------------------------------

    def _engine(self) -> Any:
        if self._client is None:
            import docker  # type: ignore[import-untyped]

            self._client = docker.from_env(timeout=int(CALL_TIMEOUT_S))
        return self._client

    def _image(self) -> str:
        """The runtime image ID, verified to exist locally; imported from the rootfs if not."""
        import docker.errors  # type: ignore[import-untyped]

        if self._image_id:
            return self._image_id
        image_id = self.runtime.image_id
        if image_id:
            try:
                self._engine().images.get(image_id)
            except docker.errors.ImageNotFound:
                image_id = None
        if not image_id:
            image_id = build_image(self.runtime)
        self._image_id = image_id
        return image_id

    def _find(self, run_id: str) -> list[Any]:
        return list(
            self._engine().containers.list(all=True, filters={"label": f"{LABEL_RUN_ID}={run_id}"})
        )

    def _create(self, req: SandboxRequest, image_id: str) -> Any:
        from docker.types import LogConfig, Mount, Ulimit  # type: ignore[import-untyped]

        lim = req.limits
        workspace, code = stage_inputs(req)  # neutral paths: the job's mount table shows them
        tmp_opts = ",".join([*TMP_TMPFS_FLAGS, f"size={lim.tmp_bytes}", f"mode={TMP_TMPFS_MODE}"])
        options: dict[str, Any] = dict(
            image=image_id,
            command=list(req.argv),
            name=f"{CONTAINER_NAME_PREFIX}{req.run_id}",
            labels={LABEL_RUN_ID: req.run_id, LABEL_MANAGED: "1"},
            user=f"{ANALYST_UID}:{ANALYST_GID}",
            environment=req.sandbox_env(),
            working_dir=TMP_PATH,
            hostname="sandbox",
            network_mode=DOCKER_NETWORK_MODE,
            ipc_mode=DOCKER_IPC_MODE,
            read_only=True,
            cap_drop=list(DOCKER_CAP_DROP),
            security_opt=list(DOCKER_SECURITY_OPT),
            pids_limit=lim.pids,
            mem_limit=lim.memory_bytes,
            memswap_limit=lim.memory_bytes,
            mem_swappiness=0,
            nano_cpus=int(lim.cpus * 1e9),
            shm_size=min(SHM_BYTES, lim.tmp_bytes),
            ulimits=[
                Ulimit(name="nofile", soft=lim.open_files, hard=lim.open_files),
                Ulimit(name="fsize", soft=lim.file_size_bytes, hard=lim.file_size_bytes),
            ],
            tmpfs={TMP_PATH: tmp_opts},
            mounts=[
                Mount(WORKSPACE_PATH, str(workspace), type="bind", read_only=True),
                Mount(CODE_PATH, str(code), type="bind", read_only=True),
                Mount(OUTPUT_PATH, str(req.output_dir), type="bind", read_only=False),
            ],
            cgroup_parent=f"/{CGROUP_PARENT}/{neutral_name(req.run_id)}",
            log_config=LogConfig(**DOCKER_LOG_CONFIG),
            stdin_open=False,
            tty=False,
            detach=True,
        )
        if self.oci_runtime:
            options["runtime"] = self.oci_runtime
        return self._engine().containers.create(**options)

    def _run(self, req: SandboxRequest, started: float) -> SandboxResult:
        from docker.errors import NotFound

        with self._lock:
            if req.run_id in self._terminated:
                return internal_result(
                    "terminated by the platform before it started", req.limits, started
                )
        containers = self._find(req.run_id)
        if not containers:
            return internal_result("container vanished before start", req.limits, started)
        container = containers[0]
        capture = LogCapture(req.limits.log_bytes)
        # Attach before start so not one byte of output is missed; no socket timeout, the
        # deadline is enforced by pump().
        sock = container.attach_socket(params={"stdout": 1, "stderr": 1, "stream": 1, "logs": 0})
        raw = getattr(sock, "_sock", sock)
        raw.settimeout(None)
        last_poll = [0.0]

        def finished() -> bool:
            """Throttled status poll, in case the stream outlives the container."""
            now = time.monotonic()
            if now - last_poll[0] < 1.0:
                return False
            last_poll[0] = now
            with contextlib.suppress(Exception):
                container.reload()
                return bool(container.status in ("exited", "dead"))
            return False

        deadline = started + req.limits.wall_seconds
        try:
            container.start()
            with self._lock:
                if req.run_id in self._terminated:  # terminate() raced with the start
                    self._kill(container)
            timed_out = pump(
                raw.fileno(),
                capture,
                deadline,
                on_deadline=lambda: self._kill(container),
                is_finished=finished,
                decode=FrameDecoder(),
            )
        finally:
            with contextlib.suppress(Exception):
                sock.close()
        # The stream can end before the process does (it closed its stdout): the wall
        # deadline still applies.
        try:
            outcome = self._wait(container, max(deadline - time.monotonic(), 0.0) + 0.5)
            if outcome is None:
                timed_out = True
                self._kill(container)
                outcome = self._wait(container, KILL_GRACE_S + CALL_TIMEOUT_S) or {}
            container.reload()
        except NotFound:
            return internal_result(
                "container disappeared while running", req.limits, started, capture
            )
        st = container.attrs.get("State", {})
        exit_code = outcome.get("StatusCode", st.get("ExitCode"))
        with self._lock:
            terminated = req.run_id in self._terminated
        cg = RunCgroups(req.run_id)
        evidence = Evidence(
            exit_code=exit_code,
            timed_out=timed_out,
            oom_killed=bool(st.get("OOMKilled")),
            pids_exhausted=cg.pids_exhausted(req.limits.pids),
            output_full=output_full(req),
            file_size_hit=exit_code != 0 and file_at_size_cap(req),
            terminated=terminated and not timed_out,
            internal=st.get("Error") or None,
        )
        with contextlib.suppress(NotFound):
            container.remove(force=True)
        return result(evidence, req.limits, capture, started)

    @staticmethod
    def _wait(container: Any, timeout_s: float) -> dict[str, Any] | None:
        """The engine's wait result, or None if the container still runs after `timeout_s`."""
        import requests

        try:
            return dict(container.wait(timeout=max(timeout_s, 0.1)))
        except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError):
            return None

    @staticmethod
    def _kill(container: Any) -> None:
        with contextlib.suppress(Exception):
            container.kill()
