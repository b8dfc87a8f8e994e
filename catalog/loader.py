"""Turn a department's files into one Parquet snapshot, checking them against the manifest.

DuckDB does the reading and writing; Python only streams bytes when a CSV must be re-encoded.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from catalog.manifest import DUCKDB_TYPES, NUMERIC, TEMPORAL, Manifest
from shuyu.errors import ValidationError

COMPATIBLE: dict[str, set[str]] = {
    "string": {"VARCHAR"},
    "integer": {
        "BIGINT",
        "INTEGER",
        "SMALLINT",
        "TINYINT",
        "UBIGINT",
        "UINTEGER",
        "USMALLINT",
        "UTINYINT",
        "HUGEINT",
    },
    "float": {"DOUBLE", "FLOAT", "REAL"},
    "date": {"DATE"},
    "timestamp": {
        "TIMESTAMP",
        "TIMESTAMP WITH TIME ZONE",
        "TIMESTAMP_NS",
        "TIMESTAMP_MS",
        "TIMESTAMP_S",
    },
    "boolean": {"BOOLEAN"},
}


@dataclass(frozen=True)
class StagedSnapshot:
    parquet: Path
    row_count: int
    profile: dict[str, dict[str, Any]]


def stage_snapshot(manifest: Manifest, manifest_path: Path, staging: Path) -> StagedSnapshot:
    """Write `staging/data.parquet` in the manifest's column order and types, or raise."""
    sources = _resolve_files(manifest, manifest_path)
    target = staging / "data.parquet"
    con = duckdb.connect()
    try:
        if manifest.file_format == "parquet":
            relation = _parquet_relation(con, manifest, sources)
        elif manifest.file_format == "csv":
            utf8 = [
                _as_utf8(src, manifest.encoding, staging / f"utf8-{i}.csv")
                for i, src in enumerate(sources)
            ]
            relation = _csv_relation(con, manifest, sources, utf8)
        else:
            raise ValidationError(
                "files mix formats",
                file=str(manifest_path),
                field="files",
                fix="use only .parquet or only .csv files",
            )
        select = ", ".join(
            f'CAST("{c}" AS {DUCKDB_TYPES[s.type]}) AS "{c}"' for c, s in manifest.columns.items()
        )
        try:
            con.execute(
                f"COPY (SELECT {select} FROM {relation}) TO '{target}' (FORMAT parquet, COMPRESSION zstd)"
            )
        except duckdb.Error as exc:
            raise _explain_cast_failure(con, manifest, relation, sources[0], exc) from None
        rows = con.execute(f"SELECT count(*) FROM read_parquet('{target}')").fetchone()[0]  # type: ignore[index]
        profile = _profile(con, manifest, target)
    finally:
        con.close()
        for tmp in staging.glob("utf8-*.csv"):
            tmp.unlink()
    return StagedSnapshot(target, int(rows), profile)


def _resolve_files(manifest: Manifest, manifest_path: Path) -> list[Path]:
    base = manifest_path.parent
    files = []
    for i, name in enumerate(manifest.files):
        path = (base / name).resolve()
        if not path.is_file():
            raise ValidationError(
                f"data file {name} not found next to the manifest",
                file=str(manifest_path),
                field=f"files.{i}",
                fix=f"put it at {path} or correct the name",
            )
        files.append(path)
    return files


def _parquet_relation(
    con: duckdb.DuckDBPyConnection, manifest: Manifest, sources: list[Path]
) -> str:
    relation = "read_parquet([" + ", ".join(f"'{p}'" for p in sources) + "])"
    for source in sources:
        try:
            described = con.execute(f"DESCRIBE SELECT * FROM read_parquet('{source}')").fetchall()
        except duckdb.Error as exc:
            raise ValidationError(
                f"not a readable Parquet file: {_first_line(exc)}",
                file=str(source),
                fix="re-export it as Parquet",
            ) from None
        actual = {row[0]: row[1] for row in described}
        _compare_columns(manifest, source, list(actual))
        for name, spec in manifest.columns.items():
            if actual[name] not in COMPATIBLE[spec.type]:
                raise ValidationError(
                    f"column {name} is {actual[name]} in the file but {spec.type} in the manifest",
                    file=str(source),
                    field=f"columns.{name}.type",
                    fix=f"declare type {_suggest(actual[name])} or convert the column",
                )
    return relation


def _csv_relation(
    con: duckdb.DuckDBPyConnection, manifest: Manifest, sources: list[Path], utf8: list[Path]
) -> str:
    for source, converted in zip(sources, utf8, strict=True):
        with converted.open(encoding="utf-8-sig") as fh:
            header = fh.readline().rstrip("\r\n").split(",")
        _compare_columns(manifest, source, [h.strip().strip('"') for h in header])
    files = "[" + ", ".join(f"'{p}'" for p in utf8) + "]"
    # Columns are matched by header name, not position; the caller's CAST applies the types.
    return f"read_csv({files}, header=true, all_varchar=true, delim=',', quote='\"')"


