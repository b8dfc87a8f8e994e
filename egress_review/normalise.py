"""The disguises an output can put on an identifier, and the SQL that takes them off.

A hostile job does not write ``150302196906212253``; it writes it in full-width or circled
digits, in Chinese numerals (一五〇三…, 壹伍零叁…), spaced out (``1 5 0 3 …``, ``150.302.…``),
reversed, hex- or base64-encoded. Every form here is produced in DuckDB over the whole cells
relation, then goes through the same pattern detectors, fingerprint linkage and pseudonym
linkage as the cell itself (see ``detect._Scanner.run``). Each step is gated by a cheap
regular expression, so cells that hold no such form cost one or two regex passes.

Two kinds of form:

* **Candidate forms** (:data:`Form.SPACED`, :data:`Form.NUMERALS`, :data:`Form.REVERSED`) are
  made from the candidate runs the detectors extract (digit runs, code runs, e-mail and plate
  shapes), not from whole cells: reversing or translating a 20-character run is cheap,
  reversing every cell is not.
* **Decoded forms** (:data:`Form.HEX`, :data:`Form.BASE64`, :data:`Form.UUID`) are new rows of
  the cells relation: the text a hex or base64 token decodes to (when it is UTF-8), the hex
  of what a base64 token decodes to (a pseudonym written as base64 bytes), a UUID-shaped token
  without its dashes. They are scanned like any cell.

Long opaque tokens (hex or base64 of 16+ characters, UUID shapes) are also reported for
review on their own (:func:`opaque_sql`): re-encoded pseudonyms (halved, shifted, XORed)
cannot all be enumerated, so a reviewer must see every token that could be one.

Full-width and other compatibility characters (circled, mathematical, superscript digits;
pinyin tone marks) are folded to ASCII by ``fingerprints.fold_sql`` with the map built here
from ``unicodedata`` (NFKC, then accents stripped), so the fingerprints built at registration
and the scan fold alike.
"""

from __future__ import annotations

import unicodedata
from enum import StrEnum


class Form(StrEnum):
    """How a finding's value was written in the output (``Finding.form``)."""

    PLAIN = "plain"  # as written, after NFKC / full-width folding
    SPACED = "spaced"  # digits separated by spaces, dots, dashes
    NUMERALS = "numerals"  # Chinese numerals 〇一二…, 零壹贰…
    REVERSED = "reversed"
    HEX = "hex"  # a hex token's UTF-8 text
    BASE64 = "base64"  # a base64 token's UTF-8 text, or its bytes as hex
    UUID = "uuid"  # a UUID-shaped token without its dashes


# Rank when one value is found in several forms: the plainest is reported.
FORM_RANK = {form: i for i, form in enumerate(Form)}
DECODED_FORMS = (Form.HEX, Form.BASE64, Form.UUID)


# --------------------------------------------------------------------------- folding


def _compat_map() -> tuple[str, str]:
    """Characters whose NFKC form (accents stripped) is one ASCII letter, digit or ``@.-_+``.

    Covers full-width forms, circled and parenthesised digits, mathematical alphanumerics,
    superscripts and subscripts, and accented Latin letters (pinyin tone marks: ``zhāng``).
    """
    blocks = (
        (0x00A0, 0x024F),  # Latin-1, Latin Extended-A/B (tone-marked pinyin vowels)
        (0x01CD, 0x01DC),  # ǎ ǐ ǒ ǔ ǖ ǘ ǚ ǜ
        (0x2070, 0x209F),  # superscripts, subscripts
        (0x2150, 0x218F),  # number forms (Roman numerals map to letters: left out below)
        (0x2460, 0x24FF),  # enclosed alphanumerics ①
        (0x2776, 0x2793),  # dingbat circled digits ❶ ➀
        (0x3000, 0x3000),  # ideographic space
        (0xFF01, 0xFF5E),  # full-width ASCII
        (0x1D400, 0x1D7FF),  # mathematical alphanumerics 𝟏
        (0x1F100, 0x1F1FF),  # enclosed alphanumeric supplement
    )
    wanted = set("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz@.-_+ ")
    src, dst = [], []
    seen: set[int] = set()
    for low, high in blocks:
        for cp in range(low, high + 1):
            if cp in seen or 0x2160 <= cp <= 0x2188:  # Roman numerals are not digits
                continue
            seen.add(cp)
            char = chr(cp)
            nfkc = unicodedata.normalize("NFKC", char)
            base = "".join(
                c for c in unicodedata.normalize("NFKD", nfkc) if not unicodedata.combining(c)
            )
            if base in wanted and base != char:
                src.append(char)
                dst.append(base)
    return "".join(src), "".join(dst)


COMPAT_CHARS, COMPAT_ASCII = _compat_map()


