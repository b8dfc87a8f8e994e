"""Personal-information detection in job outputs and logs, before anything is released.

Runs in the trusted platform, outside the sandbox. Tables (CSV/TSV/Parquet) are scanned cell by
cell with every column cast to text, and their column names as row 0; text (logs, TXT, JSON) is
scanned line by line. All the work over cells runs in DuckDB: candidates are extracted with
``regexp_extract_all`` over whole columns, check characters are verified in SQL (the helpers of
``catalog.idcodes``; Luhn below), and only the findings that are returned (at most ``limit``)
reach Python, where they are confirmed once more with python-stdnum and masked.

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

Privacy of the scan itself: clear values never leave this module (``Finding.masked`` holds the
masked form), DuckDB error messages (which can quote a line of the file) are never passed on,
and DuckDB spills to a private temporary folder that is removed after the scan.
"""

from __future__ import annotations

import codecs
import datetime as _dt
import gzip
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa  # type: ignore[import-untyped]
from stdnum import luhn
from stdnum.cn import ric, uscc

from catalog.idcodes import (
    USCC_ALPHABET,
    org_code_check_char,
    org_code_check_sql,
    resident_id_check_char,
    resident_id_check_sql,
    uscc_check_sql,
)
from egress_review.fingerprints import (
    FULL_WIDTH_RE,
    GROUPED_DIGITS_RE,
    FingerprintSet,
    fingerprintable_sql,
    fold_sql,
    hash_sql,
    key_sql,
    load_pseudonyms,
    sql_str,
)
from shuyu.errors import PlatformError, ValidationError

log = logging.getLogger(__name__)

KINDS = (
    "cn_resident_id",
    "cn_resident_id_15",
    "cn_mobile",
    "cn_uscc",
    "bank_card",
    "email",
    "licence_plate",
    "passport",
    "pseudonym_key",
    "raw_identifier",
)
PROVINCE_CODES = (
    "11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36", "37",
    "41", "42", "43", "44", "45", "46", "50", "51", "52", "53", "54", "61", "62", "63", "64",
    "65", "71", "81", "82", "83",
)  # fmt: skip
PLATE_PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"
TABLE_SUFFIXES = {".csv": "csv", ".tsv": "csv", ".parquet": "parquet", ".pq": "parquet"}
TEXT_CHUNK_BYTES = 32 * 1024 * 1024
MIN_PSEUDONYM_PREFIX = 16  # hex chars of a truncated pseudonym still treated as one (64 bits)

# Candidate extraction (RE2). Each family yields maximal runs, so boundaries need no lookaround.
_RE_NUM = r"[0-9]{11,}[Xx]?"
_RE_UPPER = r"[0-9A-Z]{9,}"
_RE_EMAIL = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
_RE_PLATE = f"[{PLATE_PROVINCES}][A-Z][·•・ ]?[0-9A-Za-z]{{4,}}[挂学警港澳]?"
# A cell can only hold a candidate if it matches this (one cheap pass prunes most cells).
_RE_PREFILTER = f"[0-9A-Z]{{9}}|@|[{PLATE_PROVINCES}][A-Z]|{FULL_WIDTH_RE}|{GROUPED_DIGITS_RE}"
_RE_HASH = r"[0-9a-fA-F]{32,}"  # digit runs inside these are parts of hashes
_RE_FRACTION = r"([0-9])\.[0-9]+"
_RE_HEX = f"[0-9a-f]{{{MIN_PSEUDONYM_PREFIX},}}"
_RE_TOKEN = r"[0-9A-Za-z@._-]{6,}"
_RE_FIELD_SPLIT = r"[\s\x{3000},;|\"'=:()\[\]{}<>，；：、。（）【】《》“”‘’]+"
# Full-match classifiers, shared by the SQL and the Python confirmation.
_USCC_CHARS = "0-9A-HJ-NP-RTUWXY"
_RE_USCC = f"[{_USCC_CHARS}]{{2}}[0-9]{{6}}[{_USCC_CHARS}]{{10}}"
_RE_MOBILE = r"(?:0086|86)?1[3-9][0-9]{9}"
_RE_CARD = r"[2-69][0-9]{15,18}"
_RE_PASSPORT = r"[EG][0-9]{8}|E[A-HJ-NP-Z][0-9]{7}|[DSP]E[0-9]{7}"
_RE_PLATE_TAIL = (
    r"[DF][A-HJ-NP-Z0-9][0-9]{4}|[0-9]{5}[DF]|[A-HJ-NP-Z0-9]{4}[挂学警港澳]|[A-HJ-NP-Z0-9]{5}"
)
if USCC_ALPHABET != "0123456789ABCDEFGHJKLMNPQRTUWXY":  # what _USCC_CHARS spells
    raise ImportError("catalog.idcodes.USCC_ALPHABET changed: update _USCC_CHARS")


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


