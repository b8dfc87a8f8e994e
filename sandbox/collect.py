"""Collect a job's outputs from its /output folder without trusting anything the job wrote.

The folder was written by untrusted code, so it is walked through directory file descriptors
that never follow links (O_NOFOLLOW), every file is checked on the descriptor it was opened
with (fstat: regular, one link, same inode as listed), and the platform's copy is made from
that same descriptor: swapping a file after the check cannot change what is copied. Only
declared paths and six plain data types are accepted; the rest is reported, never copied.
Row and column counts are taken by DuckDB/pyarrow on the platform's own copy. The checks here
are cheap (magic numbers, UTF-8, JSON syntax); the egress checks read every byte strictly later.
"""

from __future__ import annotations

import codecs
import contextlib
import hashlib
import json
import os
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

KINDS = {
    ".csv": "csv",
    ".parquet": "parquet",
    ".json": "json",
    ".txt": "txt",
    ".png": "png",
    ".svg": "svg",
}
TEXT_KINDS = ("csv", "txt", "svg")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PARQUET_MAGIC = b"PAR1"
JSON_MAX_BYTES = 64 * 1024**2  # parsed in memory: larger results belong in Parquet or CSV
MAX_DEPTH = 16
MAX_ENTRIES = 100_000
CHUNK = 1024 * 1024
_O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_O_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


@dataclass(frozen=True)
class CollectedFile:
    path: str  # relative to /output, POSIX separators
    sha256: str
    size: int
    kind: str  # csv | parquet | json | txt | png | svg
    rows: int | None = None  # CSV and Parquet
    columns: int | None = None
    column_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class RefusedFile:
    path: str
    size: int | None
    reason: str


@dataclass(frozen=True)
class CollectionReport:
    accepted: tuple[CollectedFile, ...] = ()
    refused: tuple[RefusedFile, ...] = ()  # declared (or invalid declaration) but not accepted
    undeclared: tuple[RefusedFile, ...] = ()  # present but not declared: never copied
    missing: tuple[str, ...] = ()  # declared but not produced
    dest: Path | None = None
    total_bytes: int = 0

    @property
    def ok(self) -> bool:
        """Every declared output was produced and accepted."""
        return not self.refused and not self.missing


class _Refused(Exception):
    pass


@dataclass
class _State:
    declared: list[PurePosixPath]
    matched: set[PurePosixPath] = field(default_factory=set)
    accepted: list[CollectedFile] = field(default_factory=list)
    refused: list[RefusedFile] = field(default_factory=list)
    undeclared: list[RefusedFile] = field(default_factory=list)
    total: int = 0
    seen: int = 0


def collect_outputs(
    output_dir: Path, declared: list[str], max_files: int, max_bytes: int, dest: Path | None = None
) -> CollectionReport:
    """Check the declared outputs under `output_dir` and copy the accepted ones into `dest`.

    `declared` holds relative paths of files or folders ("summary.csv", "charts/").
    `max_files` caps the number of accepted files, `max_bytes` their total size.
    `dest` is a platform-held folder (created if missing, must be empty); when None the files
    are only checked, through a temporary copy that is deleted again.
    """
    refused: list[RefusedFile] = []
    clean: list[PurePosixPath] = []
    for raw in declared:
        try:
            clean.append(_declared_path(raw))
        except _Refused as exc:
            refused.append(RefusedFile(str(raw), None, str(exc)))
    state = _State(declared=clean, refused=refused)
    with contextlib.ExitStack() as stack:
        if dest is None:
            target = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="shuyu-collect-")))
        else:
            target = Path(dest)
            target.mkdir(mode=0o700, parents=True, exist_ok=True)
            if any(target.iterdir()):
                raise ValueError(f"collection destination {target} must be empty")
        root_fd = os.open(output_dir, _O_DIR)
        dest_fd = os.open(target, _O_DIR)
        try:
            _walk(root_fd, PurePosixPath(), 0, dest_fd, target, state, max_files, max_bytes)
        finally:
            os.close(root_fd)
            os.close(dest_fd)
        _count(target, state)
    missing = tuple(str(d) for d in clean if d not in state.matched)
    return CollectionReport(
        accepted=tuple(sorted(state.accepted, key=lambda f: f.path)),
        refused=tuple(state.refused),
        undeclared=tuple(state.undeclared),
        missing=missing,
        dest=Path(dest) if dest is not None else None,
        total_bytes=state.total,
    )