def _char_class(chars: str) -> str:
    """An RE2 character class of ``chars`` as ``\\x{..}`` ranges."""
    points = sorted({ord(c) for c in chars})
    ranges: list[tuple[int, int]] = []
    for p in points:
        if ranges and p == ranges[-1][1] + 1:
            ranges[-1] = (ranges[-1][0], p)
        else:
            ranges.append((p, p))
    parts = [f"\\x{{{a:X}}}" if a == b else f"\\x{{{a:X}}}-\\x{{{b:X}}}" for a, b in ranges]
    return "[" + "".join(parts) + "]"


# Values worth folding: a compatibility letter or digit (not the full-width punctuation that
# Chinese text is full of, nor the ideographic space alone).
COMPAT_RE = _char_class(
    "".join(c for c, a in zip(COMPAT_CHARS, COMPAT_ASCII, strict=True) if a.isalnum() or a == "@")
)

# --------------------------------------------------------------------------- numerals

CN_NUMERALS = {
    "0": "〇零洞",
    "1": "一壹幺",
    "2": "二贰貳两兩",
    "3": "三叁參",
    "4": "四肆",
    "5": "五伍",
    "6": "六陆陸",
    "7": "七柒",
    "8": "八捌",
    "9": "九玖",
}
CN_NUMERAL_CHARS = "".join(CN_NUMERALS.values())
CN_NUMERAL_DIGITS = "".join(d * len(chars) for d, chars in CN_NUMERALS.items())
_RE_CN = f"[{CN_NUMERAL_CHARS}]"
# A run of 11+ digits or numerals (an ID may mix them, end in X, or be spaced).
RE_NUMERAL_RUN = f"[{CN_NUMERAL_CHARS}0-9](?:[ .\\-]?[{CN_NUMERAL_CHARS}0-9Xx]){{10,}}"

# --------------------------------------------------------------------------- separators

# Digits written with separators between them: 11+ digits, any single separator between two
# digits. Only runs with at least two separators are new (one dot is a decimal fraction).
SEPARATORS = " .\\-_/·"
RE_SPACED_RUN = f"[0-9](?:[{SEPARATORS}]?[0-9Xx]){{10,}}"
RE_TWO_SEPARATORS = f"[0-9][{SEPARATORS}][0-9].*[{SEPARATORS}][0-9]"

# --------------------------------------------------------------------------- tokens

MIN_OPAQUE_CHARS = 16
MAX_OPAQUE_CHARS = 128  # a SHA-512 in hex; a pseudonym re-encoded is far shorter
RE_TOKEN = f"[A-Za-z0-9+/_\\-]{{{MIN_OPAQUE_CHARS},}}={{0,2}}"
RE_UUID = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
RE_HEX_TOKEN = f"[0-9a-fA-F]{{{MIN_OPAQUE_CHARS},}}"
RE_B64_TOKEN = (
    f"[A-Za-z0-9+/]{{{MIN_OPAQUE_CHARS},}}={{0,2}}|[A-Za-z0-9_\\-]{{{MIN_OPAQUE_CHARS},}}"
)
# Hex of UTF-8 text: printable ASCII bytes, or 2- and 3-byte sequences (CJK). Gating on this
# keeps decode() (which raises on invalid UTF-8, and raising is slow) off random hex; the gate
# is repeated inside a CASE because the optimiser may evaluate a projection before a filter.
RE_UTF8_HEX = (
    "(?:[2-7][0-9a-fA-F]|[cC][2-9a-fA-F][89abAB][0-9a-fA-F]|[dD][0-9a-fA-F][89abAB][0-9a-fA-F]"
    "|[eE][1-9a-cA-CefEF](?:[89abAB][0-9a-fA-F]){2})+"
)


def sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def numerals_sql(expr: str) -> str:
    """Chinese numerals of ``expr`` as ASCII digits, separators removed."""
    return (
        f"regexp_replace(translate({expr}, {sql_str(CN_NUMERAL_CHARS)}, "
        f"{sql_str(CN_NUMERAL_DIGITS)}), '[ .\\-]', '', 'g')"
    )


def numeral_runs_sql(expr: str) -> str:
    """Runs of 11+ Chinese numerals or digits, holding at least one numeral, as digits."""
    runs = (
        f"list_filter(regexp_extract_all({expr}, {sql_str(RE_NUMERAL_RUN)}), "
        f"lambda t: regexp_matches(t, {sql_str(_RE_CN)}))"
    )
    return (
        f"(CASE WHEN regexp_matches({expr}, {sql_str(_RE_CN + '{2}')}) "
        f"THEN list_transform({runs}, lambda t: {numerals_sql('t')}) ELSE [] END)"
    )


def spaced_runs_sql(expr: str) -> str:
    """Digit runs written with 2+ separators (``138.1234.5678``), compacted."""
    runs = (
        f"list_filter(regexp_extract_all({expr}, {sql_str(RE_SPACED_RUN)}), "
        f"lambda t: regexp_matches(t, {sql_str(RE_TWO_SEPARATORS)}))"
    )
    return f"list_transform({runs}, lambda t: regexp_replace(t, '[^0-9Xx]', '', 'g'))"


