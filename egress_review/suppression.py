"""Mitigations a reviewer can apply to a table that fails SDC: suppression and rounding.

Primary suppression blanks the failing cells. Rounding replaces counts by multiples of a base.
Secondary (complementary) suppression protects a 2-D table that is published WITH its margins
(row totals, column totals, grand total): otherwise a blanked cell is recovered by subtracting
the published cells of its row or column from the published total.

The model behind :func:`secondary_suppress` and :func:`recoverable_cells`
---------------------------------------------------------------------------
The published table with margins is the (m+1) x (n+1) "augmented" table: m x n interior cells,
a row-total column, a column-total row and the grand total. Its linear relations are one
equation per line (each interior row and column, the margin row and the margin column): the
line's cells sum to the line's total. Every cell lies on exactly two lines (its row and its
column), so the suppressed cells are the edges of a bipartite graph whose nodes are the m+1 row
lines and n+1 column lines. Published cells are constants. With the unknowns on the edges and
one equation per node, the solutions of the system differ by vectors of the cycle space of this
graph (the sign pattern around any cycle of the augmented table is consistent, because every
cycle crosses an even number of single-margin cells). Hence:

    a suppressed cell can be recovered exactly  <=>  its edge lies on no cycle (it is a bridge)
                                                 of the graph formed by the suppressed cells.

:func:`recoverable_cells` proves non-recoverability this way, and also reports how a recoverable
cell falls: "single unknown" when iterative single-unknown elimination (a line with exactly one
blank left) finds it, "cut" when only a combination of lines does (a bridge between two blocks).
A cell is recovered with its exact value. Bounds (a count is never negative) can still narrow a
blank to an interval; that interval ("protection level") is not checked here.

:func:`secondary_suppress` starts from the primary cells and (1) while some line has exactly one
blank, blanks the smallest published cell of that line as its complement (preferring interior
cells over margin cells and non-zero cells over zeros, since a zero complement protects little),
then (2) while some blank is a bridge, blanks the smallest published cell that joins the two
sides of the bridge into a cycle. Both steps only add blanks, so it terminates; when it stops no
blank is a bridge, so nothing can be recovered. This is a heuristic: it does not minimise the
suppressed total the way an optimal (linear-programming) cell-suppression would.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from egress_review.sdc import FAIL, TableReport

TOTAL = "Total"


# --------------------------------------------------------------------------------------------
# primary suppression


def primary_mask(report: TableReport, statuses: Sequence[str] = (FAIL,)) -> pd.DataFrame:
    """Boolean frame over the table's rows and checked columns: True where a cell must go."""
    return report.mask(statuses)


