"""The platform home (`SHUYU_HOME`): metadata store, data folders and secret material.

Keys are created with `cryptography`, written 0600 in a 0700 folder, and only ever read by
trusted platform code: never printed, logged, or copied into a sandbox or workspace.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shuyu.errors import PlatformError
from shuyu.permissions import User
from shuyu.settings import Settings
from shuyu.store import Store

PSEUDONYM_KEY = "pseudonym.key"
SIGNING_KEY = "signing_ed25519.pem"
SIGNING_PUB = "signing_ed25519.pub"
SUBDIRS = ("data/snapshots", "data/workspaces", "data/jobs", "keys", "tmp")

# Everything the platform writes is its own: new files 0600, new folders 0700. Files the
# sandbox user must read (workspaces, a job's code, the job runtime) are opened up explicitly
# and only those; every folder above them stays 0700 (bind mounts need no path to them).
PRIVATE_UMASK = 0o077
# Files whose mode `init` repairs in an existing home (relative globs -> mode).
PRIVATE_FILES = {
    "shuyu.db*": 0o600,
    "data/snapshots/*/*": 0o400,
    "data/jobs/*/logs/*": 0o600,
    "data/jobs/*/checks/*": 0o600,
    "data/jobs/*/collected/**/*": 0o600,
    "keys/*": 0o600,
}


@dataclass
class Platform:
    """The platform as one acting user sees it. Services read `platform.user` and check it
    themselves; without an explicit user this is the host console (the OS user, operator)."""

    settings: Settings
    store: Store = field(repr=False)
    acting: User | None = None

    def acting_as(self, user: User | str) -> Platform:
        """The same platform (and store engine) with another acting user: what a server carries
        per request, so a request never opens a store of its own."""
        if isinstance(user, str):
            user = User(user, None)
        return Platform(dataclasses.replace(self.settings, actor=user.name), self.store, user)

    @property
    def user(self) -> User:
        return self.acting or User.host_console(self.actor)

    @property
    def home(self) -> Path:
        return self.settings.home

    @property
    def actor(self) -> str:
        return self.settings.actor

    @property
    def snapshots_dir(self) -> Path:
        return self.home / "data" / "snapshots"

    @property
    def workspaces_dir(self) -> Path:
        return self.home / "data" / "workspaces"

    @property
    def jobs_dir(self) -> Path:
        return self.home / "data" / "jobs"

    @property
    def tmp_dir(self) -> Path:
        return self.home / "tmp"

    @property
    def keys_dir(self) -> Path:
        return self.home / "keys"

    def relative(self, path: Path) -> str:
        """The form the store keeps: relative to the home, so a worker on another host (with
        the home mounted elsewhere) resolves the same row, and no host path sits in a row."""
        try:
            return Path(path).absolute().relative_to(self.home).as_posix()
        except ValueError as exc:
            raise PlatformError(
                "a platform file lies outside the platform home",
                fix="keep data, workspaces and jobs under SHUYU_HOME",
            ) from exc

    def resolve(self, rel: str | Path) -> Path:
        """A stored path back to a file on this host. Rows written before paths were stored
        relative hold absolute paths: those are taken as they are."""
        path = Path(rel)
        if path.is_absolute():
            return path
        if ".." in path.parts:
            raise PlatformError(
                "a stored path climbs out of the platform home",
                fix="the metadata store was edited: run `shuyu ledger verify`",
            )
        return self.home / path

    @cached_property
    def _pseudonym_master(self) -> bytes:
        return _read_secret(self.keys_dir / PSEUDONYM_KEY)

    def project_key(self, project: str, purpose: str = "pseudonym") -> bytes:
        """A key per (project, purpose): keys of different projects are unlinkable."""
        return hmac.new(
            self._pseudonym_master, f"{purpose}|{project}".encode(), hashlib.sha256
        ).digest()

    def signing_key(self) -> Ed25519PrivateKey:
        key = serialization.load_pem_private_key(_read_secret(self.keys_dir / SIGNING_KEY), None)
        assert isinstance(key, Ed25519PrivateKey)
        return key

    def verify_key(self) -> Ed25519PublicKey:
        key = serialization.load_pem_public_key((self.keys_dir / SIGNING_PUB).read_bytes())
        assert isinstance(key, Ed25519PublicKey)
        return key


def private_writes() -> None:
    """The platform's umask: whatever module writes next, only the platform can read it."""
    os.umask(PRIVATE_UMASK)


def fix_modes(home: Path) -> list[str]:
    """Bring an existing home to the policy (homes made before it had 0755 folders and 0644
    stores); returns the paths changed, relative to the home."""
    changed = []
    folders = [home, home / "data", *(home / sub for sub in SUBDIRS)]
    folders += [p for p in (home / "data" / "snapshots").glob("*") if p.is_dir()]
    folders += [p for p in (home / "data" / "jobs").glob("*") if p.is_dir()]
    wanted = {p: 0o700 for p in folders if p.is_dir() and not p.is_symlink()}
    for pattern, mode in PRIVATE_FILES.items():
        for path in home.glob(pattern):
            if path.is_file() and not path.is_symlink():
                wanted[path] = mode
    for path, mode in wanted.items():
        if path.stat().st_mode & 0o777 != mode:
            path.chmod(mode)
            changed.append(path.relative_to(home).as_posix() or ".")
    return changed


def init_home(settings: Settings) -> tuple[Platform, list[str]]:
    """Create what is missing and repair modes (idempotent); return the platform and what
    was created or changed."""
    home = settings.home
    created: list[str] = []
    private_writes()
    try:
        for sub in SUBDIRS:
            path = home / sub
            if not path.exists():
                path.mkdir(parents=True, exist_ok=True)
                created.append(str(path))
        if _write_secret(home / "keys" / PSEUDONYM_KEY, AESGCM.generate_key(bit_length=256)):
            created.append("pseudonymisation master key")
        signing = Ed25519PrivateKey.generate()
        pem = signing.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        if _write_secret(home / "keys" / SIGNING_KEY, pem):
            pub = signing.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            (home / "keys" / SIGNING_PUB).write_bytes(pub)
            created.append("Ed25519 signing key")
        store = Store(settings.resolved_db_url)
        store.create_schema()
        created += [f"mode of {p}" for p in fix_modes(home)]
    except OSError as exc:
        raise PlatformError(
            f"cannot initialise the platform home {home}: {exc.strerror}",
            fix="choose a writable folder with SHUYU_HOME",
        ) from exc
    return Platform(settings, store), created


def open_platform(settings: Settings) -> Platform:
    home = settings.home
    if not (home / "keys" / PSEUDONYM_KEY).exists():
        if home.exists() and not os.access(home, os.R_OK | os.X_OK):
            raise PlatformError(
                f"the platform home {home} is not readable",
                fix="check its permissions or SHUYU_HOME",
            )
        raise PlatformError(
            f"no platform home at {home}",
            fix="run `shuyu init` (or set SHUYU_HOME to an initialised home)",
        )
    if not os.access(home, os.R_OK | os.W_OK | os.X_OK):
        raise PlatformError(
            f"the platform home {home} is not readable and writable", fix="check its permissions"
        )
    private_writes()
    store = Store(settings.resolved_db_url)
    store.create_schema()  # adds tables that newer versions declare; existing ones are untouched
    return Platform(settings, store)


def _write_secret(path: Path, content: bytes) -> bool:
    """Write once with 0600 from the first byte; never overwrite an existing key."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as fh:
        fh.write(content)
    return True


def _read_secret(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise PlatformError(
            f"cannot read platform key {path.name}: {exc.strerror}", fix="run `shuyu init`"
        ) from exc
