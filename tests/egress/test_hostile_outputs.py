"""Outputs that hide row-level data where a lenient reader would not look, or that attack the
checker itself. Each file is made as a hostile job would make it, then checked the way the
worker checks it (a limited child process); the assertion is on the verdict and on the report
reviewers read, which must not quote what was hidden."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import duckdb
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]
import pytest

from egress_review.check_process import CheckLimits, CheckTask, run_limited
from egress_review.verdicts import Unreadable
from policies.grant import DisclosureRules
from shuyu.settings import Settings

# Resident IDs with valid check characters (GB 11643), as a job would copy them from data.
PEOPLE = [
    "11010519491231002X",
    "150302196906212253",
    "440524198001010013",
    "150303198507140024",
]
SECRET = PEOPLE[0]
TABLE = {"kind": "table", "group_by": ["district"], "counts": ["n"], "context": "x"}


def check(path: Path, declared: dict | None = None, **settings: int) -> dict:
    """The worker's check of one output: a child process under the settings' limits."""
    limits = CheckLimits.from_settings(Settings.from_env({}, actor="tester", **settings))
    task = CheckTask(path, path.name, declared or TABLE, DisclosureRules())
    return run_limited(task, limits)


def assert_blocked_without_trace(report: dict, reason: Unreadable | None = None) -> None:
    assert report["status"] == "blocked", report
    if reason is not None:
        assert report["unreadable"] == reason.value
    text = json.dumps(report, ensure_ascii=False)
    for person in PEOPLE:
        assert person not in text and person[6:14] not in text


def small_table() -> pa.Table:
    return pa.table({"district": ["海勃湾区", "海南区", "乌达区"], "n": [120, 80, 45]})


# --------------------------------------------------------------------------- Parquet


def test_rows_hidden_in_parquet_key_value_metadata_are_found(tmp_path: Path) -> None:
    rows = [{"id": PEOPLE[i % len(PEOPLE)], "wage": 5000 + i} for i in range(200)]
    table = small_table().replace_schema_metadata({"notes": json.dumps(rows)})
    path = tmp_path / "by_district.parquet"
    pq.write_table(table, path)
    report = check(path)
    assert_blocked_without_trace(report)
    places = {f["column"] for f in report["findings"]}
    assert places == {"parquet key-value metadata"}
    assert {f["kind"] for f in report["findings"]} == {"cn_resident_id"}


def test_rows_hidden_in_parquet_field_metadata_are_found(tmp_path: Path) -> None:
    schema = pa.schema(
        [pa.field("district", pa.string(), metadata={"who": SECRET}), pa.field("n", pa.int64())]
    )
    path = tmp_path / "by_district.parquet"
    pq.write_table(small_table().cast(schema), path)
    report = check(path)
    assert_blocked_without_trace(report)
    assert "parquet field metadata" in {f["column"] for f in report["findings"]}


def test_an_identifier_as_a_parquet_column_name_is_found(tmp_path: Path) -> None:
    path = tmp_path / "by_district.parquet"
    pq.write_table(small_table().append_column(SECRET, pa.array([1, 2, 3])), path)
    report = check(path)
    assert_blocked_without_trace(report)
    assert any(f["row"] == 0 for f in report["findings"])  # the header row


def test_an_identifier_as_a_nested_field_name_is_found(tmp_path: Path) -> None:
    nested = pa.array([{SECRET: 1}, {SECRET: 2}, {SECRET: 3}])
    path = tmp_path / "by_district.parquet"
    pq.write_table(small_table().append_column("detail", nested), path)
    report = check(path)
    assert_blocked_without_trace(report)
    assert "parquet schema" in {f["column"] for f in report["findings"]}


def test_bytes_no_reader_looks_at_block_a_parquet_file(tmp_path: Path) -> None:
    """Data tucked between the last column chunk and the footer: valid Parquet, unread by all."""
    clean = tmp_path / "clean.parquet"
    pq.write_table(small_table(), clean)
    data = clean.read_bytes()
    footer_len = struct.unpack("<I", data[-8:-4])[0]
    body_end = len(data) - 8 - footer_len
    assert pq.ParquetFile(clean).metadata.num_rows == 3
    # Shift the footer by the hidden bytes: chunk offsets are absolute, so they still hold.
    hidden = data[:body_end] + ",".join(PEOPLE).encode() + data[body_end:]
    path = tmp_path / "by_district.parquet"
    path.write_bytes(hidden)
    assert pq.read_table(path).num_rows == 3  # every reader still opens it
    assert_blocked_without_trace(check(path), Unreadable.PARQUET_UNACCOUNTED_BYTES)


def test_a_parquet_decompression_bomb_is_refused_before_loading(tmp_path: Path) -> None:
    path = tmp_path / "bomb.parquet"
    duckdb.connect().execute(
        f"COPY (SELECT repeat('x', 1700) AS district, 1 AS n FROM range(1000000)) "
        f"TO '{path}' (COMPRESSION zstd, ROW_GROUP_SIZE 1000000)"
    )
    assert path.stat().st_size < 4096  # a few KB that expand to 1.7 GB of cells
    assert_blocked_without_trace(check(path), Unreadable.TOO_MANY_ROWS)


def test_a_checker_out_of_memory_blocks_the_output(tmp_path: Path) -> None:
    """Had the row cap been set too high, the process's memory limit still holds."""
    path = tmp_path / "bomb.parquet"
    duckdb.connect().execute(
        f"COPY (SELECT repeat('x', 1700) AS district, 1 AS n FROM range(1000000)) "
        f"TO '{path}' (COMPRESSION zstd, ROW_GROUP_SIZE 1000000)"
    )
    report = check(path, check_max_rows=10_000_000, check_max_mb=100_000, check_memory_mb=200)
    assert_blocked_without_trace(report)
    # A failed allocation is reported as such when the library raises; one that aborts instead
    # (Arrow's C bridge does) kills the child, which is reported as a crash. Never a pass.
    assert report["unreadable"] in (Unreadable.CHECKER_MEMORY, Unreadable.CHECKER_CRASHED)