# --------------------------------------------------------------------------- masking


def mask(value: str, kind: str) -> str:
    """The value with its identifying middle hidden: ``1503**********123X``, ``138****5678``.

    Never returns the clear value: even a one-character value becomes ``*``.
    """
    v = str(value).strip()
    n = len(v)
    if kind == "cn_resident_id" and n == 18:
        return v[:4] + "*" * 10 + v[-4:]
    if kind == "cn_resident_id_15" and n == 15:
        return v[:4] + "*" * 8 + v[-3:]
    if kind == "cn_mobile" and n >= 11:
        v = v[-11:]
        return v[:3] + "****" + v[-4:]
    if kind == "cn_uscc" and n == 18:
        return v[:4] + "*" * 10 + v[-4:]
    if kind == "bank_card" and n >= 12:
        return v[:6] + "*" * (n - 10) + v[-4:]
    if kind == "email" and "@" in v[1:]:
        local, _, domain = v.rpartition("@")
        return local[0] + "***@" + domain
    if kind == "licence_plate" and n >= 6:
        return v[:2] + "*" * (n - 3) + v[-1:]
    if kind == "passport" and n >= 6:
        return v[:1] + "*" * (n - 3) + v[-2:]
    if kind == "pseudonym_key" and n >= 8:
        return v[:4] + "*" * (n - 4)
    if kind == "raw_identifier" and (shape := _shape(v)) is not None:
        return mask(v, shape)  # a raw identifier that looks like an ID is masked like one
    return _mask_generic(v)


def _shape(v: str) -> str | None:
    if re.fullmatch(r"[0-9]{17}[0-9X]", v):
        return "cn_resident_id"
    if re.fullmatch(_RE_MOBILE, v):
        return "cn_mobile"
    if re.fullmatch(_RE_USCC, v):
        return "cn_uscc"
    if re.fullmatch(_RE_EMAIL, v):
        return "email"
    return None


def _mask_generic(v: str) -> str:
    n = len(v)
    if n <= 1:
        return "*"
    if n <= 3:
        return v[0] + "*" * (n - 1)
    if n <= 7:
        return v[0] + "*" * (n - 2) + v[-1]
    keep = 2 if n < 16 else 3
    return v[:keep] + "*" * (n - 2 * keep) + v[-keep:]


# --------------------------------------------------------------------------- SQL


def _luhn_sql(digits: str) -> str:
    """TRUE when a digit string of at most 19 chars passes Luhn (NULL in, NULL out)."""
    padded = f"lpad({digits}, 19, '0')"  # leading zeros add nothing to the sum
    terms = []
    for pos in range(1, 20):
        d = f"CAST(substr({padded}, {pos}, 1) AS INTEGER)"
        doubled = (19 - pos) % 2 == 1  # every second digit from the right, check digit excluded
        terms.append(f"(2 * {d}) % 10 + (2 * {d}) // 10" if doubled else d)
    return "((" + " + ".join(f"({t})" for t in terms) + ") % 10 = 0)"


def _provinces_sql(expr: str) -> str:
    return f"{expr} IN ({', '.join(sql_str(p) for p in PROVINCE_CODES)})"


