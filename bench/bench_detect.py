"""Personal-information detection: throughput of the whole scan, and Presidio side by side.

1. Throughput: `scan_table` over a 1M-row x 5-column output (integers, Chinese text, hex
   hashes, floats, codes, a few planted identifiers), as Parquet and as CSV: patterns with the
   normalised forms (full-width, numerals, spaced, reversed, hex/base64 decoded, opaque
   tokens), then the whole detection with fingerprint linkage (200k fingerprinted raw
   identifiers: resident IDs and names, their pinyin and reversals) and pseudonym linkage
   (100k pseudonyms). Cells per CPU-second is the figure to compare on a busy machine
   (target: the whole detection at >= 0.5 M cells/CPU-s).
2. Peer: Microsoft Presidio's pattern recognisers (bench/envs/presidio, set up by
   bench/envs/setup.sh presidio; its AnalyzerEngine needs a spaCy model, which cannot be
   downloaded here, so its recognisers are called directly) over the same cells of a smaller
   table, one text per cell: cells per CPU-second of both and their ratio.
3. Recall on the same planted identifiers, as written and obfuscated, and false positives on
   ordinary values, for both.
Print only: no thresholds.
Usage: python bench/bench_detect.py [--rows 1000000] [--peer-rows 100000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import resource
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import common  # noqa: F401  (puts the repository on sys.path)
import duckdb
from common import ROOT

PRESIDIO_DIR = ROOT / "bench" / "envs" / "presidio"
PRESIDIO_PYTHON = PRESIDIO_DIR / "bin" / "python"
PLANTED_ROWS = (3, 4_242, 250_000, 777_777, 999_999)  # resident ID + mobile in `note`
EMAIL_EVERY = 50_000  # an e-mail address in `ref`
RAW_ROW, PSEUDONYM_ROW = 500_000, 600_000  # a fingerprinted name, a pseudonym of the project
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蒋蔡余杜叶程"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍红建国文辉思宇浩然欣怡子涵梓轩诗雨嘉"


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def write_table(
    con: duckdb.DuckDBPyConnection, rows: int, rid: str, name: str, pseudonym: str, target: Path
) -> None:
    planted = ", ".join(str(r) for r in PLANTED_ROWS if r <= rows)
    fmt = "(FORMAT parquet)" if target.suffix == ".parquet" else "(HEADER)"
    con.execute(
        f"""COPY (SELECT
              i AS id,
              CASE WHEN i IN ({planted}) THEN '复核 身份证 {rid} 电话13812345678'
                   WHEN i = {RAW_ROW} THEN '联系人{name}'
                   ELSE '乌海市 第' || i || '条 记录' END AS note,
              CASE WHEN i = {PSEUDONYM_ROW} THEN '{pseudonym}' ELSE md5(i::VARCHAR) END AS code,
              (i * 7919 % 1000003)::DOUBLE / 7 AS amount,
              CASE WHEN i % {EMAIL_EVERY} = 0 THEN 'mail user' || i || '@example.com'
                   ELSE 'R' || lpad((i * 37)::VARCHAR, 10, '0') END AS ref
            FROM range(1, {rows} + 1) t(i)) TO '{target}' {fmt}"""
    )


def linkage_sets(con: duckdb.DuckDBPyConnection, tmp: Path) -> tuple[object, Path, str]:
    """Fingerprints of 100k resident IDs and 100k names; a workspace of 100k pseudonyms."""
    from egress_review.fingerprints import FingerprintSet, build_fingerprints
    from policies.transforms import parse_transform, sql_expression

    snapshot = tmp / "snapshot.parquet"
    n_s, n_g = len(SURNAMES), len(GIVEN)
    con.execute(
        f"""COPY (SELECT '150302' || (19500101 + i % 500000)::VARCHAR
                         || lpad((i % 1000)::VARCHAR, 4, '0') AS resident_id,
                    substr('{SURNAMES}', 1 + i % {n_s}, 1) || substr('{GIVEN}', 1 + (i // {n_s}) % {n_g}, 1)
                    || CASE WHEN i < {n_s * n_g} THEN '' ELSE
                       substr('{GIVEN}', 1 + (i // ({n_s * n_g})) % {n_g}, 1) END AS name
                 FROM range(100000) t(i)) TO '{snapshot}'"""
    )
    key = os.urandom(32)
    fp_file = tmp / "fp.parquet"
    started = time.perf_counter()
    n_fp = build_fingerprints(
        snapshot, ["resident_id", "name"], key, fp_file, label="rs", names=["name"]
    )
    print(
        f"built {n_fp:,} fingerprints (IDs, names, pinyin, reversals) "
        f"in {time.perf_counter() - started:.2f} s"
    )
    workspace = tmp / "ws.duckdb"
    with duckdb.connect(str(workspace)) as ws:
        ws.execute(
            "CREATE TABLE _shuyu_columns (dataset VARCHAR, column_name VARCHAR, type VARCHAR, "
            "role VARCHAR, transform VARCHAR, bounds VARCHAR, categories VARCHAR[])"
        )
        ws.execute(
            "INSERT INTO _shuyu_columns VALUES ('residents', 'resident_id', 'string', "
            "'direct_identifier', '\"pseudonymise\"', NULL, NULL)"
        )
        expr = sql_expression("resident_id", "string", parse_transform("pseudonymise"))
        ws.execute(
            f"CREATE TABLE residents AS SELECT {expr} AS resident_id "
            f"FROM read_parquet('{snapshot}')",
            {"key": os.urandom(32).hex()},
        )
    return FingerprintSet([fp_file], key), workspace, str(snapshot)


def timed_scan(table: Path, repeat: int, **kwargs: object) -> tuple[float, float, list]:
    from egress_review.detect import scan_table
    from egress_review.extract import ReadLimits

    rows = duckdb.sql(f"SELECT count(*) FROM '{table}'").fetchall()[0][0]
    limits = ReadLimits(max_rows=max(rows, 1))  # a benchmark, not an output: its size is known
    walls, cpus, findings = [], [], []
    for _ in range(repeat):
        started, cpu = time.perf_counter(), cpu_seconds()
        findings = scan_table(table, table.name, limits=limits, **kwargs)  # type: ignore[arg-type]
        walls.append(time.perf_counter() - started)
        cpus.append(cpu_seconds() - cpu)
    return statistics.median(walls), statistics.median(cpus), findings


def presidio(texts: list[str], tmp: Path) -> dict | None:
    if not PRESIDIO_PYTHON.exists():
        print("Presidio venv missing: running bench/envs/setup.sh presidio")
        done = subprocess.run(
            ["bash", str(PRESIDIO_DIR.parent / "setup.sh"), "presidio"],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            print("Presidio could not be installed:\n" + (done.stderr or done.stdout)[-3000:])
            return None
    src, out = tmp / "texts.json", tmp / "presidio.json"
    src.write_text(json.dumps(texts, ensure_ascii=False), encoding="utf-8")
    done = subprocess.run(
        [str(PRESIDIO_PYTHON), str(PRESIDIO_DIR / "presidio_run.py"), "--texts", str(src),
         "--out", str(out)],
        capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )  # fmt: skip
    if done.returncode != 0:
        print("Presidio failed:\n" + done.stderr[-3000:])
        return None
    return json.loads(out.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def planted_lines(
    con: duckdb.DuckDBPyConnection, snapshot: str, workspace: Path
) -> list[tuple[str, str]]:
    """``(label, line)``: identifiers as written and disguised, then ordinary values."""
    from pypinyin import lazy_pinyin
    from stdnum import luhn

    from catalog.idcodes import org_code_check_char, resident_id_check_char, uscc_check_char

    full = str.maketrans("0123456789", "０１２３４５６７８９")
    numerals = str.maketrans("0123456789", "〇一二三四五六七八九")
    names = [
        r[0]
        for r in con.execute(
            f"SELECT name FROM '{snapshot}' WHERE length(name) = 3 LIMIT 10"
        ).fetchall()
    ]
    with duckdb.connect(str(workspace), read_only=True) as ws:
        pseudonyms = [
            r[0] for r in ws.execute("SELECT resident_id FROM residents LIMIT 10").fetchall()
        ]
    lines: list[tuple[str, str]] = []
    for i in range(10):
        body = f"1503021{970 + i}0{1 + i % 9}1{i}12{i}"
        rid = body + resident_id_check_char(body)
        mobile = f"139{i:04d}{5678 + i:04d}"
        card_body = f"622202{i:09d}"
        card = card_body + luhn.calc_check_digit(card_body)
        org = f"MA38{i:03d}9"
        org_bad = org + next(c for c in "0123456789" if c != org_code_check_char(org))
        uscc_body = "91150302" + org + org_code_check_char(org)
        lines += [
            ("resident ID", f"身份证 {rid}"),
            ("mobile", f"电话 {mobile}"),
            ("bank card", f"卡号 {card}"),
            ("bank card 4-4-4-4", "卡号 " + " ".join(card[j : j + 4] for j in range(0, 16, 4))),
            ("e-mail", f"邮箱 user{i}@example.com"),
            ("credit code", f"代码 {uscc_body + uscc_check_char(uscc_body)}"),
            (
                "credit code, bad org code",
                f"代码 {'91150302' + org_bad + uscc_check_char('91150302' + org_bad)}",
            ),
            ("ID full-width", rid.translate(full)),
            ("ID in numerals", rid.translate(numerals)),
            ("ID spaced with dots", f"{rid[:6]}.{rid[6:14]}.{rid[14:]}"),
            ("ID spaced digits", " ".join(rid)),
            ("ID reversed", rid[::-1]),
            ("ID hex", rid.encode().hex()),
            ("ID base64", base64.b64encode(rid.encode()).decode()),
            ("mobile 3-4-4", f"{mobile[:3]} {mobile[3:7]} {mobile[7:]}"),
            ("mobile reversed", mobile[::-1]),
            ("name in a sentence", f"请{names[i]}于周一到岗"),
            ("name in pinyin", " ".join(w.capitalize() for w in lazy_pinyin(names[i]))),
            ("pseudonym", pseudonyms[i]),
            ("pseudonym reversed", pseudonyms[i][::-1]),
            ("pseudonym base64", base64.b64encode(bytes.fromhex(pseudonyms[i])).decode()),
        ]
    controls = [
        "12345", "1,234,567.89", "3.14159265358979", "2024-01-15", "2024-01-15 10:00:03",
        "一九四九年十月一日", "乌海市海勃湾区2025年就业情况良好", "共 120 人, 平均 45.6 岁",
        "version 1.2.3.4", "192.168.100.200", "wages_by_district_2025", "20260115123045",
    ]  # fmt: skip
    return lines + [("control", c) for c in controls]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--peer-rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from catalog.idcodes import resident_id_check_char
    from egress_review.detect import Severity, scan_text

    body = "15030219690621225"
    rid = body + resident_id_check_char(body)
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        con = duckdb.connect()
        con.execute("SET enable_progress_bar = false")
        fingerprints, workspace, snapshot = linkage_sets(con, tmp_path)
        name = con.execute(
            f"SELECT name FROM '{snapshot}' WHERE length(name) = 3 LIMIT 1"
        ).fetchone()[0]  # type: ignore[index]
        with duckdb.connect(str(workspace), read_only=True) as ws:
            pseudonym = ws.execute("SELECT resident_id FROM residents LIMIT 1").fetchone()[0]  # type: ignore[index]
        linkage = {"fingerprints": fingerprints, "pseudonyms": workspace}

        # 1. throughput
        tables = [tmp_path / "output.parquet", tmp_path / "output.csv"]
        for table in tables:
            write_table(con, args.rows, rid, name, pseudonym, table)
        cells = args.rows * 5
        print(
            f"\n1. scan_table over {cells:,} cells (median of {args.repeat}, {os.cpu_count()} CPUs):"
        )
        for table in tables:
            for label, kwargs in (
                ("patterns + normalised forms", {}),
                ("whole detection", linkage),
            ):
                wall, cpu, findings = timed_scan(table, args.repeat, **kwargs)
                counts: dict[str, int] = {}
                for f in findings:
                    counts[f.kind] = counts.get(f.kind, 0) + 1
                print(
                    f"  {table.suffix[1:]:8s} {label:28s} {wall:6.2f} s "
                    f"{cells / wall / 1e6:5.2f} M cells/s | CPU {cpu:6.2f} s "
                    f"{cells / cpu / 1e6:5.2f} M cells/CPU-s | {len(findings)} findings {counts}"
                )

        # 2. peer throughput on the same cells
        peer = tmp_path / "peer.parquet"
        write_table(con, args.peer_rows, rid, name, pseudonym, peer)
        texts = [
            str(v)
            for row in con.execute(f"SELECT * FROM '{peer}'").fetchall()
            for v in row
            if v is not None
        ]
        _, ours_cpu, _ = timed_scan(peer, args.repeat, **linkage)
        result = presidio(texts, tmp_path)
        n = args.peer_rows * 5
        print(f"\n2. the same {n:,} cells, one text per cell:")
        print(f"  shuyu whole detection        {n / ours_cpu / 1e6:7.3f} M cells/CPU-s")
        if result is not None:
            print(
                f"  Presidio {result['version']} pattern recognisers "
                f"{n / result['cpu_s'] / 1e6:7.3f} M cells/CPU-s"
            )
            print(f"  ratio shuyu / Presidio: {result['cpu_s'] / ours_cpu:.1f}x")

        # 3. recall on planted identifiers
        planted = planted_lines(con, snapshot, workspace)
        findings = scan_text("\n".join(line for _, line in planted).encode(), "planted", **linkage)  # type: ignore[arg-type]
        blocked = {f.row for f in findings if f.severity is Severity.BLOCK}
        reviewed = {f.row for f in findings if f.severity is Severity.REVIEW} - blocked
        theirs = presidio([line for _, line in planted], tmp_path)
        print("\n3. recall on planted identifiers (blocked / review / Presidio found):")
        by_label: dict[str, list[int]] = {}
        for i, (label, _) in enumerate(planted, start=1):
            stats = by_label.setdefault(label, [0, 0, 0, 0])
            stats[0] += 1
            stats[1] += i in blocked
            stats[2] += i in reviewed
            stats[3] += bool(theirs and theirs["flags"][i - 1])
        totals = [0, 0, 0]
        for label, (count, ours, review, peer_hits) in by_label.items():
            shown = "n/a" if theirs is None else f"{peer_hits}/{count}"
            print(f"  {label:28s} shuyu {ours:2d}/{count} (+{review} review)   Presidio {shown}")
            if label != "control":
                totals = [totals[0] + count, totals[1] + ours, totals[2] + peer_hits]
        print(
            f"  recall: shuyu {totals[1] / totals[0]:.0%} blocked"
            + ("" if theirs is None else f", Presidio {totals[2] / totals[0]:.0%}")
            + " (control lines are false positives)"
        )


if __name__ == "__main__":
    main()