def test_a_checker_past_its_deadline_blocks_the_output(tmp_path: Path) -> None:
    path = tmp_path / "by_district.parquet"
    pq.write_table(small_table(), path)
    assert check(path)["status"] == "pass"
    assert_blocked_without_trace(check(path, check_seconds=0), Unreadable.CHECKER_TIMEOUT)


# --------------------------------------------------------------------------- JSON, CSV


def test_identifiers_in_unicode_escaped_json_keys_and_values_are_found(tmp_path: Path) -> None:
    def escaped(text: str) -> str:
        return "".join(f"\\u{ord(c):04x}" for c in text)

    path = tmp_path / "by_district.json"
    path.write_text(
        f'[{{"district": "海南区", "n": 80, "{escaped(PEOPLE[1])}": 1}},'
        f' {{"district": "{escaped(PEOPLE[2])}", "n": 45}}]'
    )
    assert PEOPLE[1] not in path.read_text()  # the raw text holds no identifier
    report = check(path)
    assert_blocked_without_trace(report)
    # A list of objects is a table: the key is found in the header, the value in its cell.
    assert {(f["row"], f["column"]) for f in report["findings"]} == {(0, None), (2, "district")}


def test_numbers_in_json_are_read_as_written(tmp_path: Path) -> None:
    path = tmp_path / "by_district.json"
    path.write_text('[{"district": "海南区", "n": 1.3812345678e10}]')
    report = check(path)
    assert report["status"] == "blocked"
    assert [f["kind"] for f in report["findings"]] == ["cn_mobile"]


def test_a_csv_that_does_not_parse_is_blocked(tmp_path: Path) -> None:
    path = tmp_path / "by_district.csv"
    path.write_text(f'district,n\n"海南区,80\n{SECRET},1,2\n')
    assert_blocked_without_trace(check(path), Unreadable.CSV_INVALID)


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("by_district.csv", "parquet", Unreadable.ENCODING),
        ("by_district.parquet", "csv", Unreadable.PARQUET_INVALID),
        ("by_district.json", "csv", Unreadable.JSON_INVALID),
        ("chart.png", "svg", Unreadable.PNG_INVALID),
        ("chart.svg", "json", Unreadable.SVG_INVALID),
        ("by_district.xlsx", "csv", Unreadable.UNKNOWN_FORMAT),
    ],
)
def test_content_that_is_not_the_declared_format_is_blocked(
    tmp_path: Path, name: str, content: str, reason: Unreadable
) -> None:
    source = tmp_path / "source"
    source.mkdir()
    made = {
        "csv": source / "t.csv",
        "parquet": source / "t.parquet",
        "json": source / "t.json",
        "svg": source / "t.svg",
    }
    made["csv"].write_text(f"district,n\n{SECRET},1\n")
    pq.write_table(pa.table({"district": [SECRET], "n": [1]}), made["parquet"])
    made["json"].write_text(json.dumps([{"district": SECRET, "n": 1}]))
    made["svg"].write_text(f'<svg xmlns="http://www.w3.org/2000/svg"><desc>{SECRET}</desc></svg>')
    path = tmp_path / name
    path.write_bytes(made[content].read_bytes())
    kind = "figure" if name.endswith((".png", ".svg")) else "table"
    assert_blocked_without_trace(check(path, {**TABLE, "kind": kind}), reason)


# --------------------------------------------------------------------------- figures

FIGURE = {"kind": "figure", "context": "x"}


