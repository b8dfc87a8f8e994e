"""The extra forms of a raw identifier fingerprinted at registration, and the shapes they take.

An output can carry a person's name as pinyin (``Liao Sihui``, ``liaosihui``, ``Sihui Liao``)
or any identifier reversed. Rather than transliterating and reversing every output cell at
scan time, the platform fingerprints these forms once, at registration: the scan then finds
them with the same hash join as the plain values, at no extra cost.

Pinyin comes from ``pypinyin``'s per-character readings, looked up in DuckDB (the distinct
characters of the name columns, a few thousand at most, are the only values that reach Python):
the surname in each of its readings (曾 céng/zēng, 单 shàn/dān), the given name in its default
reading, in both orders, tone marks dropped, without spaces (the scan joins adjacent words).

**Shapes.** Hashing is the costly step of the scan (two SHA-256 per distinct value), and most
output values cannot be an identifier: a 7-digit count is no 18-digit ID. Each fingerprint file
records, per character class, the shortest and longest value fingerprinted; the scan hashes only
values of a recorded class and length. The summary says no more about the raw values than
"names have 2 to 4 Han characters".
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from enum import StrEnum

import duckdb
import pyarrow as pa  # type: ignore[import-untyped]

from egress_review.normalise import sql_str

SHAPES_FIELD = "shuyu_fingerprint_shapes"
PINYIN_SUFFIX = " (pinyin)"
REVERSED_SUFFIX = " (reversed)"
RE_HAN_NAME = "[\\p{Han}]{2,6}"
MIN_PINYIN_CHARS = 5  # shorter pinyin (``LIAN``) is too often an English word


class Shape(StrEnum):
    """Character class of a normalised (upper-cased) value."""

    DIGITS = "digits"  # IDs, mobiles, cards
    HAN = "han"  # names
    LATIN = "latin"  # pinyin
    CODE = "code"  # letters and digits: credit codes, passports
    OTHER = "other"  # addresses, e-mail


# A value's class: the first class whose pattern it fully matches.
SHAPE_PATTERNS = (
    (Shape.DIGITS, "[0-9]+X?"),
    (Shape.HAN, "[\\p{Han}·]+"),
    (Shape.LATIN, "[A-Z]+"),
    (Shape.CODE, "[0-9A-Z]+"),
)


def shape_of_sql(expr: str) -> str:
    whens = " ".join(
        f"WHEN regexp_full_match({expr}, {sql_str(p)}) THEN '{s}'" for s, p in SHAPE_PATTERNS
    )
    return f"(CASE {whens} ELSE '{Shape.OTHER}' END)"


def shapes_of(con: duckdb.DuckDBPyConnection, table: str) -> list[tuple[str, int, int]]:
    """``(shape, shortest, longest)`` over the ``v`` column of ``table``."""
    rows = con.execute(
        f"SELECT s, min(length(v)), max(length(v)) FROM "
        f"(SELECT v, {shape_of_sql('v')} AS s FROM {table}) GROUP BY s ORDER BY s"
    ).fetchall()
    return [(str(s), int(lo), int(hi)) for s, lo, hi in rows]


def shapes_json(shapes: list[tuple[str, int, int]]) -> str:
    return json.dumps(shapes, separators=(",", ":"))


def parse_shapes(text: str) -> list[tuple[Shape, int, int]]:
    return [(Shape(s), int(lo), int(hi)) for s, lo, hi in json.loads(text)]


def shape_gate_sql(expr: str, shapes: Iterable[tuple[Shape, int, int]] | None) -> str:
    """SQL predicate: ``expr`` has a class and length some fingerprint has (TRUE if unknown)."""
    if shapes is None:
        return "TRUE"
    merged: dict[Shape, tuple[int, int]] = {}
    for s, lo, hi in shapes:
        old = merged.get(s)
        merged[s] = (lo, hi) if old is None else (min(lo, old[0]), max(hi, old[1]))
    if not merged:
        return "FALSE"
    terms = []
    patterns = dict(SHAPE_PATTERNS)
    for s, (lo, hi) in sorted(merged.items()):
        length = f"length({expr}) BETWEEN {lo} AND {hi}"
        if s is Shape.OTHER:
            terms.append(f"({length} AND regexp_matches({expr}, '[^0-9A-Z]'))")
        else:
            terms.append(f"({length} AND regexp_full_match({expr}, {sql_str(patterns[s])}))")
    return "(" + " OR ".join(terms) + ")"


def _pinyin_table(con: duckdb.DuckDBPyConnection, names: str) -> None:
    """Temp table ``_py(ch, py, dflt)``: each Han character's readings (``dflt``: the default)."""
    from pypinyin import Style, pinyin

    chars = [
        r[0]
        for r in con.execute(f"SELECT DISTINCT unnest(string_split(v, '')) FROM {names}").fetchall()
    ]
    ch, py, dflt = [], [], []
    for c in chars:
        readings = pinyin(c, style=Style.NORMAL, heteronym=True, errors="ignore")
        options = [r for r in (readings[0] if readings else []) if r.isascii() and r.isalpha()]
        for i, reading in enumerate(dict.fromkeys(options)):
            ch.append(c)
            py.append(reading.upper())
            dflt.append(i == 0)
    table = pa.table({"ch": pa.array(ch, pa.string()), "py": py, "dflt": dflt})
    con.register("_py_arrow", table)
    con.execute("CREATE OR REPLACE TEMP TABLE _py AS SELECT * FROM _py_arrow")
    con.unregister("_py_arrow")


def add_forms(con: duckdb.DuckDBPyConnection, base: str, name_sources: list[str]) -> None:
    """Add to temp table ``base(v, src)`` the pinyin of names and every value reversed.

    ``name_sources`` are the ``src`` labels of person-name columns.
    """
    if name_sources:
        labels = ", ".join(sql_str(s) for s in name_sources)
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE _names AS SELECT DISTINCT v, src FROM {base} "
            f"WHERE src IN ({labels}) AND regexp_full_match(v, {sql_str(RE_HAN_NAME)})"
        )
        _pinyin_table(con, "_names")
        con.execute(
            f"""INSERT INTO {base}
            WITH given AS (
                SELECT v, src, string_agg(coalesce(d.py, c.ch), '' ORDER BY c.i) AS g
                FROM (SELECT v, src, unnest(string_split(v, '')) AS ch,
                             generate_subscripts(string_split(v, ''), 1) AS i FROM _names) c
                LEFT JOIN _py d ON d.ch = c.ch AND d.dflt
                WHERE c.i > 1 GROUP BY v, src
            ),
            sur AS (
                SELECT n.v, n.src, h.py AS s FROM _names n JOIN _py h ON h.ch = left(n.v, 1)
            )
            SELECT DISTINCT * FROM (
                SELECT unnest([s || g, g || s]) AS v, sur.src || {sql_str(PINYIN_SUFFIX)} AS src
                FROM sur JOIN given USING (v, src))
            WHERE length(v) >= {MIN_PINYIN_CHARS}"""
        )
    con.execute(
        f"INSERT INTO {base} SELECT DISTINCT reverse(v), src || {sql_str(REVERSED_SUFFIX)} "
        f"FROM {base} WHERE reverse(v) <> v AND NOT ends_with(src, {sql_str(PINYIN_SUFFIX)})"
    )
