"""What each kind of personal information looks like: how to find it, confirm it and mask it.

The scanners in ``egress_review.detect`` decide *where* to look (cells of a table, lines of a
text) and run the work in DuckDB; this module holds the per-kind knowledge they apply, in one
place so the SQL and the Python checks cannot drift apart: the candidate and classifier
regular expressions, the SQL that extracts and classifies candidates with their check
characters (GB 11643, GB 32100 / GB 11714, Luhn) and matches pseudonyms and fingerprints,
the python-stdnum confirmation of what SQL found, and the masking that replaces every clear
value before a finding is reported. The kinds themselves are described in ``detect``.
"""

from __future__ import annotations

import datetime as _dt
import re
from enum import StrEnum

from stdnum import luhn
from stdnum.cn import ric, uscc

from catalog.idcodes import (
    USCC_ALPHABET,
    resident_id_check_char,
    resident_id_check_sql,
    uscc_check_char,
    uscc_check_sql,
)
from egress_review.fingerprints import FULL_WIDTH_RE, GROUPED_DIGITS_RE, sql_str
from egress_review.linkage import MIN_PSEUDONYM_PREFIX, form_sql
from egress_review.normalise import (
    CN_NUMERAL_CHARS,
    RE_TWO_SEPARATORS,
    SEPARATORS,
    numeral_runs_sql,
    spaced_runs_sql,
)


class Kind(StrEnum):
    """What a finding is (``Finding.kind``); described in ``detect``."""

    CN_RESIDENT_ID = "cn_resident_id"
    CN_RESIDENT_ID_15 = "cn_resident_id_15"
    CN_MOBILE = "cn_mobile"
    CN_USCC = "cn_uscc"
    BANK_CARD = "bank_card"
    EMAIL = "email"
    LICENCE_PLATE = "licence_plate"
    PASSPORT = "passport"
    PSEUDONYM_KEY = "pseudonym_key"
    RAW_IDENTIFIER = "raw_identifier"
    OPAQUE_TOKEN = "opaque_token"


class Severity(StrEnum):
    """What a finding does to its output: identifiers and linkage block it; a token that
    may be a re-encoded pseudonym sends it to a reviewer."""

    BLOCK = "block"
    REVIEW = "review"


KINDS = tuple(Kind)
# Kinds looked for in reversed candidates: those whose check (check char, region, prefix) keeps
# the reverse of an ordinary number from passing. A reversed Luhn-valid number passes Luhn one
# time in ten, so cards, like passports and plates, are only looked for as written.
REVERSIBLE = (Kind.CN_RESIDENT_ID, Kind.CN_USCC, Kind.CN_MOBILE, Kind.EMAIL)
SEVERITY = {kind: Severity.BLOCK for kind in Kind} | {Kind.OPAQUE_TOKEN: Severity.REVIEW}
PROVINCE_CODES = (
    "11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36", "37",
    "41", "42", "43", "44", "45", "46", "50", "51", "52", "53", "54", "61", "62", "63", "64",
    "65", "71", "81", "82", "83",
)  # fmt: skip
PLATE_PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"
__all__ = ["MIN_PSEUDONYM_PREFIX", "KINDS", "SEVERITY", "Kind", "Severity", "mask"]

