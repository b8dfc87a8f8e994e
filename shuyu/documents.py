"""Loading YAML documents (manifests, grants, job specs) with one clear error per problem.

Pydantic checks the shape; its first complaint is turned into our error naming file, field and fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import pydantic
import yaml

from shuyu.errors import ValidationError

M = TypeVar("M", bound=pydantic.BaseModel)


def load_yaml(path: Path, what: str) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValidationError(
            f"{what} file not found", file=str(path), fix="check the path"
        ) from None
    except UnicodeDecodeError:
        raise ValidationError(
            f"{what} is not UTF-8 text", file=str(path), fix="save it as UTF-8"
        ) from None
    except OSError as exc:
        raise ValidationError(f"cannot read {what}: {exc.strerror}", file=str(path)) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ValidationError(
            f"malformed YAML at {where}: {problem}", file=str(path), fix="fix the YAML syntax there"
        ) from None
    if not isinstance(data, dict):
        raise ValidationError(f"{what} must be a YAML mapping at the top level", file=str(path))
    return data


def parse_model(model: type[M], data: Any, file: Path | str) -> M:
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(top level)"
        message, fix = _explain(dict(first))
        more = exc.error_count() - 1
        if more:
            message += f" (and {more} more problem{'s' if more > 1 else ''})"
        raise ValidationError(message, file=str(file), field=field, fix=fix) from None


def _explain(error: dict[str, Any]) -> tuple[str, str | None]:
    kind = error["type"]
    msg = error["msg"]
    if kind == "missing":
        return "required field is missing", "add it"
    if kind == "extra_forbidden":
        return "unknown field", "remove it or check its spelling"
    if kind in {"literal_error", "enum"}:
        return msg, "use one of the allowed values"
    if msg.startswith("Value error, "):
        text = msg.removeprefix("Value error, ")
        if " | fix: " in text:
            text, fix = text.split(" | fix: ", 1)
            return text, fix
        return text, None
    return msg, None