def primary_suppress(
    table: pd.DataFrame, report: TableReport, statuses: Sequence[str] = (FAIL,)
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Blank (set to missing) every checked cell whose status is in `statuses`.

    Returns the suppressed copy and the mask used. Integer columns become nullable so a blank
    stays a blank rather than turning into a float NaN silently.
    """
    mask = report.mask(statuses)
    if len(table) != len(mask):
        raise ValueError(
            "the table does not have the rows the report was made for "
            "(check_table(complete=True) adds rows; apply suppression to the completed table)"
        )
    out = table.copy().reset_index(drop=True)
    for col in mask.columns:
        hit = mask[col].to_numpy()
        if not hit.any():
            continue
        if pd.api.types.is_integer_dtype(out[col]):
            out[col] = out[col].astype("Int64")
        elif not pd.api.types.is_float_dtype(out[col]):
            out[col] = out[col].astype(object)
        out.loc[hit, col] = pd.NA if str(out[col].dtype) == "Int64" else np.nan
    return out, mask


# --------------------------------------------------------------------------------------------
# rounding


def round_to_base(values: Any, base: int) -> Any:
    """Round to the nearest multiple of `base`, halves away from zero; keeps NaN.

    Works on scalars, numpy arrays, Series and DataFrames (vectorised).
    """
    if not isinstance(base, int | np.integer) or base < 1:
        raise ValueError(f"the rounding base must be a positive integer, not {base!r}")
    if isinstance(values, pd.DataFrame):
        return values.apply(lambda col: round_to_base(col, base))
    if isinstance(values, pd.Series):
        arr = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        return pd.Series(_round(arr, base), index=values.index, name=values.name)
    arr = np.asarray(values, dtype=float)
    out = _round(arr, base)
    return out if out.ndim else float(out)


def _round(arr: np.ndarray, base: int) -> np.ndarray:
    return np.sign(arr) * np.floor(np.abs(arr) / base + 0.5) * base


@dataclass
class Rounded:
    table: pd.DataFrame
    base: int
    margins: str  # "consistent" | "independent" | "none"
    note: str


def round_table(
    table2d: pd.DataFrame, base: int, *, margins: str = "consistent", margins_name: str = TOTAL
) -> Rounded:
    """Round a 2-D table of counts (interior cells only) to `base` and add its margins.

    margins="consistent": the margins are the sums of the rounded cells, so the published table
    adds up; a margin may then differ from the true total rounded to base by more than base/2.
    margins="independent": every cell and every margin is the true value rounded on its own, so
    each published number is within base/2 of the truth but rows and columns need not add up.
    margins="none": only the interior is published.
    """
    interior = round_to_base(table2d.astype(float), base)
    if margins == "none":
        return Rounded(interior, base, margins, f"cells rounded to the nearest {base}; no margins")
    if margins == "consistent":
        out = add_margins(interior, margins_name)
        note = (
            f"cells rounded to the nearest {base}; totals are the sums of the rounded cells "
            f"(consistent), so they may differ from the true totals by more than {base / 2:g}"
        )
    elif margins == "independent":
        out = round_to_base(add_margins(table2d.astype(float), margins_name), base)
        note = (
            f"cells and totals each rounded independently to the nearest {base}; "
            "rows and columns may not add up to the published totals"
        )
    else:
        raise ValueError("margins must be 'consistent', 'independent' or 'none'")
    return Rounded(out, base, margins, note)


def add_margins(table2d: pd.DataFrame, name: str = TOTAL) -> pd.DataFrame:
    """The augmented table: interior plus a row-total column, a column-total row and the grand
    total (last row and last column)."""
    out = table2d.copy()
    out[name] = table2d.sum(axis=1)
    totals = out.sum(axis=0)
    out.loc[name] = totals
    return out


# --------------------------------------------------------------------------------------------
# secondary suppression for 2-D tables with margins


def secondary_suppress(
    table2d: pd.DataFrame,
    primary_mask: pd.DataFrame | np.ndarray,
    with_margins: bool = True,
    margins_name: str = TOTAL,
) -> pd.DataFrame:
    """Add complementary suppressions so that no blank can be recovered from the margins.

    table2d
        the interior m x n table (non-negative numbers), without totals.
    primary_mask
        True for the cells that must be blanked: m x n, or (m+1) x (n+1) when a margin itself
        fails a rule (last row/column = totals, as :func:`add_margins` lays them out).
    with_margins
        True when the totals are published. The result is then the (m+1) x (n+1) mask over the
        augmented table (interior, a total column, a total row; labelled `margins_name`), which
        may blank margin cells too (e.g. a 1-row table cannot be protected otherwise).
        False: nothing can be subtracted, the primary mask (m x n) is returned unchanged.
    """
    values = table2d.to_numpy(dtype=float)
    m, n = values.shape
    prim = np.asarray(primary_mask, dtype=bool)
    if not with_margins:
        if prim.shape != (m, n):
            raise ValueError(f"primary_mask must be {m} x {n} for a table without margins")
        return pd.DataFrame(prim.copy(), index=table2d.index, columns=table2d.columns)
    aug = add_margins(table2d, margins_name)
    full = _augment_mask(prim, m, n)
    cost = _costs(aug.to_numpy(dtype=float), m, n)
    mask = full.copy()
    while True:
        if _complete_lines(mask, cost):
            continue
        if _break_bridges(mask, cost):
            continue
        break
    return pd.DataFrame(mask, index=aug.index, columns=aug.columns)


def recoverable_cells(
    table2d: pd.DataFrame, mask: pd.DataFrame | np.ndarray
) -> list[dict[str, Any]]:
    """Blanked cells that a reader can recover exactly from the published cells and totals.

    table2d is the interior m x n table. The shape of `mask` says what is published: m x n means
    no totals are published (nothing can be recovered), (m+1) x (n+1) means the augmented table
    with totals (see :func:`add_margins`) is published except where the mask is True.

    Each entry: {"cell": (row label, column label), "position": (i, j), "value": the recovered
    value, "via": "single unknown: row <label>" | "single unknown: column <label>" | "cut"}.
    An empty list proves that no blank can be recovered by linear equations over rows/columns.
    """
    values = table2d.to_numpy(dtype=float)
    m, n = values.shape
    mk = np.asarray(mask, dtype=bool)
    if mk.shape == (m, n):
        return []
    if mk.shape != (m + 1, n + 1):
        raise ValueError(f"mask must be {m} x {n} or {m + 1} x {n + 1}, not {mk.shape}")
    aug = add_margins(table2d)
    a = aug.to_numpy(dtype=float)
    rows = [*map(str, table2d.index), TOTAL]
    cols = [*map(str, table2d.columns), TOTAL]
    found: dict[tuple[int, int], str] = {}

    # 1. iterative single-unknown elimination along lines
    unknown = mk.copy()
    changed = True
    while changed:
        changed = False
        for i in range(m + 1):
            idx = np.flatnonzero(unknown[i])
            if len(idx) == 1:
                found[(i, int(idx[0]))] = f"single unknown: row {rows[i]}"
                unknown[i, idx[0]] = False
                changed = True
        for j in range(n + 1):
            idx = np.flatnonzero(unknown[:, j])
            if len(idx) == 1:
                found[(int(idx[0]), j)] = f"single unknown: column {cols[j]}"
                unknown[idx[0], j] = False
                changed = True
    # 2. bridges of the blank-cell graph that elimination alone does not reach
    for cell in _bridges(mk):
        found.setdefault(cell, "cut")

    return [
        {
            "cell": (aug.index[i], aug.columns[j]),
            "position": (i, j),
            "value": float(a[i, j]),
            "via": via,
        }
        for (i, j), via in sorted(found.items())
    ]


def determined_by_rank(table2d: pd.DataFrame, mask: np.ndarray) -> set[tuple[int, int]]:
    """Independent check by linear algebra: blanks whose unit vector lies in the row space of the
    line equations restricted to the blanks (i.e. uniquely determined). Small tables only."""
    m, n = table2d.shape
    mk = np.asarray(mask, dtype=bool)
    if mk.shape != (m + 1, n + 1):
        return set()
    cells = [(int(c[0]), int(c[1])) for c in np.argwhere(mk)]
    if not cells:
        return set()
    eq = []
    for i in range(m + 1):
        eq.append([_coef_row(i, j, m, n) if ci == i else 0.0 for ci, j in cells])
    for j in range(n + 1):
        eq.append([_coef_col(i, j, m, n) if cj == j else 0.0 for i, cj in cells])
    a = np.array(eq, dtype=float)
    base = np.linalg.matrix_rank(a)
    out: set[tuple[int, int]] = set()
    for k, cell in enumerate(cells):
        e = np.zeros((1, len(cells)))
        e[0, k] = 1.0
        if np.linalg.matrix_rank(np.vstack([a, e])) == base:
            out.add(cell)
    return out


# --------------------------------------------------------------------------------------------
# internals


def _coef_row(i: int, j: int, m: int, n: int) -> float:
    # line i: sum of its cells j < n minus its total (j == n) is zero
    return -1.0 if j == n else 1.0


def _coef_col(i: int, j: int, m: int, n: int) -> float:
    return -1.0 if i == m else 1.0


def _augment_mask(prim: np.ndarray, m: int, n: int) -> np.ndarray:
    if prim.shape == (m + 1, n + 1):
        return prim.copy()
    if prim.shape != (m, n):
        raise ValueError(f"primary_mask must be {m} x {n} or {m + 1} x {n + 1}, not {prim.shape}")
    full = np.zeros((m + 1, n + 1), dtype=bool)
    full[:m, :n] = prim
    return full


def _costs(a: np.ndarray, m: int, n: int) -> np.ndarray:
    """Order of preference for complements: interior before margins, non-zero before zero,
    then the smallest value (least information lost)."""
    cost = np.where(np.isnan(a), 0.0, np.abs(a))
    scale = float(np.nanmax(cost)) + 1.0 if cost.size else 1.0
    cost = cost + np.where(cost == 0, scale, 0.0)  # zeros after every non-zero interior cell
    margin = np.zeros_like(cost, dtype=bool)
    margin[m, :] = True
    margin[:, n] = True
    return cost + np.where(margin, 4 * scale, 0.0)


def _complete_lines(mask: np.ndarray, cost: np.ndarray) -> bool:
    """Give every line with exactly one blank a second one (its cheapest published cell)."""
    changed = False
    rows, cols = mask.shape
    for _ in range(rows * cols):
        row_counts = mask.sum(axis=1)
        col_counts = mask.sum(axis=0)
        lone_rows = np.flatnonzero(row_counts == 1)
        lone_cols = np.flatnonzero(col_counts == 1)
        if len(lone_rows):
            i = int(lone_rows[0])
            free = np.where(mask[i], np.inf, cost[i])
            mask[i, int(np.argmin(free))] = True
        elif len(lone_cols):
            j = int(lone_cols[0])
            free = np.where(mask[:, j], np.inf, cost[:, j])
            mask[int(np.argmin(free)), j] = True
        else:
            break
        changed = True
    return changed


def _break_bridges(mask: np.ndarray, cost: np.ndarray) -> bool:
    """Put one bridge on a cycle by blanking the cheapest cell joining its two sides."""
    bridges = _bridges(mask)
    if not bridges:
        return False
    rows, cols = mask.shape
    bi, bj = bridges[0]
    side = _side_of(mask, (bi, bj))  # node -> True on the row side of the bridge
    row_a = np.array([side.get(("r", i)) is True for i in range(rows)])
    row_b = np.array([side.get(("r", i)) is False for i in range(rows)])
    col_a = np.array([side.get(("c", j)) is True for j in range(cols)])
    col_b = np.array([side.get(("c", j)) is False for j in range(cols)])
    joins = (np.outer(row_a, col_b) | np.outer(row_b, col_a)) & ~mask
    if not joins.any():  # cannot happen once every line has 0 or >= 2 blanks
        joins = ~mask
    free = np.where(joins, cost, np.inf)
    i, j = np.unravel_index(int(np.argmin(free)), free.shape)
    mask[i, j] = True
    return True


def _graph(
    mask: np.ndarray,
) -> dict[tuple[str, int], list[tuple[tuple[str, int], tuple[int, int]]]]:
    adj: dict[tuple[str, int], list[tuple[tuple[str, int], tuple[int, int]]]] = {}
    for i, j in np.argwhere(mask):
        r, c = ("r", int(i)), ("c", int(j))
        adj.setdefault(r, []).append((c, (int(i), int(j))))
        adj.setdefault(c, []).append((r, (int(i), int(j))))
    return adj


def _bridges(mask: np.ndarray) -> list[tuple[int, int]]:
    """Bridges of the bipartite blank-cell graph (iterative Tarjan low-link)."""
    adj = _graph(mask)
    disc: dict[tuple[str, int], int] = {}
    low: dict[tuple[str, int], int] = {}
    out: list[tuple[int, int]] = []
    counter = 0
    for root in adj:
        if root in disc:
            continue
        disc[root] = low[root] = counter
        counter += 1
        stack: list[tuple[tuple[str, int], tuple[int, int] | None, Any]] = [
            (root, None, iter(adj[root]))
        ]
        while stack:
            node, via, it = stack[-1]
            advanced = False
            for nxt, edge in it:
                if edge == via:
                    continue
                if nxt in disc:
                    low[node] = min(low[node], disc[nxt])
                else:
                    disc[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append((nxt, edge, iter(adj[nxt])))
                    advanced = True
                    break
            if advanced:
                continue
            stack.pop()
            if stack:
                parent = stack[-1][0]
                low[parent] = min(low[parent], low[node])
                if low[node] > disc[parent]:
                    out.append(via)  # type: ignore[arg-type]
    return sorted(out)


def _side_of(mask: np.ndarray, bridge: tuple[int, int]) -> dict[tuple[str, int], bool]:
    """Nodes reachable from the bridge's row end without the bridge (True) and from its column
    end (False)."""
    adj = _graph(mask)
    side: dict[tuple[str, int], bool] = {}
    for start, label in ((("r", bridge[0]), True), (("c", bridge[1]), False)):
        todo = [start]
        side[start] = label
        while todo:
            node = todo.pop()
            for nxt, edge in adj.get(node, []):
                if edge == bridge or nxt in side:
                    continue
                side[nxt] = label
                todo.append(nxt)
    return side