def tokens_sql(cells: str) -> str:
    """Long tokens ``(_row, _col, t)`` of ``cells``: what may be hex, base64 or a UUID.

    Extracted once per scan; :func:`decoded_sql` and :func:`opaque_sql` both read them. A cell
    that is one token (an ID, a hash) is taken whole, without building a list.
    """
    long = f"length(v) >= {MIN_OPAQUE_CHARS}"
    whole = f"regexp_full_match(v, {sql_str(RE_TOKEN)})"
    return f"""
SELECT _row, _col, v AS t FROM ({cells}) WHERE {long} AND {whole}
UNION ALL
SELECT _row, _col, unnest(regexp_extract_all(v, {sql_str(RE_TOKEN)})) FROM ({cells})
WHERE {long} AND NOT {whole} AND regexp_matches(v, {sql_str(RE_TOKEN)})
"""


def decoded_sql(tokens: str) -> str:
    """Decoded forms ``(_row, _col, f, v)`` of the hex, base64 and UUID ``tokens``.

    Hex and base64 tokens yield their text when it is UTF-8; a base64 token also yields its
    bytes as lower-case hex (a pseudonym's 16 bytes written as base64 is 22 characters).
    """
    b64 = (
        "rpad(translate(t, '-_', '+/'), CAST(ceil(length(rtrim(t, '=')) / 4) * 4 AS INTEGER), '=')"
    )
    return f"""
WITH typed AS MATERIALIZED (
    SELECT _row, _col, t,
        regexp_full_match(t, {sql_str(RE_UUID)}) AS is_uuid,
        regexp_full_match(t, {sql_str(RE_HEX_TOKEN)}) AS is_hex
    FROM ({tokens})
),
b64 AS MATERIALIZED (
    SELECT _row, _col, lower(hex(try(from_base64({b64})))) AS hx FROM typed
    WHERE NOT is_hex AND NOT is_uuid AND length(rtrim(t, '=')) % 4 <> 1
      AND regexp_full_match(t, {sql_str(RE_B64_TOKEN)})
)
SELECT _row, _col, '{Form.UUID}' AS f, replace(t, '-', '') AS v FROM typed WHERE is_uuid
UNION ALL
SELECT _row, _col, '{Form.HEX}', CASE WHEN regexp_full_match(t, {sql_str(RE_UTF8_HEX)})
    THEN try(decode(unhex(t))) END FROM typed
WHERE is_hex AND length(t) % 2 = 0 AND regexp_full_match(t, {sql_str(RE_UTF8_HEX)})
UNION ALL
SELECT _row, _col, '{Form.BASE64}', hx FROM b64 WHERE length(hx) >= {MIN_OPAQUE_CHARS}
UNION ALL
SELECT _row, _col, '{Form.BASE64}', CASE WHEN regexp_full_match(hx, {sql_str(RE_UTF8_HEX)})
    THEN try(decode(unhex(hx))) END FROM b64
WHERE regexp_full_match(hx, {sql_str(RE_UTF8_HEX)})
"""


def opaque_sql(tokens: str, kind: str) -> str:
    """Hits ``(_row, _col, kind, value, source, form)`` of the opaque ones of ``tokens``.

    A hex token needs a letter and a digit (a long number is no token); a base64 token needs
    upper- and lower-case letters and a digit (words and ``snake_case`` names are not tokens)
    and at most one ``/`` (paths and URLs are not tokens). Tokens longer than
    :data:`MAX_OPAQUE_CHARS` are blobs (pyarrow's base64 ``ARROW:schema`` in every Parquet
    file), not pseudonyms; what they decode to is scanned all the same.
    Not deduplicated (a token repeated in one cell is rare; the scanner keeps one hit per
    value): a hash table over a million hashes costs more than the top ``$limit`` sort.
    """
    opaque = (
        f"length(t) <= {MAX_OPAQUE_CHARS} AND (regexp_full_match(t, {sql_str(RE_UUID)}) "
        f"OR (regexp_full_match(t, {sql_str(RE_HEX_TOKEN)}) AND regexp_matches(t, '[a-fA-F]') "
        "AND regexp_matches(t, '[0-9]')) "
        f"OR (regexp_full_match(t, {sql_str(RE_B64_TOKEN)}) AND regexp_matches(t, '[A-Z]') "
        "AND regexp_matches(t, '[a-z]') AND regexp_matches(t, '[0-9]') "
        "AND NOT regexp_matches(t, '/.*/')))"
    )
    return f"""
SELECT _row, _col, '{kind}' AS kind, t AS value, NULL::VARCHAR AS source,
    '{Form.PLAIN}' AS form
FROM ({tokens})
WHERE {opaque}
ORDER BY 1, 2 NULLS FIRST, 4
LIMIT $limit
"""