def _pattern_sql(cells: str) -> str:
    """Hits ``(_row, _col, kind, value, source)`` of the pattern detectors over ``cells``.

    ``cells`` is a relation ``(_row, _col, v)``. Parameters: ``$today`` (DATE), ``$limit``.
    """
    num_text = (
        f"regexp_replace(regexp_replace(n, {sql_str(_RE_HASH)}, ' ', 'g'), "
        f"{sql_str(_RE_FRACTION)}, '\\1 ', 'g')"
    )
    id17 = "left(id18, 17)"
    id_ok = (
        f"(id18 IS NOT NULL AND {resident_id_check_sql(id17)} = right(id18, 1) "
        f"AND {_provinces_sql('left(id18, 2)')} "
        "AND try_strptime(substr(id18, 7, 8), '%Y%m%d') BETWEEN DATE '1900-01-01' AND $today)"
    )
    id15_ok = (
        f"(regexp_full_match(dg, '[0-9]{{15}}') AND {_provinces_sql('left(dg, 2)')} "
        "AND try_strptime('19' || substr(dg, 7, 6), '%Y%m%d') IS NOT NULL)"
    )
    uscc_ok = (
        f"(us IS NOT NULL AND {uscc_check_sql('left(us, 17)')} = right(us, 1) "
        f"AND {org_code_check_sql('substr(us, 9, 8)')} = substr(us, 17, 1))"
    )
    card_ok = f"(card IS NOT NULL AND {_luhn_sql('card')})"
    plate_tail = "regexp_replace(m, '^.[A-Z][·•・ ]?', '')"
    plate_ok = (
        f"(regexp_full_match(m, '[{PLATE_PROVINCES}][A-HJ-NP-Z].*') "
        f"AND regexp_full_match({plate_tail}, {sql_str(_RE_PLATE_TAIL)}) "
        f"AND (length({plate_tail}) <> 5 OR NOT regexp_full_match({plate_tail}, '[A-Z0-9]{{5}}') "
        f"OR length(regexp_replace({plate_tail}, '[^0-9]', '', 'g')) >= 3))"
    )
    # Upper-case runs add what digit runs miss: codes holding letters (credit codes, passports);
    # a run longer than 18 (``USCC91150...``) also offers its last 18 chars as a credit code.
    upper = (
        f"list_filter(regexp_extract_all(nt, {sql_str(_RE_UPPER)}), "
        "lambda t: regexp_matches(t, '[A-Z]'))"
    )
    upper_tails = (
        f"list_transform(list_filter({upper}, lambda t: length(t) > 18), lambda t: right(t, 18))"
    )
    candidates = (
        f"list_distinct(list_concat(regexp_extract_all(nt, {sql_str(_RE_NUM)}), {upper}, "
        f"{upper_tails}, regexp_extract_all(n, {sql_str(_RE_EMAIL)}), "
        f"regexp_extract_all(n, {sql_str(_RE_PLATE)})))"
    )
    return f"""
WITH norm AS (
    SELECT _row, _col, n, {num_text} AS nt
    FROM (SELECT _row, _col, {fold_sql("v")} AS n FROM ({cells})
          WHERE v IS NOT NULL AND length(v) >= 6 AND regexp_matches(v, {sql_str(_RE_PREFILTER)}))
),
cand AS (
    SELECT DISTINCT _row, _col, unnest({candidates}) AS m FROM norm
),
feat AS (
    SELECT _row, _col, m,
        CASE WHEN regexp_full_match(m, '[0-9]{{17}}[0-9Xx]') THEN upper(m) END AS id18,
        CASE WHEN NOT regexp_full_match(m, '[0-9]{{17}}[Xx]') AND regexp_full_match(m, '[0-9]+[Xx]?')
             THEN rtrim(m, 'Xx') END AS dg,
        CASE WHEN regexp_full_match(m, {sql_str(_RE_USCC)}) THEN m END AS us,
        CASE WHEN regexp_full_match(rtrim(m, 'Xx'), {sql_str(_RE_CARD)})
             AND NOT regexp_full_match(m, '[0-9]{{17}}[Xx]') THEN rtrim(m, 'Xx') END AS card
    FROM cand
),
classified AS (
    SELECT _row, _col,
        CASE
            WHEN {id_ok} THEN 'cn_resident_id'
            WHEN {id15_ok} THEN 'cn_resident_id_15'
            WHEN {uscc_ok} THEN 'cn_uscc'
            WHEN regexp_full_match(dg, {sql_str(_RE_MOBILE)}) THEN 'cn_mobile'
            WHEN {card_ok} THEN 'bank_card'
            WHEN regexp_full_match(m, {sql_str(_RE_PASSPORT)}) THEN 'passport'
            WHEN regexp_full_match(m, {sql_str(_RE_EMAIL)}) THEN 'email'
            WHEN {plate_ok} THEN 'licence_plate'
        END AS kind,
        m, dg
    FROM feat
)
SELECT DISTINCT _row, _col, kind,
    CASE kind
        WHEN 'cn_resident_id' THEN upper(m)
        WHEN 'cn_mobile' THEN right(dg, 11)
        WHEN 'bank_card' THEN dg
        WHEN 'licence_plate' THEN regexp_replace(m, '^(.[A-Z])[·•・ ]', '\\1')
        ELSE m
    END AS value,
    NULL::VARCHAR AS source
FROM classified WHERE kind IS NOT NULL
ORDER BY _row, _col NULLS FIRST, kind, value
LIMIT $limit
"""


