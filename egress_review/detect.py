"""Personal-information detection in job outputs and logs, before anything is released.

Runs in the trusted platform, outside the sandbox. Outputs are read strictly by their declared
format (``egress_review.extract``): table cells with every column cast to text and the column
names as row 0, plus every other piece of text the file carries (metadata, schema, JSON keys and
values, SVG and PNG text); plain text and logs are scanned line by line. All the work over cells runs in DuckDB: candidates are extracted with
``regexp_extract_all`` over whole columns, check characters are verified in SQL (the helpers of
``catalog.idcodes``; Luhn in ``detectors``), and only the findings that are returned (at most
``limit``) reach Python, where they are confirmed once more with python-stdnum and masked.

What is detected (``Finding.kind``):

=====================  ======================================================================
cn_resident_id         GB 11643: 17 digits + check char (``10X98765432``), birth date
                       1900-01-01..today, first two digits a province code (11..82, and 83
                       for Taiwan residents' residence permits). The region code need not have
                       existed in the birth year (unlike ``stdnum.cn.ric.is_valid``).
cn_resident_id_15      Legacy 15 digits: province code, ``YYMMDD`` a real 19YY date, 3-digit
                       sequence. There is no check char, so any such 15-digit number is one.
cn_mobile              ``1[3-9]`` + 9 digits, optionally after ``86``/``0086``/``+86``; also
                       written ``138 1234 5678`` or ``138-1234-5678``.
cn_uscc                GB 32100: 2 chars + 6-digit region + 9-char organisation code + check
                       char, all from the credit-code alphabet, with both check chars right
                       (GB 32100's and the embedded GB 11714 organisation code's).
bank_card              16..19 digits (also in groups of four), Luhn-valid, first digit 2-6 or 9
                       (card schemes; excludes the 1-prefixed 18-19 digit snowflake IDs of
                       logs), and not a valid resident ID or credit code.
email                  ``local@domain.tld``.
licence_plate          Province abbreviation + letter + 5 chars (at least 3 digits), the
                       new-energy 6-char forms ``[DF]x dddd`` / ``ddddd[DF]``, or 4 chars +
                       挂/学/警/港/澳; a ``·`` or space after the letter is allowed.
passport               Chinese passports: ``E``/``G`` + 8 digits, ``E`` + letter (not I/O) +
                       7 digits, ``DE``/``SE``/``PE`` + 7 digits. No check char: a 9-char token
                       of that shape is reported.
pseudonym_key          A pseudonym of the project (``pseudonyms=`` workspace), whole or
                       truncated to at least 16 hex chars (see ``fingerprints``).
raw_identifier         A value of a granted dataset's direct-identifier column
                       (``fingerprints=``); ``Finding.source`` names the column.
=====================  ======================================================================

Boundaries: numbers are maximal digit runs (a mobile inside a 12-digit run is not one); digits
after ``<digit>.`` are a fraction (``0.13812345678`` holds no mobile) and digit runs inside
hex runs of 32+ chars (hashes) are ignored. Letters may touch an identifier: ``ID15030...``
and ``user13812345678`` are reported. Full-width digits and letters are folded to ASCII first.

Privacy of the scan itself: clear values never leave the scan (``Finding.masked`` holds the
masked form), DuckDB error messages (which can quote a line of the file) are never passed on,
and DuckDB spills to a private temporary folder that is removed after the scan.

This module holds the scanners: running the detectors over them and turning hits into masked findings. The per-kind patterns, SQL, check
characters, confirmation and masking live in ``egress_review.detectors``.
"""

from __future__ import annotations

import codecs
import datetime as _dt
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa  # type: ignore[import-untyped]

from egress_review.detectors import (
    KINDS,
    MIN_PSEUDONYM_PREFIX,
    PLATE_PROVINCES,
    PROVINCE_CODES,
    _confirm,
    _fingerprint_sql,
    _pattern_sql,
    _pseudonym_sql,
    mask,
)
from egress_review.extract import SUFFIXES, TABLES, ReadLimits, declared_format, extract, frame
from egress_review.fingerprints import FingerprintSet, load_pseudonyms, sql_str
from shuyu.errors import PlatformError, ValidationError

# The detection interface, including what moved to detectors (callers import it from here).
__all__ = [
    "KINDS",
    "MIN_PSEUDONYM_PREFIX",
    "PLATE_PROVINCES",
    "PROVINCE_CODES",
    "TEXT_CHUNK_BYTES",
    "Finding",
    "ReadOutput",
    "mask",
    "read_output",
    "scan_output",
    "scan_table",
    "scan_text",
]

log = logging.getLogger(__name__)

TEXT_CHUNK_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True)
class Finding:
    output: str  # output name (relative path) or "log:<action>"
    row: int | None  # 1-based data row (tables; 0 = the header) or line number (text)
    column: str | None
    kind: str
    masked: str  # never the clear value
    source: str | None = None  # raw_identifier: the fingerprinted column(s) it matched

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------- scanning


