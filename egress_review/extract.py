"""Read an output strictly by its declared format into what the checks look at.

Every check reads an output through here, so the personal-information scan and the disclosure
checks see the same parsed data, and nothing in a file is left unread: a reader either accounts
for every byte of the file or refuses it. What comes out, in a DuckDB connection:

- ``_src``: the table's rows (columns ``c0..cN-1`` and ``_shuyu_row``, file order), and ``_hdr``
  its column names — for CSV/TSV and Parquet;
- ``_extra``: every other piece of text the file carries (Parquet schema, field names of nested
  types, key-value metadata, statistics; JSON keys and values after unescaping; SVG text,
  attributes and comments; PNG text chunks), one cell per piece;
- :attr:`Extracted.cells_sql`: all of it as one relation ``(_row, _col, v)`` for the detectors,
  where ``_col`` indexes :attr:`Extracted.labels` (a data column's name, or a fixed label such
  as ``parquet key-value metadata`` that never quotes the file).

Plain text is the exception: it is streamed in blocks of lines (:attr:`Extracted.text`), so a
large text output never sits in memory whole.

A file that does not parse as its declared format, or whose format is not one of these, raises
:class:`UnreadableOutput` with a reason from a fixed vocabulary; the checks block it. Limits are
applied before anything is loaded: the row count and uncompressed size of a Parquet file come
from its footer, a CSV's rows are counted while streaming, PNG and zTXt inflation is bounded.
"""

from __future__ import annotations

import base64
import codecs
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]

from egress_review import extract_documents as documents
from egress_review.fingerprints import sql_str
from egress_review.verdicts import Unreadable, UnreadableOutput

BLOCK_BYTES = 32 * 1024 * 1024


class Format(StrEnum):
    CSV = "csv"
    TSV = "tsv"
    PARQUET = "parquet"
    JSON = "json"
    TEXT = "text"
    SVG = "svg"
    PNG = "png"


SUFFIXES = {
    ".csv": Format.CSV,
    ".tsv": Format.TSV,
    ".parquet": Format.PARQUET,
    ".pq": Format.PARQUET,
    ".json": Format.JSON,
    ".txt": Format.TEXT,
    ".log": Format.TEXT,
    ".svg": Format.SVG,
    ".png": Format.PNG,
}
TABLES = frozenset({Format.CSV, Format.TSV, Format.PARQUET})


@dataclass(frozen=True)
class ReadLimits:
    """Caps checked before an output is loaded (settings ``check_max_rows``, ``check_max_mb``)."""

    max_rows: int = 500_000
    max_bytes: int = 512 * 1024**2  # uncompressed: Parquet pages, PNG pixels, zTXt text
    memory_bytes: int | None = None  # DuckDB's own limit, under the process's


@dataclass
class Extracted:
    fmt: Format
    columns: list[str] = field(default_factory=list)  # a table's column names
    labels: list[str] = field(default_factory=list)  # columns, then the labels of `_extra`
    cells_sql: str | None = None
    text: Iterator[str] | None = None  # plain text: blocks of whole lines
    document: object = None  # the parsed JSON document, for the table checks


def declared_format(path: Path) -> Format:
    """The format an output declares by its name; anything else is unreadable (blocked)."""
    fmt = SUFFIXES.get(Path(path).suffix.lower())
    if fmt is None:
        raise UnreadableOutput(Unreadable.UNKNOWN_FORMAT)
    return fmt


def extract(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    tmp: str,
    limits: ReadLimits,
    *,
    fmt: Format | None = None,
    encoding: str = "utf-8",
) -> Extracted:
    """Parse ``path`` into ``con`` (see the module docstring); ``tmp`` is a private folder."""
    path = Path(path)
    fmt = fmt or declared_format(path)
    if limits.memory_bytes:
        con.execute(f"SET memory_limit = '{max(limits.memory_bytes // 1024**2, 64)}MB'")
    con.execute(f"SET max_temp_directory_size = '{max(limits.max_bytes // 1024**2, 64) * 2}MB'")
    if fmt is Format.TEXT:
        return Extracted(fmt, text=text_blocks(path, encoding))
    if fmt in (Format.CSV, Format.TSV):
        columns = _load_csv(con, path, tmp, limits, fmt, encoding)
        return _relation(con, fmt, columns, [])
    if fmt is Format.PARQUET:
        columns, segments = _load_parquet(con, path, limits)
        return _relation(con, fmt, columns, segments)
    data = path.read_bytes()
    if fmt is Format.PNG:
        return _relation(con, fmt, None, documents.png_segments(data, limits.max_bytes))
    text = _decode_strict(data, encoding)
    if fmt is Format.SVG:
        return _relation(con, fmt, None, documents.svg_segments(text))
    doc = documents.read_json(text, limits.max_rows)
    extracted = _relation(con, fmt, doc.columns, doc.segments, doc.cells, has_src=False)
    extracted.document = doc
    return extracted


