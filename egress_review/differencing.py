"""Differencing: two tables that each pass can reveal a small cell by subtraction.

A total and the total minus one group, or a table and the same table with one more filter,
publish two counts whose difference is the count of a group nobody asked for — possibly one
person. Every cell passes the threshold; the difference does not. Within a job and against the
project's earlier outputs held for review (later also released ones), tables over the same
group-by columns are compared cell by cell, and a table is also rolled up (its counts summed)
to the group-by columns of a coarser table. A count difference strictly between 0 and the
grant's `min_count` flags the output for review, naming both cells, in the reviewer's report
only (the analyst sees `review`, nothing more). DP outputs are exempt: their noise is the
protection.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from sqlalchemy import select

from aggregation.keys import MARGIN_LABELS
from egress_review.verdicts import Verdict
from policies.grant import policy_from_record
from shuyu.platform import Platform
from shuyu.schema import grants, job_outputs, jobs
from shuyu.vocabulary import JobState, OutputStatus

if TYPE_CHECKING:
    from egress_review.service import OutputCheck

# Jobs whose outputs may still reach someone: compared with every new job of the project.
HELD_STATES = (JobState.REVIEW_PENDING,)
MAX_LISTED = 20  # cells named per pair in the report; the count says how many there were


@dataclass
class HeldTable:
    job: str
    output: str
    group_by: tuple[str, ...]
    counts: tuple[str, ...]
    frame: pd.DataFrame  # keys as text, counts as floats
    check: OutputCheck | None = None  # set for the job being checked


def flag_differences(
    platform: Platform, job_id: str, checks: list[tuple[int, OutputCheck]]
) -> None:
    """Compare the job's table outputs with each other and with the project's held outputs;
    flag each output whose counts differ from another table's by fewer than `min_count`."""
    by_id = {output_id: check for output_id, check in checks}
    with platform.store.read() as conn:
        job = conn.execute(select(jobs.c.project, jobs.c.grant_id).where(jobs.c.id == job_id)).one()
        policy = conn.execute(
            select(grants.c.policy).where(grants.c.id == job.grant_id)
        ).scalar_one()
        own = (
            conn.execute(select(job_outputs).where(job_outputs.c.id.in_(list(by_id))))
            .mappings()
            .all()
        )
        earlier = (
            conn.execute(
                select(job_outputs)
                .join(jobs, jobs.c.id == job_outputs.c.job_id)
                .where(
                    jobs.c.project == job.project,
                    jobs.c.id != job_id,
                    jobs.c.dev == 0,
                    jobs.c.state.in_([s.value for s in HELD_STATES]),
                    job_outputs.c.status == OutputStatus.COLLECTED.value,
                )
                .order_by(job_outputs.c.id)
            )
            .mappings()
            .all()
        )
    threshold = policy_from_record(policy).disclosure.min_count
    mine = [t for r in own if (t := _held(platform, r, by_id.get(r["id"]))) is not None]
    others = [t for r in earlier if (t := _held(platform, r, None)) is not None]
    for i, table in enumerate(mine):
        assert table.check is not None
        for other in [*mine[:i], *mine[i + 1 :], *others]:
            found = _compare(table, other, threshold)
            if found:
                _flag(table.check, other, found, threshold)


def _held(platform: Platform, row: Any, check: OutputCheck | None) -> HeldTable | None:
    declared = row["declared"] or {}
    path = platform.resolve(row["stored_path"]) if row["stored_path"] else Path()
    counts = tuple(str(c) for c in declared.get("counts") or [])
    if (
        row["status"] != OutputStatus.COLLECTED
        or declared.get("kind", row["kind"]) != "table"
        or declared.get("dp")
        or not counts
        or path.suffix.lower() not in (".csv", ".parquet", ".json")
        or not path.is_file()
    ):
        return None
    try:
        frame = _read(path)
    except Exception:  # an unreadable output is blocked by its own checks; nothing to compare
        return None
    values = [str(c) for c in declared.get("values") or []]
    group_by = tuple(str(c) for c in declared.get("group_by") or []) or tuple(
        str(c) for c in frame.columns if c not in (*counts, *values)
    )
    if any(c not in frame.columns for c in (*group_by, *counts)):
        return None
    keys = frame[list(group_by)].astype("string").apply(lambda s: s.str.strip().str.lower())
    numbers = frame[list(counts)].apply(pd.to_numeric, errors="coerce").astype(float)
    return HeldTable(
        row["job_id"],
        f"{row['action']}/{row['path']}",
        group_by,
        counts,
        pd.concat([keys, numbers], axis=1),
        check,
    )