def _pseudonym_sql(cells: str, table: str) -> str:
    """Hits of hex runs in ``cells`` that are a pseudonym, or its first 16+ chars.

    A run longer than 32 chars (``id`` + key, or key + text) offers its first and last 32.
    """
    runs = f"regexp_extract_all(lower(v), {sql_str(_RE_HEX)})"
    tokens = (
        "list_distinct(list_concat(list_filter(r, lambda t: length(t) <= 32), "
        "list_transform(list_filter(r, lambda t: length(t) > 32), lambda t: left(t, 32)), "
        "list_transform(list_filter(r, lambda t: length(t) > 32), lambda t: right(t, 32))))"
    )
    return f"""
WITH runs AS (
    SELECT _row, _col, {runs} AS r FROM ({cells}) WHERE v IS NOT NULL AND length(v) >= {MIN_PSEUDONYM_PREFIX}
),
tok AS (SELECT _row, _col, unnest({tokens}) AS t FROM runs WHERE len(r) > 0)
SELECT DISTINCT tok._row, tok._col, 'pseudonym_key' AS kind, tok.t AS value, NULL::VARCHAR AS source
FROM tok JOIN {table} p ON left(tok.t, {MIN_PSEUDONYM_PREFIX}) = p.p16 AND starts_with(p.p, tok.t)
ORDER BY 1, 2 NULLS FIRST, 4
LIMIT $limit
"""


def _fingerprint_sql(cells: str, fingerprints: str) -> str:
    """Hits of cells, tokens and delimited fields whose keyed hash is a fingerprint.

    Every non-empty cell (or line) is hashed whole; one holding anything besides token
    characters is also split into tokens (runs of ``[0-9A-Za-z@._-]``, 6+ chars) and fields
    (split at whitespace and punctuation, e.g. ``name=张三;``), each hashed too. Each distinct
    value is hashed once (outputs repeat values: categories, counts, log phrases), and only
    the few matching values are joined back to their cells.
    """
    pieces = (
        f"list_distinct(list_concat([{key_sql('n')}], "
        "CASE WHEN regexp_matches(n, '[^0-9A-Za-z@._-]') THEN list_concat("
        f"regexp_extract_all(n, {sql_str(_RE_TOKEN)}), string_split_regex(n, {sql_str(_RE_FIELD_SPLIT)})"
        ") ELSE [] END))"
    )
    return f"""
WITH norm AS (
    SELECT _row, _col, {fold_sql("v")} AS n FROM ({cells}) WHERE v IS NOT NULL AND length(v) >= 2
),
piece AS (SELECT _row, _col, upper(unnest({pieces})) AS val FROM norm),
cell_value AS (SELECT _row, _col, val FROM piece WHERE {fingerprintable_sql("val")}),
hit AS (
    SELECT u.val, string_agg(DISTINCT fp.source, ',' ORDER BY fp.source) AS source
    FROM (SELECT DISTINCT val FROM cell_value) u JOIN {fingerprints} fp ON {hash_sql("u.val")} = fp.h
    GROUP BY u.val
)
SELECT DISTINCT c._row, c._col, 'raw_identifier' AS kind, c.val AS value, hit.source
FROM cell_value c JOIN hit ON c.val = hit.val
ORDER BY 1, 2 NULLS FIRST, 4
LIMIT $limit
"""


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


