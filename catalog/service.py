"""Catalog service: register datasets as immutable snapshots, list and show them.

Registration is all-or-nothing: data is staged in the home's tmp folder, moved into its
content-addressed place, and recorded with its ledger entry in one transaction; any failure
removes what this call created.
"""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, func, insert, select

from catalog.loader import stage_snapshot
from catalog.manifest import CLASSIFICATION_LABELS, Manifest, load_manifest, manifest_from_record
from lineage import ledger
from lineage.actions import LedgerAction
from shuyu.canonical import sha256_file, sha256_json, utcnow
from shuyu.errors import NotFound, PolicyRefused
from shuyu.platform import Platform
from shuyu.schema import dataset_versions, datasets


@dataclass(frozen=True)
class DatasetVersion:
    dataset: str
    version: int
    sha256: str
    classification: str
    row_count: int
    manifest: Manifest
    snapshot_path: Path  # relative to the platform home: `platform.resolve(snapshot_path)`
    registered_at: datetime
    registered_by: str

    def summary(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "version": self.version,
            "sha256": self.sha256,
            "classification": self.classification,
            "classification_label": CLASSIFICATION_LABELS[self.classification],
            "rows": self.row_count,
            "owner_department": self.manifest.owner_department,
            "title": self.manifest.title,
            "update_frequency": self.manifest.update_frequency,
            "registered_at": self.registered_at.isoformat(),
            "registered_by": self.registered_by,
        }


@dataclass(frozen=True)
class Registration:
    version: DatasetVersion
    created: bool  # False when the same content was already registered

    def to_dict(self) -> dict[str, Any]:
        return {**self.version.summary(), "created": self.created}