def _compare(table: HeldTable, other: HeldTable, threshold: int) -> list[dict[str, Any]]:
    """Cells of `table` whose counts differ from `other`'s by more than 0 and less than the threshold.

    Same group-by columns: cell by cell. `other` coarser (its keys a strict subset): `table`
    rolled up to `other`'s keys first (margin rows left out), and the other way round.
    """
    mine, theirs = set(table.group_by), set(other.group_by)
    pairs = _count_pairs(table.counts, other.counts)
    if not pairs:
        return []
    a, b = table.frame, other.frame
    if mine == theirs:
        keys = list(table.group_by)
    elif theirs < mine:
        keys = list(other.group_by)
        a = _roll_up(a, keys, table.group_by, [p for p, _ in pairs])
    elif mine < theirs:
        keys = list(table.group_by)
        b = _roll_up(b, keys, other.group_by, [q for _, q in pairs])
    else:
        return []
    found: list[dict[str, Any]] = []
    for mine_col, their_col in pairs:
        left = a[[*keys, mine_col]].rename(columns={mine_col: "__a"})
        right = b[[*keys, their_col]].rename(columns={their_col: "__b"})
        merged = left.merge(right, on=keys) if keys else left.merge(right, how="cross")
        merged["__d"] = (merged["__a"] - merged["__b"]).abs()
        hit = merged[(merged["__d"] > 0) & (merged["__d"] < threshold)]
        for record in hit.head(MAX_LISTED).to_dict("records"):
            key = {k: record[k] for k in keys}
            found.append(
                {
                    "this": {
                        "output": table.output,
                        "key": key,
                        "column": mine_col,
                        "value": record["__a"],
                    },
                    "other": {
                        "job": other.job,
                        "output": other.output,
                        "key": key,
                        "column": their_col,
                        "value": record["__b"],
                    },
                    "difference": record["__d"],
                    "cells": int(len(hit)),
                }
            )
    return found


def _count_pairs(mine: tuple[str, ...], theirs: tuple[str, ...]) -> list[tuple[str, str]]:
    """Count columns compared: same-named ones, or the only count column of each table."""
    same = [(c, c) for c in mine if c in theirs]
    if same:
        return same
    return [(mine[0], theirs[0])] if len(mine) == 1 and len(theirs) == 1 else []


def _roll_up(
    frame: pd.DataFrame, keys: list[str], group_by: tuple[str, ...], counts: list[str]
) -> pd.DataFrame:
    """Sum a finer table's counts to coarser keys, leaving margin rows out (they would double)."""
    dropped = [c for c in group_by if c not in keys]
    margin = frame[dropped].isin(MARGIN_LABELS).any(axis=1) if dropped else False
    rows = frame[~margin] if dropped else frame
    if not keys:
        return rows[counts].sum().to_frame().T
    return rows.groupby(keys, dropna=False)[counts].sum().reset_index()


def _flag(
    check: OutputCheck, other: HeldTable, found: list[dict[str, Any]], threshold: int
) -> None:
    if check.status == Verdict.PASS:
        check.status = Verdict.REVIEW
    where = "this job" if other.check is not None else f"job {other.job}"
    first = found[0]
    check.notes.append(
        f"differencing: {first['cells']} cell(s) differ from {other.output} ({where}) by fewer "
        f"than {threshold}, e.g. {first['this']['column']} {first['this']['key']} = "
        f"{_num(first['this']['value'])} vs {_num(first['other']['value'])}: the difference "
        "reveals a small group"
    )
    section = check.sdc if check.sdc is not None else {}
    section.setdefault("differencing", []).extend(found)
    check.sdc = section


def _num(value: Any) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _read(path: Path) -> pd.DataFrame:
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return pd.read_parquet(path)
    if suffix == ".json":
        return pd.read_json(path)
    return pd.read_csv(path)
