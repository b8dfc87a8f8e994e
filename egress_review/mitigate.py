"""Mitigations a reviewer applies to a table that fails disclosure rules.

Suppression blanks failing cells and, for a two-way table whose totals are published, adds
complementary suppressions until no blank can be recovered by subtraction (proved by
`recoverable_cells` before anything is written). Rounding publishes counts to a base with
totals that add up. Both work on the checked long-format table and write a new file; the
original stays as it was.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from egress_review.sdc import TableReport
from egress_review.suppression import (
    add_margins,
    primary_suppress,
    recoverable_cells,
    round_table,
    secondary_suppress,
)
from shuyu.errors import PlatformError, ValidationError


@dataclass(frozen=True)
class Mitigation:
    method: str
    target: Path
    primary: int  # cells blanked because they fail a rule
    secondary: int  # cells blanked so the primary ones cannot be recovered
    notes: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "target": str(self.target),
            "primary": self.primary,
            "secondary": self.secondary,
            "notes": self.notes,
        }


def mitigate_table(
    table: pd.DataFrame, target: Path, report: TableReport, *, method: str
) -> Mitigation:
    """Apply `suppress` or `round:BASE` to a checked table (its report says which cells fail)."""
    group_by, counts = list(report.group_by), [c for c in report.checked if c in table.columns]
    name, _, arg = method.partition(":")
    if name == "suppress":
        return _suppress(table, target, report)
    if name == "round" and arg.isdigit() and int(arg) > 0:
        return _round(table, target, group_by, counts, int(arg))
    raise ValidationError(
        f"unknown mitigation {method!r}", field="--mitigate", fix="use suppress or round:BASE"
    )


def _suppress(table: pd.DataFrame, target: Path, report: TableReport) -> Mitigation:
    two_way = len(report.group_by) == 2 and len(report.checked) == 1
    if not two_way:
        suppressed, mask = primary_suppress(table, report)
        _write(suppressed, target)
        return Mitigation(
            "suppress",
            target,
            int(mask.to_numpy().sum()),
            0,
            [
                "primary suppression only: do not publish totals of this table, they would "
                "reveal the blanked cells (secondary suppression needs a two-way count table)"
            ],
        )
    (rows, cols), (count,) = report.group_by, report.checked
    wide = table.pivot(index=rows, columns=cols, values=count).fillna(0)
    failing = report.mask()[count].to_numpy()
    primary = pd.DataFrame(False, index=wide.index, columns=wide.columns)
    for flag, (r, c) in zip(failing, zip(table[rows], table[cols], strict=True), strict=True):
        primary.loc[r, c] = primary.loc[r, c] or bool(flag)
    mask = secondary_suppress(wide, primary.to_numpy(), with_margins=True)
    if recoverable_cells(wide, mask):
        raise PlatformError("secondary suppression left a recoverable cell; nothing was written")
    published = add_margins(wide).astype("Float64").mask(mask.to_numpy())
    _write(published.reset_index(), target)
    n_primary = int(primary.to_numpy().sum())
    return Mitigation(
        "suppress",
        target,
        n_primary,
        int(mask.to_numpy().sum()) - n_primary,
        ["two-way table with totals; no blank can be recovered from the rows, columns or totals"],
    )


def _round(
    table: pd.DataFrame, target: Path, group_by: list[str], counts: list[str], base: int
) -> Mitigation:
    if len(group_by) == 2 and len(counts) == 1:
        rows, cols = group_by
        wide = table.pivot(index=rows, columns=cols, values=counts[0]).fillna(0)
        rounded = round_table(wide, base, margins="consistent")
        _write(rounded.table.reset_index(), target)
        return Mitigation(f"round:{base}", target, 0, 0, [rounded.note])
    from egress_review.suppression import round_to_base

    out = table.copy()
    for column in counts:
        out[column] = round_to_base(out[column], base)
    _write(out, target)
    return Mitigation(f"round:{base}", target, 0, 0, [f"counts rounded to the nearest {base}"])


def _write(frame: pd.DataFrame, target: Path) -> None:
    if target.suffix.lower() == ".parquet":
        frame.to_parquet(target, index=False)
    else:
        frame.to_csv(target, index=False)