@dataclass(frozen=True)
class _Hit:
    row: int | None
    col: int | None
    kind: str
    value: str
    source: str | None


class _Scanner:
    """One DuckDB connection with the linkage sets loaded, run over one or more relations."""

    PSEUDONYMS = "_shuyu_pseudonyms"

    def __init__(
        self, fingerprints: FingerprintSet | None, pseudonyms: Path | None, limit: int
    ) -> None:
        if not isinstance(limit, int) or limit < 1:
            raise ValidationError("limit must be a positive whole number", field="limit")
        if fingerprints is not None and not isinstance(fingerprints, FingerprintSet):
            raise ValidationError("fingerprints must be a FingerprintSet", field="fingerprints")
        self.limit = limit
        self.fingerprints = fingerprints
        self.tmp = tempfile.mkdtemp(prefix="shuyu-detect-")
        os.chmod(self.tmp, 0o700)
        self.con = duckdb.connect(config={"autoinstall_known_extensions": False})
        try:
            self.con.execute("SET enable_progress_bar = false")
            self.con.execute(f"SET temp_directory = {sql_str(self.tmp)}")
            self.has_pseudonyms = False
            if pseudonyms is not None:
                self.has_pseudonyms = (
                    load_pseudonyms(self.con, Path(pseudonyms), self.PSEUDONYMS) > 0
                )
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        self.con.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> _Scanner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(self, cells: str) -> list[_Hit]:
        """All hits over the relation ``cells`` ``(_row, _col, v)``, at most ``limit``."""
        params: dict[str, Any] = {"limit": self.limit}
        hits = [
            h
            for h in self._query(_pattern_sql(cells), {**params, "today": _dt.date.today()})
            if _confirm(h.kind, h.value)
        ]
        if self.has_pseudonyms:
            hits += self._query(_pseudonym_sql(cells, self.PSEUDONYMS), params)
        if self.fingerprints is not None and self.fingerprints.paths:
            sql = _fingerprint_sql(cells, self.fingerprints.relation_sql())
            hits += self._query(sql, {**params, "fpkey": self.fingerprints.key.hex()})
        hits.sort(key=_order)
        return hits[: self.limit]

    def _query(self, sql: str, params: dict[str, Any]) -> list[_Hit]:
        try:
            rows = self.con.execute(sql, params).fetchall()
        except duckdb.Error as exc:
            raise _scan_error(exc) from None
        return [_Hit(*row) for row in rows]


def _order(h: _Hit) -> tuple[int, int, str, str]:
    return (h.row or 0, -1 if h.col is None else h.col, h.kind, h.value)


def _scan_error(exc: duckdb.Error) -> PlatformError:
    # DuckDB's message can quote a line of the scanned file: keep only the error class.
    return PlatformError(
        f"the personal-information scan failed ({type(exc).__name__})",
        fix="check that the output is a readable table or text file",
    )


def _findings(output: str, hits: list[_Hit], columns: list[str] | None) -> list[Finding]:
    return [
        Finding(
            output=output,
            row=h.row,
            column=None if h.col is None or columns is None else columns[h.col],
            kind=h.kind,
            masked=mask(h.value, h.kind),
            source=h.source,
        )
        for h in hits
    ]


# --------------------------------------------------------------------------- outputs


@dataclass
class ReadOutput:
    """What the checks read of one output: its findings, and its rows for the table checks."""

    findings: list[Finding]
    table: pd.DataFrame | None = None


def read_output(
    path: Path,
    output_name: str,
    *,
    fingerprints: FingerprintSet | None = None,
    pseudonyms: Path | None = None,
    limit: int = 1000,
    limits: ReadLimits | None = None,
    encoding: str = "utf-8",
    want_table: bool = False,
) -> ReadOutput:
    """Parse an output strictly by its declared format (``extract``) and scan all of it.

    Findings are ordered by row then column; at most ``limit``. For tables ``row`` is the
    1-based data row (the header is row 0, ``column`` None); for text it is the line; for the
    text a file carries besides its rows (metadata, schema, JSON keys and values, SVG and PNG
    text) it is the piece's ordinal and ``column`` a fixed label (``parquet key-value
    metadata``, ``json value``, ``png zTXt``...). With ``want_table`` the parsed rows come back
    as a DataFrame for the disclosure checks. Raises :class:`UnreadableOutput` (block it) when
    the file is not what it declares or is over a limit.
    """
    path = Path(path)
    declared_format(path)  # an unknown format is refused before the file is even opened
    if not path.is_file():
        raise ValidationError("output file not found", file=str(path))
    with _Scanner(fingerprints, pseudonyms, limit) as scanner:
        parsed = extract(scanner.con, path, scanner.tmp, limits or ReadLimits(), encoding=encoding)
        if parsed.text is not None:
            hits = _scan_text_chunks(scanner, parsed.text)
        else:
            assert parsed.cells_sql is not None
            hits = scanner.run(parsed.cells_sql)
        findings = _findings(output_name, hits, parsed.labels or None)
        table = frame(scanner.con, parsed) if want_table else None
    return ReadOutput(findings, table)


