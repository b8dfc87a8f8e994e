"""Our SDC reports in ACRO's ``results.json`` layout, so SACRO-Viewer can show them.

The layout is ACRO 0.4's (the one SACRO-Viewer reads; it accepts versions >= 0.4)::

    {"version": "0.4.0",
     "results": {output_name: {
         "uid", "status", "type", "properties",
         "files": [{"name": file, "sdc": {
             "summary": {"suppressed", "negative", "missing", "threshold", "p-ratio", "nk-rule",
                         "all-values-are-same"},
             "cells": {"negative": [[row, col], ...], "missing": ..., "threshold": ...,
                       "p-ratio": ..., "nk-rule": ..., "all-values-are-same": ...}}}],
         "outcome", "command", "summary", "timestamp", "comments", "exception"}}}

Cell positions are [row, col] of the output file as a table of values: ``row`` is the 0-based row
of the long-format table and ``col`` the 0-based position of the checked column among the
table's columns (group-by columns included). Our rules without an ACRO counterpart (``zeros``,
``min-max``, ``dominance-unchecked``, ``count-unknown``) are added under their own names in both
``summary`` and ``cells``; SACRO-Viewer indexes every key of ``cells``, so they are shown too.
``outcome`` follows ACRO's DataFrame ``to_json`` shape: {column: {row: "ok" | "rule; rule; "}}.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from egress_review.microdata import MicrodataReport
from egress_review.sdc import FAIL, PASS, REVIEW, RULE_ORDER, TableReport

ACRO_LAYOUT_VERSION = "0.4.0"
ACRO_KEYS = ("negative", "missing", "threshold", "p-ratio", "nk-rule", "all-values-are-same")
TOOL = {
    "@type": "SoftwareApplication",
    "name": "shuyu egress_review",
    "url": "",
    "version": "0.1.0",
}


def to_acro_results(
    reports: Mapping[str, TableReport | MicrodataReport],
    *,
    files: Mapping[str, str] | None = None,
    commands: Mapping[str, str] | None = None,
    comments: Mapping[str, list[str]] | None = None,
    suppressed: bool = False,
    timestamp: str | None = None,
) -> dict[str, Any]:
    """One ACRO-style record per output. `files` maps an output name to the file it was read
    from (default: the output name itself); `suppressed` says whether primary suppression has
    been applied to the published files (ACRO's ``summary.suppressed``)."""
    stamp = timestamp or _dt.datetime.now().isoformat()
    results: dict[str, Any] = {}
    for name, report in reports.items():
        file = (files or {}).get(name, name)
        command = (commands or {}).get(name, "")
        notes = list((comments or {}).get(name, []))
        if isinstance(report, MicrodataReport):
            results[name] = _microdata_record(name, file, report, command, notes, stamp)
        else:
            results[name] = _table_record(name, file, report, command, notes, suppressed, stamp)
    return {"version": ACRO_LAYOUT_VERSION, "tool": dict(TOOL), "results": results}


def write_results_json(
    path: str | Path, reports: Mapping[str, TableReport | MicrodataReport], **kw: Any
) -> Path:
    """Write ``results.json`` (to `path`, or into `path` when it is a directory)."""
    target = Path(path)
    if target.is_dir():
        target = target / "results.json"
    target.write_text(json.dumps(to_acro_results(reports, **kw), indent=4, ensure_ascii=False))
    return target


def table_sdc(report: TableReport, suppressed: bool = False) -> dict[str, Any]:
    """The ``sdc`` block of one file: counts and [row, col] positions per rule."""
    extra = [r for r in RULE_ORDER if r not in ACRO_KEYS and r != "dof"]
    keys = [*ACRO_KEYS, *extra]
    cells: dict[str, list[list[int]]] = {k: [] for k in keys}
    for c in report.cells:
        for rule in c.rules:
            cells.setdefault(rule, []).append([c.row, c.col])
    summary: dict[str, Any] = {"suppressed": bool(suppressed)}
    summary.update({k: len(v) for k, v in cells.items()})
    return {"summary": summary, "cells": cells}


def acro_summary(report: TableReport, sdc: dict[str, Any]) -> tuple[str, str]:
    """ACRO's status/summary sentence, e.g. "fail; threshold: 3 cells may need suppressing; "."""
    s = sdc["summary"]
    sup = "suppressed" if s["suppressed"] else "may need suppressing"
    parts = [f"{k}: {s[k]} cells {sup}; " for k in s if k != "suppressed" and s[k]]
    status = report.status
    if s["suppressed"] and status == FAIL:
        status = REVIEW  # as ACRO: suppressed outputs go to review
    return status, (f"{status}; {''.join(parts)}" if parts else status)


def _table_record(
    name: str,
    file: str,
    report: TableReport,
    command: str,
    comments: list[str],
    suppressed: bool,
    stamp: str,
) -> dict[str, Any]:
    sdc = table_sdc(report, suppressed)
    status, summary = acro_summary(report, sdc)
    outcome: dict[str, dict[str, str]] = {c: {} for c in report.checked}
    for c in report.cells:
        outcome[c.column][str(c.row)] = "".join(f"{r}; " for r in c.rules) or "ok"
    return {
        "uid": name,
        "status": status,
        "type": "table",
        "properties": {
            "method": "check_table",
            "group_by": list(report.group_by),
            "checked": list(report.checked),
            "rules": report.rules,
        },
        "files": [{"name": file, "sdc": sdc}],
        "outcome": outcome,
        "command": command,
        "summary": summary,
        "timestamp": stamp,
        "comments": [*report.notes, *comments],
        "exception": "",
    }


def _microdata_record(
    name: str,
    file: str,
    report: MicrodataReport,
    command: str,
    comments: list[str],
    stamp: str,
) -> dict[str, Any]:
    k = report.k_anonymity
    parts = []
    if k and k.violating_count:
        parts.append(f"k-anonymity: {k.violating_count} records in classes smaller than {k.k}; ")
    for col, d in report.l_diversity.items():
        if d.violating_classes:
            parts.append(f"l-diversity({col}): {d.violating_classes} classes below l={d.l}; ")
        elif d.entropy_violating_classes:
            parts.append(
                f"entropy l-diversity({col}): {d.entropy_violating_classes} classes below l={d.l}; "
            )
    status = report.status
    return {
        "uid": name,
        "status": status,
        "type": "microdata",
        "properties": {"method": "check_microdata", **report.to_dict()},
        "files": [{"name": file, "sdc": {"summary": {"suppressed": False}, "cells": {}}}],
        "outcome": {},
        "command": command,
        "summary": f"{status}; {''.join(parts)}" if parts else (status if status != PASS else PASS),
        "timestamp": stamp,
        "comments": [*report.notes, *comments],
        "exception": "",
    }