def _confirm(kind: str, value: str) -> bool:
    """Re-check with python-stdnum what SQL found: a failing check char is never reported."""
    if kind == "cn_resident_id":
        return (
            value[17] == ric.calc_check_digit(value) == resident_id_check_char(value[:17])
            and value[:2] in PROVINCE_CODES
            and _valid_date(value[6:14], _dt.date(1900, 1, 1), _dt.date.today())
        )
    if kind == "cn_resident_id_15":
        return value[:2] in PROVINCE_CODES and _valid_date("19" + value[6:12], None, None)
    if kind == "cn_uscc":
        return (
            bool(re.fullmatch(_RE_USCC, value))
            and uscc.calc_check_digit(value[:17]) == value[17]
            and org_code_check_char(value[8:16]) == value[16]
        )
    if kind == "bank_card":
        return bool(re.fullmatch(_RE_CARD, value)) and luhn.is_valid(value)
    return True


def _valid_date(text: str, low: _dt.date | None, high: _dt.date | None) -> bool:
    try:
        day = _dt.date(int(text[:4]), int(text[4:6]), int(text[6:8]))
    except ValueError:
        return False
    return (low is None or day >= low) and (high is None or day <= high)


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


# --------------------------------------------------------------------------- tables


def scan_table(
    path: Path,
    output_name: str,
    *,
    fingerprints: FingerprintSet | None = None,
    pseudonyms: Path | None = None,
    limit: int = 1000,
) -> list[Finding]:
    """Findings in a CSV/TSV or Parquet table, ordered by row then column; at most ``limit``.

    ``row`` is the 1-based data row (the header is row 0, ``column`` None). A CSV that DuckDB
    cannot parse is scanned as text lines instead (``row`` then is the line number and
    ``column`` None), so a malformed file never means "nothing found".
    """
    path = Path(path)
    fmt = _table_format(path)
    if fmt is None:
        raise ValidationError(
            f"{path.name} is not a table (.csv, .tsv or .parquet)",
            file=str(path),
            fix="scan it with scan_text",
        )
    if not path.is_file():
        raise ValidationError("output file not found", file=str(path))
    if path.stat().st_size == 0:
        return []
    with _Scanner(fingerprints, pseudonyms, limit) as scanner:
        if fmt == "parquet":
            try:
                columns = _load_parquet(scanner.con, path)
            except duckdb.Error:
                raise ValidationError(
                    "not a readable Parquet file", file=str(path), fix="write valid Parquet"
                ) from None
        else:
            parsed = _load_csv(scanner, path)
            if parsed is None:
                log.warning("%s could not be parsed as CSV: scanned as text lines", output_name)
                hits = _scan_text_chunks(scanner, _chunks_of_file(path))
                return _findings(output_name, hits, None)
            columns = parsed
        hits = scanner.run(_cells_sql(len(columns)))
        return _findings(output_name, hits, columns)


def _table_format(path: Path) -> str | None:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes[-1:] == [".gz"] and len(suffixes) >= 2 and suffixes[-2] in (".csv", ".tsv"):
        return "csv"
    return TABLE_SUFFIXES.get(suffixes[-1]) if suffixes else None


def _aliases(n: int) -> str:
    return ", ".join([f"c{i}" for i in range(n)] + ["_shuyu_row"])


def _load_parquet(con: duckdb.DuckDBPyConnection, path: Path) -> list[str]:
    source = f"read_parquet({sql_str(str(path))})"
    columns = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()]
    con.execute(
        f"CREATE TEMP VIEW _src AS SELECT * FROM {source} WITH ORDINALITY AS _t({_aliases(len(columns))})"
    )
    _register_header(con, columns)
    return columns