def scan_output(
    path: Path,
    output_name: str,
    *,
    fingerprints: FingerprintSet | None = None,
    pseudonyms: Path | None = None,
    limit: int = 1000,
    limits: ReadLimits | None = None,
    encoding: str = "utf-8",
) -> list[Finding]:
    """Findings in any output, read by its declared format (see :func:`read_output`)."""
    return read_output(
        path,
        output_name,
        fingerprints=fingerprints,
        pseudonyms=pseudonyms,
        limit=limit,
        limits=limits,
        encoding=encoding,
    ).findings


def scan_table(
    path: Path,
    output_name: str,
    *,
    fingerprints: FingerprintSet | None = None,
    pseudonyms: Path | None = None,
    limit: int = 1000,
    limits: ReadLimits | None = None,
    encoding: str = "utf-8",
) -> list[Finding]:
    """:func:`scan_output` for a CSV/TSV or Parquet table; any other file is refused."""
    if SUFFIXES.get(Path(path).suffix.lower()) not in TABLES:
        raise ValidationError(
            f"{Path(path).name} is not a table (.csv, .tsv or .parquet)",
            file=str(path),
            fix="scan it with scan_output",
        )
    return scan_output(
        path,
        output_name,
        fingerprints=fingerprints,
        pseudonyms=pseudonyms,
        limit=limit,
        limits=limits,
        encoding=encoding,
    )


# --------------------------------------------------------------------------- logs


def scan_text(
    path_or_bytes: Path | str | bytes | bytearray,
    output_name: str,
    *,
    fingerprints: FingerprintSet | None = None,
    pseudonyms: Path | None = None,
    limit: int = 1000,
) -> list[Finding]:
    """Findings in a log, line by line (``row`` = 1-based line number).

    Logs are what a job printed: never released, read by reviewers, so they are decoded
    leniently rather than refused: UTF-8, else GB 18030, else UTF-8 with replacement
    characters; a UTF-16 byte-order mark is honoured. Large files are read in blocks of whole
    lines. Outputs are read strictly, by :func:`read_output`.
    """
    if isinstance(path_or_bytes, bytes | bytearray | memoryview):
        chunks = _chunks_of_bytes(bytes(path_or_bytes))
    else:
        path = Path(path_or_bytes)
        if not path.is_file():
            raise ValidationError("output file not found", file=str(path))
        chunks = _chunks_of_file(path)
    with _Scanner(fingerprints, pseudonyms, limit) as scanner:
        return _findings(output_name, _scan_text_chunks(scanner, chunks), None)


def _scan_text_chunks(scanner: _Scanner, chunks: Iterator[str]) -> list[_Hit]:
    hits: list[_Hit] = []
    first_line = 1
    for text in chunks:
        lines = text.replace("\x00", " ").split("\n")
        rows = np.arange(first_line, first_line + len(lines), dtype=np.int64)
        table = pa.table({"_row": rows, "v": pa.array(lines, pa.large_string())})
        first_line += len(lines)
        scanner.con.register("_lines", table)
        try:
            hits += scanner.run(
                "SELECT _row, NULL::INTEGER AS _col, rtrim(v, chr(13)) AS v FROM _lines"
            )
        finally:
            scanner.con.unregister("_lines")
        if len(hits) >= scanner.limit:
            break
    hits.sort(key=_order)
    return hits[: scanner.limit]


def _decode(block: bytes) -> str:
    for encoding in ("utf-8", "gb18030"):
        try:
            return block.decode(encoding)
        except UnicodeDecodeError:
            continue
    return block.decode("utf-8", errors="replace")


def _chunks_of_bytes(data: bytes) -> Iterator[str]:
    view = memoryview(data)
    return _line_blocks(
        bytes(view[i : i + TEXT_CHUNK_BYTES]) for i in range(0, len(data), TEXT_CHUNK_BYTES)
    )


def _chunks_of_file(path: Path) -> Iterator[str]:
    with path.open("rb") as fh:
        yield from _line_blocks(iter(lambda: fh.read(TEXT_CHUNK_BYTES), b""))


def _line_blocks(blocks: Iterator[bytes]) -> Iterator[str]:
    """Decoded blocks of whole lines. The newline ending a block is dropped, so the lines of
    all blocks, in order, are the lines of the text (a final newline ends the last line)."""
    carry = b""
    first = True
    for block in blocks:
        data = carry + block
        if first:
            first = False
            if data[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
                text = (data + b"".join(blocks)).decode("utf-16", errors="replace")
                yield text[:-1] if text.endswith("\n") else text
                return
            if data.startswith(codecs.BOM_UTF8):
                data = data[len(codecs.BOM_UTF8) :]
        cut = data.rfind(b"\n")
        if cut < 0:
            carry = data
            continue
        yield _decode(data[:cut])
        carry = data[cut + 1 :]
    if carry:
        yield _decode(carry)
