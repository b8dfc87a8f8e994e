"""Evasions of the identifier checks: each attack is an output a hostile job could write.

The analyst knows the detectors look for ``150302196906212253``; these outputs carry the same
identifier disguised (full-width, Chinese numerals, spaced, reversed, hex, base64), a project
pseudonym re-encoded, a person's name in pinyin or inside a Chinese sentence. Each test writes
the output, runs the platform's output check (``egress_review.service.check_output``, real
DuckDB, real fingerprint files) and asserts on its verdict: identifiers and linkage block,
opaque tokens go to a reviewer, ordinary numbers, dates and Chinese text pass.
"""

from __future__ import annotations

import base64
from pathlib import Path

import duckdb
import pytest
from pypinyin import lazy_pinyin
from stdnum import luhn

from catalog.idcodes import org_code_check_char, resident_id_check_char, uscc_check_char
from egress_review.detect import Form, Severity
from egress_review.fingerprints import FingerprintSet, build_fingerprints, fingerprint_key
from egress_review.service import OutputCheck, check_output, job_fingerprints
from policies.grant import DisclosureRules
from shuyu.platform import Platform
from tests.egress.test_detect import make_workspace, pseudonyms_of

BODY = "15030219690621225"
RID = BODY + resident_id_check_char(BODY)
NAME = "廖思辉"
FULL_WIDTH = str.maketrans("0123456789X", "０１２３４５６７８９Ｘ")
LOWER_NUMERALS = str.maketrans("0123456789", "〇一二三四五六七八九")
UPPER_NUMERALS = str.maketrans("0123456789", "零壹贰叁肆伍陆柒捌玖")
TABLE = {"kind": "table", "group_by": ["district"], "counts": ["n"], "context": "test"}


def table_output(
    tmp_path: Path, *notes: str, declared: dict[str, object] = TABLE, **scan: object
) -> OutputCheck:
    """A frequency table whose counts all pass SDC, with ``notes`` in a free-text column."""
    path = tmp_path / "out.csv"
    con = duckdb.connect()
    con.execute("CREATE TABLE t (district VARCHAR, note VARCHAR, n INTEGER)")
    con.executemany(
        "INSERT INTO t VALUES (?, ?, ?)", [(f"区{i}", note, 50 + i) for i, note in enumerate(notes)]
    )
    con.execute(f"COPY t TO '{path}' (HEADER)")
    return check_output(path, "out.csv", declared, DisclosureRules(), **scan)  # type: ignore[arg-type]


def blocked_as(check: OutputCheck) -> set[tuple[str, str]]:
    return {(f["kind"], f["form"]) for f in check.findings if f["severity"] == Severity.BLOCK}


@pytest.fixture
def fingerprints(tmp_path: Path, platform: Platform) -> FingerprintSet:
    snapshot = tmp_path / "residents.parquet"
    con = duckdb.connect()
    con.execute("CREATE TABLE r (resident_id VARCHAR, name VARCHAR, mobile VARCHAR)")
    con.executemany(
        "INSERT INTO r VALUES (?, ?, ?)",
        [(RID, NAME, "18987606717"), (None, "曾小贤", None), (None, "张伟", None)],
    )
    con.execute(f"COPY r TO '{snapshot}'")
    key = fingerprint_key(platform)
    target = tmp_path / "fp.parquet"
    build_fingerprints(
        snapshot, ["resident_id", "name", "mobile"], key, target, label="residents", names=["name"]
    )
    return FingerprintSet([target], key)


# --------------------------------------------------------------------------- resident IDs


def test_a_clean_table_passes(tmp_path: Path) -> None:
    assert table_output(tmp_path, "ok", "复核完成").status == "pass"


@pytest.mark.parametrize(
    ("written", "form"),
    [
        (RID.translate(FULL_WIDTH), Form.PLAIN),  # folded like NFKC
        ("".join(chr(0x2460 + int(c) - 1) if c != "0" else "⓪" for c in RID[:17]) + RID[17], Form.PLAIN),
        ("身份证" + RID.translate(LOWER_NUMERALS), Form.NUMERALS),
        (RID.translate(UPPER_NUMERALS), Form.NUMERALS),
        (f"{RID[:6]}.{RID[6:14]}.{RID[14:]}", Form.SPACED),
        (" ".join(RID), Form.SPACED),
        ("-".join(RID[i : i + 3] for i in range(0, 18, 3)), Form.SPACED),
        (f"id {RID[::-1]}", Form.REVERSED),
        (RID.encode().hex(), Form.HEX),
        (RID.encode().hex().upper(), Form.HEX),
        (base64.b64encode(f"id={RID}".encode()).decode(), Form.BASE64),
        (base64.urlsafe_b64encode(RID.encode()).decode().rstrip("="), Form.BASE64),
    ],
    ids=[
        "full-width", "circled", "numerals", "capital-numerals", "dots", "spaces", "dashes",
        "reversed", "hex", "HEX", "base64", "base64url-unpadded",
    ],
)  # fmt: skip
def test_a_resident_id_in_disguise_blocks_the_output(
    tmp_path: Path, written: str, form: Form
) -> None:
    check = table_output(tmp_path, "ok", written)
    assert check.status == "blocked"
    assert blocked_as(check) == {("cn_resident_id", form)}
    assert all(RID not in str(f) for f in check.findings)