# Candidate extraction (RE2). Each family yields maximal runs, so boundaries need no lookaround.
_RE_NUM = r"[0-9]{11,}[Xx]?"
_RE_UPPER = r"[0-9A-Z]{9,}"
_RE_EMAIL = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
_RE_PLATE = f"[{PLATE_PROVINCES}][A-Z][·•・ ]?[0-9A-Za-z]{{4,}}[挂学警港澳]?"
# Written backwards: a reversed e-mail (``moc.elpmaxe@resu``), a reversed ID ending in X.
_RE_EMAIL_REV = r"[A-Za-z]{2,}\.[A-Za-z0-9.-]*[A-Za-z0-9-]@[A-Za-z0-9._%+-]+"
_RE_NUM_REV = r"[Xx]?[0-9]{11,}"
# A cell can only hold a candidate if it matches this (one cheap pass prunes most cells):
# also spaced digits and Chinese numerals (11 of them, see ``normalise``) and reversed plates.
_RE_PREFILTER = (
    # runs (not the digits of a decimal fraction) of exactly 9 code chars (a passport), of 11+
    # digits, of 18+ code chars (a credit code)
    "(?:^|^\\.|[^0-9A-Z.]|[^0-9]\\.)(?:[0-9A-Z]{9}(?:$|[^0-9A-Z])|[0-9]{11}|[0-9A-Z]{18})"
    f"|@|[{PLATE_PROVINCES}][A-Z]|{FULL_WIDTH_RE}|{GROUPED_DIGITS_RE}"
    f"|[0-9][{SEPARATORS}][0-9]+[{SEPARATORS}][0-9]"
    f"|[{CN_NUMERAL_CHARS}][ .\\-]?[0-9{CN_NUMERAL_CHARS}][ .\\-]?[0-9{CN_NUMERAL_CHARS}]"
)
_RE_HASH = r"[0-9a-fA-F]{32,}"  # digit runs inside these are parts of hashes
_RE_FRACTION = r"([0-9])\.[0-9]+"
# Full-match classifiers, shared by the SQL and the Python confirmation.
_USCC_CHARS = "0-9A-HJ-NP-RTUWXY"
_RE_USCC = f"[{_USCC_CHARS}]{{2}}[0-9]{{6}}[{_USCC_CHARS}]{{10}}"
_RE_MOBILE = r"(?:0086|86)?1[3-9][0-9]{9}"
_RE_CARD = r"[0-9]{16,19}"
# Issuer prefixes (IIN) of card schemes with 16-19 digit cards: Visa 4; Mastercard 51-55 and
# 2221-2720; Maestro 50, 56-58, 6; Mir 2200-2204; JCB 3528-3589, Diners 300-305, 309, 36,
# 38-39; UnionPay 62 and 81; Discover 60, 64-65; Chinese domestic cards 9 (955880, 9559...).
# A Luhn-valid number with another prefix (a 1-prefixed snowflake ID, a date run) is no card.
_RE_IIN = (
    r"(?:4|5[0-8]|222[1-9]|22[3-9]|2[3-6]|27[01]|2720|220[0-4]"
    r"|3(?:0[0-59]|5[2-8]|[689])|6|81|9)[0-9]*"
)
_RE_PASSPORT = r"[EG][0-9]{8}|E[A-HJ-NP-Z][0-9]{7}|[DSP]E[0-9]{7}"
_RE_PLATE_TAIL = (
    r"[DF][A-HJ-NP-Z0-9][0-9]{4}|[0-9]{5}[DF]|[A-HJ-NP-Z0-9]{4}[挂学警港澳]|[A-HJ-NP-Z0-9]{5}"
)
if USCC_ALPHABET != "0123456789ABCDEFGHJKLMNPQRTUWXY":  # what _USCC_CHARS spells
    raise ImportError("catalog.idcodes.USCC_ALPHABET changed: update _USCC_CHARS")


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


def _pattern_sql(forms: str) -> str:
    """Hits ``(_row, _col, kind, value, source, form)`` of the pattern detectors over ``forms``.

    ``forms`` is a relation ``(_row, _col, f, v, n)`` (cells and their decoded forms, ``n`` the
    value folded by ``fingerprints.fold_sql``). Besides the
    candidates as written, each cell offers its digit runs written with separators or in
    Chinese numerals, and its candidates reversed (digit and code runs, reversed e-mail and
    plate shapes). Parameters: ``$today`` (DATE), ``$limit``.
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
    # Fail closed: the credit code's own check char decides; a wrong embedded organisation
    # code (GB 11714) does not make a code that passes GB 32100 harmless.
    # Its region code (chars 3-8) starts with a province code, like a resident ID's.
    uscc_ok = (
        f"(us IS NOT NULL AND {uscc_check_sql('left(us, 17)')} = right(us, 1) "
        f"AND {_provinces_sql('substr(us, 3, 2)')})"
    )
    card_ok = f"(card IS NOT NULL AND regexp_full_match(card, {sql_str(_RE_IIN)}) AND {_luhn_sql('card')})"
    plate_tail = "regexp_replace(m, '^.[A-Z][·•・ ]?', '')"
    plate_ok = (
        f"(regexp_full_match(m, '[{PLATE_PROVINCES}][A-HJ-NP-Z].*') "
        f"AND regexp_full_match({plate_tail}, {sql_str(_RE_PLATE_TAIL)}) "
        f"AND (length({plate_tail}) <> 5 OR NOT regexp_full_match({plate_tail}, '[A-Z0-9]{{5}}') "
        f"OR length(regexp_replace({plate_tail}, '[^0-9]', '', 'g')) >= 3))"
    )
    # Upper-case runs add what digit runs miss: codes holding letters (credit codes, passports:
    # 18 and 9 chars); a run longer than 18 (``USCC91150...``) also offers its last 18 chars as a credit code.
    upper = (
        f"list_filter(regexp_extract_all(nt, {sql_str(_RE_UPPER)}), "
        "lambda t: (length(t) = 9 OR length(t) >= 18) AND regexp_matches(t, '[A-Z]'))"
    )
    upper_tails = (
        "list_transform(list_filter(up, lambda t: length(t) > 18), lambda t: right(t, 18))"
    )
    has_plate = f"regexp_matches(n, '[{PLATE_PROVINCES}]')"
    # Backwards, only what a reversible kind can be: digit runs (a reversed ID may start with
    # its X), 18-char code runs, reversed e-mail shapes, and the spaced and numeral runs.
    num_rev = (
        f"CASE WHEN regexp_matches(nt, '[Xx][0-9]{{11}}') "
        f"THEN regexp_extract_all(nt, {sql_str(_RE_NUM_REV)}) ELSE num END"
    )
    backwards = f"list_concat({num_rev}, list_filter(up, lambda t: length(t) = 18), emr, sp, cn)"
    return f"""
