"""The linkage detectors in SQL: project pseudonyms and keyed fingerprints of raw identifiers.

Both run over the *forms* relation ``(_row, _col, f, v)`` that ``detect._Scanner.run`` builds:
every cell (``f = 'plain'``) plus the text decoded from its hex, base64 and UUID tokens
(``normalise.decoded_sql``). Each returns hits ``(_row, _col, kind, value, source, form)``.
The matching itself is described in ``fingerprints``; the forms in ``normalise``.
"""

from __future__ import annotations

from collections.abc import Iterable

from egress_review.fingerprint_forms import Shape, shape_gate_sql
from egress_review.fingerprints import fingerprintable_sql, hash_sql, key_sql
from egress_review.normalise import (
    CN_NUMERAL_CHARS,
    RE_TWO_SEPARATORS,
    Form,
    numeral_runs_sql,
    spaced_runs_sql,
    sql_str,
)

MIN_PSEUDONYM_PREFIX = 16  # hex chars of a truncated pseudonym still treated as one (64 bits)
_RE_HEX = f"[0-9a-f]{{{MIN_PSEUDONYM_PREFIX},}}"
_RE_TOKEN = r"[0-9A-Za-z@._-]{6,}"
_RE_FIELD_SPLIT = r"[\s\x{3000},;|\"'=:()\[\]{}<>，；：、。（）【】《》“”‘’]+"
_RE_WORDS = "[A-Za-z]+[^A-Za-z0-9]{1,3}[A-Za-z]+"
# Candidates carry their form as a one-letter tag in front: cheaper than a list of structs.
TAGS = {"P": Form.PLAIN, "S": Form.SPACED, "N": Form.NUMERALS, "R": Form.REVERSED}


def tag(values: str, letter: str) -> str:
    """SQL: each string of the list ``values`` with the tag ``letter`` in front."""
    return f"list_transform({values}, lambda x: '{letter}' || x)"


def form_sql(f: str, tagged: str) -> str:
    """SQL: the reported form of a hit: the decoded form of its row, else its tag's form."""
    whens = " ".join(f"WHEN '{t}' THEN '{form}'" for t, form in TAGS.items())
    return f"(CASE WHEN {f} <> '{Form.PLAIN}' THEN {f} ELSE CASE left({tagged}, 1) {whens} END END)"


def pseudonym_sql(tokens: str, forms: str, table: str) -> str:
    """Hits of hex runs (as written or reversed) that are a pseudonym, or its first 16+ chars.

    Hex runs of 16+ chars lie inside the long ``tokens`` of the cells (``normalise.tokens_sql``),
    so only those are searched, with the decoded rows of ``forms``. A run longer than 32 chars
    (``id`` + key, or key + text) offers its first and last 32. Parameter: ``$limit``.
    """
    runs = f"regexp_extract_all(lower(v), {sql_str(_RE_HEX)})"
    return f"""
WITH src AS (
    SELECT _row, _col, '{Form.PLAIN}' AS f, t AS v FROM ({tokens})
    WHERE regexp_matches(t, '[0-9a-fA-F]{{{MIN_PSEUDONYM_PREFIX}}}')
    UNION ALL
    SELECT _row, _col, f, v FROM ({forms})
    WHERE f <> '{Form.PLAIN}' AND regexp_matches(v, '[0-9a-fA-F]{{{MIN_PSEUDONYM_PREFIX}}}')
),
run AS (
    SELECT _row, _col, f, lower(v) AS r FROM src WHERE regexp_full_match(v, '[0-9a-fA-F]+')
    UNION ALL
    SELECT _row, _col, f, unnest({runs}) FROM src WHERE NOT regexp_full_match(v, '[0-9a-fA-F]+')
),
tok AS (
    SELECT _row, _col, f, left(r, 32) AS t FROM run
    UNION ALL SELECT _row, _col, f, right(r, 32) FROM run WHERE length(r) > 32
),
both_ways AS (
    SELECT _row, _col, f, 'P' AS tg, t FROM tok
    UNION ALL SELECT _row, _col, f, 'R', reverse(t) FROM tok
)
SELECT DISTINCT b._row, b._col, 'pseudonym_key' AS kind, b.t AS value,
    NULL::VARCHAR AS source, {form_sql("b.f", "b.tg")} AS form
FROM both_ways b JOIN {table} p
  ON left(b.t, {MIN_PSEUDONYM_PREFIX}) = p.p16 AND starts_with(p.p, b.t)
ORDER BY 1, 2 NULLS FIRST, 4
LIMIT $limit
"""


def _windows_sql(run: str, low: int, high: int) -> str:
    """SQL: every substring of ``run`` of ``low`` to ``high`` characters."""
    return (
        f"flatten(list_transform(range({low}, {high} + 1), lambda k: "
        f"list_transform(range(1, length({run}) - k + 2), lambda i: substr({run}, i, k))))"
    )


def _range_of(
    shapes: Iterable[tuple[Shape, int, int]] | None, shape: Shape
) -> tuple[int, int] | None:
    if shapes is None:
        return (2, 4) if shape is Shape.HAN else (5, 20)
    found = [(lo, hi) for s, lo, hi in shapes if s is shape]
    if not found:
        return None
    return min(lo for lo, _ in found), max(hi for _, hi in found)