def test_a_mobile_in_circled_digits_and_reversed_blocks(tmp_path: Path) -> None:
    circled = "".join("⓪①②③④⑤⑥⑦⑧⑨"[int(c)] for c in "13812345678")
    check = table_output(tmp_path, circled, "电话 87654321831")
    assert check.status == "blocked"
    assert blocked_as(check) == {("cn_mobile", Form.PLAIN), ("cn_mobile", Form.REVERSED)}


# --------------------------------------------------------------------------- pseudonyms


@pytest.fixture
def workspace(tmp_path: Path, platform: Platform) -> Path:
    ids = [BODY[:-3] + f"{i:03d}" for i in range(20)]
    return make_workspace(tmp_path / "ws.duckdb", platform.project_key("employment"), ids)


@pytest.mark.parametrize(
    ("encode", "form"),
    [
        (lambda p: p[::-1], Form.REVERSED),
        (lambda p: base64.b64encode(p.encode()).decode(), Form.BASE64),
        (lambda p: base64.b64encode(bytes.fromhex(p)).decode(), Form.BASE64),
        (lambda p: f"{p[:8]}-{p[8:12]}-{p[12:16]}-{p[16:20]}-{p[20:]}", Form.UUID),
    ],
    ids=["reversed", "base64-of-text", "base64-of-bytes", "uuid-shaped"],
)
def test_a_reencoded_pseudonym_blocks_the_output(
    tmp_path: Path, workspace: Path, encode, form: Form
) -> None:
    pseudonym = pseudonyms_of(workspace)[3]
    check = table_output(tmp_path, "ok", encode(pseudonym), pseudonyms=workspace)
    assert check.status == "blocked"
    assert ("pseudonym_key", form) in blocked_as(check)


def test_an_opaque_token_that_matches_nothing_goes_to_review(
    tmp_path: Path, workspace: Path
) -> None:
    halved = pseudonyms_of(workspace)[5][8:24]  # a shifted half: no prefix of any pseudonym
    tokens = [halved, "550e8400-e29b-41d4-a716-446655440000", "Zm9vYmFyYmF6cXV4MTIz"]
    # a text output (always for a reviewer): with the workspace given, this test's made-up
    # group-by column would be refused as no aggregate, which is not what is tested here
    text = {"kind": "text", "context": "test"}
    check = table_output(tmp_path, *tokens, declared=text, pseudonyms=workspace)
    assert check.status == "review"
    assert {(f["kind"], f["severity"]) for f in check.findings} == {("opaque_token", "review")}
    assert len(check.findings) == 3


def test_a_flood_of_tokens_does_not_push_an_identifier_out(tmp_path: Path) -> None:
    hashes = [f"{i:032x}abc" for i in range(1500)]  # 1,500 opaque tokens, past the limit
    check = table_output(tmp_path, *hashes, f"last {RID}")
    assert check.status == "blocked"
    assert ("cn_resident_id", Form.PLAIN) in blocked_as(check)


# --------------------------------------------------------------------------- names


@pytest.mark.parametrize(
    "written",
    ["Liao Sihui", "liaosihui", "LIAO SIHUI", "Sihui Liao", "Liáo Sīhuī", "Zeng Xiaoxian"],
)
def test_a_name_in_pinyin_blocks_the_output(
    tmp_path: Path, fingerprints: FingerprintSet, written: str
) -> None:
    check = table_output(tmp_path, "ok", f"contact {written} today", fingerprints=fingerprints)
    assert check.status == "blocked"
    assert {f["source"] for f in check.findings} == {"residents.name (pinyin)"}


@pytest.mark.parametrize(
    "sentence",
    [f"请{NAME}于周一到岗", f"经核实{NAME}已离职", "张伟同志表现优秀", f"姓名:{NAME[::-1]}"],
)
def test_a_name_inside_a_chinese_sentence_blocks_the_output(
    tmp_path: Path, fingerprints: FingerprintSet, sentence: str
) -> None:
    check = table_output(tmp_path, "ok", sentence, fingerprints=fingerprints)
    assert check.status == "blocked"
    assert {f["kind"] for f in check.findings} == {"raw_identifier"}
    assert all(NAME not in f["masked"] and "张伟" not in f["masked"] for f in check.findings)


def test_spaced_and_reversed_raw_identifiers_match_fingerprints(
    tmp_path: Path, fingerprints: FingerprintSet
) -> None:
    check = table_output(tmp_path, "189.8760.6717", "71760678981", fingerprints=fingerprints)
    assert check.status == "blocked"
    sources = {(f["kind"], f["source"]) for f in check.findings}
    assert ("raw_identifier", "residents.mobile") in sources
    assert ("raw_identifier", "residents.mobile (reversed)") in sources