def _compare_columns(manifest: Manifest, source: Path, actual: list[str]) -> None:
    missing = [c for c in manifest.columns if c not in actual]
    extra = [c for c in actual if c not in manifest.columns]
    if missing:
        raise ValidationError(
            f"column {missing[0]} is declared in the manifest but not in the file",
            file=str(source),
            field=f"columns.{missing[0]}",
            fix="remove it from the manifest or add it to the file",
        )
    if extra:
        raise ValidationError(
            f"the file has column {extra[0]} that the manifest does not declare",
            file=str(source),
            field=f"columns.{extra[0]}",
            fix="declare it (with its role) or drop it from the file",
        )


def _as_utf8(source: Path, encoding: str, target: Path, chunk: int = 1 << 20) -> Path:
    """Strictly decode the declared encoding, streaming, and say exactly where it breaks."""
    codec = "utf-8-sig" if encoding == "utf-8" else encoding
    decoder = codecs.getincrementaldecoder(codec)(errors="strict")
    offset = 0
    line = 1
    with source.open("rb") as src, target.open("w", encoding="utf-8") as out:
        while True:
            block = src.read(chunk)
            try:
                text = decoder.decode(block, final=not block)
            except UnicodeDecodeError as exc:
                position = offset + exc.start
                line += block[: exc.start].count(b"\n")
                hint = _guess_encoding(source)
                fix = (
                    f"set `encoding: {hint}` in the manifest"
                    if hint and hint != encoding
                    else "re-export the file"
                )
                raise ValidationError(
                    f"not valid {encoding} at byte {position} (line {line})",
                    file=str(source),
                    field="encoding",
                    fix=fix,
                ) from None
            out.write(text)
            if not block:
                break
            offset += len(block)
            line += block.count(b"\n")
    return target


def _guess_encoding(source: Path) -> str | None:
    sample = source.read_bytes()[: 1 << 16]
    for candidate in ("utf-8", "gb18030"):
        try:
            sample.decode(candidate)
            return "gbk" if candidate == "gb18030" else candidate
        except UnicodeDecodeError as exc:
            if exc.start > len(sample) - 4:  # cut in the middle of a character
                return "gbk" if candidate == "gb18030" else candidate
    return None


def _profile(
    con: duckdb.DuckDBPyConnection, manifest: Manifest, parquet: Path
) -> dict[str, dict[str, Any]]:
    """Nulls and values outside declared bounds/categories, in one pass: stewards see data quality."""
    parts = []
    for name, spec in manifest.columns.items():
        parts.append(f'count(*) FILTER (WHERE "{name}" IS NULL)')
        if spec.bounds is not None and spec.type in NUMERIC | TEMPORAL:
            lo, hi = (f"'{b}'" if spec.type in TEMPORAL else str(b) for b in spec.bounds)
            parts.append(f'count(*) FILTER (WHERE "{name}" < {lo} OR "{name}" > {hi})')
        elif spec.categories is not None:
            cats = ", ".join("'" + c.replace("'", "''") + "'" for c in spec.categories)
            parts.append(f'count(*) FILTER (WHERE "{name}" NOT IN ({cats}))')
        else:
            parts.append("0")
    values = (
        con.execute(f"SELECT {', '.join(parts)} FROM read_parquet('{parquet}')").fetchone() or ()
    )
    profile = {}
    for i, name in enumerate(manifest.columns):
        profile[name] = {"nulls": int(values[2 * i]), "out_of_domain": int(values[2 * i + 1])}
    return profile


def _explain_cast_failure(
    con: duckdb.DuckDBPyConnection, manifest: Manifest, relation: str, source: Path, exc: Exception
) -> ValidationError:
    """Find the first value that does not fit its declared type, so the steward can fix that cell."""
    for name, spec in manifest.columns.items():
        duck = DUCKDB_TYPES[spec.type]
        try:
            bad = con.execute(
                f'SELECT "{name}", n FROM (SELECT "{name}", row_number() OVER () AS n FROM {relation}) '
                f'WHERE "{name}" IS NOT NULL AND TRY_CAST("{name}" AS {duck}) IS NULL LIMIT 1'
            ).fetchone()
        except duckdb.Error:
            continue
        if bad is not None:
            return ValidationError(
                f"value {str(bad[0])[:40]!r} in data row {bad[1]} is not {spec.type}",
                file=str(source),
                field=f"columns.{name}.type",
                fix="correct the value or the declared type",
            )
    return ValidationError(
        f"cannot read the data: {_first_line(exc)}",
        file=str(source),
        fix="correct the file or the manifest types",
    )


def _suggest(duck_type: str) -> str:
    for kind, names in COMPATIBLE.items():
        if duck_type in names:
            return kind
    return "string"


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0]