def register(platform: Platform, manifest_path: Path) -> Registration:
    manifest = load_manifest(manifest_path)
    if manifest.classification == "core":
        raise PolicyRefused(
            f"dataset {manifest.name} is classified 核心 (core data, GB/T 43697); core data is excluded from "
            "authorised operation",
            file=str(manifest_path),
            field="classification",
            fix="keep it out of the catalog, or have the owner department re-grade it through the formal process",
        )
    staging = platform.tmp_dir / f"stage-{uuid.uuid4().hex}"
    staging.mkdir(parents=True)
    placed: Path | None = None
    try:
        staged = stage_snapshot(manifest, manifest_path, staging)
        sha = sha256_file(staged.parquet)
        _write_fingerprints(platform, manifest, staged.parquet, staging / "fingerprints.parquet")
        final = platform.snapshots_dir / sha
        manifest_hash = sha256_json(manifest.as_record())
        with platform.store.transaction() as conn:
            existing = _version_by_content(conn, manifest.name, sha, manifest_hash)
            if existing is not None:
                return Registration(existing, created=False)
            if not final.exists():
                os.replace(staging, final)
                placed = final
                os.chmod(final / "data.parquet", 0o400)  # immutable, and the platform's alone
            elif (staging / "fingerprints.parquet").exists():
                # same data, new manifest (roles may differ): keep its fingerprints beside the others
                extra = final / f"fingerprints-{manifest_hash[:16]}.parquet"
                if not extra.exists():
                    os.replace(staging / "fingerprints.parquet", extra)
                    placed = extra
            version = _record(
                conn, platform, manifest, sha, staged.row_count, final, staged.profile
            )
        placed = None
        return Registration(version, created=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if placed is not None and placed.is_dir():  # the transaction failed: leave nothing behind
            shutil.rmtree(placed, ignore_errors=True)
        elif placed is not None:
            placed.unlink(missing_ok=True)


def _write_fingerprints(
    platform: Platform, manifest: Manifest, parquet: Path, target: Path
) -> None:
    """Keyed hashes of every direct identifier, so egress checks can spot raw values without
    the platform ever keeping a second clear copy of them; person names (``identifier_kind:
    person_name``) in pinyin too."""
    from egress_review.fingerprints import build_fingerprints, fingerprint_key

    identifiers = {c: s for c, s in manifest.columns.items() if s.role == "direct_identifier"}
    names = [c for c, s in identifiers.items() if s.identifier_kind == "person_name"]
    if identifiers:
        key = fingerprint_key(platform)
        build_fingerprints(
            parquet, list(identifiers), key, target, label=manifest.name, names=names
        )
        os.chmod(target, 0o400)


def _record(
    conn: Connection,
    platform: Platform,
    manifest: Manifest,
    sha: str,
    rows: int,
    path: Path,
    profile: dict[str, Any],
) -> DatasetVersion:
    now = utcnow()
    if (
        conn.execute(select(datasets.c.name).where(datasets.c.name == manifest.name)).first()
        is None
    ):
        conn.execute(insert(datasets).values(name=manifest.name, created_at=now))
    latest = conn.execute(
        select(func.max(dataset_versions.c.version)).where(
            dataset_versions.c.dataset == manifest.name
        )
    ).scalar()
    number = (latest or 0) + 1
    record = manifest.as_record()
    conn.execute(
        insert(dataset_versions).values(
            dataset=manifest.name,
            version=number,
            sha256=sha,
            manifest_hash=sha256_json(record),
            classification=manifest.classification,
            row_count=rows,
            manifest=record,
            snapshot_path=platform.relative(path / "data.parquet"),
            registered_at=now,
            registered_by=platform.actor,
        )
    )
    ledger.append(
        conn,
        platform.actor,
        LedgerAction.DATASET_REGISTERED,
        f"dataset:{manifest.name}@{number}",
        {
            "sha256": sha,
            "rows": rows,
            "classification": manifest.classification,
            "owner_department": manifest.owner_department,
            "profile": profile,
        },
    )
    return DatasetVersion(
        manifest.name,
        number,
        sha,
        manifest.classification,
        rows,
        manifest,
        Path(platform.relative(path / "data.parquet")),
        now,
        platform.actor,
    )


def _row_to_version(row: Any) -> DatasetVersion:
    return DatasetVersion(
        dataset=row.dataset,
        version=row.version,
        sha256=row.sha256,
        classification=row.classification,
        row_count=row.row_count,
        manifest=manifest_from_record(row.manifest),
        snapshot_path=Path(row.snapshot_path),
        registered_at=row.registered_at,
        registered_by=row.registered_by,
    )


def _version_by_content(
    conn: Connection, name: str, sha: str, manifest_hash: str
) -> DatasetVersion | None:
    row = conn.execute(
        select(dataset_versions).where(
            dataset_versions.c.dataset == name,
            dataset_versions.c.sha256 == sha,
            dataset_versions.c.manifest_hash == manifest_hash,
        )
    ).first()
    return _row_to_version(row) if row else None


def get_version(conn: Connection, name: str, version: int | None = None) -> DatasetVersion:
    query = select(dataset_versions).where(dataset_versions.c.dataset == name)
    query = (
        query.where(dataset_versions.c.version == version)
        if version
        else query.order_by(dataset_versions.c.version.desc()).limit(1)
    )
    row = conn.execute(query).first()
    if row is None:
        what = f"{name} version {version}" if version else name
        raise NotFound(f"no dataset {what} in the catalog", fix="see `shuyu catalog list`")
    return _row_to_version(row)


def list_datasets(platform: Platform) -> list[DatasetVersion]:
    """The latest version of every dataset."""
    _check_reader(platform)
    latest = (
        select(dataset_versions.c.dataset, func.max(dataset_versions.c.version).label("v"))
        .group_by(dataset_versions.c.dataset)
        .subquery()
    )
    query = (
        select(dataset_versions)
        .join(
            latest,
            (dataset_versions.c.dataset == latest.c.dataset)
            & (dataset_versions.c.version == latest.c.v),
        )
        .order_by(dataset_versions.c.dataset)
    )
    with platform.store.read() as conn:
        return [_row_to_version(row) for row in conn.execute(query)]


def _check_reader(platform: Platform) -> None:
    from shuyu.access import enforced
    from shuyu.permissions import check_can_read_catalog

    with enforced(platform, "catalog.read", "catalog"):
        check_can_read_catalog(platform.user)


def show(platform: Platform, name: str) -> dict[str, Any]:
    _check_reader(platform)
    with platform.store.read() as conn:
        latest = get_version(conn, name)
        rows = conn.execute(
            select(dataset_versions)
            .where(dataset_versions.c.dataset == name)
            .order_by(dataset_versions.c.version)
        ).all()
    return {
        **latest.summary(),
        "description": latest.manifest.description,
        "columns": {
            c: s.model_dump(mode="json", exclude_none=True)
            for c, s in latest.manifest.columns.items()
        },
        "versions": [_row_to_version(r).summary() for r in rows],
    }