def test_registration_fingerprints_names_in_pinyin(granted: Platform, tmp_path: Path) -> None:
    snapshots = {p.name: p.name for p in granted.snapshots_dir.iterdir() if p.is_dir()}
    fps = job_fingerprints(granted, snapshots)
    assert fps is not None
    con = duckdb.connect()
    (residents,) = [
        path
        for path in granted.snapshots_dir.glob("*/data.parquet")
        if {"name", "resident_id"}
        <= {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM '{path}'").fetchall()}
    ]
    row = con.execute(f"SELECT name FROM '{residents}' WHERE length(name) = 3 LIMIT 1").fetchone()
    assert row is not None
    name = row[0]
    pinyin = " ".join(w.capitalize() for w in lazy_pinyin(name))
    check = table_output(tmp_path, "ok", f"call {pinyin}", f"{name}的记录", fingerprints=fps)
    assert check.status == "blocked"
    assert {"residents.name", "residents.name (pinyin)"} <= {f["source"] for f in check.findings}


# --------------------------------------------------------------------------- codes and cards


def test_a_credit_code_with_a_bad_organisation_code_blocks(tmp_path: Path) -> None:
    org = "MA382599"
    wrong = next(c for c in "0123456789X" if c != org_code_check_char(org))
    body = "91150302" + org + wrong
    code = body + uscc_check_char(body)  # GB 32100 right, GB 11714 wrong
    check = table_output(tmp_path, "ok", f"统一社会信用代码 {code}")
    assert check.status == "blocked"
    assert blocked_as(check) == {("cn_uscc", Form.PLAIN)}


def card(prefix: str, length: int) -> str:
    body = prefix + "3" * (length - 1 - len(prefix))
    return body + luhn.calc_check_digit(body)


@pytest.mark.parametrize(
    "number", [card("622202", 16), card("8171", 19), card("4", 16), card("955880", 19)]
)
def test_a_real_card_number_with_a_plausible_issuer_blocks(tmp_path: Path, number: str) -> None:
    check = table_output(
        tmp_path, "ok", f"卡号 {number}", f"{number[:4]} {number[4:8]} {number[8:]}"
    )
    assert check.status == "blocked"
    assert blocked_as(check) == {("bank_card", Form.PLAIN), ("bank_card", Form.SPACED)}


def test_luhn_valid_numbers_without_an_issuer_are_not_cards(tmp_path: Path) -> None:
    numbers = [card("17", 19), card("7", 16), card("0", 16), card("2019", 16), card("1", 18)]
    assert table_output(tmp_path, *numbers).status == "pass"


# --------------------------------------------------------------------------- controls


def test_ordinary_numbers_dates_and_chinese_text_pass(tmp_path: Path) -> None:
    controls = [
        "12345", "1,234,567.89", "3.14159265358979", "0.15030219690621225", "-42",
        "2024-01-15", "2024-01-15 10:00:03", "2024/01/15", "2019-2020-2021-2022", "20260115",
        "一九四九年十月一日", "第一二三季度", "乌海市海勃湾区2025年就业情况良好",
        "各区缴费人数与平均缴费基数", "三十二万五千人", "共 120 人, 平均 45.6 岁",
        "version 1.2.3.4", "wages_by_district_2025", "employment-insights",
        "https://example.org/report", "192.168.100.200",
    ]  # fmt: skip
    check = table_output(tmp_path, *controls)
    assert check.status == "pass", check.findings


def test_ordinary_chinese_text_with_fingerprints_passes(
    tmp_path: Path, fingerprints: FingerprintSet
) -> None:
    text = ["海南区就业人数增长", "请于周一到岗", "经核实已离职", "张家口", "小贤"]
    assert table_output(tmp_path, *text, fingerprints=fingerprints).status == "pass"


def test_a_flood_of_tokens_in_a_long_log_does_not_hide_a_later_identifier() -> None:
    from egress_review.detect import TEXT_CHUNK_BYTES, scan_text

    line = "token " + "0123456789abcdef" * 4 + "\n"  # one opaque token per line
    flood = line * (TEXT_CHUNK_BYTES // len(line) + 10)  # past the first block of lines
    findings = scan_text((flood + f"id {RID}\n").encode(), "log:run", limit=50)
    assert [f.kind for f in findings if f.severity is Severity.BLOCK] == ["cn_resident_id"]


def test_a_full_width_pseudonym_blocks_the_output(tmp_path: Path, workspace: Path) -> None:
    pseudonym = pseudonyms_of(workspace)[7]
    wide = "".join(chr(ord(c) + 0xFEE0) for c in pseudonym)  # ０-９ ａ-ｆ
    check = table_output(tmp_path, "ok", wide, pseudonyms=workspace)
    assert check.status == "blocked"
    assert ("pseudonym_key", Form.PLAIN) in blocked_as(check)