WITH folded AS MATERIALIZED (
    SELECT _row, _col, f, n, {num_text} AS nt FROM ({forms})
    WHERE length(v) >= 6 AND regexp_matches(v, {sql_str(_RE_PREFILTER)})
),
norm AS MATERIALIZED (
    SELECT _row, _col, f, n, nt,
        regexp_extract_all(nt, {sql_str(_RE_NUM)}) AS num,
        {upper} AS up,
        CASE WHEN contains(n, '@') THEN regexp_extract_all(n, {sql_str(_RE_EMAIL)}) ELSE [] END AS em,
        CASE WHEN contains(n, '@') THEN regexp_extract_all(n, {sql_str(_RE_EMAIL_REV)}) ELSE [] END AS emr,
        CASE WHEN {has_plate} THEN regexp_extract_all(n, {sql_str(_RE_PLATE)}) ELSE [] END AS pl,
        CASE WHEN regexp_matches(n, {sql_str(RE_TWO_SEPARATORS)}) THEN {spaced_runs_sql("n")}
             ELSE [] END AS sp,
        {numeral_runs_sql("n")} AS cn
    FROM folded
),
cand AS (
    SELECT DISTINCT * FROM (
        SELECT _row, _col, f, 'P' AS tg, unnest(list_concat(num, up, {upper_tails}, em, pl)) AS m
        FROM norm
        UNION ALL SELECT _row, _col, f, 'S', unnest(sp) FROM norm WHERE len(sp) > 0
        UNION ALL SELECT _row, _col, f, 'N', unnest(cn) FROM norm WHERE len(cn) > 0
        UNION ALL SELECT _row, _col, f, 'R', reverse(unnest({backwards})) FROM norm
    )
),
feat AS (
    SELECT _row, _col, f, tg, m,
        CASE WHEN regexp_full_match(m, '[0-9]{{17}}[0-9Xx]') THEN upper(m) END AS id18,
        CASE WHEN NOT regexp_full_match(m, '[0-9]{{17}}[Xx]') AND regexp_full_match(m, '[0-9]+[Xx]?')
             THEN rtrim(m, 'Xx') END AS dg,
        CASE WHEN regexp_full_match(m, {sql_str(_RE_USCC)}) THEN m END AS us,
        CASE WHEN regexp_full_match(rtrim(m, 'Xx'), {sql_str(_RE_CARD)})
             AND NOT regexp_full_match(m, '[0-9]{{17}}[Xx]') THEN rtrim(m, 'Xx') END AS card
    FROM cand
),
classified AS (
    SELECT _row, _col, f, tg,
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
    NULL::VARCHAR AS source,
    {form_sql("f", "tg")} AS form
FROM classified
WHERE kind IS NOT NULL AND (tg <> 'R' OR kind IN ({", ".join(sql_str(k) for k in REVERSIBLE)}))
ORDER BY _row, _col NULLS FIRST, kind, value
LIMIT $limit
"""


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
        return bool(re.fullmatch(_RE_USCC, value)) and uscc.calc_check_digit(value[:17]) == value[
            17
        ] == uscc_check_char(value[:17])
    if kind == "bank_card":
        return (
            bool(re.fullmatch(_RE_CARD, value))
            and bool(re.fullmatch(_RE_IIN, value))
            and luhn.is_valid(value)
        )
    return True


def _valid_date(text: str, low: _dt.date | None, high: _dt.date | None) -> bool:
    try:
        day = _dt.date(int(text[:4]), int(text[4:6]), int(text[6:8]))
    except ValueError:
        return False
    return (low is None or day >= low) and (high is None or day <= high)
