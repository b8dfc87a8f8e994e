"""Linkage tests without clear values: keyed fingerprints of raw identifiers, pseudonym keys.

Two things in an output link it back to people even when no pattern detector fires:

1. **Raw direct identifiers** of a granted dataset (a name, an address, an ID written in an
   unusual format). When a dataset is registered the platform writes, from its snapshot, a
   Parquet file of *keyed* hashes of every distinct value of every ``direct_identifier`` column
   (:func:`build_fingerprints`). Only hashes and source column names are stored: without the
   platform key the file cannot be brute-forced, even for low-entropy values such as ID numbers.
   :class:`FingerprintSet` holds such files and the key; the detector hashes every output cell
   and token the same way, in DuckDB, and semi-joins against the files.
2. **Pseudonym keys** of the project (``policies.transforms``: 32 hex chars of a keyed hash).
   An output cell holding one is row-level linkage back to the workspace.
   :func:`load_pseudonyms` collects them from the workspace file (attached read-only).

The hash is the nested keyed SHA-256 that ``policies/transforms.py`` uses for pseudonyms,
``sha256(k || sha256(k || v))`` with ``k`` the key in hex, over the value normalised by
:func:`normalise_sql` (full-width ASCII folded to half-width, digit groups such as
``138 1234 5678`` compacted, surrounding whitespace stripped, upper-cased). Use a key of its
own (:func:`fingerprint_key`), never the pseudonymisation key, so that fingerprint hashes and
pseudonyms can never be compared.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from egress_review.fingerprint_forms import (
    SHAPES_FIELD,
    Shape,
    add_forms,
    parse_shapes,
    shapes_json,
    shapes_of,
)
from egress_review.normalise import COMPAT_ASCII, COMPAT_CHARS, COMPAT_RE, sql_str
from shuyu.errors import PlatformError, ValidationError

if TYPE_CHECKING:
    from shuyu.platform import Platform

FINGERPRINT_PURPOSE = "egress-fingerprint"
KEY_CHECK_FIELD = "shuyu_fingerprint_key_check"
MIN_VALUE_CHARS = 2  # one-character values (a lone digit or letter) would match everything
PSEUDONYM_TRANSFORMS = ('"pseudonymise"', "pseudonymise")  # canonical JSON, or a bare name

# Compatibility forms of ASCII (full-width, circled, mathematical digits, tone-marked pinyin
# vowels: NFKC with accents stripped, see ``normalise``) and the ideographic space, folded.
_FULL = COMPAT_CHARS
_HALF = COMPAT_ASCII
# Values worth folding: a compatibility digit, letter or @ (not mere full-width punctuation,
# which Chinese text is full of), and digits in one of the groups below.
FULL_WIDTH_RE = COMPAT_RE
GROUPED_DIGITS_RE = r"[0-9]{3}[ -][0-9]{4}[ -][0-9]{4}|[0-9]{6}[ -][0-9]{8}"
# Digit groups people write with spaces or hyphens: mobile 3-4-4, resident ID 6-8-4,
# card 4-4-4-4(-1..3). Each replacement runs twice: a match consumes the boundary character
# after it, so an adjacent second group is only compacted by the second pass.
_GROUPS = (
    (r"(^|[^0-9])(1[3-9][0-9])[ -]([0-9]{4})[ -]([0-9]{4})($|[^0-9])", r"\1\2\3\4\5"),
    (r"(^|[^0-9])([0-9]{6})[ -]([0-9]{8})[ -]([0-9]{3}[0-9Xx])($|[^0-9])", r"\1\2\3\4\5"),
    (
        r"(^|[^0-9])([0-9]{4})[ -]([0-9]{4})[ -]([0-9]{4})[ -]([0-9]{4})(?:[ -]([0-9]{1,3}))?($|[^0-9])",
        r"\1\2\3\4\5\6\7",
    ),
)


def sql_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def fold_sql(expr: str, *, unchanged: str | None = None) -> str:
    """Fold full-width ASCII to half-width and compact grouped digits (``138 1234 5678``).

    Both steps are costly, so each runs only on the values that need it: translate() on values
    holding a full-width digit, letter or @, the compaction on values holding a digit group.
    ``unchanged``: the SQL to return for values needing neither (default: the value).
    """

    def compact(value: str) -> str:
        for pattern, repl in _GROUPS:
            for _ in range(2):
                value = f"regexp_replace({value}, {sql_str(pattern)}, {sql_str(repl)}, 'g')"
        return value

    folded = f"translate({expr}, {sql_str(_FULL)}, {sql_str(_HALF)})"
    either = f"{FULL_WIDTH_RE}|{GROUPED_DIGITS_RE}"  # one pass for the many values needing neither
    return (
        f"(CASE WHEN NOT regexp_matches({expr}, {sql_str(either)}) THEN {unchanged or expr} "
        f"WHEN regexp_matches({expr}, {sql_str(FULL_WIDTH_RE)}) THEN {compact(folded)} "
        f"ELSE {compact(expr)} END)"
    )


def key_sql(expr: str) -> str:
    """The comparison form of an already folded value: whitespace stripped, upper-cased.

    (``trim(x, chars)`` is several times slower than a regular expression gated on the rare
    values that start or end with whitespace.)
    """
    edge = r"^[\s\x{3000}]|[\s\x{3000}]$"
    strip = r"^[\s\x{3000}]+|[\s\x{3000}]+$"
    return (
        f"upper(CASE WHEN regexp_matches({expr}, {sql_str(edge)}) "
        f"THEN regexp_replace({expr}, {sql_str(strip)}, '', 'g') ELSE {expr} END)"
    )


def normalise_sql(expr: str) -> str:
    """What is hashed, for a raw VARCHAR expression: fold, strip, upper-case."""
    return key_sql(fold_sql(expr))


def fingerprintable_sql(expr: str) -> str:
    """Whether a normalised value can be fingerprinted (at build) or looked up (at scan).

    One-character values, numbers of at most five digits and decimal fractions are left out:
    outputs are full of counts and amounts, so such values would match everywhere, and they
    identify no one.
    """
    return (
        f"(length({expr}) >= {MIN_VALUE_CHARS} "
        f"AND NOT regexp_full_match({expr}, '-?[0-9]{{1,5}}|-?[0-9]*\\.[0-9]+'))"
    )


def hash_sql(expr: str, key_param: str = "$fpkey") -> str:
    """Nested keyed SHA-256 of a normalised VARCHAR expression; the key is a bound parameter."""
    return f"sha256({key_param} || sha256({key_param} || {expr}))"


def key_check(key: bytes) -> str:
    """A value stored in each file so a scan with another key fails loudly, not silently."""
    return hashlib.sha256(b"shuyu fingerprint key check|" + key).hexdigest()[:16]


def fingerprint_key(platform: Platform) -> bytes:
    """The platform's fingerprint key: one for all datasets (fingerprints are per dataset,
    built at registration, and matched for every project), distinct from every pseudonym key."""
    return platform.project_key("*", FINGERPRINT_PURPOSE)


def build_fingerprints(
    snapshot_parquet: Path,
    columns: list[str],
    key: bytes,
    target: Path,
    *,
    label: str | None = None,
    names: Iterable[str] = (),
) -> int:
    """Write the keyed hashes of every distinct value of ``columns`` to ``target`` (Parquet).

    The file has two columns: ``h`` (64 hex chars) and ``column`` (``label.column`` when a label,
    such as the dataset name, is given). Every value is also fingerprinted reversed
    (``column (reversed)``), and the values of the ``names`` columns (person names, a subset of
    ``columns``) in pinyin too (``column (pinyin)``, see ``fingerprint_forms``). Rows are
    sorted by hash, so the file keeps nothing of the snapshot's row order. Values
    :func:`fingerprintable_sql` rejects (one character, short numbers, fractions) are left out.
    The file's key-value metadata holds the key check and the shapes of the values (class and
    length range), which lets the scan skip values no fingerprint can match. Everything runs in
    DuckDB; only the distinct characters of names reach Python (for their pinyin). Returns the
    number of fingerprints written.
    """
    _check_key(key)
    snapshot_parquet = Path(snapshot_parquet)
    target = Path(target)
    names = list(names)
    if not snapshot_parquet.is_file():
        raise ValidationError(
            "the snapshot to fingerprint does not exist",
            file=str(snapshot_parquet),
            fix="pass the registered snapshot's Parquet file",
        )
    if unknown := [c for c in names if c not in columns]:
        raise ValidationError(
            f"name column {', '.join(unknown)} is not among the fingerprinted columns",
            field="names",
            fix="list person-name columns among the direct identifiers",
        )
    con = duckdb.connect(config={"autoinstall_known_extensions": False})
    try:
        source = f"read_parquet({sql_str(str(snapshot_parquet))})"
        present = [row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()]
        missing = [c for c in columns if c not in present]
        if missing:
            raise ValidationError(
                f"the snapshot has no column {', '.join(missing)}",
                file=str(snapshot_parquet),
                fix="list only the dataset's direct_identifier columns",
            )

        def src(c: str) -> str:
            return f"{label}.{c}" if label else c

        selects = [
            f"SELECT {normalise_sql(f'CAST({sql_ident(c)} AS VARCHAR)')} AS v, "
            f"{sql_str(src(c))} AS src FROM {source}"
            for c in columns
        ]
        body = " UNION ALL ".join(selects) or "SELECT NULL::VARCHAR AS v, NULL::VARCHAR AS src"
        con.execute(
            f"CREATE TEMP TABLE base AS SELECT DISTINCT v, src FROM ({body}) "
            f"WHERE v IS NOT NULL AND {fingerprintable_sql('v')}"
        )
        add_forms(con, "base", [src(c) for c in names])
        con.execute(f"DELETE FROM base WHERE NOT {fingerprintable_sql('v')}")
        shapes = shapes_of(con, "base")
        con.execute(
            f'CREATE TEMP TABLE fp AS SELECT DISTINCT {hash_sql("v")} AS h, src AS "column" '
            "FROM base",
            {"fpkey": key.hex()},
        )
        count = con.execute("SELECT count(*) FROM fp").fetchone()[0]  # type: ignore[index]
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(
            prefix=".fingerprints-", suffix=".parquet", dir=target.parent
        )
        os.close(fd)
        try:
            con.execute(
                f'COPY (SELECT h, "column" FROM fp ORDER BY h, "column") TO {sql_str(tmp_name)} '
                f"(FORMAT parquet, KV_METADATA {{{KEY_CHECK_FIELD}: {sql_str(key_check(key))}, "
                f"{SHAPES_FIELD}: {sql_str(shapes_json(shapes))}}})"
            )
            os.replace(tmp_name, target)
        finally:
            Path(tmp_name).unlink(missing_ok=True)
        return int(count)
    except duckdb.Error as exc:
        # DuckDB messages can quote values; never pass them on.
        raise PlatformError(
            f"building fingerprints failed ({type(exc).__name__})",
            file=str(snapshot_parquet),
            fix="check that the snapshot is a readable Parquet file",
        ) from None
    finally:
        con.close()


class FingerprintSet:
    """Fingerprint files of granted datasets and the key they were built with.

    The key is checked against each file's stored key check, so a wrong key raises instead of
    silently matching nothing. The key is never part of the repr. ``shapes`` is the union of
    the files' value shapes, or None when a file predates them (then every value is hashed).
    """

    __slots__ = ("paths", "key", "shapes")

    def __init__(self, paths: Iterable[Path], key: bytes) -> None:
        _check_key(key)
        resolved = [Path(p) for p in paths]
        shapes: list[tuple[Shape, int, int]] | None = []
        con = duckdb.connect(config={"autoinstall_known_extensions": False})
        try:
            for path in resolved:
                _verify_file(con, path, key)
                found = _shapes_of_file(con, path)
                shapes = None if found is None or shapes is None else shapes + found
        finally:
            con.close()
        self.paths: list[Path] = resolved
        self.key: bytes = bytes(key)
        self.shapes: list[tuple[Shape, int, int]] | None = shapes

    def __repr__(self) -> str:
        return f"FingerprintSet(paths={[str(p) for p in self.paths]!r})"

    def relation_sql(self) -> str:
        """SQL of the relation ``(h, source)`` over all files (empty when there are none)."""
        if not self.paths:
            return "(SELECT NULL::VARCHAR AS h, NULL::VARCHAR AS source WHERE false)"
        files = ", ".join(sql_str(str(p)) for p in self.paths)
        return f'(SELECT h, "column" AS source FROM read_parquet([{files}]))'

    def __len__(self) -> int:
        if not self.paths:
            return 0
        con = duckdb.connect()
        try:
            return int(con.execute(f"SELECT count(*) FROM {self.relation_sql()}").fetchone()[0])  # type: ignore[index]
        finally:
            con.close()


def _shapes_of_file(
    con: duckdb.DuckDBPyConnection, path: Path
) -> list[tuple[Shape, int, int]] | None:
    rows = con.execute(
        "SELECT decode(value) FROM parquet_kv_metadata(?) WHERE decode(key) = ?",
        [str(path), SHAPES_FIELD],
    ).fetchall()
    if not rows:
        return None
    try:
        return parse_shapes(rows[0][0])
    except (ValueError, TypeError):
        raise ValidationError(
            "the fingerprint file's shapes are unreadable", file=str(path), fix="rebuild it"
        ) from None


def _verify_file(con: duckdb.DuckDBPyConnection, path: Path, key: bytes) -> None:
    if not path.is_file():
        raise ValidationError(
            "fingerprint file not found", file=str(path), fix="rebuild fingerprints"
        )
    try:
        rows = con.execute(
            "SELECT decode(value) FROM parquet_kv_metadata(?) WHERE decode(key) = ?",
            [str(path), KEY_CHECK_FIELD],
        ).fetchall()
    except duckdb.Error:
        raise ValidationError(
            "not a readable fingerprint file", file=str(path), fix="rebuild fingerprints"
        ) from None
    if not rows:
        raise ValidationError(
            "not a fingerprint file (it has no key check)",
            file=str(path),
            fix="build it with build_fingerprints",
        )
    if rows[0][0] != key_check(key):
        raise ValidationError(
            "the fingerprint file was built with another key",
            file=str(path),
            fix="use the platform's fingerprint key, or rebuild the file",
        )


def load_pseudonyms(con: duckdb.DuckDBPyConnection, workspace: Path, table: str) -> int:
    """Create temp table ``table(p, p16)``: the distinct pseudonym keys of a workspace file.

    The workspace is attached read-only; its ``_shuyu_columns`` table says which columns were
    pseudonymised. Returns how many distinct keys were loaded.
    """
    workspace = Path(workspace)
    if not workspace.is_file():
        raise ValidationError(
            "workspace file not found", file=str(workspace), fix="pass the project's workspace"
        )
    alias = "_shuyu_ws"
    try:
        con.execute(f"ATTACH {sql_str(str(workspace))} AS {alias} (READ_ONLY)")
    except duckdb.Error:
        raise ValidationError(
            "cannot open the workspace read-only", file=str(workspace), fix="pass a workspace file"
        ) from None
    try:
        try:
            listed = con.execute(
                f"SELECT DISTINCT dataset, column_name FROM {alias}._shuyu_columns "
                "WHERE transform IN (?, ?) ORDER BY ALL",
                list(PSEUDONYM_TRANSFORMS),
            ).fetchall()
        except duckdb.Error:
            raise ValidationError(
                "not a workspace: it has no _shuyu_columns table",
                file=str(workspace),
                fix="pass a workspace built by the platform",
            ) from None
        selects = [
            f"SELECT lower(CAST({sql_ident(c)} AS VARCHAR)) AS p FROM {alias}.{sql_ident(d)}"
            for d, c in listed
        ]
        body = " UNION ".join(selects) or "SELECT NULL::VARCHAR AS p WHERE false"
        try:
            con.execute(
                f"CREATE TEMP TABLE {table} AS SELECT DISTINCT p, left(p, 16) AS p16 "
                f"FROM ({body}) WHERE p IS NOT NULL AND length(p) >= 16"
            )
        except duckdb.Error:
            raise PlatformError(
                "reading the workspace's pseudonymised columns failed",
                file=str(workspace),
                fix="check that the workspace matches its _shuyu_columns table",
            ) from None
        return int(con.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # type: ignore[index]
    finally:
        con.execute(f"DETACH {alias}")


def _check_key(key: bytes) -> None:
    if not isinstance(key, bytes | bytearray) or len(key) < 16:
        raise ValidationError(
            "a fingerprint key is at least 16 bytes", fix="use fingerprint_key(platform)"
        )
