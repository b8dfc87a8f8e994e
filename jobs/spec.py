"""The job spec (YAML, versioned): a project, a purpose, and actions with declared outputs.

Outputs are declared up front, each with a kind and the column roles the disclosure checks
need, because output checking works per declared output: anything else a job writes is
reported and never released.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from catalog.manifest import NAME_PATTERN
from privacy.request import MAX_EPSILON, MIN_EPSILON
from shuyu.canonical import sha256_file, sha256_json
from shuyu.documents import load_yaml, parse_model
from shuyu.errors import ValidationError

SPEC_VERSION = 1
OutputKind = Literal["table", "microdata", "figure", "text"]
ALLOWED_SUFFIXES = {
    "table": {".csv", ".parquet", ".json"},
    "microdata": {".csv", ".parquet"},
    "figure": {".png", ".svg"},
    "text": {".txt", ".json"},
}
ACTION_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
RUN_FORM = re.compile(r"^(python|sql)\s+(\S+)$")


class OutputSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: OutputKind
    context: str = Field(min_length=1, description="what this output is, for reviewers")
    counts: tuple[str, ...] = ()
    values: tuple[str, ...] = ()
    group_by: tuple[str, ...] = ()
    quasi_identifiers: tuple[str, ...] = ()
    sensitive: tuple[str, ...] = ()
    statistics: tuple[Literal["count", "sum", "mean", "median", "min", "max"], ...] = ()
    # Contributor-level helper data for the dominance and p% rules: a file the job writes with the
    # group_by columns, a `contributor` column and the source columns named in `values`.
    # It is collected for the checks and never released.
    contributors: str | None = None
    # Model outputs (regression tables): the column holding the residual degrees of freedom,
    # checked against the grant's min_dof.
    dof: str | None = None

    @model_validator(mode="after")
    def _contributors(self) -> OutputSpec:
        if self.contributors is not None and self.kind != "table":
            raise ValueError(
                "only table outputs take contributor data | fix: remove `contributors`"
            )
        if self.contributors is not None and not (self.values or self.counts):
            raise ValueError(
                "contributor data needs the `counts` or `values` columns it backs "
                "| fix: list them in counts or values"
            )
        return self


class DPQuery(BaseModel):
    """Executed by the platform's trusted DP engine, never in the sandbox."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    query: str
    epsilon: float = Field(gt=0, le=MAX_EPSILON)
    max_contributions: int = Field(1, ge=1, le=1000)
    delta: float | None = Field(None, ge=0, lt=1)  # only for GROUP BY over keys that are not public
    unknown_keys: bool = False  # release only groups whose noisy count passes a noisy threshold

    @field_validator("query")
    @classmethod
    def _select(cls, value: str) -> str:
        if not re.match(r"(?is)^\s*select\s", value) or ";" in value.strip().rstrip(";"):
            raise ValueError(
                "a DP query is one SELECT statement | fix: write SELECT ... FROM dataset GROUP BY ..."
            )
        return value.strip().rstrip(";")

    @field_validator("epsilon")
    @classmethod
    def _min_epsilon(cls, value: float) -> float:
        if value < MIN_EPSILON:  # 1e-300 made the noise scale overflow in the engine
            raise ValueError(
                f"epsilon must be at least {MIN_EPSILON:g} | fix: use epsilon: 0.1 or more"
            )
        return value


