"""Check characters of the Chinese identifier codes the demo data must carry.

Synthetic identifiers are only useful for testing detection and masking if they are *valid*:
a detector that checks the check character must accept them, and a corrupted one must be
rejected. Each code has a pure-Python function (used by tests and small data) and a DuckDB SQL
expression builder returning the same character (used to generate millions of rows in SQL).

- GB 11643-1999 公民身份号码 (resident ID): 17 digits + check char from ``10X98765432``.
- GB 11714-1997 组织机构代码 (organisation code): 8 chars + check char (``0``-``9`` or ``X``).
- GB 32100-2015 统一社会信用代码 (unified social credit code): 17 chars + check char.
"""

from __future__ import annotations

import datetime as _dt

RESIDENT_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
RESIDENT_ID_CHECK = "10X98765432"

ORG_CODE_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)
# GB 11714 body characters are digits (0-9) and upper-case letters (A=10 ... Z=35).
ORG_CODE_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"

# GB 32100 leaves out I, O, S, V and Z so codes cannot be misread.
USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


# --------------------------------------------------------------------------- Python


def resident_id_check_char(body17: str) -> str:
    """GB 11643 check char of the first 17 digits: weighted sum mod 11 indexes ``10X98765432``."""
    if len(body17) != 17 or not body17.isdigit():
        raise ValueError(f"a resident ID body is 17 digits, got {body17!r}")
    total = sum(int(c) * w for c, w in zip(body17, RESIDENT_ID_WEIGHTS, strict=True))
    return RESIDENT_ID_CHECK[total % 11]


def org_code_check_char(body8: str) -> str:
    """GB 11714 check char of an 8-char organisation code body: ``11 - sum mod 11`` (10→X, 11→0)."""
    if len(body8) != 8 or any(c not in ORG_CODE_ALPHABET for c in body8):
        raise ValueError(f"an organisation code body is 8 chars of 0-9/A-Z, got {body8!r}")
    total = sum(
        ORG_CODE_ALPHABET.index(c) * w for c, w in zip(body8, ORG_CODE_WEIGHTS, strict=True)
    )
    check = 11 - total % 11
    return "X" if check == 10 else "0" if check == 11 else str(check)


def uscc_check_char(body17: str) -> str:
    """GB 32100 check char of the first 17 chars: ``(31 - sum mod 31) mod 31`` in its alphabet."""
    if len(body17) != 17 or any(c not in USCC_ALPHABET for c in body17):
        raise ValueError(f"a credit code body is 17 chars of {USCC_ALPHABET}, got {body17!r}")
    total = sum(USCC_ALPHABET.index(c) * w for c, w in zip(body17, USCC_WEIGHTS, strict=True))
    return USCC_ALPHABET[(31 - total % 31) % 31]


def is_valid_resident_id(code: str) -> bool:
    """Format, check char and a real birth date; unlike ``stdnum.cn.ric.is_valid`` the region
    code is not required to have existed in the birth year (IDs were issued from 1984 on with
    the then-current code, so people born earlier legitimately carry newer codes)."""
    if len(code) != 18 or not code[:17].isdigit():
        return False
    if code[17] != resident_id_check_char(code[:17]):
        return False
    try:
        _dt.date(int(code[6:10]), int(code[10:12]), int(code[12:14]))
    except ValueError:
        return False
    return True


def is_valid_uscc(code: str) -> bool:
    """Format and both check chars: the embedded organisation code's and the credit code's."""
    if len(code) != 18 or not code[:8].isdigit() or any(c not in USCC_ALPHABET for c in code):
        return False
    if code[16] != org_code_check_char(code[8:16]):
        return False
    return code[17] == uscc_check_char(code[:17])


# --------------------------------------------------------------------------- DuckDB SQL
# Each builder takes a SQL expression of type VARCHAR and returns a VARCHAR expression of the
# check char, so generation stays inside DuckDB (no Python loop over rows).


def _weighted_sum_sql(expr: str, weights: tuple[int, ...], value_of: str) -> str:
    terms = [
        f"{value_of.format(c=f'substr({expr}, {k}, 1)')} * {w}"
        for k, w in enumerate(weights, start=1)
    ]
    return "(" + " + ".join(terms) + ")"


def resident_id_check_sql(expr: str) -> str:
    """SQL for :func:`resident_id_check_char` of a 17-digit VARCHAR expression."""
    total = _weighted_sum_sql(expr, RESIDENT_ID_WEIGHTS, "CAST({c} AS INTEGER)")
    return f"substr('{RESIDENT_ID_CHECK}', CAST({total} % 11 AS INTEGER) + 1, 1)"


def org_code_check_sql(expr: str) -> str:
    """SQL for :func:`org_code_check_char` of an 8-char VARCHAR expression."""
    total = _weighted_sum_sql(expr, ORG_CODE_WEIGHTS, f"(instr('{ORG_CODE_ALPHABET}', {{c}}) - 1)")
    # 11 - total % 11 is 1..11; index '0123456789X0' so 10 → X and 11 → 0.
    return f"substr('0123456789X0', 11 - CAST({total} % 11 AS INTEGER) + 1, 1)"


def uscc_check_sql(expr: str) -> str:
    """SQL for :func:`uscc_check_char` of a 17-char VARCHAR expression."""
    total = _weighted_sum_sql(expr, USCC_WEIGHTS, f"(instr('{USCC_ALPHABET}', {{c}}) - 1)")
    return f"substr('{USCC_ALPHABET}', CAST((31 - {total} % 31) % 31 AS INTEGER) + 1, 1)"