def png(*extra: bytes, trailing: bytes = b"") -> bytes:
    ihdr = chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 0, 0, 0, 0))
    pixels = chunk(b"IDAT", zlib.compress(b"\0\x10\x20" * 2))
    return b"\x89PNG\r\n\x1a\n" + ihdr + b"".join(extra) + pixels + chunk(b"IEND", b"") + trailing


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def test_a_plain_figure_goes_to_review(tmp_path: Path) -> None:
    path = tmp_path / "chart.png"
    path.write_bytes(png(chunk(b"tEXt", b"Software\0matplotlib")))
    report = check(path, FIGURE)
    assert report["status"] == "review" and report["findings"] == []


def test_rows_in_a_compressed_png_text_chunk_are_found(tmp_path: Path) -> None:
    hidden = zlib.compress("\n".join(PEOPLE).encode())
    path = tmp_path / "chart.png"
    path.write_bytes(png(chunk(b"zTXt", b"Comment\0\0" + hidden)))
    report = check(path, FIGURE)
    assert_blocked_without_trace(report)
    assert {f["column"] for f in report["findings"]} == {"png zTXt"}
    assert len(report["findings"]) == len(PEOPLE)


@pytest.mark.parametrize(
    ("made", "reason"),
    [
        (png(trailing=",".join(PEOPLE).encode()), Unreadable.PNG_TRAILING_DATA),
        (png(chunk(b"prVt", ",".join(PEOPLE).encode())), Unreadable.PNG_UNKNOWN_CHUNK),
        (
            png(chunk(b"iCCP", b"icc\0\0" + zlib.compress(SECRET.encode()))),
            Unreadable.PNG_UNKNOWN_CHUNK,
        ),
    ],
    ids=["after IEND", "private chunk", "iCCP profile"],
)
def test_png_data_no_viewer_shows_blocks_it(
    tmp_path: Path, made: bytes, reason: Unreadable
) -> None:
    path = tmp_path / "chart.png"
    path.write_bytes(made)
    assert_blocked_without_trace(check(path, FIGURE), reason)


def test_data_after_the_image_in_the_compressed_pixels_blocks_it(tmp_path: Path) -> None:
    pixels = zlib.compress(b"\0\x10\x20" * 2 + SECRET.encode())
    ihdr = chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 0, 0, 0, 0))
    path = tmp_path / "chart.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + ihdr + chunk(b"IDAT", pixels) + chunk(b"IEND", b""))
    assert_blocked_without_trace(check(path, FIGURE), Unreadable.PNG_TRAILING_DATA)


def test_a_bad_scanline_filter_type_blocks_a_png(tmp_path: Path) -> None:
    """A filter-type byte outside 0..4 is 3 bits per scanline that no viewer shows."""
    ihdr = chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 0, 0, 0, 0))
    pixels = zlib.compress(b"\x07\x10\x20\x00\x10\x20")
    path = tmp_path / "chart.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + ihdr + chunk(b"IDAT", pixels) + chunk(b"IEND", b""))
    assert_blocked_without_trace(check(path, FIGURE), Unreadable.PNG_INVALID)


def test_rows_in_svg_desc_title_and_attributes_are_found(tmp_path: Path) -> None:
    path = tmp_path / "chart.svg"
    path.write_text(
        '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
        f"<title>wages</title><desc>{PEOPLE[0]} {PEOPLE[1]}</desc>"
        f'<rect data-who="{PEOPLE[2]}" width="1" height="1"/><!-- {PEOPLE[3]} --></svg>'
    )
    report = check(path, FIGURE)
    assert_blocked_without_trace(report)
    assert {f["column"] for f in report["findings"]} == {
        "svg text",
        "svg attribute",
        "svg comment",
    }


def test_svg_entities_are_refused_not_expanded(tmp_path: Path) -> None:
    path = tmp_path / "chart.svg"
    path.write_text(
        '<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY a "aaaaaaaaaa">'
        '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        '<svg xmlns="http://www.w3.org/2000/svg"><desc>&b;</desc></svg>'
    )
    assert_blocked_without_trace(check(path, FIGURE), Unreadable.SVG_DOCTYPE)


def test_a_plotting_library_svg_with_a_public_doctype_is_read(tmp_path: Path) -> None:
    path = tmp_path / "chart.svg"
    path.write_text(
        '<?xml version="1.0" encoding="utf-8" standalone="no"?>\n'
        '<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN"\n'
        '  "http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd">\n'
        '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
        "<title>各区缴费人数</title><path d='M 0 0 L 1 1'/></svg>"
    )
    report = check(path, FIGURE)
    assert report["status"] == "review" and report["findings"] == []
    undeclared = tmp_path / "entity.svg"
    undeclared.write_text(
        '<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" "svg11.dtd">'
        '<svg xmlns="http://www.w3.org/2000/svg"><desc>&who;</desc></svg>'
    )
    assert_blocked_without_trace(check(undeclared, FIGURE))