def _declared_path(raw: str) -> PurePosixPath:
    if not isinstance(raw, str) or not raw or "\0" in raw or "\\" in raw:
        raise _Refused("declared path must be a non-empty relative POSIX path")
    if raw.startswith("/"):
        raise _Refused("declared path must be relative (absolute paths are refused)")
    parts = [p for p in raw.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise _Refused("declared path must not contain '..'")
    if not parts:
        raise _Refused("declared path is empty")
    return PurePosixPath(*parts)


def _declaration_for(rel: PurePosixPath, state: _State) -> PurePosixPath | None:
    """The declaration covering `rel`: the path itself, a folder above it, or (for a link or
    file standing where a declared folder should be) a declared path below it."""
    for d in state.declared:
        if rel == d or d in rel.parents or rel in d.parents:
            return d
    return None


def _safe_name(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes (surrogateescape)
        return False
    return name not in (".", "..") and not any(ord(c) < 32 or ord(c) == 127 for c in name)


def _walk(
    dir_fd: int,
    rel: PurePosixPath,
    depth: int,
    dest_fd: int,
    dest: Path,
    state: _State,
    max_files: int,
    max_bytes: int,
) -> None:
    with os.scandir(dir_fd) as entries:
        names = sorted(e.name for e in entries)
    for name in names:
        state.seen += 1
        path = rel / name if _safe_name(name) else rel / repr(name)
        if state.seen > MAX_ENTRIES:
            state.refused.append(RefusedFile(str(path), None, "too many entries in /output"))
            return
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except OSError as exc:
            state.refused.append(RefusedFile(str(path), None, f"cannot stat: {exc.strerror}"))
            continue
        decl = _declaration_for(path, state)
        if stat.S_ISDIR(st.st_mode):
            if not _safe_name(name):
                _report(state, decl, RefusedFile(str(path), None, "unsafe folder name"))
            elif depth >= MAX_DEPTH:
                _report(state, decl, RefusedFile(str(path), None, "folders nested too deep"))
            else:
                _descend(dir_fd, name, path, depth, dest_fd, dest, state, max_files, max_bytes)
            continue
        if decl is None:
            state.undeclared.append(RefusedFile(str(path), st.st_size, "not declared"))
            continue
        try:
            state.accepted.append(
                _take(dir_fd, name, path, st, dest_fd, state, max_files, max_bytes)
            )
            state.matched.add(decl)
        except _Refused as exc:
            state.matched.add(decl)
            state.refused.append(RefusedFile(str(path), st.st_size, str(exc)))


def _report(state: _State, decl: PurePosixPath | None, refusal: RefusedFile) -> None:
    (state.refused if decl is not None else state.undeclared).append(refusal)
    if decl is not None:
        state.matched.add(decl)


def _descend(
    dir_fd: int,
    name: str,
    path: PurePosixPath,
    depth: int,
    dest_fd: int,
    dest: Path,
    state: _State,
    max_files: int,
    max_bytes: int,
) -> None:
    try:
        sub_fd = os.open(name, _O_DIR, dir_fd=dir_fd)
    except OSError as exc:
        _report(
            state,
            _declaration_for(path, state),
            RefusedFile(str(path), None, f"cannot open folder: {exc.strerror}"),
        )
        return
    try:
        _walk(sub_fd, path, depth + 1, dest_fd, dest, state, max_files, max_bytes)
    finally:
        os.close(sub_fd)


def _take(
    dir_fd: int,
    name: str,
    path: PurePosixPath,
    listed: os.stat_result,
    dest_fd: int,
    state: _State,
    max_files: int,
    max_bytes: int,
) -> CollectedFile:
    if stat.S_ISLNK(listed.st_mode):
        raise _Refused("symbolic link")
    if stat.S_ISFIFO(listed.st_mode):
        raise _Refused("FIFO (named pipe)")
    if stat.S_ISCHR(listed.st_mode) or stat.S_ISBLK(listed.st_mode):
        raise _Refused("device node")
    if stat.S_ISSOCK(listed.st_mode):
        raise _Refused("socket")
    if not stat.S_ISREG(listed.st_mode):
        raise _Refused("not a regular file")
    if not _safe_name(name):
        raise _Refused("unsafe file name (control characters or undecodable bytes)")
    kind = KINDS.get(os.path.splitext(name)[1].lower())
    if kind is None:
        raise _Refused(f"type not allowed (only {', '.join(sorted(KINDS))})")
    if len(state.accepted) >= max_files:
        raise _Refused(f"more than {max_files} files")
    fd = os.open(name, _O_FILE, dir_fd=dir_fd)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) != (listed.st_dev, listed.st_ino):
            raise _Refused("file changed while being collected")
        if st.st_nlink != 1:
            raise _Refused("hard link (more than one name for the same file)")
        if state.total + st.st_size > max_bytes:
            raise _Refused(f"over the size limit of {max_bytes} bytes in total")
        if kind == "json" and st.st_size > JSON_MAX_BYTES:
            raise _Refused(f"JSON over {JSON_MAX_BYTES} bytes (use Parquet or CSV)")
        os.set_blocking(fd, True)
        digest, size = _copy_checked(fd, kind, path, dest_fd, state.total, max_bytes)
    finally:
        os.close(fd)
    state.total += size
    return CollectedFile(path=str(path), sha256=digest, size=size, kind=kind)


def _copy_checked(
    fd: int, kind: str, path: PurePosixPath, dest_fd: int, used: int, max_bytes: int
) -> tuple[str, int]:
    """Copy from the open descriptor into dest while hashing and checking the content."""
    parent_fd = _make_dirs(dest_fd, path.parent)
    out_fd = -1
    try:
        out_fd = os.open(
            path.name,
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
            0o600,
            dir_fd=parent_fd,
        )
        h = hashlib.sha256()
        size = 0
        head = b""
        tail = b""
        text = codecs.getincrementaldecoder("utf-8")("strict") if kind in TEXT_KINDS else None
        blob = bytearray() if kind == "json" else None
        while chunk := os.read(fd, CHUNK):
            size += len(chunk)
            if used + size > max_bytes:
                raise _Refused(f"over the size limit of {max_bytes} bytes in total")
            if len(head) < 8:
                head = (head + chunk)[:8]
            tail = (tail + chunk)[-4:]
            h.update(chunk)
            if text is not None:
                try:
                    text.decode(chunk)
                except UnicodeDecodeError as exc:
                    raise _Refused("not valid UTF-8 text") from exc
                if b"\0" in chunk:
                    raise _Refused("text contains NUL bytes")
            if blob is not None:
                blob += chunk
                if len(blob) > JSON_MAX_BYTES:
                    raise _Refused(f"JSON over {JSON_MAX_BYTES} bytes")
            os.write(out_fd, chunk)
        if text is not None:
            try:
                text.decode(b"", final=True)
            except UnicodeDecodeError as exc:
                raise _Refused("not valid UTF-8 text (truncated character)") from exc
        if kind == "png" and not head.startswith(PNG_SIGNATURE):
            raise _Refused("extension .png but not a PNG file")
        if kind == "parquet" and not (
            head.startswith(PARQUET_MAGIC) and tail == PARQUET_MAGIC and size >= 12
        ):
            raise _Refused("extension .parquet but no Parquet magic (PAR1)")
        if blob is not None:
            try:
                json.loads(bytes(blob).decode("utf-8"))
            except (UnicodeDecodeError, ValueError) as exc:
                raise _Refused("extension .json but not valid JSON") from exc
        os.fsync(out_fd)
        return h.hexdigest(), size
    except BaseException:
        if out_fd >= 0:
            with contextlib.suppress(OSError):
                os.unlink(path.name, dir_fd=parent_fd)
        raise
    finally:
        if out_fd >= 0:
            os.close(out_fd)
        if parent_fd != dest_fd:
            os.close(parent_fd)


def _make_dirs(dest_fd: int, rel: PurePosixPath) -> int:
    """Open (creating) rel below dest without following links; the caller closes the fd."""
    fd = dest_fd
    for part in rel.parts:
        with contextlib.suppress(FileExistsError):
            os.mkdir(part, 0o700, dir_fd=fd)
        nfd = os.open(part, _O_DIR, dir_fd=fd)
        if fd != dest_fd:
            os.close(fd)
        fd = nfd
    return fd


def _count(dest: Path, state: _State) -> None:
    """Rows and columns of CSV/Parquet, by DuckDB on the platform's own copies."""
    tables = [f for f in state.accepted if f.kind in ("csv", "parquet")]
    if not tables:
        return
    import duckdb

    con = duckdb.connect(":memory:", config={"threads": 1, "memory_limit": "1GB"})
    kept: list[CollectedFile] = []
    try:
        for f in state.accepted:
            if f.kind not in ("csv", "parquet"):
                kept.append(f)
                continue
            local = str(dest / f.path)
            reader = "read_parquet(?)" if f.kind == "parquet" else "read_csv(?, header=true)"
            try:
                names = [
                    r[0]
                    for r in con.execute(f"DESCRIBE SELECT * FROM {reader}", [local]).fetchall()
                ]
                row = con.execute(f"SELECT count(*) FROM {reader}", [local]).fetchone()
            except duckdb.Error as exc:
                first = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
                state.refused.append(
                    RefusedFile(f.path, f.size, f"{f.kind.upper()} could not be read: {first}")
                )
                state.total -= f.size
                with contextlib.suppress(OSError):
                    os.unlink(local)
                continue
            kept.append(
                CollectedFile(
                    f.path,
                    f.sha256,
                    f.size,
                    f.kind,
                    int(row[0]) if row else 0,
                    len(names),
                    tuple(names),
                )
            )
    finally:
        con.close()
    state.accepted = kept
