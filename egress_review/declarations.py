"""Don't trust a table's declarations: check what a table output says about itself.

A job's code writes its table and declares its group-by keys, counts and values; a hostile job
can declare a per-person listing as a "table" grouped by a pseudonym, or write counts of 50
over cells of 3 people. Before the disclosure rules look at any cell, this module checks the
declaration against what the platform holds:

- the group-by keys are unique per row (a table has one row per group);
- each group-by column is a workspace column that is a public grouping (`aggregation.keys`:
  categories, a generalising transform, bounded integers, months; never a pseudonym, a wage or
  an exact date), and the table's keys are values that column holds (or a margin label);
- the row count is no larger than the product of the key columns' domain sizes;
- counts and magnitudes agree with the contributor-level helper file, whose contributor keys
  are persons of the workspace (pseudonyms present in it).

A failed structural check blocks the output. A table whose numbers cannot be verified (no
helper, invented contributor keys, unreadable helper) is `unverified` and goes to review: it
never passes on its own word. Tables computed by a `table:` action are `platform`-verified.
All of it runs in DuckDB over the table, the helper and the read-only workspace.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from aggregation.keys import MARGIN_LABELS, key_problem, monthly_dates
from privacy.schema import ColumnInfo, Schema, read_columns, resolve_units
from shuyu.errors import ShuyuError

CONTRIBUTOR = "contributor"
VALUE_TOLERANCE = 0.01  # absolute: a table may round magnitudes to two decimals
_STAT_SQL = {
    "mean": "avg", "avg": "avg", "average": "avg", "sum": "sum", "total": "sum",
    "min": "min", "minimum": "min", "max": "max", "maximum": "max", "median": "median",
}  # fmt: skip


class Verification(StrEnum):
    PLATFORM = "platform"  # computed by the platform (a `table:` action) and re-checked
    HELPER = "helper"  # agrees with contributor data keyed by persons of the workspace
    UNVERIFIED = "unverified"  # rests on the job's word: review, never pass
    NOT_CHECKED = "not_checked"  # a local pre-check without a workspace


@dataclass
class DeclarationCheck:
    group_by: list[str]
    verification: Verification = Verification.UNVERIFIED
    problems: list[str] = field(default_factory=list)  # each one blocks the output
    notes: list[str] = field(default_factory=list)
    domains: dict[str, int] = field(default_factory=dict)
    persons: np.ndarray | None = field(default=None, repr=False)  # per table row, from the helper
    helper_usable: bool = True  # False: the contributor data cannot back the SDC rules either

    def to_dict(self) -> dict[str, Any]:
        return {
            "group_by": self.group_by,
            "verification": self.verification.value,
            "problems": self.problems,
            "notes": self.notes,
            "domains": self.domains,
        }


def value_statistics(declared: dict[str, Any]) -> dict[str, str]:
    """The statistic of each declared value column (the platform's own for `table:` outputs)."""
    platform = (declared.get("aggregation") or {}).get("statistics") or {}
    stats = [s for s in declared.get("statistics") or [] if s != "count"]
    default = stats[0] if stats else "mean"
    return {v: str(platform.get(v, default)) for v in declared.get("values") or []}


def check_declarations(
    table: pd.DataFrame,
    declared: dict[str, Any],
    *,
    workspace: Path | None,
    contributors: Path | None,
) -> DeclarationCheck:
    counts = [str(c) for c in declared.get("counts") or []]
    values = [str(c) for c in declared.get("values") or []]
    group_by = [str(c) for c in declared.get("group_by") or []] or [
        str(c) for c in table.columns if c not in counts + values
    ]
    check = DeclarationCheck(group_by)
    if not (declared.get("group_by") or counts or values):
        check.group_by = []
        check.notes.append("no group_by, counts or values declared: nothing to verify")
        return check
    missing = [c for c in dict.fromkeys(group_by + counts + values) if c not in table.columns]
    if missing:
        check.problems.append(f"declared column(s) {', '.join(missing)} are not in the table")
        return check
    con = duckdb.connect()
    try:
        con.register("t", table.reset_index(drop=True).assign(__row=np.arange(len(table))))
        types = {r[0]: r[1] for r in con.execute("DESCRIBE t").fetchall()}
        _check_unique(con, check, types, len(table))
        _check_numeric(con, check, counts + values)
        schema: Schema | None = None
        if workspace is not None:
            con.execute("ATTACH ? AS ws (READ_ONLY)", [str(workspace)])
            schema = read_columns(con, "ws")
            _check_keys(con, check, schema, types, len(table))
        if contributors is None:
            if schema is not None:
                check.notes.append(
                    "no contributor data: the table's numbers rest on the job's word "
                    "(write a contributors: file, or compute it with a table: action)"
                )
        else:
            _verify_helper(con, check, contributors, schema, types, counts, declared)
    except (duckdb.Error, ShuyuError) as exc:
        check.helper_usable = False
        check.verification = Verification.UNVERIFIED
        check.notes.append(f"the declaration could not be verified ({type(exc).__name__})")
    finally:
        con.close()
    if workspace is None:  # a local pre-check: nothing to verify against
        check.verification = Verification.NOT_CHECKED
    return check


def _check_unique(
    con: duckdb.DuckDBPyConnection, check: DeclarationCheck, types: dict[str, str], n_rows: int
) -> None:
    """Keys compared as the platform reads them (trimmed, case-folded, 3.0 as 3), so that
    `海南区` and `海南区 ` cannot pass as two groups."""
    if check.group_by:
        keys = ", ".join(_norm(_q(c), types[c]) for c in check.group_by)
        (distinct,) = con.execute(
            f"SELECT count(*) FROM (SELECT DISTINCT {keys} FROM t)"
        ).fetchone()  # type: ignore[misc]
        duplicated = n_rows - int(distinct)
    else:
        duplicated = max(n_rows - 1, 0)
    if duplicated:
        check.problems.append(
            f"the group-by keys ({', '.join(check.group_by) or 'none'}) repeat on {duplicated} "
            "row(s): a table has one row per group, so this is row-level data"
        )


def _check_numeric(
    con: duckdb.DuckDBPyConnection, check: DeclarationCheck, cells: list[str]
) -> None:
    """Count and value cells are numbers: text in them is not a statistic the rules can judge."""
    for column in cells:
        (n,) = con.execute(
            f"SELECT count_if({_q(column)} IS NOT NULL AND TRY_CAST({_q(column)} AS DOUBLE) IS NULL) FROM t"
        ).fetchone()  # type: ignore[misc]
        if n:
            check.problems.append(f"{column}: {n} cell(s) are not numbers")


def _check_keys(
    con: duckdb.DuckDBPyConnection,
    check: DeclarationCheck,
    schema: Schema,
    types: dict[str, str],
    n_rows: int,
) -> None:
    monthly = monthly_dates(con, "ws", schema)
    for column in check.group_by:
        found = [schema[d][column] for d in sorted(schema) if column in schema[d]]
        if not found:
            check.problems.append(
                f"group_by {column} is not a column of the project's workspace, so its groups "
                "cannot be checked: name it after the workspace column it groups by, or compute "
                "the table with a table: action"
            )
            continue
        public = [i for i in found if key_problem(i, (i.dataset, i.name) in monthly) is None]
        if not public:
            why = key_problem(found[0], (found[0].dataset, found[0].name) in monthly)
            check.problems.append(f"group_by {column}: {why}")
            continue
        domain = f"_dom_{len(check.domains)}"
        con.execute(f"CREATE TEMP TABLE {domain} AS {_domain_sql(public)}")
        key = _norm(_q(column), types[column])
        outside, margins, nulls = con.execute(
            f"SELECT count_if(k NOT IN (SELECT v FROM {domain}) AND NOT list_contains(?, k)), "
            f"count_if(list_contains(?, k)) > 0, count_if(k IS NULL) > 0 "
            f"FROM (SELECT {key} AS k FROM t)",
            [list(MARGIN_LABELS), list(MARGIN_LABELS)],
        ).fetchone()  # type: ignore[misc]
        if outside:
            where = ", ".join(f"{i.dataset}.{i.name}" for i in public)
            check.problems.append(
                f"group_by {column}: {outside} row(s) hold keys that are not values of the "
                f"workspace column ({where})"
            )
        (size,) = con.execute(f"SELECT count(*) FROM {domain}").fetchone()  # type: ignore[misc]
        check.domains[column] = int(size) + int(bool(margins)) + int(bool(nulls))
    if check.domains and len(check.domains) == len(check.group_by):
        product = math.prod(check.domains.values())
        if n_rows > product:
            check.problems.append(
                f"{n_rows} rows but the group-by columns allow at most {product} groups"
            )


def _domain_sql(public: list[ColumnInfo]) -> str:
    parts = []
    for info in public:
        if info.categories:
            cats = ", ".join(
                "'" + c.replace("'", "''").lower().strip() + "'" for c in info.categories
            )
            parts.append(f"SELECT unnest([{cats}]) AS v")
        else:
            parts.append(
                f"SELECT DISTINCT {_norm(_q(info.name), info.sql_type)} AS v "
                f"FROM ws.{_q(info.dataset)} WHERE {_q(info.name)} IS NOT NULL"
            )
    return " UNION ".join(parts)


def _verify_helper(
    con: duckdb.DuckDBPyConnection,
    check: DeclarationCheck,
    path: Path,
    schema: Schema | None,
    types: dict[str, str],
    counts: list[str],
    declared: dict[str, Any],
) -> None:
    reader = "read_csv_auto" if path.suffix.lower() == ".csv" else "read_parquet"
    literal = "'" + str(path).replace("'", "''") + "'"
    con.execute(f"CREATE TEMP VIEW h AS SELECT * FROM {reader}({literal})")
    htypes = {r[0]: r[1] for r in con.execute("DESCRIBE h").fetchall()}
    stats = value_statistics(declared)
    needed = [*check.group_by, CONTRIBUTOR, *stats]
    absent = [c for c in needed if c not in htypes]
    if absent:
        check.helper_usable = False
        check.verification = Verification.UNVERIFIED
        check.notes.append(f"the contributor data lack column(s) {', '.join(absent)}: unverified")
        return
    unknown = [v for v, s in stats.items() if s.lower() not in _STAT_SQL]
    if schema is not None:
        invented = _invented_contributors(con, schema)
        if invented:
            check.helper_usable = False  # invented rows cannot back the dominance rules either
            check.verification = Verification.UNVERIFIED
            check.notes.append(
                f"{invented} contributor key(s) in the contributor data are not persons of the "
                "workspace: the table's numbers cannot be verified"
            )
            return
    hkeys = [f"{_norm(_q(c), htypes[c])} AS {_q(c)}" for c in check.group_by]
    tkeys = [f"{_norm(_q(c), types[c])} AS {_q(c)}" for c in check.group_by]
    per_value = [
        f"{_STAT_SQL[s.lower()]}(TRY_CAST({_q(v)} AS DOUBLE)) AS {_q('__v_' + v)}"
        for v, s in stats.items()
        if v not in unknown
    ]
    group = f" GROUP BY {', '.join(str(i + 1) for i in range(len(hkeys)))}" if hkeys else ""
    cells_sql = (
        f"SELECT {', '.join([*hkeys, f'count(DISTINCT {CONTRIBUTOR}) AS __persons', 'count(*) AS __rows', *per_value])} "
        f"FROM h{group}"
    )
    tsel = ", ".join([*tkeys, "__row", *(f"{_q(c)}" for c in counts + list(stats))])
    joined = f"SELECT * FROM (SELECT {tsel} FROM t) tt " + (
        f"LEFT JOIN ({cells_sql}) hh USING ({', '.join(_q(c) for c in check.group_by)})"
        if hkeys
        else f"CROSS JOIN ({cells_sql}) hh"
    )
    con.execute(f"CREATE TEMP TABLE j AS {joined}")
    disagree: list[str] = []
    for c in counts:
        (n,) = con.execute(
            f"SELECT count(*) FROM j WHERE {_q(c)} IS NOT NULL AND NOT isnan(TRY_CAST({_q(c)} AS DOUBLE)) "
            f"AND TRY_CAST({_q(c)} AS DOUBLE) IS DISTINCT FROM coalesce(__persons, 0) "
            f"AND TRY_CAST({_q(c)} AS DOUBLE) IS DISTINCT FROM coalesce(__rows, 0)"
        ).fetchone()  # type: ignore[misc]
        if n:
            disagree.append(f"{c} ({n} cell(s))")
    for v in stats:
        if v in unknown:
            continue
        t, h = f"TRY_CAST({_q(v)} AS DOUBLE)", _q("__v_" + v)
        (n,) = con.execute(
            f"SELECT count(*) FROM j WHERE {t} IS NOT NULL AND NOT isnan({t}) AND ({h} IS NULL "
            f"OR abs({t} - {h}) > greatest({VALUE_TOLERANCE}, 1e-6 * abs({h})))"
        ).fetchone()  # type: ignore[misc]
        if n:
            disagree.append(f"{v} ({n} cell(s))")
    if disagree:
        check.problems.append(
            "the table's numbers disagree with its contributor data: " + ", ".join(disagree)
        )
    persons = con.execute("SELECT coalesce(__persons, 0) FROM j ORDER BY __row").fetchnumpy()
    check.persons = np.asarray(next(iter(persons.values())), dtype=float)
    if unknown:
        check.verification = Verification.UNVERIFIED
        check.notes.append(f"no way to verify the statistic of {', '.join(unknown)}: unverified")
    elif not disagree:
        check.verification = (
            Verification.PLATFORM if declared.get("aggregation") else Verification.HELPER
        )


def _invented_contributors(con: duckdb.DuckDBPyConnection, schema: Schema) -> int:
    """Distinct contributor keys of the helper that are not a person key of the workspace.

    The helper's distinct keys are struck off table by table, smallest person table first (the
    person register usually finds them all), so the large event tables are rarely scanned.
    """
    try:
        units = resolve_units(schema)
    except ShuyuError:
        units = {}
    columns = [(d, c) for d, c in units.items()] or [
        (d, i.name)
        for d, cols in schema.items()
        for i in cols.values()
        if i.role == "direct_identifier" and i.transform == "pseudonymise"
    ]
    con.execute(
        f"CREATE TEMP TABLE unmatched AS SELECT DISTINCT lower(CAST({CONTRIBUTOR} AS VARCHAR)) "
        "AS p FROM h"
    )
    sizes = {
        d: int(n)
        for d, n in con.execute(
            "SELECT table_name, estimated_size FROM duckdb_tables() WHERE database_name = 'ws'"
        ).fetchall()
    }
    for dataset, column in sorted(columns, key=lambda dc: sizes.get(dc[0], 0)):
        (left,) = con.execute("SELECT count(*) FROM unmatched WHERE p IS NOT NULL").fetchone()  # type: ignore[misc]
        if not left:
            break
        # workspace pseudonyms are lower-case hex already: no per-row function on the big side
        con.execute(
            f"DELETE FROM unmatched WHERE p IN (SELECT CAST({_q(column)} AS VARCHAR) "
            f"FROM ws.{_q(dataset)} WHERE {_q(column)} IS NOT NULL)"
        )
    (n,) = con.execute("SELECT count(*) FROM unmatched").fetchone()  # type: ignore[misc]
    return int(n)


def _norm(expr: str, duck_type: str) -> str:
    """A key as comparable text: whole floats as integers, midnight timestamps as dates."""
    t = duck_type.upper()
    if t in ("DOUBLE", "FLOAT", "REAL") or t.startswith("DECIMAL"):
        text = (
            f"CASE WHEN {expr} = trunc({expr}) AND abs({expr}) < 1e15 "
            f"THEN CAST(CAST({expr} AS BIGINT) AS VARCHAR) ELSE CAST({expr} AS VARCHAR) END"
        )
    elif t.startswith("TIMESTAMP"):
        text = (
            f"CASE WHEN {expr} = date_trunc('day', {expr}) "
            f"THEN CAST(CAST({expr} AS DATE) AS VARCHAR) ELSE CAST({expr} AS VARCHAR) END"
        )
    else:
        text = f"CAST({expr} AS VARCHAR)"
    return f"lower(trim({text}))"


def _q(name: str) -> str:
    return '"' + str(name).replace('"', '""') + '"'