def read_table(
    path: Path, limits: ReadLimits | None = None, encoding: str = "utf-8"
) -> pd.DataFrame:
    """A table output as a DataFrame through the same strict reader, without a scan (for
    mitigations and local tools that only need the rows)."""
    with tempfile.TemporaryDirectory(prefix="shuyu-read-") as tmp:
        con = duckdb.connect(config={"autoinstall_known_extensions": False})
        try:
            con.execute(f"SET temp_directory = {sql_str(tmp)}")
            return frame(con, extract(con, path, tmp, limits or ReadLimits(), encoding=encoding))
        finally:
            con.close()


def frame(con: duckdb.DuckDBPyConnection, extracted: Extracted) -> pd.DataFrame:
    """The table as a DataFrame for the disclosure checks, from the same parse as the scan.

    CSV cells are read as text (so nothing is lost to type inference); a column whose every
    value is a number becomes numeric, as a spreadsheet would read it.
    """
    if extracted.fmt is Format.JSON:
        doc = extracted.document
        assert isinstance(doc, documents.JsonDocument)
        if doc.columns is None:  # only a list of objects is a table: rows and findings align
            raise UnreadableOutput(Unreadable.NOT_A_TABLE)
        return pd.DataFrame.from_records(doc.value, columns=doc.columns)
    if extracted.fmt not in TABLES or not extracted.columns:
        raise UnreadableOutput(Unreadable.NOT_A_TABLE)
    names = ", ".join(f"c{i}" for i in range(len(extracted.columns)))
    table = con.execute(f"SELECT {names} FROM _src ORDER BY _shuyu_row").df()
    table.columns = extracted.columns
    if extracted.fmt is Format.PARQUET:
        return table
    for column in table.columns:
        values = table[column]
        numbers = pd.to_numeric(values, errors="coerce")
        if numbers.notna().sum() == values.notna().sum():
            table[column] = numbers
    return table


# --------------------------------------------------------------------------- the relation


def _relation(
    con: duckdb.DuckDBPyConnection,
    fmt: Format,
    columns: list[str] | None,
    segments: list[tuple[str, str]],
    cells: list[tuple[int, int | None, str]] | None = None,
    *,
    has_src: bool = True,
) -> Extracted:
    """Load ``cells`` (row, column index, text) and ``segments`` (label, text; numbered from 1)
    as ``_extra``, and build the cells relation over it and ``_src``."""
    table_cols = columns or []
    labels = list(table_cols)
    rows: list[int] = [r for r, _, _ in cells or ()]
    cols: list[int | None] = [c for _, c, _ in cells or ()]
    texts: list[str] = [t for _, _, t in cells or ()]
    index: dict[str, int] = {}
    for ordinal, (label, text) in enumerate(segments, start=1):
        if label not in index:
            index[label] = len(labels)
            labels.append(label)
        rows.append(ordinal)
        cols.append(index[label])
        texts.append(text)
    extra = pa.table(
        {
            "_row": pa.array(rows, pa.int64()),
            "_col": pa.array(cols, pa.int32()),
            "v": pa.array(texts, pa.large_string()),
        }
    )
    con.register("_extra_arrow", extra)
    con.execute("CREATE OR REPLACE TEMP TABLE _extra AS SELECT * FROM _extra_arrow")
    con.unregister("_extra_arrow")
    parts = ["SELECT _row, _col, v FROM _extra"]
    if columns is not None and has_src:
        parts.insert(0, _cells_sql(len(columns)))
    return Extracted(fmt, table_cols, labels, " UNION ALL ".join(parts))


def _cells_sql(n_columns: int) -> str:
    """Every cell as ``(_row, _col, v)``: one scan of ``_src``, unpivoted by a zipped unnest;
    the header is row 0 (``_col`` NULL)."""
    header = "SELECT 0::BIGINT AS _row, NULL::INTEGER AS _col, v FROM _hdr"
    if n_columns == 0:
        return header
    values = ", ".join(f"CAST(c{i} AS VARCHAR)" for i in range(n_columns))
    return (
        f"SELECT _row, _col, v FROM (SELECT _shuyu_row AS _row, "
        f"unnest(range({n_columns}))::INTEGER AS _col, unnest([{values}]) AS v FROM _src) "
        f"UNION ALL {header}"
    )


