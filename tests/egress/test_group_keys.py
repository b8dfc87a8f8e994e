"""The one rule for what a table may group by, as a table: public groupings pass, row-level keys do not."""

from __future__ import annotations

import pytest

from aggregation.keys import key_problem
from privacy.schema import ColumnInfo


def column(
    type_: str, role: str = "quasi_identifier", transform: str = "keep", **extra
) -> ColumnInfo:
    return ColumnInfo(
        dataset="d",
        name="c",
        type=type_,
        sql_type="VARCHAR",
        role=role,
        transform=transform,
        transform_options=extra.pop("options", ()),
        bounds=extra.pop("bounds", None),
        categories=extra.pop("categories", None),
    )


@pytest.mark.parametrize(
    ("info", "monthly", "problem"),
    [
        (column("string", categories=("男", "女")), False, None),
        (column("date", transform="generalise", options=(("to", "five_year_band"),)), False, None),
        (column("integer", bounds=(1, 20000)), False, None),
        (
            column(
                "integer",
                transform="top_bottom_code",
                options=(("lower", 1), ("upper", 9)),
            ),
            False,
            None,
        ),
        (column("date", bounds=("2024-01-01", "2025-12-01")), True, None),
        (column("boolean"), False, None),
        (column("string", "direct_identifier", "pseudonymise"), False, "pseudonymised identifier"),
        (column("string", "attribute", "pseudonymise"), False, "pseudonymised identifier"),
        (column("float", "sensitive", bounds=(1000, 40000)), False, "sensitive value"),
        (column("integer", "sensitive", bounds=(0, 9)), False, "sensitive value"),
        (column("date", bounds=("1940-01-01", "2008-12-31")), False, "exact date"),
        (column("timestamp"), False, "exact time"),
        (column("float", "attribute", bounds=(0, 1)), False, "continuous value"),
        (column("integer"), False, "without manifest bounds"),
        (column("string"), False, "no public categories"),
        (column("string", transform="mask"), False, "masked"),
    ],
)
def test_group_keys(info: ColumnInfo, monthly: bool, problem: str | None) -> None:
    found = key_problem(info, monthly)
    assert (found is None) if problem is None else (found is not None and problem in found)
