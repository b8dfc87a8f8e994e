"""Personal-information detection in outputs and logs: real DuckDB, real files, no mocks."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import os
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stdnum import luhn
from stdnum.cn import ric, uscc

from catalog.idcodes import (
    RESIDENT_ID_CHECK,
    USCC_ALPHABET,
    is_valid_uscc,
    org_code_check_char,
    resident_id_check_char,
    resident_id_check_sql,
    uscc_check_char,
)
from egress_review.detect import (
    KINDS,
    PROVINCE_CODES,
    Finding,
    mask,
    scan_output,
    scan_table,
    scan_text,
)
from egress_review.extract import ReadLimits
from egress_review.fingerprints import FingerprintSet, build_fingerprints, fingerprint_key
from egress_review.verdicts import Unreadable, UnreadableOutput
from policies.transforms import PSEUDONYM_HEX_CHARS, parse_transform, sql_expression
from shuyu.errors import ValidationError
from shuyu.platform import Platform
from tests.conftest import make_platform

WUHAI_BODY = "15030219690621225"  # 海勃湾区, born 1969-06-21: older than its region code (1983)


# --------------------------------------------------------------------------- helpers


def resident_id(body17: str) -> str:
    return body17 + resident_id_check_char(body17)


def wrong_check_chars(code: str, alphabet: str) -> list[str]:
    """``code`` with each other character of ``alphabet`` in place of its check char."""
    return [code[:-1] + c for c in alphabet if c != code[-1]]


def credit_code(prefix8: str, org8: str) -> str:
    body = prefix8 + org8 + org_code_check_char(org8)
    return body + uscc_check_char(body)


def card(prefix: str, length: int) -> str:
    body = prefix + "7" * (length - 1 - len(prefix))
    return body + luhn.calc_check_digit(body)


def kinds(findings: list[Finding]) -> list[str]:
    return [f.kind for f in findings]


def by_row(findings: list[Finding]) -> dict[int | None, list[str]]:
    rows: dict[int | None, list[str]] = {}
    for f in findings:
        rows.setdefault(f.row, []).append(f.kind)
    return rows


def scan_lines(*lines: str, **kwargs: object) -> list[Finding]:
    return scan_text("\n".join(lines).encode(), "log:test", **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def fp_key(platform: Platform) -> bytes:
    return fingerprint_key(platform)


# --------------------------------------------------------------------------- resident IDs


def test_resident_id_with_valid_check_char_is_found_and_wrong_ones_are_not() -> None:
    good = resident_id(WUHAI_BODY)
    assert ric.calc_check_digit(good) == good[-1]  # stdnum agrees with catalog.idcodes
    assert not ric.is_valid(good)  # ...but its birthplace table rejects this real-world ID
    lines = [good, *wrong_check_chars(good, RESIDENT_ID_CHECK)]
    findings = scan_lines(*lines)
    assert [(f.row, f.kind, f.masked) for f in findings] == [
        (1, "cn_resident_id", "1503**********" + good[-4:])
    ]


def test_resident_id_sql_check_char_matches_python() -> None:
    bodies = [
        f"{p}0302{1900 + i * 3:04d}{1 + i % 12:02d}{1 + i % 28:02d}{i * 37 % 1000:03d}"
        for i, p in enumerate(PROVINCE_CODES)
    ]
    con = duckdb.connect()
    assert all(len(b) == 17 for b in bodies)
    for body in bodies:
        sql_char = con.execute(f"SELECT {resident_id_check_sql(repr(body))}").fetchone()[0]  # type: ignore[index]
        assert sql_char == resident_id_check_char(body) == ric.calc_check_digit(body + "0")


def test_resident_id_needs_plausible_date_and_province() -> None:
    tomorrow = dt.date.today() + dt.timedelta(days=1)
    bodies = {
        "bad month": "15030219801301123",
        "30 February": "15030219800230123",
        "before 1900": "15030218991231123",
        "future": f"150302{tomorrow:%Y%m%d}123",
        "province 99": "99030219800101123",
        "province 10": "10030219800101123",
    }
    findings = scan_lines(*(resident_id(b) for b in bodies.values()))
    assert "cn_resident_id" not in kinds(findings)
    assert kinds(scan_lines(resident_id("11010119000101123"))) == ["cn_resident_id"]


def test_resident_id_lower_case_x_and_separators() -> None:
    body = next(
        b for b in (f"1503021969062{i:04d}" for i in range(10000)) if resident_id(b)[-1] == "X"
    )
    code = resident_id(body)
    findings = scan_lines(
        f"id {code.lower()} end",
        f"id {code[:6]} {code[6:14]} {code[14:]} end",
        f"id {code[:6]}-{code[6:14]}-{code[14:]} end",
        "id " + code.translate(str.maketrans("0123456789X", "０１２３４５６７８９Ｘ")),
    )
    assert by_row(findings) == {r: ["cn_resident_id"] for r in (1, 2, 3, 4)}
    assert {f.masked for f in findings} == {"1503**********" + code[-4:]}


def test_legacy_15_digit_resident_id() -> None:
    findings = scan_lines("老身份证 150302690621225 登记", "150302691321225", "990302690621225")
    assert [(f.row, f.kind, f.masked) for f in findings] == [
        (1, "cn_resident_id_15", "1503********225")
    ]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    province=st.sampled_from(PROVINCE_CODES),
    rest_of_region=st.integers(0, 9999),
    birth=st.dates(dt.date(1900, 1, 1), dt.date.today()),
    sequence=st.integers(0, 999),
    wrong=st.integers(0, 9),
    context=st.sampled_from(["{}", "身份证号{}。", "id={},", '{{"rid": "{}"}}', "ID{}z"]),
)
def test_property_any_valid_body_is_found_any_other_check_char_is_not(
    province: str, rest_of_region: int, birth: dt.date, sequence: int, wrong: int, context: str
) -> None:
    body = f"{province}{rest_of_region:04d}{birth:%Y%m%d}{sequence:03d}"
    good = resident_id(body)
    bad = body + [c for c in RESIDENT_ID_CHECK if c != good[-1]][wrong]
    findings = scan_lines(context.format(good), context.format(bad))
    ids = [(f.row, f.masked) for f in findings if f.kind == "cn_resident_id"]
    assert ids == [(1, good[:4] + "*" * 10 + good[-4:])]


# --------------------------------------------------------------------------- other kinds


def test_mobile_numbers() -> None:
    findings = scan_lines(
        "电话13812345678",  # 1
        "call +86 138-1234-5678 now",  # 2
        "+8613912345678",  # 3
        "user13712345678@example",  # 4: letters may touch it (the e-mail has no TLD)
        "order 213812345678",  # 5: part of a 12-digit run
        "12812345678",  # 6: 12x is no mobile prefix
        "ratio 0.13812345678",  # 7: a fraction
        "1381234567",  # 8: 10 digits
        "138 1234 5678,139-1234-5678",  # 9: adjacent grouped numbers
    )
    assert by_row(findings) == {
        1: ["cn_mobile"],
        2: ["cn_mobile"],
        3: ["cn_mobile"],
        4: ["cn_mobile"],
        9: ["cn_mobile", "cn_mobile"],
    }
    assert {f.masked for f in findings if f.row in (1, 2)} == {"138****5678"}


def test_credit_codes_check_both_check_chars() -> None:
    good = credit_code("91150302", "MA382599")
    assert uscc.is_valid(good) and is_valid_uscc(good)
    bad_final = wrong_check_chars(good, USCC_ALPHABET)
    org_char = good[16]
    bad_org = [
        good[:16] + c + uscc_check_char(good[:16] + c) for c in "0123456789X" if c != org_char
    ]
    assert all(uscc.is_valid(code) for code in bad_org)  # right final char, wrong embedded one
    findings = scan_lines(good, f"统一社会信用代码:{good}", f"USCC{good}", *bad_final, *bad_org)
    assert by_row(findings) == {1: ["cn_uscc"], 2: ["cn_uscc"], 3: ["cn_uscc"]}
    assert findings[0].masked == good[:4] + "*" * 10 + good[-4:]


def test_bank_cards() -> None:
    cards = [card("622202", 16), card("621700", 19), card("4", 16), card("5", 18)]
    grouped = card("622848", 19)
    grouped_text = " ".join(
        [grouped[0:4], grouped[4:8], grouped[8:12], grouped[12:16], grouped[16:]]
    )
    bad = [c[:-1] + str((int(c[-1]) + 1) % 10) for c in cards]
    snowflake = card("17", 19)  # Luhn-valid by chance, but 1-prefixed: a log's row ID
    findings = scan_lines(
        *cards, grouped_text, *bad, snowflake, card("622202", 15), card("622202", 20)
    )
    assert by_row(findings) == {r: ["bank_card"] for r in (1, 2, 3, 4, 5)}
    assert findings[0].masked == cards[0][:6] + "******" + cards[0][-4:]
    assert all(luhn.is_valid(c) for c in cards) and not any(luhn.is_valid(c) for c in bad)


def test_valid_resident_id_is_not_also_a_bank_card() -> None:
    both = next(
        code
        for code in (resident_id(f"41010219850101{i:03d}") for i in range(1000))
        if code.isdigit() and luhn.is_valid(code)
    )
    assert kinds(scan_lines(both)) == ["cn_resident_id"]


def test_emails_plates_and_passports() -> None:
    findings = scan_lines(
        "联系 zhang.san+1@mail.163.com 谢谢",  # 1 email
        "车牌蒙C12345", "蒙C·D12345 新能源", "蒙A12345D", "京A1234学",  # 2-5 plates
        "蒙CABCDE", "蒙C1234567",  # 6-7 not plates (too few digits, too long)
        "passport E12345678", "护照EA1234567", "G87654321",  # 8-10 passports
        "E1234567", "X12345678", "E123456789",  # 11-13 not passports
        "not an email: user@host",  # 14
    )  # fmt: skip
    assert by_row(findings) == {
        1: ["email"],
        2: ["licence_plate"],
        3: ["licence_plate"],
        4: ["licence_plate"],
        5: ["licence_plate"],
        8: ["passport"],
        9: ["passport"],
        10: ["passport"],
    }
    masked = {f.row: f.masked for f in findings}
    assert masked[1] == "z***@mail.163.com"
    assert masked[2] == "蒙C****5"
    assert masked[8] == "E******78"


def test_hashes_and_numbers_are_not_identifiers() -> None:
    findings = scan_lines(
        "md5 d41d8cd98f00b204e9800998ecf8427e",
        "sha " + "13812345678" * 3 + "abcdef",  # digit runs inside a 39-char hex run
        "avg 5631.138123456789 and 0.15030219690621225",
        "ts 1767225600000 size 20260115123045",
        "uuid 550e8400-e29b-41d4-a716-446655440000",
    )
    assert findings == []


def test_ids_embedded_in_longer_log_text() -> None:
    rid = resident_id(WUHAI_BODY)
    log = "\n".join(
        [
            "2026-01-15 10:00:01 INFO job started",
            f'2026-01-15 10:00:02 DEBUG row={{"resident_id":"{rid}","amount":5631.0}}',
            "2026-01-15 10:00:03 INFO nothing here 123456",
            f"2026-01-15 10:00:04 WARN 参保人{rid}联系电话13812345678未核验",
            f"Traceback: ValueError: bad value 'ID{rid}'",
        ]
    ).encode()
    findings = scan_text(log, "log:run")
    assert [(f.output, f.row, f.column, f.kind) for f in findings] == [
        ("log:run", 2, None, "cn_resident_id"),
        ("log:run", 4, None, "cn_mobile"),
        ("log:run", 4, None, "cn_resident_id"),
        ("log:run", 5, None, "cn_resident_id"),
    ]
    assert all(rid not in f.masked and rid[4:14] not in f.masked for f in findings)


def test_text_files_gbk_crlf_and_limit(tmp_path: Path) -> None:
    rid = resident_id(WUHAI_BODY)
    path = tmp_path / "log.txt"
    path.write_bytes(("标题\r\n" + f"姓名张三 身份证{rid}\r\n" * 5).encode("gbk"))
    findings = scan_text(path, "log.txt")
    assert [(f.row, f.kind) for f in findings] == [(r, "cn_resident_id") for r in range(2, 7)]
    assert [f.row for f in scan_text(path, "log.txt", limit=2)] == [2, 3]
    assert scan_text(b"", "empty") == []
    packed = tmp_path / "log.txt.gz"  # an output in no format the platform reads is refused
    packed.write_bytes(gzip.compress(f"a\nb {rid}\n".encode()))
    with pytest.raises(UnreadableOutput) as refused:
        scan_output(packed, "log.txt.gz")
    assert refused.value.reason is Unreadable.UNKNOWN_FORMAT
    with pytest.raises(ValidationError):
        scan_text(path, "log.txt", limit=0)


# --------------------------------------------------------------------------- tables


def test_csv_resident_id_in_row_3_column_note(tmp_path: Path) -> None:
    rid = resident_id(WUHAI_BODY)
    path = tmp_path / "summary.csv"
    path.write_text(
        "district,count,note\n"
        "海勃湾区,120,ok\n"
        "海南区,80,\n"
        f'乌达区,45,"复核: 身份证 {rid}, 已处理"\n'
        "合计,245,\n",
        encoding="utf-8",
    )
    findings = scan_table(path, "summary.csv")
    assert len(findings) == 1
    (f,) = findings
    assert (f.output, f.row, f.column, f.kind) == ("summary.csv", 3, "note", "cn_resident_id")
    assert f.masked == "1503**********" + rid[-4:]
    assert rid[4:14] not in f.masked and rid not in f.masked


def test_csv_header_gbk_and_malformed(tmp_path: Path) -> None:
    rid = resident_id(WUHAI_BODY)
    header = tmp_path / "pivot.csv"
    header.write_text(f"month,{rid}\n2024-01,3\n")
    assert [(f.row, f.column, f.kind) for f in scan_table(header, "pivot.csv")] == [
        (0, None, "cn_resident_id")
    ]
    gbk = tmp_path / "gbk.csv"
    gbk.write_bytes(f"姓名,电话\n张三,13812345678\n李四,{rid}\n".encode("gbk"))
    assert [(f.row, f.column, f.kind) for f in scan_table(gbk, "gbk.csv", encoding="gbk")] == [
        (1, "电话", "cn_mobile"),
        (2, "电话", "cn_resident_id"),
    ]
    # Read by its declared encoding (UTF-8 unless said otherwise), or refused: never guessed.
    with pytest.raises(UnreadableOutput) as refused:
        scan_table(gbk, "gbk.csv")
    assert refused.value.reason is Unreadable.ENCODING
    broken = tmp_path / "broken.csv"
    broken.write_bytes(b'a,b\n"unterminated,1\n' + f"x,{rid}\n".encode())
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    for path in (broken, empty):
        with pytest.raises(UnreadableOutput) as refused:
            scan_table(path, path.name)
        assert refused.value.reason is Unreadable.CSV_INVALID


def test_parquet_columns_of_all_types(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    con = duckdb.connect()
    con.execute(
        f"""COPY (SELECT 13812345678::BIGINT AS phone_int, 13912345678.0::DOUBLE AS phone_float,
            ['a', '{resident_id(WUHAI_BODY)}'] AS list_col, {{'m': 'x@y.com'}} AS struct_col,
            DATE '2024-01-01' AS d, NULL::VARCHAR AS empty) TO '{path}'"""
    )
    findings = scan_table(path, "t.parquet")
    assert [(f.column, f.kind) for f in findings if not f.column.startswith("parquet")] == [
        ("phone_int", "cn_mobile"),
        ("phone_float", "cn_mobile"),
        ("list_col", "cn_resident_id"),
        ("struct_col", "email"),
    ]
    # The footer's min/max statistics repeat the values: they are read too (they could lie).
    assert {(f.column, f.kind) for f in findings if f.column.startswith("parquet")} == {
        ("parquet statistics", "cn_mobile"),
        ("parquet statistics", "cn_resident_id"),
        ("parquet statistics", "email"),
    }
    with pytest.raises(ValidationError):
        scan_table(tmp_path / "t.xlsx", "t.xlsx")
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    with pytest.raises(UnreadableOutput) as refused:
        scan_table(tmp_path / "bad.parquet", "bad.parquet")
    assert refused.value.reason is Unreadable.PARQUET_INVALID


@pytest.mark.slow
def test_parquet_of_a_million_rows(tmp_path: Path) -> None:
    rid = resident_id(WUHAI_BODY)
    bad = wrong_check_chars(rid, RESIDENT_ID_CHECK)[0]
    planted = {7: "note", 123_457: "code", 999_999: "note", 1_000_000: "amount"}
    path = tmp_path / "big.parquet"
    con = duckdb.connect()
    con.execute(
        f"""COPY (SELECT
              i AS id,
              CASE WHEN i = 7 THEN '已核验 {rid}' WHEN i = 999999 THEN 'id={rid.lower()}'
                   WHEN i % 1000 = 0 THEN '无效 {bad}' ELSE '备注 ' || i END AS note,
              CASE WHEN i = 123457 THEN '{rid}' ELSE md5(i::VARCHAR) END AS code,
              CASE WHEN i = 1000000 THEN '{rid}' ELSE CAST(i * 1.37 AS VARCHAR) END AS amount,
              (i % 97)::DOUBLE / 7 AS ratio
            FROM range(1, 1000001) t(i)) TO '{path}' (ROW_GROUP_SIZE 100000)"""
    )
    findings = scan_table(path, "big.parquet", limits=ReadLimits(max_rows=1_000_000))
    findings = [f for f in findings if f.column != "parquet statistics"]
    assert {(f.row, f.column) for f in findings} == set(planted.items())
    assert {f.kind for f in findings} == {"cn_resident_id"}
    assert [f.row for f in findings] == sorted(planted)


def test_large_csv_row_numbers_follow_the_file(tmp_path: Path) -> None:
    rid = resident_id(WUHAI_BODY)
    path = tmp_path / "big.csv"
    con = duckdb.connect()
    con.execute(
        f"""COPY (SELECT i AS n, CASE WHEN i IN (3, 77777, 200000) THEN '{rid}'
                   WHEN i % 5000 = 0 THEN 'line one' || chr(10) || 'line two' ELSE 'x' || i END AS note
            FROM range(1, 200001) t(i)) TO '{path}' (HEADER)"""
    )
    assert [(f.row, f.column) for f in scan_table(path, "big.csv")] == [
        (3, "note"),
        (77777, "note"),
        (200000, "note"),
    ]
    assert [f.row for f in scan_output(path, "big.csv", limit=1)] == [3]


# --------------------------------------------------------------------------- pseudonyms


def make_workspace(path: Path, key: bytes, ids: list[str]) -> Path:
    """A small workspace like policies.workspace builds: real transforms, a _shuyu_columns table."""
    con = duckdb.connect(str(path))
    con.execute(
        "CREATE TABLE _shuyu_columns (dataset VARCHAR, column_name VARCHAR, type VARCHAR, "
        "role VARCHAR, transform VARCHAR, bounds VARCHAR, categories VARCHAR[])"
    )
    rows = [
        ("residents", "resident_id", "string", "direct_identifier", json.dumps("pseudonymise")),
        ("residents", "district", "string", "quasi_identifier", json.dumps("keep")),
        ("residents", "token", "string", "attribute", json.dumps("keep")),
    ]
    con.executemany("INSERT INTO _shuyu_columns VALUES (?, ?, ?, ?, ?, NULL, NULL)", rows)
    con.execute("CREATE TABLE src (resident_id VARCHAR, district VARCHAR, token VARCHAR)")
    con.executemany(
        "INSERT INTO src VALUES (?, '海南区', ?)", [(i, f"{n:032x}") for n, i in enumerate(ids)]
    )
    expr = sql_expression("resident_id", "string", parse_transform("pseudonymise"))
    con.execute(
        f"CREATE TABLE residents AS SELECT {expr} AS resident_id, district, token FROM src",
        {"key": key.hex()},
    )
    con.execute("DROP TABLE src")
    con.close()
    os.chmod(path, 0o444)
    return path


def pseudonyms_of(workspace: Path) -> list[str]:
    with duckdb.connect(str(workspace), read_only=True) as con:
        return [
            r[0] for r in con.execute("SELECT resident_id FROM residents ORDER BY rowid").fetchall()
        ]


def test_pseudonym_keys_of_the_project_are_row_level_linkage(
    tmp_path: Path, platform: Platform
) -> None:
    ids = [resident_id(f"1503021969062{i:04d}") for i in range(50)]
    ws = make_workspace(tmp_path / "ws.duckdb", platform.project_key("employment"), ids)
    keys = pseudonyms_of(ws)
    assert len(keys) == len(ids) and all(len(k) == PSEUDONYM_HEX_CHARS for k in keys)
    other_project = make_workspace(tmp_path / "other.duckdb", platform.project_key("other"), ids)
    other_key = pseudonyms_of(other_project)[0]

    out = tmp_path / "rows.csv"
    out.write_text(
        "person,group,value\n"
        f"{keys[0]},a,1\n"  # 1: a whole pseudonym
        f"{keys[1].upper()},b,2\n"  # 2: upper-cased
        f"x,prefix {keys[2][:20]},3\n"  # 3: truncated to 20 hex chars, inside text
        f"{other_key},c,4\n"  # 4: another project's pseudonym: not this project's
        f"{'0' * 31}1,d,5\n"  # 5: a kept (not pseudonymised) column's value
        f"y,id{keys[3]},6\n"  # 6: glued to hex-looking letters
        f"z,{keys[4][:12]},7\n"  # 7: too short a prefix to tell
    )
    findings = scan_table(out, "rows.csv", pseudonyms=ws)
    assert [(f.row, f.column, f.kind) for f in findings] == [
        (1, "person", "pseudonym_key"),
        (2, "person", "pseudonym_key"),
        (3, "group", "pseudonym_key"),
        (6, "group", "pseudonym_key"),
    ]
    assert all(k not in f.masked for f in findings for k in keys)
    log = f"INFO joined {keys[5]} -> ok\nINFO nothing\n".encode()
    assert [(f.row, f.kind) for f in scan_text(log, "log:run", pseudonyms=ws)] == [
        (1, "pseudonym_key")
    ]
    assert scan_table(out, "rows.csv") == []  # without the workspace, hex is just hex
    with pytest.raises(ValidationError):
        scan_table(out, "rows.csv", pseudonyms=tmp_path / "missing.duckdb")


# --------------------------------------------------------------------------- fingerprints


IDENTIFIERS = ["resident_id", "name", "mobile", "address", "email"]


@pytest.fixture
def snapshot(tmp_path: Path) -> Path:
    path = tmp_path / "residents.parquet"
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE r (resident_id VARCHAR, name VARCHAR, mobile VARCHAR, address VARCHAR, "
        "email VARCHAR, district VARCHAR)"
    )
    con.executemany(
        "INSERT INTO r VALUES (?, ?, ?, ?, ?, ?)",
        [
            (resident_id(WUHAI_BODY), "廖思辉", "18987606717", "乌海市海勃湾区黄河东街5号4单元401", None, "海勃湾区"),
            (resident_id("15030419990731966"), "张子娟", "15079235391", "乌海市乌达区苏海图路29号", None, "乌达区"),
            (None, "王五", None, None, "  wang.wu@example.com ", "海南区"),
        ],
    )  # fmt: skip
    con.execute(f"COPY r TO '{path}'")
    return path


def test_fingerprint_file_holds_no_clear_value(
    tmp_path: Path, snapshot: Path, fp_key: bytes
) -> None:
    target = tmp_path / "fp" / "residents.fingerprints.parquet"
    count = build_fingerprints(snapshot, IDENTIFIERS, fp_key, target, label="residents")
    assert count == 10  # distinct non-null values of the five direct-identifier columns
    data = target.read_bytes()
    con = duckdb.connect()
    values = [
        v
        for (v,) in con.execute(
            f"SELECT DISTINCT unnest([{', '.join(IDENTIFIERS)}]) FROM '{snapshot}'"
        ).fetchall()
        if v
    ]
    assert len(values) == 10
    for value in values:
        for form in {value, value.strip(), value.strip().upper()}:
            assert form.encode("utf-8") not in data
            assert form.encode("gb18030") not in data
            assert form.encode("utf-16-le") not in data
        for part in (value[:6], value[-6:]) if len(value) >= 12 else ():
            assert part.encode() not in data  # not even a fragment of an ID or address
    assert fp_key not in data and fp_key.hex().encode() not in data
    assert b"resident_id" in data  # the source column names are there, the values are not
    rows = con.execute(f"SELECT h, \"column\" FROM '{target}'").fetchall()
    assert all(len(h) == 64 and set(h) <= set("0123456789abcdef") for h, _ in rows)


def test_raw_identifiers_are_found_through_fingerprints(
    tmp_path: Path, snapshot: Path, fp_key: bytes
) -> None:
    target = tmp_path / "residents.fp.parquet"
    build_fingerprints(snapshot, IDENTIFIERS, fp_key, target, label="residents")
    fps = FingerprintSet([target], fp_key)
    assert len(fps) == 10 and fp_key.hex() not in repr(fps)

    out = tmp_path / "top.csv"
    out.write_text(
        "who,where,n\n"
        "廖思辉,海勃湾区,12\n"  # 1: a name (no pattern detector finds names)
        "someone, 乌海市乌达区苏海图路29号 ,3\n"  # 2: an address, padded
        "WANG.WU@EXAMPLE.COM,x,1\n"  # 3: e-mail, other case
        "王五,海南区,7\n"  # 4: the third name
        "赵六,海南区,7\n"  # 5: not in the dataset
    )
    findings = scan_table(out, "top.csv", fingerprints=fps)
    raw = [(f.row, f.column, f.source) for f in findings if f.kind == "raw_identifier"]
    assert raw == [
        (1, "who", "residents.name"),
        (2, "where", "residents.address"),
        (3, "who", "residents.email"),
        (4, "who", "residents.name"),
    ]
    assert ("email" in kinds(findings)) and all("廖思辉" not in f.masked for f in findings)

    log = (
        "INFO contact 189-8760-6717 about case\n"  # grouped digits: compacted, then matched
        'DEBUG {"name": "张子娟", "district": "乌达区"}\n'  # a JSON field
        f"WARN id={resident_id('15030419990731966')};\n"
    ).encode()
    findings = scan_text(log, "log:run", fingerprints=fps)
    assert [(f.row, f.kind, f.source) for f in findings] == [
        (1, "cn_mobile", None),
        (1, "raw_identifier", "residents.mobile"),
        (2, "raw_identifier", "residents.name"),
        (3, "cn_resident_id", None),
        (3, "raw_identifier", "residents.resident_id"),
    ]
    assert findings[1].masked == "189****6717"


def test_fingerprints_refuse_a_wrong_key_or_column(
    tmp_path: Path, snapshot: Path, fp_key: bytes, platform: Platform
) -> None:
    target = tmp_path / "fp.parquet"
    build_fingerprints(snapshot, ["name"], fp_key, target)
    with pytest.raises(ValidationError, match="another key"):
        FingerprintSet([target], platform.project_key("employment"))
    with pytest.raises(ValidationError):
        build_fingerprints(snapshot, ["no_such_column"], fp_key, target)
    assert fingerprint_key(platform) != platform.project_key("*", "pseudonym")
    other = make_platform(tmp_path / "other-home")
    assert fingerprint_key(other) != fp_key
    other.store.dispose()


# --------------------------------------------------------------------------- masking


def test_mask_never_returns_the_clear_value() -> None:
    rid = resident_id(WUHAI_BODY)
    assert mask(rid, "cn_resident_id") == "1503**********" + rid[-4:]
    assert mask("13812345678", "cn_mobile") == "138****5678"
    assert mask("6222021234567890123", "bank_card") == "622202*********0123"
    assert mask("a@b.cn", "email") == "a***@b.cn"
    samples = [rid, "13812345678", "x", "ab", "张三", "E12345678", "蒙C12345", "0" * 32, "a@b.cn"]
    for kind in KINDS:
        for value in samples:
            masked = mask(value, kind)
            assert masked != value and "*" in masked
