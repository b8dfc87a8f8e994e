"""Workspaces: one DuckDB file per (project, policy, snapshots), the only data a job ever sees.

Each granted dataset becomes a table holding the grant's transforms applied to the snapshot
(or to its synthetic twin). Tables are materialised so the file is self-contained (a sandbox
mounts only this file) and so no key or clear identifier has to travel with it: the key is a
bound parameter while the table is built. The file records what it was built from.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import duckdb
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from catalog.service import DatasetVersion, get_version
from lineage import ledger
from lineage.actions import LedgerAction
from policies.grant import Policy
from policies.service import active_policy
from policies.synthetic import hash_text, write_synthetic_source
from policies.transforms import sql_expression
from shuyu.canonical import canonical_json, sha256_json, utcnow
from shuyu.errors import PlatformError
from shuyu.platform import Platform
from shuyu.schema import workspaces

Kind = Literal["real", "synthetic"]
BUILDER_VERSION = 1  # bump when the way tables are built changes, so caches are rebuilt
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Workspace:
    id: str
    project: str
    kind: Kind
    grant_id: str
    policy_hash: str
    snapshots: dict[str, str]
    path: Path
    size_bytes: int
    build_seconds: float
    cached: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "project": self.project,
            "kind": self.kind,
            "grant_id": self.grant_id,
            "policy_hash": self.policy_hash,
            "snapshots": self.snapshots,
            "path": str(self.path),
            "size_bytes": self.size_bytes,
            "build_seconds": round(self.build_seconds, 3),
            "cached": self.cached,
        }


def build_workspace(
    platform: Platform, project: str, kind: Kind = "real", progress: Progress | None = None
) -> Workspace:
    with platform.store.read() as conn:
        grant_id, policy = active_policy(conn, project)
        versions = {
            name: get_version(conn, name, None if d.version == "latest" else int(d.version))
            for name, d in policy.datasets.items()
        }
        snapshots = {name: v.sha256 for name, v in sorted(versions.items())}
        cache_key = sha256_json(
            {
                "project": project,
                "kind": kind,
                "policy": policy.hash,
                "snapshots": snapshots,
                "versions": {name: v.version for name, v in sorted(versions.items())},
                "builder": BUILDER_VERSION,
                "synthetic_rows": platform.settings.synthetic_rows if kind == "synthetic" else 0,
            }
        )
        cached = conn.execute(select(workspaces).where(workspaces.c.cache_key == cache_key)).first()
    if cached is not None and platform.resolve(cached.path).is_file():
        return _from_row(platform, cached._mapping, cached=True)

    started = time.perf_counter()
    workspace_id = f"ws-{uuid.uuid4().hex[:12]}"
    tmp = platform.tmp_dir / f"{workspace_id}.duckdb"
    final = platform.workspaces_dir / f"{workspace_id}.duckdb"
    try:
        _write_file(platform, tmp, policy, versions, kind, progress)
        os.chmod(tmp, 0o444)
        os.replace(tmp, final)
        seconds = time.perf_counter() - started
        row = dict(
            id=workspace_id,
            cache_key=cache_key,
            project=project,
            kind=kind,
            grant_id=grant_id,
            policy_hash=policy.hash,
            snapshots=snapshots,
            path=platform.relative(final),
            size_bytes=final.stat().st_size,
            built_at=utcnow(),
            build_seconds=seconds,
        )
        try:
            with platform.store.transaction() as conn:
                conn.execute(insert(workspaces).values(**row))
                ledger.append(
                    conn,
                    platform.actor,
                    LedgerAction.WORKSPACE_BUILT,
                    f"workspace:{workspace_id}",
                    {
                        "project": project,
                        "kind": kind,
                        "grant": grant_id,
                        "policy_hash": policy.hash,
                        "snapshots": snapshots,
                        "seconds": round(seconds, 3),
                    },
                )
        except IntegrityError:  # another process built the same workspace meanwhile: use theirs
            final.unlink(missing_ok=True)
            with platform.store.read() as conn:
                other = conn.execute(
                    select(workspaces).where(workspaces.c.cache_key == cache_key)
                ).one()
            return _from_row(platform, other._mapping, cached=True)
        return _from_row(platform, row, cached=False)
    except BaseException:
        tmp.unlink(missing_ok=True)
        if final.exists() and not _recorded(platform, workspace_id):
            final.unlink()
        raise
    finally:
        for leftover in platform.tmp_dir.glob(f"{workspace_id}-*.parquet"):
            leftover.unlink()


def _write_file(
    platform: Platform,
    target: Path,
    policy: Policy,
    versions: dict[str, DatasetVersion],
    kind: Kind,
    progress: Progress | None,
) -> None:
    key = platform.project_key(policy.project, "pseudonym" if kind == "real" else "synthetic").hex()
    con = duckdb.connect(str(target))
    try:
        con.execute(
            "CREATE TABLE _shuyu_workspace (project VARCHAR, kind VARCHAR, grant_id VARCHAR, policy_hash VARCHAR, "
            "dataset VARCHAR, dataset_version INTEGER, snapshot_sha256 VARCHAR, built_at TIMESTAMPTZ)"
        )
        con.execute(
            "CREATE TABLE _shuyu_columns (dataset VARCHAR, column_name VARCHAR, type VARCHAR, role VARCHAR, "
            "transform VARCHAR, bounds VARCHAR, categories VARCHAR[])"
        )
        total = len(policy.datasets)
        for done, (name, granted) in enumerate(sorted(policy.datasets.items())):
            if progress:
                progress(f"{kind} workspace: {name}", done, total)
            version = versions[name]
            manifest = version.manifest
            source = platform.resolve(version.snapshot_path)
            if kind == "synthetic":
                source = platform.tmp_dir / f"{target.stem}-{name}.parquet"
                seed = hash_text(f"{policy.project}:{name}")
                write_synthetic_source(manifest, platform.settings.synthetic_rows, seed, source)
            exprs = []
            for column, transform in granted.transforms.items():
                spec = manifest.columns[column]
                expr = sql_expression(column, spec.type, transform)
                if expr is not None:
                    exprs.append(f'{expr} AS "{column}"')
                    con.execute(
                        "INSERT INTO _shuyu_columns VALUES (?, ?, ?, ?, ?, ?, ?)",
                        [
                            name,
                            column,
                            spec.type,
                            spec.role,
                            canonical_json(transform.to_record()),
                            canonical_json(list(spec.bounds)) if spec.bounds else None,
                            list(spec.categories)
                            if spec.categories and transform.name == "keep"
                            else None,
                        ],
                    )
            sql = f"CREATE TABLE \"{name}\" AS SELECT {', '.join(exprs)} FROM read_parquet('{source}')"
            params = {"key": key} if "$key" in sql else {}
            con.execute(sql, params)
            con.execute(
                "INSERT INTO _shuyu_workspace VALUES (?, ?, ?, ?, ?, ?, ?, now())",
                [
                    policy.project,
                    kind,
                    policy.id,
                    policy.hash,
                    name,
                    version.version,
                    version.sha256,
                ],
            )
        con.execute("CHECKPOINT")
        if progress:
            progress(f"{kind} workspace: done", total, total)
    except duckdb.Error as exc:
        raise PlatformError(f"building the workspace failed: {str(exc).splitlines()[0]}") from exc
    finally:
        con.close()


def _recorded(platform: Platform, workspace_id: str) -> bool:
    with platform.store.read() as conn:
        return (
            conn.execute(select(workspaces.c.id).where(workspaces.c.id == workspace_id)).first()
            is not None
        )


def _from_row(platform: Platform, row: Mapping[Any, Any], cached: bool) -> Workspace:
    return Workspace(
        id=row["id"],
        project=row["project"],
        kind=row["kind"],
        grant_id=row["grant_id"],
        policy_hash=row["policy_hash"],
        snapshots=dict(row["snapshots"]),
        path=platform.resolve(row["path"]),
        size_bytes=row["size_bytes"],
        build_seconds=row["build_seconds"],
        cached=cached,
    )
