"""collect_outputs against hostile output folders built directly on the host (no sandbox needed).

These cover what a sandboxed job cannot even create (device nodes, hard links to host files)
in case a backend ever lets one through, plus the type and content checks.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

import duckdb
import pytest

from sandbox import collect_outputs


@pytest.fixture
def out(tmp_path: Path) -> Path:
    d = tmp_path / "output"
    d.mkdir()
    return d


def _reasons(report) -> dict[str, str]:
    return {r.path: r.reason for r in report.refused}


def test_accepts_the_six_types_and_counts_rows(out: Path, tmp_path: Path) -> None:
    (out / "t.csv").write_text("a,b,c\n1,2,3\n4,5,6\n")
    duckdb.sql(
        "COPY (SELECT range AS x, 'v' AS y FROM range(42)) TO "
        f"'{out / 't.parquet'}' (FORMAT parquet)"
    )
    (out / "m.json").write_text(json.dumps({"k": [1, 2]}))
    (out / "n.txt").write_text("héllo\n")
    (out / "c.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 32)
    (out / "c.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"/>')
    dest = tmp_path / "dest"
    report = collect_outputs(
        out, ["t.csv", "t.parquet", "m.json", "n.txt", "c.png", "c.svg"], 10, 10 * 1024**2, dest
    )
    assert report.ok and not report.undeclared
    got = {f.path: (f.kind, f.rows, f.columns) for f in report.accepted}
    assert got == {
        "t.csv": ("csv", 2, 3),
        "t.parquet": ("parquet", 42, 2),
        "m.json": ("json", None, None),
        "n.txt": ("txt", None, None),
        "c.png": ("png", None, None),
        "c.svg": ("svg", None, None),
    }
    for f in report.accepted:
        data = (dest / f.path).read_bytes()
        assert data == (out / f.path).read_bytes()
        assert hashlib.sha256(data).hexdigest() == f.sha256 and len(data) == f.size


def test_refuses_device_nodes_fifos_and_links(out: Path, tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("creating a device node needs root")
    host_file = tmp_path / "host-secret.txt"
    host_file.write_text("secret\n")
    os.mknod(out / "null.txt", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.mkfifo(out / "pipe.csv")
    os.link(host_file, out / "hard.txt")
    (out / "soft.txt").symlink_to(host_file)
    (out / "dir").symlink_to(tmp_path)
    declared = ["null.txt", "pipe.csv", "hard.txt", "soft.txt", "dir/host-secret.txt"]
    report = collect_outputs(out, declared, 10, 1024**2, tmp_path / "dest")
    reasons = _reasons(report)
    assert reasons["null.txt"] == "device node"
    assert reasons["pipe.csv"] == "FIFO (named pipe)"
    assert "hard link" in reasons["hard.txt"]
    assert reasons["soft.txt"] == "symbolic link"
    assert reasons["dir"] == "symbolic link"
    assert not report.accepted and not list((tmp_path / "dest").rglob("*.txt"))
    assert host_file.read_text() == "secret\n"


@pytest.mark.parametrize("name", ["../x.csv", "/etc/passwd", "a/../../x.csv", "..", "", "a\\b.csv"])
def test_refuses_escaping_declarations(out: Path, tmp_path: Path, name: str) -> None:
    report = collect_outputs(out, [name], 10, 1024**2, tmp_path / "dest")
    assert not report.ok and report.refused[0].path == name


def test_content_must_match_the_extension(out: Path, tmp_path: Path) -> None:
    (out / "bad.parquet").write_bytes(b"PAR1 not really")
    (out / "bad.png").write_bytes(b"GIF89a")
    (out / "bad.json").write_text("{not json")
    (out / "bad.csv").write_bytes(b"a,b\n\xff\xfe,1\n")
    (out / "nul.txt").write_bytes(b"a\0b")
    (out / "bad.svg").write_bytes(b"<svg>\xff</svg>")
    (out / "run.sh").write_text("echo hi")
    (out / "x.exe").write_bytes(b"MZ")
    declared = ["bad.parquet", "bad.png", "bad.json", "bad.csv", "nul.txt", "bad.svg", "run.sh"]
    report = collect_outputs(out, declared, 10, 1024**2, tmp_path / "dest")
    reasons = _reasons(report)
    assert "Parquet" in reasons["bad.parquet"]
    assert "PNG" in reasons["bad.png"]
    assert "JSON" in reasons["bad.json"]
    assert "UTF-8" in reasons["bad.csv"]
    assert "NUL" in reasons["nul.txt"]
    assert "UTF-8" in reasons["bad.svg"]
    assert "type not allowed" in reasons["run.sh"]
    assert [u.path for u in report.undeclared] == ["x.exe"]
    assert not report.accepted and not any((tmp_path / "dest").iterdir())


def test_limits_and_missing(out: Path, tmp_path: Path) -> None:
    for i in range(3):
        (out / f"f{i}.txt").write_text("x" * 100)
    report = collect_outputs(
        out, ["f0.txt", "f1.txt", "f2.txt", "absent.csv"], 2, 1024**2, tmp_path / "d1"
    )
    assert [f.path for f in report.accepted] == ["f0.txt", "f1.txt"]
    assert "more than 2 files" in _reasons(report)["f2.txt"]
    assert report.missing == ("absent.csv",)
    report = collect_outputs(out, ["f0.txt", "f1.txt", "f2.txt"], 10, 250, tmp_path / "d2")
    assert [f.path for f in report.accepted] == ["f0.txt", "f1.txt"]
    assert "size limit" in _reasons(report)["f2.txt"]


def test_declared_folder_and_verify_only_mode(out: Path) -> None:
    (out / "charts").mkdir()
    (out / "charts" / "a.csv").write_text("k\n1\n")
    (out / "other.csv").write_text("k\n1\n")
    report = collect_outputs(out, ["charts/"], 10, 1024**2)
    assert [f.path for f in report.accepted] == ["charts/a.csv"] and report.dest is None
    assert [u.path for u in report.undeclared] == ["other.csv"]


def test_destination_must_be_empty(out: Path, tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "old").write_text("x")
    with pytest.raises(ValueError, match="empty"):
        collect_outputs(out, [], 1, 1, dest)
