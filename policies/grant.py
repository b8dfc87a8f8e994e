"""Grant documents: which project may use which datasets, for what purpose, until when, and how.

Parsing checks shape; `resolve` checks the grant against the catalog (datasets, columns, types,
roles) and returns a normalised policy whose hash identifies it. Nothing is stored until both pass.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from catalog.manifest import NAME_PATTERN
from policies.transforms import Transform, check_fits, parse_transform
from shuyu.canonical import sha256_json
from shuyu.documents import load_yaml, parse_model
from shuyu.errors import ValidationError

Purpose = Literal["public_governance", "public_welfare", "industry_development"]
FREE_PURPOSES = ("public_governance", "public_welfare")


class DisclosureRules(BaseModel):
    """Statistical disclosure control thresholds; defaults are the UK SDAP rules ACRO uses."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_count: int = Field(10, ge=1)
    dominance_n: int = Field(2, ge=1)
    dominance_k: float = Field(0.90, gt=0, le=1)
    p_percent: float = Field(0.10, gt=0, le=1)
    zeros_disclosive: bool = True
    min_dof: int = Field(10, ge=0)
    k_anonymity: int = Field(5, ge=2)
    l_diversity: int = Field(2, ge=1)


class PrivacyBudget(BaseModel):
    """Differential-privacy budget of the whole grant, per person (privacy-unit domain).

    Every dataset of the project keyed by the same kind of person identifier shares ONE account
    (privacy.accounts): `epsilon` and `delta` cap what all releases together may cost a person.
    Each unknown-keys query spends `delta / delta_queries` unless its job asks for less.
    `per_dataset` can only lower the ε ceiling for queries that read that dataset.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    epsilon: float = Field(5.0, gt=0, le=100)
    delta: float = Field(1e-6, ge=0, le=1e-3)
    delta_queries: int = Field(10, ge=1, le=100_000)
    per_dataset: dict[str, float] = Field(default_factory=dict)

    def epsilon_for(self, dataset: str) -> float:
        return min(self.per_dataset.get(dataset, self.epsilon), self.epsilon)

    def epsilon_cap(self, datasets: Iterable[str]) -> float:
        """The account's ε ceiling for a query reading `datasets`."""
        return min([self.epsilon, *(self.epsilon_for(d) for d in datasets)])

    @property
    def delta_per_query(self) -> float:
        return self.delta / self.delta_queries


class DatasetGrant(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int | Literal["latest"] = "latest"
    columns: dict[str, Any] = Field(min_length=1)


class GrantDocument(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    project: str
    tenant: str
    purpose: Purpose
    description: str = ""
    valid_from: date | None = None
    valid_until: date | None = None
    datasets: dict[str, DatasetGrant] = Field(min_length=1)
    disclosure: DisclosureRules = DisclosureRules()
    dp: PrivacyBudget = PrivacyBudget()

    @field_validator("id", "project")
    @classmethod
    def _ident(cls, value: str) -> str:
        if not NAME_PATTERN.match(value.replace("-", "_")):
            raise ValueError(
                f"{value!r} must be lower-case letters, digits, - and _ | fix: e.g. employment-2026"
            )
        return value


@dataclass(frozen=True)
class ResolvedDataset:
    name: str
    version: int | Literal["latest"]
    transforms: dict[str, Transform]  # only columns that reach the workspace (drops removed)

    def to_record(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "columns": {c: t.to_record() for c, t in self.transforms.items()},
        }


@dataclass(frozen=True)
class Policy:
    """A grant after validation: what the workspace builder and the checks consume."""

    id: str
    project: str
    tenant: str
    purpose: str
    description: str
    valid_from: date
    valid_until: date
    datasets: dict[str, ResolvedDataset]
    disclosure: DisclosureRules
    dp: PrivacyBudget

    def to_record(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "project": self.project,
            "tenant": self.tenant,
            "purpose": self.purpose,
            "description": self.description,
            "valid_from": self.valid_from.isoformat(),
            "valid_until": self.valid_until.isoformat(),
            "datasets": {n: d.to_record() for n, d in sorted(self.datasets.items())},
            "disclosure": self.disclosure.model_dump(),
            "dp": self.dp.model_dump(),
        }

    @property
    def hash(self) -> str:
        return sha256_json(self.to_record())

    @property
    def free_of_charge(self) -> bool:
        return self.purpose in FREE_PURPOSES


def load_grant(path: Path) -> GrantDocument:
    return parse_model(GrantDocument, load_yaml(path, "grant"), path)


def resolve(
    doc: GrantDocument, source: Path | str, catalog_lookup: Any, today: date, default_years: int
) -> Policy:
    """Check the grant against the catalog; `catalog_lookup(name, version)` returns a DatasetVersion or raises."""
    file = str(source)
    valid_from = doc.valid_from or today
    valid_until = doc.valid_until or _add_years(valid_from, default_years)
    if valid_until < valid_from:
        raise ValidationError(
            "valid_until is before valid_from",
            file=file,
            field="valid_until",
            fix="correct the dates",
        )
    if valid_until < today:
        raise ValidationError(
            f"the grant expired on {valid_until}",
            file=file,
            field="valid_until",
            fix="issue a grant with a current validity window",
        )
    resolved: dict[str, ResolvedDataset] = {}
    for name, wanted in doc.datasets.items():
        field_base = f"datasets.{name}"
        version = catalog_lookup(
            name, None if wanted.version == "latest" else wanted.version, file, field_base
        )
        manifest = version.manifest
        transforms: dict[str, Transform] = {}
        for column, raw in wanted.columns.items():
            field = f"{field_base}.columns.{column}"
            if column not in manifest.columns:
                known = ", ".join(manifest.columns)
                raise ValidationError(
                    f"dataset {name} has no column {column}",
                    file=file,
                    field=field,
                    fix=f"use one of: {known}",
                )
            try:
                transform = check_fits(parse_transform(raw), column, manifest.columns[column])
            except ValueError as exc:
                message, _, fix = str(exc).partition(" | fix: ")
                raise ValidationError(message, file=file, field=field, fix=fix or None) from None
            if transform.name != "drop":
                transforms[column] = transform
        if not transforms:
            raise ValidationError(
                f"every column of {name} is dropped",
                file=file,
                field=f"{field_base}.columns",
                fix="grant at least one column or remove the dataset",
            )
        resolved[name] = ResolvedDataset(name, wanted.version, transforms)
    for name in doc.dp.per_dataset:
        if name not in doc.datasets:
            raise ValidationError(
                f"DP budget names dataset {name}, which the grant does not include",
                file=file,
                field=f"dp.per_dataset.{name}",
                fix="remove it or grant the dataset",
            )
    return Policy(
        doc.id,
        doc.project,
        doc.tenant,
        doc.purpose,
        doc.description,
        valid_from,
        valid_until,
        resolved,
        doc.disclosure,
        doc.dp,
    )


def policy_from_record(record: dict[str, Any]) -> Policy:
    datasets = {
        n: ResolvedDataset(
            n, d["version"], {c: parse_transform(t) for c, t in d["columns"].items()}
        )
        for n, d in record["datasets"].items()
    }
    return Policy(
        record["id"],
        record["project"],
        record["tenant"],
        record["purpose"],
        record.get("description", ""),
        date.fromisoformat(record["valid_from"]),
        date.fromisoformat(record["valid_until"]),
        datasets,
        DisclosureRules(**record["disclosure"]),
        PrivacyBudget(**record["dp"]),
    )


def _add_years(start: date, years: int) -> date:
    try:
        return start.replace(year=start.year + years)
    except ValueError:  # 29 February
        return start.replace(year=start.year + years, day=28)
