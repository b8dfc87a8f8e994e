"""The verdict model of table SDC: cell statuses, the rule catalogue and the report types.

Everything that reads a table check's result needs the same vocabulary: the three statuses, which
rule gives which status (``RULE_STATUS``), the order rules are listed in, their reviewer-facing
texts, and the :class:`CellResult` / :class:`TableReport` dataclasses with their JSON form. It sits
apart from the rules themselves (``sdc_rules``) so that consumers of a report (suppression, ACRO
export, the service) depend on the report's shape and not on how the cells were checked.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

PASS, FAIL, REVIEW = "pass", "fail", "review"
STATUSES = (PASS, FAIL, REVIEW)

# rule name -> status it gives a cell; names shared with ACRO's results.json where ACRO has one
RULE_STATUS: dict[str, str] = {
    "threshold": FAIL,
    "zeros": FAIL,
    "nk-rule": FAIL,
    "p-ratio": FAIL,
    "dof": FAIL,
    "negative": REVIEW,
    "missing": REVIEW,
    "min-max": REVIEW,
    "dominance-unchecked": REVIEW,
    "count-unknown": REVIEW,
    "all-values-are-same": REVIEW,
}
RULE_ORDER = tuple(RULE_STATUS)
RULE_TEXT: dict[str, str] = {
    "threshold": "fewer contributors than the minimum count",
    "zeros": "a zero count (class disclosure); a structural zero may be accepted by the reviewer",
    "nk-rule": "the largest contributors dominate the cell total",
    "p-ratio": "the second largest contributor could estimate the largest too closely",
    "dof": "too few residual degrees of freedom",
    "negative": "negative values: dominance is not defined, review by hand",
    "missing": "missing contributor values were ignored",
    "min-max": "a minimum/maximum reveals one contributor's value and the cell size is unknown",
    "dominance-unchecked": "dominance cannot be checked without contributor data",
    "count-unknown": "the number of contributors is unknown (no counts column, no contributor data)",
    "all-values-are-same": "every contributor has the same value (class disclosure)",
}


@dataclass(frozen=True)
class CellResult:
    """One checked cell: a (row, column) of the output table."""

    key: dict[str, Any]  # group-by column -> value
    column: str
    value: Any
    status: str  # pass | fail | review
    rules: tuple[str, ...] = ()  # rules that failed or need review, in RULE_ORDER
    numbers: dict[str, Any] = field(default_factory=dict)  # the numbers behind the verdict
    row: int = 0  # 0-based row position in the table
    col: int = 0  # 0-based position of `column` among the table's columns

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": {k: _jsonable(v) for k, v in self.key.items()},
            "column": self.column,
            "value": _jsonable(self.value),
            "status": self.status,
            "rules": list(self.rules),
            "numbers": {k: _jsonable(v) for k, v in self.numbers.items()},
            "row": self.row,
            "col": self.col,
        }


@dataclass
class TableReport:
    """The verdict for every checked cell of one table output."""

    cells: list[CellResult]
    summary: dict[str, Any]
    group_by: tuple[str, ...] = ()
    columns: tuple[str, ...] = ()  # all columns of the table, in order
    checked: tuple[str, ...] = ()  # the count and value columns that were checked
    rules: dict[str, Any] = field(default_factory=dict)  # thresholds used
    notes: list[str] = field(default_factory=list)
    n_rows: int = 0

    @property
    def ok(self) -> bool:
        """True when every cell passes: nothing fails and nothing needs a reviewer's judgement."""
        return self.summary["fail"] == 0 and self.summary["review"] == 0

    @property
    def blocked(self) -> bool:
        """True when some cell fails a rule (as opposed to only needing review)."""
        return self.summary["fail"] > 0

    @property
    def status(self) -> str:
        if self.summary["fail"]:
            return FAIL
        return REVIEW if self.summary["review"] else PASS

    def failing(self, statuses: Sequence[str] = (FAIL, REVIEW)) -> list[CellResult]:
        return [c for c in self.cells if c.status in statuses]

    def mask(self, statuses: Sequence[str] = (FAIL,)) -> pd.DataFrame:
        """Boolean frame (table rows x checked columns): True where a cell has one of `statuses`."""
        out = pd.DataFrame(False, index=pd.RangeIndex(self.n_rows), columns=list(self.checked))
        for c in self.cells:
            if c.status in statuses:
                out.iat[c.row, self.checked.index(c.column)] = True
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "ok": self.ok,
            "summary": self.summary,
            "group_by": list(self.group_by),
            "checked": list(self.checked),
            "rules": self.rules,
            "notes": list(self.notes),
            "cells": [c.to_dict() for c in self.cells],
        }


# --------------------------------------------------------------------------------------------
# plain JSON values for report output


def _isnan(v: Any) -> bool:
    if v is None or v is pd.NA or v is pd.NaT:
        return True
    try:
        return bool(isinstance(v, float | np.floating) and math.isnan(v))
    except TypeError:
        return False


def _clean_number(v: Any) -> Any:
    if isinstance(v, float | np.floating):
        f = float(v)
        return int(f) if f.is_integer() and abs(f) < 2**53 else f
    if isinstance(v, np.integer):
        return int(v)
    return v


def _jsonable(v: Any) -> Any:
    if _isnan(v):
        return None
    if isinstance(v, np.bool_ | bool):
        return bool(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating | float):
        return _clean_number(v)
    if isinstance(v, pd.Timestamp):
        return v.isoformat()
    if isinstance(v, _dt.date | _dt.datetime):
        return v.isoformat()
    if isinstance(v, np.datetime64):
        return pd.Timestamp(v).isoformat()
    return v