def _could_hold_sql(
    expr: str, shapes: list[tuple[Shape, int, int]] | None, *, split: bool = False
) -> str:
    """SQL predicate: a cell could hold a piece of a fingerprinted shape (TRUE if unknown),
    as written, spaced or in Chinese numerals: one regular-expression pass per cell.

    ``split``: whether it is worth splitting into tokens and fields; Han names are found by the
    windows instead, except names with a middle dot (阿卜杜·热合曼)."""
    if shapes is None:
        return "TRUE"
    parts = ["\\p{Han}·\\p{Han}"] if split else [RE_TWO_SEPARATORS, f"[{CN_NUMERAL_CHARS}]{{2}}"]
    for shape in Shape:
        if split and shape is Shape.HAN:
            continue
        found = _range_of(shapes, shape)
        if found is None:
            continue
        low = found[0]
        parts.append(
            {
                Shape.DIGITS: f"[0-9]{{{low}}}",
                Shape.HAN: f"\\p{{Han}}{{{low}}}",
                # a word (not letters inside a hash), or words to join
                Shape.LATIN: f"(?:^|[^0-9A-Za-z])[A-Za-z]{{{low},}}(?:$|[^0-9A-Za-z])|{_RE_WORDS}",
                Shape.CODE: f"[0-9A-Za-z]{{{low}}}",
                Shape.OTHER: f".{{{low}}}",
            }[shape]
        )
    return f"regexp_matches({expr}, {sql_str('|'.join(parts))})"


def fingerprint_sql(
    forms: str, fingerprints: str, shapes: Iterable[tuple[Shape, int, int]] | None
) -> str:
    """Hits of cells, tokens, fields and name windows whose keyed hash is a fingerprint.

    ``forms`` is ``(_row, _col, f, v, n)`` (``n`` folded). Every non-empty cell (or line) is
    hashed whole; one holding anything besides token characters is also split into tokens
    (runs of ``[0-9A-Za-z@._-]``, 6+ chars) and fields (split at whitespace and punctuation,
    e.g. ``name=张三;``); digits written spaced or in Chinese numerals are compacted; adjacent
    Latin words are joined (pinyin ``Liao Sihui``); and every run of Han characters offers its
    windows of 2-4 characters (a name inside an unsegmented sentence: ``请廖思辉于周一到岗``).
    Each of these is a branch gated by a regular expression on the cell, so cells that cannot
    hold a piece cost one test. Only values of a shape some fingerprint has are hashed
    (``fingerprint_forms``), each distinct value once (outputs repeat values: categories,
    counts, log phrases; sentences repeat their words), and only the few matching values are
    joined back to their cells. Parameters: ``$fpkey``, ``$limit``.
    """
    shapes = None if shapes is None else list(shapes)
    branches = [
        f"SELECT _row, _col, f, 'P' AS t, {key_sql('n')} AS val FROM src",
        f"SELECT _row, _col, f, 'P', upper(unnest(list_concat("
        f"regexp_extract_all(n, {sql_str(_RE_TOKEN)}), string_split_regex(n, {sql_str(_RE_FIELD_SPLIT)})"
        f"))) FROM src WHERE regexp_matches(n, '[^0-9A-Za-z@._-]') "
        f"AND {_could_hold_sql('n', shapes, split=True)}",
        f"SELECT _row, _col, f, 'S', unnest({spaced_runs_sql('n')}) FROM src "
        f"WHERE regexp_matches(n, {sql_str(RE_TWO_SEPARATORS)})",
        f"SELECT _row, _col, f, 'N', unnest({numeral_runs_sql('n')}) FROM src",
    ]
    if _range_of(shapes, Shape.LATIN) is not None:
        joined = (
            "list_concat(list_transform(range(1, len(w)), lambda i: w[i] || w[i + 1]), "
            "list_transform(range(1, len(w) - 1), lambda i: w[i] || w[i + 1] || w[i + 2]))"
        )
        branches.append(
            f"SELECT _row, _col, f, 'P', upper(unnest({joined})) FROM "
            f"(SELECT _row, _col, f, regexp_extract_all(n, '[A-Za-z]+') AS w FROM src "
            f"WHERE regexp_matches(n, {sql_str(_RE_WORDS)}))"
        )
    gate = shape_gate_sql("val", shapes)
    han = _range_of(shapes, Shape.HAN)
    windows = ""
    window_hits = ""
    if han is not None:
        windows = f""",
run AS (
    SELECT _row, _col, f, unnest(regexp_extract_all(n, '\\p{{Han}}{{{han[0]},}}')) AS r
    FROM src WHERE regexp_matches(n, '\\p{{Han}}{{{han[0]}}}')
),
win AS (
    SELECT r, unnest({_windows_sql("r", han[0], han[1])}) AS val FROM (SELECT DISTINCT r FROM run)
)"""
        window_hits = """
UNION
SELECT run._row, run._col, 'raw_identifier', w.val, w.source, run.f
FROM run JOIN (SELECT DISTINCT win.r, win.val, hit.source FROM win JOIN hit USING (val)) w
  USING (r)"""
    candidates = "SELECT DISTINCT val FROM cell_value" + (
        " UNION SELECT DISTINCT val FROM win" if han is not None else ""
    )
    union = "\n    UNION ALL ".join(branches)
    return f"""
WITH src AS MATERIALIZED (
    SELECT _row, _col, f, n FROM ({forms}) WHERE length(n) >= 2 AND {_could_hold_sql("n", shapes)}
),
cell_value AS (
    SELECT * FROM (
    {union})
    WHERE {gate} AND {fingerprintable_sql("val")}
){windows},
hit AS (
    SELECT u.val, string_agg(DISTINCT fp.source, ',' ORDER BY fp.source) AS source
    FROM ({candidates}) u JOIN {fingerprints} fp ON {hash_sql("u.val")} = fp.h
    GROUP BY u.val
)
SELECT * FROM (
SELECT DISTINCT c._row, c._col, 'raw_identifier' AS kind, c.val AS value, hit.source,
    {form_sql("c.f", "c.t")} AS form
FROM cell_value c JOIN hit ON c.val = hit.val{window_hits}
)
ORDER BY 1, 2 NULLS FIRST, 4
LIMIT $limit
"""