_CSV_OPTIONS = (
    # Parallel and strict about nothing but the shape; handles quoted newlines.
    "all_varchar = true, header = true, strict_mode = false, max_line_size = 67108864",
    # Ragged rows need null_padding, which DuckDB only combines with quoted newlines serially.
    "all_varchar = true, header = true, strict_mode = false, max_line_size = 67108864, "
    "null_padding = true, parallel = false",
)


def _load_csv(scanner: _Scanner, path: Path) -> list[str] | None:
    """Materialise the CSV (all VARCHAR, rows numbered in file order); None if unparseable.

    A file that is not UTF-8 is read again as GB 18030 (GBK), transcoded to UTF-8.
    """
    con = scanner.con
    source = path
    for encoding in ("utf-8", "gb18030"):
        not_unicode = False
        for options in _CSV_OPTIONS:
            reader = f"read_csv({sql_str(str(source))}, {options})"
            try:
                columns = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {reader}").fetchall()]
                con.execute(
                    f"CREATE OR REPLACE TEMP TABLE _src AS SELECT * FROM {reader} "
                    f"WITH ORDINALITY AS _t({_aliases(len(columns))})"
                )
            except duckdb.Error as exc:
                not_unicode = not_unicode or "unicode" in str(exc).lower()
                continue
            _register_header(con, columns)
            return columns
        if encoding == "gb18030" or not not_unicode:
            break
        source = _transcode(path, scanner.tmp)
    return None


def _transcode(path: Path, tmp: str) -> Path:
    """A UTF-8 copy of a GB 18030 (GBK) file, written in blocks into the private temp folder."""
    target = Path(tmp) / "transcoded.csv"
    decoder = codecs.getincrementaldecoder("gb18030")(errors="replace")
    with path.open("rb") as src, target.open("w", encoding="utf-8") as dst:
        while block := src.read(TEXT_CHUNK_BYTES):
            dst.write(decoder.decode(block))
        dst.write(decoder.decode(b"", final=True))
    return target


def _register_header(con: duckdb.DuckDBPyConnection, columns: list[str]) -> None:
    header = pa.table({"v": pa.array(columns, pa.string())})
    con.register("_hdr_arrow", header)
    con.execute("CREATE TEMP TABLE _hdr AS SELECT v FROM _hdr_arrow")
    con.unregister("_hdr_arrow")


def _cells_sql(n_columns: int) -> str:
    """Every cell as ``(_row, _col, v)``: one scan of ``_src``, unpivoted by a zipped unnest."""
    header = "SELECT 0::BIGINT AS _row, NULL::INTEGER AS _col, v FROM _hdr"
    if n_columns == 0:
        return header
    values = ", ".join(f"CAST(c{i} AS VARCHAR)" for i in range(n_columns))
    return (
        f"SELECT _row, _col, v FROM (SELECT _shuyu_row AS _row, "
        f"unnest(range({n_columns}))::INTEGER AS _col, unnest([{values}]) AS v FROM _src) "
        f"UNION ALL {header}"
    )


# --------------------------------------------------------------------------- text


def scan_text(
    path_or_bytes: Path | str | bytes | bytearray,
    output_name: str,
    *,
    fingerprints: FingerprintSet | None = None,
    pseudonyms: Path | None = None,
    limit: int = 1000,
) -> list[Finding]:
    """Findings in a text output or log, line by line (``row`` = 1-based line number).

    ``path_or_bytes`` is a file path (``Path`` or ``str``) or the content itself (``bytes``).
    Text is decoded as UTF-8, else GB 18030, else UTF-8 with replacement characters; a UTF-16
    byte-order mark is honoured. Large files are read in blocks of whole lines.
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


def scan_output(
    path: Path,
    output_name: str,
    *,
    fingerprints: FingerprintSet | None = None,
    pseudonyms: Path | None = None,
    limit: int = 1000,
) -> list[Finding]:
    """:func:`scan_table` for CSV/TSV/Parquet, :func:`scan_text` for anything else."""
    scan = scan_table if _table_format(Path(path)) else scan_text
    return scan(path, output_name, fingerprints=fingerprints, pseudonyms=pseudonyms, limit=limit)


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
    opener = gzip.open if path.suffix.lower() == ".gz" else open
    with opener(path, "rb") as fh:
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
