"""Dataset manifests: what a department's file holds, how it is classified, each column's role.

Roles drive everything downstream: direct identifiers never reach a workspace in clear,
quasi-identifiers feed k-anonymity, bounds and public categories feed DP and synthetic twins.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shuyu.documents import load_yaml, parse_model

ColumnType = Literal["string", "integer", "float", "date", "timestamp", "boolean"]
Role = Literal["direct_identifier", "quasi_identifier", "sensitive", "attribute"]
IdentifierKind = Literal[
    "cn_resident_id",
    "cn_mobile",
    "cn_uscc",
    "person_name",
    "address",
    "email",
    "bank_card",
    "other",
]
CLASSIFICATION_ALIASES = {"一般": "general", "重要": "important", "核心": "core"}
CLASSIFICATION_LABELS = {"general": "一般", "important": "重要", "core": "核心"}
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,62}$")

DUCKDB_TYPES: dict[str, str] = {
    "string": "VARCHAR",
    "integer": "BIGINT",
    "float": "DOUBLE",
    "date": "DATE",
    "timestamp": "TIMESTAMP",
    "boolean": "BOOLEAN",
}
NUMERIC = {"integer", "float"}
TEMPORAL = {"date", "timestamp"}


class ColumnSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: ColumnType
    role: Role
    identifier_kind: IdentifierKind | None = None
    description: str = ""
    bounds: tuple[Any, Any] | None = None
    categories: tuple[str, ...] | None = None
    # Dates that are really months or years (a contribution month is stored as its first day):
    # synthetic twins generate the same granularity, so development queries behave alike.
    granularity: Literal["day", "month", "year"] | None = None

    @model_validator(mode="after")
    def _check(self) -> ColumnSpec:
        if self.bounds is not None:
            if self.type not in NUMERIC | TEMPORAL:
                raise ValueError(
                    f"bounds only apply to numeric or date columns, not {self.type} | fix: remove bounds"
                )
            lo, hi = (_as_bound(self.type, b) for b in self.bounds)
            if lo > hi:
                raise ValueError("bounds are [low, high] with low <= high | fix: swap them")
            object.__setattr__(self, "bounds", (lo, hi))
        if self.granularity is not None and self.type not in TEMPORAL:
            raise ValueError(
                f"granularity only applies to date columns, not {self.type} | fix: remove it"
            )
        if self.categories is not None and len(set(self.categories)) != len(self.categories):
            raise ValueError("categories repeat a value | fix: list each category once")
        return self


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    title: str
    owner_department: str
    description: str = ""
    update_frequency: Literal[
        "realtime", "daily", "weekly", "monthly", "quarterly", "yearly", "once"
    ]
    classification: Literal["general", "important", "core"]
    files: tuple[str, ...] = Field(min_length=1)
    encoding: Literal["utf-8", "gbk", "gb18030"] = "utf-8"
    columns: dict[str, ColumnSpec] = Field(min_length=1)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME_PATTERN.match(value):
            raise ValueError(
                f"dataset name {value!r} must be lower-case letters, digits and _ | fix: e.g. residents_2025"
            )
        return value

    @field_validator("classification", mode="before")
    @classmethod
    def _classification(cls, value: Any) -> Any:
        return CLASSIFICATION_ALIASES.get(value, value)

    @field_validator("columns")
    @classmethod
    def _column_names(cls, value: dict[str, ColumnSpec]) -> dict[str, ColumnSpec]:
        for name in value:
            if not NAME_PATTERN.match(name):
                raise ValueError(f"column name {name!r} must be lower-case letters, digits and _")
        return value

    @property
    def file_format(self) -> str:
        suffixes = {Path(f).suffix.lower() for f in self.files}
        if suffixes == {".parquet"}:
            return "parquet"
        if suffixes == {".csv"}:
            return "csv"
        return "mixed"

    def column(self, name: str) -> ColumnSpec:
        return self.columns[name]

    def as_record(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def load_manifest(path: Path) -> Manifest:
    data = load_yaml(path, "manifest")
    return parse_model(Manifest, data, path)


def manifest_from_record(record: dict[str, Any]) -> Manifest:
    return Manifest.model_validate(record)


def _as_bound(kind: str, value: Any) -> Any:
    if kind in TEMPORAL:
        return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"bound {value!r} is not a number | fix: give numeric bounds")
    return value