def _register_header(con: duckdb.DuckDBPyConnection, columns: list[str]) -> None:
    header = pa.table({"v": pa.array(columns, pa.string())})
    con.register("_hdr_arrow", header)
    con.execute("CREATE OR REPLACE TEMP TABLE _hdr AS SELECT v FROM _hdr_arrow")
    con.unregister("_hdr_arrow")


def _aliases(n: int) -> str:
    return ", ".join([f"c{i}" for i in range(n)] + ["_shuyu_row"])


# --------------------------------------------------------------------------- CSV

# Strict: the declared dialect, nothing sniffed but types (which all_varchar turns off), no rows
# skipped as comments or preamble, ragged rows and broken quotes are errors.
_CSV_OPTIONS = (
    "header = true, all_varchar = true, strict_mode = true, skip = 0, comment = '', "
    "quote = '\"', escape = '\"', null_padding = false, ignore_errors = false, "
    "max_line_size = 67108864"
)


def _load_csv(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    tmp: str,
    limits: ReadLimits,
    fmt: Format,
    encoding: str,
) -> list[str]:
    """Materialise the CSV as ``_src`` (all VARCHAR, file order) after counting its lines."""
    newlines = returns = 0  # a row ends in \n, \r\n or a lone \r: count both, take the most
    with path.open("rb") as fh:
        while block := fh.read(BLOCK_BYTES):
            newlines += block.count(b"\n")
            returns += block.count(b"\r")
            if max(newlines, returns) > limits.max_rows + 1:  # +1: the header
                raise UnreadableOutput(Unreadable.TOO_MANY_ROWS)
    if path.stat().st_size == 0:
        raise UnreadableOutput(Unreadable.CSV_INVALID)
    source = path if codecs.lookup(encoding).name == "utf-8" else _transcode(path, tmp, encoding)
    delim = "\\t" if fmt is Format.TSV else ","
    reader = f"read_csv({sql_str(str(source))}, delim = E'{delim}', {_CSV_OPTIONS})"
    try:
        columns = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {reader}").fetchall()]
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE _src AS SELECT * FROM {reader} "
            f"WITH ORDINALITY AS _t({_aliases(len(columns))})"
        )
    except duckdb.OutOfMemoryException:
        raise
    except duckdb.Error as exc:  # the message can quote the file: only the word leaves
        unicode = "unicode" in str(exc).lower()
        raise UnreadableOutput(Unreadable.ENCODING if unicode else Unreadable.CSV_INVALID) from None
    _register_header(con, columns)
    return columns


def _transcode(path: Path, tmp: str, encoding: str) -> Path:
    """A UTF-8 copy of a file in another declared encoding (e.g. GBK), strictly decoded."""
    target = Path(tmp) / "transcoded.csv"
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    try:
        with path.open("rb") as src, target.open("w", encoding="utf-8") as dst:
            while block := src.read(BLOCK_BYTES):
                dst.write(decoder.decode(block))
            dst.write(decoder.decode(b"", final=True))
    except UnicodeDecodeError:
        raise UnreadableOutput(Unreadable.ENCODING) from None
    return target


# --------------------------------------------------------------------------- Parquet


def _load_parquet(
    con: duckdb.DuckDBPyConnection, path: Path, limits: ReadLimits
) -> tuple[list[str], list[tuple[str, str]]]:
    """Check the footer's counts and byte map, then view the rows as ``_src``.

    Returns the column names and the text the file carries besides its rows.
    """
    try:
        parquet = pq.ParquetFile(path)
        meta = parquet.metadata
        arrow_schema = parquet.schema_arrow
    except (pa.ArrowException, OSError, ValueError):
        raise UnreadableOutput(Unreadable.PARQUET_INVALID) from None
    if meta.num_rows > limits.max_rows:
        raise UnreadableOutput(Unreadable.TOO_MANY_ROWS)
    uncompressed = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    if uncompressed > limits.max_bytes:
        raise UnreadableOutput(Unreadable.TOO_LARGE)
    _check_byte_map(path, meta)
    segments = _parquet_segments(meta, arrow_schema)
    source = f"read_parquet({sql_str(str(path))})"
    try:
        columns = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()]
        con.execute(
            f"CREATE OR REPLACE TEMP VIEW _src AS SELECT * FROM {source} "
            f"WITH ORDINALITY AS _t({_aliases(len(columns))})"
        )
    except duckdb.OutOfMemoryException:
        raise
    except duckdb.Error:
        raise UnreadableOutput(Unreadable.PARQUET_INVALID) from None
    _register_header(con, columns)
    return columns, segments