class TableAggregate(BaseModel):
    """Executed by the platform over the workspace (`aggregation/`), never in the sandbox.

    Restricted aggregate SQL: COUNT, SUM, AVG, MIN/MAX, MEDIAN, GROUP BY the output's declared
    group_by columns, simple WHERE. The platform computes the table and keeps the
    contributor-level data behind it, so the disclosure checks use its own numbers.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    query: str

    @field_validator("query")
    @classmethod
    def _select(cls, value: str) -> str:
        if not re.match(r"(?is)^\s*select\s", value) or ";" in value.strip().rstrip(";"):
            raise ValueError(
                "a table query is one SELECT statement "
                "| fix: write SELECT <group columns>, COUNT(*) ... FROM dataset GROUP BY ..."
            )
        return value.strip().rstrip(";")


class ActionSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    run: str | None = None
    dp: DPQuery | None = None
    table: TableAggregate | None = None
    needs: tuple[str, ...] = ()
    outputs: dict[str, OutputSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _one_kind(self) -> ActionSpec:
        if sum(k is not None for k in (self.run, self.dp, self.table)) != 1:
            raise ValueError(
                "an action has exactly one of `run:`, `dp:` or `table:` "
                "| fix: e.g. run: python analysis.py"
            )
        if self.run is not None and not RUN_FORM.match(self.run):
            raise ValueError(
                "run must be `python FILE` or `sql FILE` | fix: e.g. run: python analysis.py"
            )
        if (self.dp or self.table or self.language == "sql") and len(self.outputs) != 1:
            raise ValueError(
                "a DP, table or SQL action has exactly one output | fix: declare one table output"
            )
        if self.table is not None:
            (output,) = self.outputs.values()
            if output.kind != "table" or output.contributors is not None:
                raise ValueError(
                    "a table: action writes one table and the platform keeps its contributor "
                    "data | fix: declare kind: table and no contributors"
                )
        return self

    @property
    def language(self) -> str | None:
        return RUN_FORM.match(self.run).group(1) if self.run else None  # type: ignore[union-attr]

    @property
    def collected_paths(self) -> list[str]:
        """Declared outputs plus their contributor helper files (held, never released)."""
        helpers = [o.contributors for o in self.outputs.values() if o.contributors]
        return [*self.outputs, *helpers]

    @property
    def code_file(self) -> str | None:
        return RUN_FORM.match(self.run).group(2) if self.run else None  # type: ignore[union-attr]


class JobSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = 1
    name: str
    project: str
    purpose: Literal["public_governance", "public_welfare", "industry_development"]
    description: str = ""
    files: tuple[
        str, ...
    ] = ()  # extra code files (modules the scripts import), relative to the spec
    actions: dict[str, ActionSpec] = Field(min_length=1)

    @field_validator("name", "project")
    @classmethod
    def _ident(cls, value: str) -> str:
        if not NAME_PATTERN.match(value.replace("-", "_")):
            raise ValueError(f"{value!r} must be lower-case letters, digits, - and _")
        return value


@dataclass(frozen=True)
class LoadedSpec:
    spec: JobSpec
    path: Path
    order: tuple[str, ...]  # actions in dependency order
    code: dict[str, str]  # relative code path -> sha256

    @property
    def base(self) -> Path:
        return self.path.parent

    @property
    def hash(self) -> str:
        return sha256_json({"spec": self.spec.model_dump(mode="json"), "code": self.code})


def load_spec(path: Path) -> LoadedSpec:
    spec = parse_model(JobSpec, load_yaml(path, "job spec"), path)
    file = str(path)
    for name, action in spec.actions.items():
        if not ACTION_NAME.match(name):
            raise ValidationError(
                f"action name {name!r} is not allowed",
                file=file,
                field=f"actions.{name}",
                fix="use lower-case letters, digits, - and _",
            )
        for out, declared in action.outputs.items():
            _check_output_path(out, declared.kind, file, f"actions.{name}.outputs.{out}")
            if declared.contributors is not None:
                helper = declared.contributors
                field = f"actions.{name}.outputs.{out}.contributors"
                _check_output_path(helper, "microdata", file, field)
                if helper in action.outputs:
                    raise ValidationError(
                        "contributor data must be a separate file from the outputs",
                        file=file,
                        field=field,
                        fix="name it e.g. _contributors/<output>.parquet",
                    )
        for need in action.needs:
            target, _, output = need.partition("/")
            if target not in spec.actions:
                raise ValidationError(
                    f"needs unknown action {target!r}",
                    file=file,
                    field=f"actions.{name}.needs",
                    fix=f"use one of: {', '.join(a for a in spec.actions if a != name)}",
                )
            if output and output not in spec.actions[target].outputs:
                raise ValidationError(
                    f"action {target} declares no output {output!r}",
                    file=file,
                    field=f"actions.{name}.needs",
                    fix="declare it in that action's outputs",
                )
    order = _topological(spec, file)
    code = _hash_code(spec, path)
    return LoadedSpec(spec, path, order, code)


def _check_output_path(out: str, kind: str, file: str, field: str) -> None:
    pure = PurePosixPath(out)
    if (
        pure.is_absolute()
        or ".." in pure.parts
        or out.startswith("~")
        or "\\" in out
        or not pure.parts
    ):
        raise ValidationError(
            f"output path {out!r} escapes the output folder",
            file=file,
            field=field,
            fix="use a relative path inside the output folder, e.g. tables/result.csv",
        )
    if not all(
        re.match(r"^[A-Za-z0-9_.\-]+$", part) and not part.startswith(".") for part in pure.parts
    ):
        raise ValidationError(
            f"output path {out!r} has characters that are not allowed",
            file=file,
            field=field,
            fix="use letters, digits, _ - . and / only",
        )
    if pure.suffix.lower() not in ALLOWED_SUFFIXES[kind]:
        allowed = ", ".join(sorted(ALLOWED_SUFFIXES[kind]))
        raise ValidationError(
            f"a {kind} output must be one of {allowed}",
            file=file,
            field=field,
            fix=f"rename it, e.g. {pure.stem}{sorted(ALLOWED_SUFFIXES[kind])[0]}",
        )


def _topological(spec: JobSpec, file: str) -> tuple[str, ...]:
    deps = {name: {n.partition("/")[0] for n in a.needs} for name, a in spec.actions.items()}
    order: list[str] = []
    state: dict[str, int] = {}

    def visit(name: str, trail: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            cycle = " -> ".join([*trail[trail.index(name) :], name])
            raise ValidationError(
                f"actions depend on each other in a cycle: {cycle}",
                file=file,
                field=f"actions.{name}.needs",
                fix="remove one of the needs",
            )
        state[name] = 1
        for dep in sorted(deps[name]):
            visit(dep, [*trail, name])
        state[name] = 2
        order.append(name)

    for name in spec.actions:
        visit(name, [])
    return tuple(order)


def _hash_code(spec: JobSpec, path: Path) -> dict[str, str]:
    base = path.parent.resolve()
    wanted = [a.code_file for a in spec.actions.values() if a.code_file] + list(spec.files)
    code: dict[str, str] = {}
    for i, rel in enumerate(wanted):
        field = "files" if i >= len(wanted) - len(spec.files) else "actions"
        pure = PurePosixPath(rel)
        target = (base / rel).resolve()
        if pure.is_absolute() or ".." in pure.parts or not target.is_relative_to(base):
            raise ValidationError(
                f"code file {rel!r} is outside the spec's folder",
                file=str(path),
                field=field,
                fix="keep code next to the spec",
            )
        if not target.is_file():
            raise ValidationError(
                f"code file {rel} not found",
                file=str(path),
                field=field,
                fix=f"create {target} or correct the path",
            )
        code[str(pure)] = sha256_file(target)
    return code


def spec_record(loaded: LoadedSpec) -> dict[str, Any]:
    return {
        "spec": loaded.spec.model_dump(mode="json"),
        "order": list(loaded.order),
        "code": loaded.code,
    }
