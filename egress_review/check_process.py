"""Each output is checked in its own child process, under memory and time limits.

Outputs are written by untrusted code, so reading them is the riskiest thing the platform does
with them: a 3.5 KB Parquet file can expand to a million rows, a PNG to gigabytes of pixels.
The readers refuse what their caps can see before loading (``extract``); this process is the
backstop for what they cannot: the child sets its own address-space limit (``RLIMIT_AS``,
measured above what it inherited) before touching the file, and the parent kills it at the
deadline. A child that runs out of memory, overruns, crashes or raises yields a ``blocked``
verdict with a reason from a fixed vocabulary — never a pass, never a message from the file.

Children are forked from a ``forkserver`` that imported the checks once, so a check costs a
fork rather than a Python start-up, and no child inherits the worker's threads or store
connections. Two run at a time, so the worker may use up to twice the memory limit.
"""

from __future__ import annotations

import multiprocessing
import resource
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

import duckdb

from egress_review.extract import ReadLimits
from egress_review.fingerprints import FingerprintSet
from egress_review.verdicts import Unreadable
from policies.grant import DisclosureRules
from shuyu.settings import Settings

# DuckDB's own memory limit, as a share of the process's: it spills or fails cleanly first.
DUCKDB_SHARE = 0.6
# Checks of one job running at once (an output and a log, typically): each has its own limits.
PARALLEL = 2


@dataclass(frozen=True)
class CheckLimits:
    memory_bytes: int
    seconds: float
    read: ReadLimits

    @classmethod
    def from_settings(cls, settings: Settings) -> CheckLimits:
        memory = settings.check_memory_mb * 1024**2
        return cls(
            memory_bytes=memory,
            seconds=float(settings.check_seconds),
            read=ReadLimits(
                max_rows=settings.check_max_rows,
                max_bytes=settings.check_max_mb * 1024**2,
                memory_bytes=int(memory * DUCKDB_SHARE),
            ),
        )


@dataclass(frozen=True)
class CheckTask:
    """One output (or log) to check, with everything the child needs and nothing of the store."""

    path: Path
    name: str
    declared: dict[str, Any] | None  # None: a log
    rules: DisclosureRules
    fingerprints: FingerprintSet | None = None
    pseudonyms: Path | None = None
    contributors: Path | None = None


def run_limited(task: CheckTask, limits: CheckLimits) -> dict[str, Any]:
    """The check's report (``OutputCheck.to_dict()``), or a blocked one naming why it failed."""
    return run_all([task], limits)[0]


def run_all(tasks: list[CheckTask], limits: CheckLimits) -> list[dict[str, Any]]:
    """Reports for ``tasks``, in order; ``PARALLEL`` children at a time, each under the limits."""
    ctx = multiprocessing.get_context("forkserver")
    # The main module too, so children do not each import it again (as `shuyu worker` would).
    ctx.set_forkserver_preload(["__main__", __name__, "egress_review.service"])
    reports: list[dict[str, Any] | None] = [None] * len(tasks)
    waiting = list(enumerate(tasks))
    running: dict[Connection, tuple[int, Any, float]] = {}
    try:
        while waiting or running:
            while waiting and len(running) < PARALLEL:
                index, task = waiting.pop(0)
                receive, send = ctx.Pipe(duplex=False)
                child = ctx.Process(target=_child, args=(send, task, limits), daemon=True)
                child.start()
                send.close()
                running[receive] = (index, child, time.monotonic() + limits.seconds)
            soonest = min(deadline for _, _, deadline in running.values())
            ready = wait(list(running), timeout=max(0.0, soonest - time.monotonic()))
            now = time.monotonic()
            for receive in list(running):
                index, child, deadline = running[receive]
                if receive in ready:
                    message = _receive(receive)
                elif now >= deadline:
                    message = ("error", Unreadable.CHECKER_TIMEOUT.value)
                else:
                    continue
                del running[receive]
                _stop(child, receive)
                reports[index] = _report(tasks[index], message)
    finally:
        for receive, (_, child, _) in running.items():
            _stop(child, receive)
    return [r for r in reports if r is not None]


def _receive(receive: Connection) -> Any:
    try:
        return receive.recv()
    except (EOFError, OSError):  # the child died before it could answer
        return None


def _stop(child: Any, receive: Connection) -> None:
    if child.is_alive():
        child.kill()
    child.join()
    receive.close()


def _report(task: CheckTask, message: Any) -> dict[str, Any]:
    if isinstance(message, tuple) and message[0] == "ok":
        return dict(message[1])
    reason = Unreadable(message[1]) if isinstance(message, tuple) else Unreadable.CHECKER_CRASHED
    return failed_check(task, reason)


def failed_check(task: CheckTask, reason: Unreadable) -> dict[str, Any]:
    from egress_review.service import OutputCheck, blocked_unread

    kind = "log" if task.declared is None else task.declared.get("kind", "table")
    return blocked_unread(OutputCheck(task.name, kind), reason).to_dict()


def _child(send: Connection, task: CheckTask, limits: CheckLimits) -> None:
    try:
        _limit_memory(limits.memory_bytes)
        # A backstop if the worker dies and nobody is left to enforce the deadline.
        cpu = int(limits.seconds) + 5
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
        message: tuple[str, Any] = ("ok", _check(task, limits.read))
    except MemoryError:
        message = ("error", Unreadable.CHECKER_MEMORY.value)
    except Exception as exc:  # fail closed: whatever went wrong, the output is not passed
        reason = Unreadable.CHECKER_MEMORY if _out_of_memory(exc) else Unreadable.CHECKER_CRASHED
        message = ("error", reason.value)
    try:
        send.send(message)
    finally:
        send.close()


def _check(task: CheckTask, read: ReadLimits) -> dict[str, Any]:
    from egress_review.service import check_log, check_output

    if task.declared is None:
        check = check_log(
            task.path.read_bytes(),
            task.name,
            fingerprints=task.fingerprints,
            pseudonyms=task.pseudonyms,
        )
    else:
        check = check_output(
            task.path,
            task.name,
            task.declared,
            task.rules,
            fingerprints=task.fingerprints,
            pseudonyms=task.pseudonyms,
            contributors=task.contributors,
            limits=read,
        )
    return check.to_dict()


def _limit_memory(budget: int) -> None:
    """Cap this process's address space at what it already maps plus ``budget`` bytes."""
    mapped = 0
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmSize:"):
                mapped = int(line.split()[1]) * 1024
    cap = mapped + budget
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))


def _out_of_memory(exc: BaseException | None) -> bool:
    """An allocation failure, however deep it was wrapped (DuckDB's, numpy's, Python's)."""
    seen = 0
    while exc is not None and seen < 16:
        if isinstance(exc, MemoryError | duckdb.OutOfMemoryException):
            return True
        if "out of memory" in str(exc).lower() or "bad_alloc" in str(exc).lower():
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False
