"""Tables of the metadata store (SQLite or PostgreSQL). One declaration, created by `shuyu init`."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

datasets = Table(
    "datasets",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

dataset_versions = Table(
    "dataset_versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("dataset", String(64), ForeignKey("datasets.name"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("manifest_hash", String(64), nullable=False),
    Column("classification", String(16), nullable=False),
    Column("row_count", BigInteger, nullable=False),
    Column("manifest", JSON, nullable=False),
    Column("snapshot_path", Text, nullable=False),
    Column("registered_at", DateTime(timezone=True), nullable=False),
    Column("registered_by", String(128), nullable=False),
    UniqueConstraint("dataset", "version", name="uq_dataset_version"),
    # A version is the data (snapshot) together with what the manifest says about it.
    UniqueConstraint("dataset", "sha256", "manifest_hash", name="uq_dataset_content"),
)

grants = Table(
    "grants",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("project", String(64), nullable=False, index=True),
    Column("tenant", String(128), nullable=False),
    Column("purpose", String(32), nullable=False),
    Column("valid_from", DateTime(timezone=True), nullable=False),
    Column("valid_until", DateTime(timezone=True), nullable=False),
    Column("status", String(16), nullable=False),
    Column("policy", JSON, nullable=False),
    Column("policy_hash", String(64), nullable=False),
    Column("source_file", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(128), nullable=False),
    Column("revoked_at", DateTime(timezone=True)),
    Column("revoked_reason", Text),
)

workspaces = Table(
    "workspaces",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("cache_key", String(64), nullable=False, unique=True),
    Column("project", String(64), nullable=False, index=True),
    Column("kind", String(16), nullable=False),  # real | synthetic
    Column("grant_id", String(64), nullable=False),
    Column("policy_hash", String(64), nullable=False),
    Column("snapshots", JSON, nullable=False),
    Column("path", Text, nullable=False),
    Column("size_bytes", BigInteger, nullable=False),
    Column("built_at", DateTime(timezone=True), nullable=False),
    Column("build_seconds", Float, nullable=False),
)

ledger = Table(
    "ledger",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", String(128), nullable=False),
    Column("action", String(64), nullable=False, index=True),
    Column("subject", String(256), nullable=False, index=True),
    Column("details", JSON, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)

# A single row that every ledger append locks, so the hash chain has one writer at a time.
ledger_head = Table(
    "ledger_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
)

jobs = Table(
    "jobs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("project", String(64), nullable=False, index=True),
    Column("name", String(64), nullable=False),
    Column("dev", Integer, nullable=False),  # 1 = development run on the synthetic twin
    Column("spec", JSON, nullable=False),
    Column("spec_hash", String(64), nullable=False),
    Column("state", String(32), nullable=False, index=True),
    Column("failure", String(32)),
    Column("reason", Text),
    Column("backend", String(16), nullable=False),
    Column("workspace_id", String(64)),
    Column("grant_id", String(64)),
    Column("submitted_by", String(128), nullable=False),
    Column("submitted_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("worker", String(128)),
    Column("heartbeat_at", DateTime(timezone=True)),
    Column("cancel_requested", Integer, nullable=False, default=0),
    Column("tenant", String(128), index=True),  # the project's tenant when it was submitted
)

job_events = Table(
    "job_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job_id", String(32), ForeignKey("jobs.id"), nullable=False, index=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("from_state", String(32)),
    Column("to_state", String(32), nullable=False),
    Column("reason", Text, nullable=False),
)

job_outputs = Table(
    "job_outputs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job_id", String(32), ForeignKey("jobs.id"), nullable=False, index=True),
    Column("action", String(64), nullable=False),
    Column("path", Text, nullable=False),
    Column(
        "status", String(16), nullable=False
    ),  # collected | refused | undeclared | missing | log
    Column("kind", String(16)),
    Column("sha256", String(64)),
    Column("size_bytes", BigInteger),
    Column("rows", BigInteger),
    Column("columns", Integer),
    Column("stored_path", Text),
    Column("reason", Text),
    Column("declared", JSON),
)

output_checks = Table(
    "output_checks",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job_id", String(32), ForeignKey("jobs.id"), nullable=False, index=True),
    Column("output_id", Integer, ForeignKey("job_outputs.id"), nullable=False, unique=True),
    Column("status", String(16), nullable=False),  # pass | review | blocked
    Column("report", JSON, nullable=False),
    Column("checked_at", DateTime(timezone=True), nullable=False),
)

# Differential-privacy budget: one account row per (project, dataset) that reservations lock,
# and one row per reservation and dataset (reserved | spent | released).
dp_budget_accounts = Table(
    "dp_budget_accounts",
    metadata,
    Column("project", String(64), primary_key=True),
    Column("dataset", String(64), primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

dp_budget_spends = Table(
    "dp_budget_spends",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("reservation_id", String(32), nullable=False, index=True),
    Column("project", String(64), nullable=False),
    Column("dataset", String(64), nullable=False),
    Column("job_id", String(64), nullable=False, index=True),
    Column("epsilon", Float, nullable=False),
    Column("delta", Float, nullable=False),
    Column("status", String(16), nullable=False),  # reserved | spent | released
    Column("at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("actor", String(128), nullable=False),
    Column("reason", Text),
    Index("ix_dp_budget_spends_account", "project", "dataset", "status"),
)

# Tenants (operator companies) own projects; a grant names both, and analysts act only within
# the projects they are members of.
tenants = Table(
    "tenants",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("title", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(128), nullable=False),
)

projects = Table(
    "projects",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("tenant", String(128), ForeignKey("tenants.name"), nullable=False, index=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(128), nullable=False),
)

# People, their role and where they belong (deny by default: an unknown name may do nothing).
# `tenant` is NULL for the platform's own staff (stewards, reviewers, auditors, operators).
users = Table(
    "users",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("role", String(16), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(128), nullable=False),
    Column("display_name", Text),
    Column("organisation", Text),
    Column("tenant", String(128), ForeignKey("tenants.name")),
    # Real-name record (实名): the resident ID only as a keyed HMAC, never in clear.
    Column("realname_hmac", String(64)),
    Column("realname_verified_at", DateTime(timezone=True)),
    Column("nda_signed_on", DateTime(timezone=True)),  # 保密协议
    Column("password_hash", Text),
    Column("failed_logins", Integer, nullable=False, default=0, server_default="0"),
    Column("locked_until", DateTime(timezone=True)),
    Column("disabled_at", DateTime(timezone=True)),
    # Bumped on disable and password change: every session cookie minted before is dead.
    Column("session_epoch", Integer, nullable=False, default=0, server_default="0"),
)

memberships = Table(
    "memberships",
    metadata,
    Column("user", String(128), ForeignKey("users.name"), primary_key=True),
    Column("project", String(64), ForeignKey("projects.name"), primary_key=True),
    Column("added_at", DateTime(timezone=True), nullable=False),
    Column("added_by", String(128), nullable=False),
)

# API tokens: only the SHA-256 of the secret is kept (the secret has 256 bits; shown once).
api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", String(16), primary_key=True),
    Column("user", String(128), ForeignKey("users.name"), nullable=False, index=True),
    Column("hash", String(64), nullable=False, unique=True),
    Column("label", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True)),
)