def _check_byte_map(path: Path, meta: pq.FileMetaData) -> None:
    """Every byte of the file is the magic, a column chunk, a bloom filter or the footer.

    Bytes between or after column chunks are read by no reader, so they could carry anything
    past the checks; page indexes and chunks in other files are refused for the same reason.
    """
    size = os.path.getsize(path)
    spans = [(0, 4), (size - 8 - meta.serialized_size, size)]
    for r in range(meta.num_row_groups):
        group = meta.row_group(r)
        for c in range(group.num_columns):
            chunk = group.column(c)
            if chunk.file_path or chunk.has_column_index or chunk.has_offset_index:
                raise UnreadableOutput(Unreadable.PARQUET_UNACCOUNTED_BYTES)
            start = chunk.data_page_offset
            if chunk.has_dictionary_page and chunk.dictionary_page_offset:
                start = min(start, chunk.dictionary_page_offset)
            spans.append((start, start + chunk.total_compressed_size))
            if chunk.bloom_filter_offset and chunk.bloom_filter_length:
                offset = chunk.bloom_filter_offset
                spans.append((offset, offset + chunk.bloom_filter_length))
    covered = 0
    for start, end in sorted(spans):
        if start > covered or end > size:
            raise UnreadableOutput(Unreadable.PARQUET_UNACCOUNTED_BYTES)
        covered = max(covered, end)
    if covered != size:
        raise UnreadableOutput(Unreadable.PARQUET_UNACCOUNTED_BYTES)


def _parquet_segments(meta: pq.FileMetaData, schema: pa.Schema) -> list[tuple[str, str]]:
    """Text of a Parquet file outside its rows: each piece one segment, in a fixed label."""
    out: list[tuple[str, str]] = [
        ("parquet created_by", meta.created_by or ""),
        ("parquet schema", str(meta.schema)),
    ]
    for key, value in (meta.metadata or {}).items():
        out.append(("parquet key-value metadata", _text(key)))
        out.append(("parquet key-value metadata", _text(value)))
        if key == b"ARROW:schema":  # a serialised Arrow schema: read its bytes as well
            try:
                out.append(("parquet key-value metadata", _text(base64.b64decode(value))))
            except ValueError:
                raise UnreadableOutput(Unreadable.PARQUET_INVALID) from None
    out += _field_segments(list(schema))
    for r in range(meta.num_row_groups):
        group = meta.row_group(r)
        for c in range(group.num_columns):
            chunk = group.column(c)
            out.append(("parquet schema", chunk.path_in_schema))
            for key, value in (chunk.metadata or {}).items():
                out += [
                    ("parquet column metadata", _text(key)),
                    ("parquet column metadata", _text(value)),
                ]
            stats = chunk.statistics
            if stats is not None and stats.has_min_max:  # raw: as stored, whatever the type says
                out += [("parquet statistics", _text(v)) for v in (stats.min_raw, stats.max_raw)]
    return out


def _field_segments(fields: list[pa.Field]) -> list[tuple[str, str]]:
    """Names, types and metadata of every field, nested ones included (breadth first)."""
    out: list[tuple[str, str]] = []
    queue = list(fields)
    while queue:
        f = queue.pop(0)
        out += [("parquet schema", f.name), ("parquet schema", str(f.type))]
        for key, value in (f.metadata or {}).items():
            out += [
                ("parquet field metadata", _text(key)),
                ("parquet field metadata", _text(value)),
            ]
        queue += [f.type.field(i) for i in range(f.type.num_fields)]
    return out


def _text(value: object) -> str:
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", errors="replace")
    return str(value)


# --------------------------------------------------------------------------- text


def _decode_strict(data: bytes, encoding: str) -> str:
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError:
        raise UnreadableOutput(Unreadable.ENCODING) from None
    return text.removeprefix("\ufeff")


def text_blocks(path: Path, encoding: str = "utf-8") -> Iterator[str]:
    """Blocks of whole lines of a text output, strictly decoded with its declared encoding.

    The newline ending a block is dropped, so the lines of all blocks, in order, are the lines
    of the text. A byte sequence that does not decode raises ``encoding`` (blocked).
    """
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    carry = ""
    first = True
    with path.open("rb") as fh:
        while True:
            block = fh.read(BLOCK_BYTES)
            try:
                text = carry + decoder.decode(block, final=not block)
            except UnicodeDecodeError:
                raise UnreadableOutput(Unreadable.ENCODING) from None
            if first:
                text, first = text.removeprefix("\ufeff"), False
            if not block:
                break
            cut = text.rfind("\n")
            if cut < 0:
                carry = text
                continue
            yield text[:cut]
            carry = text[cut + 1 :]
    if text:
        yield text
