"""Per-column transforms, each a DuckDB expression, plus what column types and roles each fits.

They run inside the platform while a workspace is built; the pseudonymisation key is bound as a
query parameter, so it is never part of the workspace file or of any SQL text that is stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from catalog.manifest import NUMERIC, TEMPORAL, ColumnSpec

TransformName = Literal["keep", "drop", "pseudonymise", "generalise", "mask", "top_bottom_code"]
GENERALISE_LEVELS = ("year", "five_year_band", "age_band", "district")
DIRECT_IDENTIFIER_TRANSFORMS = ("drop", "pseudonymise")
WUHAI_DISTRICTS = {"150302": "海勃湾区", "150303": "海南区", "150304": "乌达区"}
PSEUDONYM_HEX_CHARS = 32  # 128 bits of a keyed SHA-256


@dataclass(frozen=True)
class Transform:
    """A validated transform of one column. `options` are already checked and defaulted."""

    name: TransformName
    options: dict[str, Any]

    def to_record(self) -> Any:
        return self.name if not self.options else {self.name: self.options}


def parse_transform(raw: Any) -> Transform:
    """Accept `keep` / `{generalise: year}` / `{mask: {keep_prefix: 3}}` forms; raise ValueError."""
    options: dict[str, Any]
    if isinstance(raw, str):
        name, options = raw, {}
    elif isinstance(raw, dict) and len(raw) == 1:
        name, value = next(iter(raw.items()))
        options = value if isinstance(value, dict) else {"to": value}
    else:
        raise ValueError(
            "a transform is a name or a one-key mapping | fix: e.g. `pseudonymise` or `{generalise: year}`"
        )
    if name not in ("keep", "drop", "pseudonymise", "generalise", "mask", "top_bottom_code"):
        raise ValueError(
            f"unknown transform {name!r} | fix: use keep, drop, pseudonymise, generalise, mask or top_bottom_code"
        )
    return Transform(name, dict(options))  # type: ignore[arg-type]  # checked just above


def check_fits(transform: Transform, column: str, spec: ColumnSpec) -> Transform:
    """Raise ValueError (with a fix) if the transform does not fit the column; return it with defaults."""
    name, opts = transform.name, dict(transform.options)
    if spec.role == "direct_identifier" and name not in DIRECT_IDENTIFIER_TRANSFORMS:
        raise ValueError(
            f"{column} is a direct identifier: it can only be dropped or pseudonymised, not {name} "
            "| fix: use `drop` or `pseudonymise`"
        )
    if name == "generalise":
        level = opts.get("to")
        if level not in GENERALISE_LEVELS:
            raise ValueError(
                f"generalise needs `to` in {', '.join(GENERALISE_LEVELS)} | fix: e.g. `{{generalise: year}}`"
            )
        allowed = {
            "year": TEMPORAL,
            "five_year_band": TEMPORAL,
            "age_band": NUMERIC | TEMPORAL,
            "district": {"string"},
        }
        if spec.type not in allowed[level]:
            raise ValueError(
                f"generalise to {level} does not fit {column} of type {spec.type} "
                f"| fix: use it on a {' or '.join(sorted(allowed[level]))} column"
            )
        if level == "age_band":
            opts.setdefault("width", 5)
            opts.setdefault("as_of", "2026-01-01")
            if not isinstance(opts["width"], int) or opts["width"] < 1:
                raise ValueError(
                    "age_band width must be a positive whole number of years | fix: e.g. width: 5"
                )
    elif name == "mask":
        if spec.type != "string":
            raise ValueError(
                f"mask fits only string columns; {column} is {spec.type} | fix: use generalise or drop"
            )
        opts = {
            "keep_prefix": int(opts.get("keep_prefix", 0)),
            "keep_suffix": int(opts.get("keep_suffix", 0)),
            "char": str(opts.get("char", "*")),
        }
        if len(opts["char"]) != 1 or opts["keep_prefix"] < 0 or opts["keep_suffix"] < 0:
            raise ValueError(
                "mask takes keep_prefix >= 0, keep_suffix >= 0 and a one-character char"
            )
    elif name == "top_bottom_code":
        if spec.type not in NUMERIC:
            raise ValueError(
                f"top_bottom_code fits only numeric columns; {column} is {spec.type} | fix: use generalise"
            )
        lower = opts.get("lower", spec.bounds[0] if spec.bounds else None)
        upper = opts.get("upper", spec.bounds[1] if spec.bounds else None)
        if lower is None or upper is None:
            raise ValueError(
                f"top_bottom_code on {column} needs lower and upper (the manifest declares no bounds) "
                "| fix: add `lower:` and `upper:`"
            )
        if lower > upper:
            raise ValueError("top_bottom_code lower must not exceed upper | fix: swap them")
        opts = {"lower": lower, "upper": upper}
    elif opts:
        raise ValueError(f"{name} takes no options | fix: write just `{name}`")
    return Transform(name, opts)


def sql_expression(
    column: str, column_type: str, transform: Transform, key_param: str = "$key"
) -> str | None:
    """The DuckDB expression producing the workspace column, or None when the column is dropped."""
    col = f'"{column}"'
    o = transform.options
    match transform.name:
        case "drop":
            return None
        case "keep":
            return col
        case "pseudonymise":
            # Nested keyed hash H(k || H(k || v)): no length extension, one key per project.
            inner = f"sha256({key_param} || CAST({col} AS VARCHAR))"
            return f"CASE WHEN {col} IS NULL THEN NULL ELSE left(sha256({key_param} || {inner}), {PSEUDONYM_HEX_CHARS}) END"
        case "generalise":
            return _generalise(col, column_type, o)
        case "mask":
            return _mask(col, o["keep_prefix"], o["keep_suffix"], o["char"])
        case "top_bottom_code":
            return f"least(greatest({col}, {o['lower']}), {o['upper']})"
    raise AssertionError(transform.name)


def _generalise(col: str, column_type: str, o: dict[str, Any]) -> str:
    match o["to"]:
        case "year":
            return f"CAST(year({col}) AS BIGINT)"
        case "five_year_band":
            start = f"(year({col}) // 5) * 5"
            return f"CAST({start} AS VARCHAR) || '-' || CAST({start} + 4 AS VARCHAR)"
        case "age_band":
            width = int(o["width"])
            temporal = column_type in TEMPORAL
            age = f"date_sub('year', {col}, DATE '{o['as_of']}')" if temporal else col
            start = f"(CAST(floor({age} / {width}) AS BIGINT) * {width})"
            return f"CAST({start} AS VARCHAR) || '-' || CAST({start} + {width - 1} AS VARCHAR)"
        case "district":
            cases = " ".join(
                f"WHEN '{code}' THEN '{name}'" for code, name in WUHAI_DISTRICTS.items()
            )
            return f"CASE left({col}, 6) {cases} ELSE left({col}, 6) END"
    raise AssertionError(o)


def _mask(col: str, prefix: int, suffix: int, char: str) -> str:
    keep_end = f"right({col}, {suffix})" if suffix else "''"
    hidden = f"greatest(length({col}) - {prefix} - {suffix}, 0)"
    return (
        f"CASE WHEN length({col}) <= {prefix + suffix} THEN repeat('{char}', length({col})) "
        f"ELSE left({col}, {prefix}) || repeat('{char}', {hidden}) || {keep_end} END"
    )
