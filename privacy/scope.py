"""FROM, JOIN and column names: which datasets a DP query reads and what its names refer to.

The walker's first job is to establish the query's scope: one granted dataset, or two joined on
a key the privacy model allows (the person key between person-level datasets, otherwise keys
pseudonymised on both sides), and the privacy unit of the result. Every later clause resolves
its column names through this scope, so qualified / unqualified / ambiguous names and unknown
columns are refused in one place. `QueryScope` also carries the walker's state, which the clause
checks in `privacy.aggregates` and `privacy.predicates` build on.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from privacy.parsed import ColRef, TableRef
from privacy.request import fail
from privacy.schema import Schema


class QueryScope:
    """The tables of one DP query under check, and name resolution against them."""

    def __init__(self, sql: str, schema: Schema, units: Mapping[str, str], unknown_keys: bool):
        self.sql = sql
        self.schema = schema
        self.units = units
        self.allow_unknown = unknown_keys
        self.tables: list[TableRef] = []
        self.params: list[Any] = []
        self.using: str | None = None  # the USING key, which may be named unqualified
        self.join_keys: tuple[ColRef, ColRef] | None = None

    def text(self, node: Mapping[str, Any]) -> str:
        loc, length = node.get("query_location"), node.get("query_location_length")
        if (
            isinstance(loc, int)
            and isinstance(length, int)
            and 0 <= loc < len(self.sql)
            and length > 0
        ):
            return self.sql[loc : loc + length]
        return str(node.get("function_name") or node.get("type") or "expression").lower()

    # -- FROM
    def base_table(self, node: Mapping[str, Any]) -> int:
        kind = node.get("type")
        if kind == "SUBQUERY":
            raise fail("subqueries are not supported in FROM", fix="query a dataset directly")
        if kind == "TABLE_FUNCTION":
            raise fail(
                f"table functions are not supported: {self.text(node.get('function') or node)}",
                fix="name a granted dataset, e.g. FROM contributions",
            )
        if kind == "JOIN":
            raise fail("at most one JOIN is supported", fix="join two datasets per query")
        if kind == "EMPTY":
            raise fail("a DP query reads FROM a dataset", fix="add FROM <dataset>")
        if kind != "BASE_TABLE":
            raise fail(f"FROM {kind} is not supported", fix="name a granted dataset")
        if node.get("schema_name") or node.get("catalog_name"):
            raise fail(
                "qualified table names (schema.table) are not supported",
                fix="name the dataset alone, e.g. FROM contributions",
            )
        if node.get("sample") is not None:
            raise fail("TABLESAMPLE is not supported", fix="remove it")
        if node.get("column_name_alias"):
            raise fail("column aliases on a table (t(a, b)) are not supported", fix="remove them")
        if node.get("at_clause") is not None:
            raise fail("AT (time travel) is not supported", fix="remove it")
        name = str(node.get("table_name", "")).lower()
        if name not in self.schema or name.startswith("_"):
            known = ", ".join(sorted(self.schema)) or "none"
            raise fail(
                f"dataset {node.get('table_name')!r} is not in this project's workspace",
                fix=f"use one of: {known}",
            )
        alias = str(node.get("alias") or name).lower()
        if any(t.alias == alias for t in self.tables):
            raise fail(
                f"the table alias {alias} is used twice", fix="give each table its own alias"
            )
        self.tables.append(TableRef(name, alias))
        return len(self.tables) - 1

    def parse_from(self, node: Mapping[str, Any]) -> None:
        if node.get("type") != "JOIN":
            self.base_table(node)
            return
        join_type, ref_type = node.get("join_type"), node.get("ref_type")
        if ref_type == "CROSS":
            raise fail(
                "cross joins (FROM a, b) are not supported",
                fix="JOIN b USING (<pseudonymised key>)",
            )
        if join_type != "INNER" or ref_type != "REGULAR":
            what = ref_type if ref_type != "REGULAR" else join_type
            raise fail(f"{what} JOIN is not supported", fix="use an inner JOIN ... USING (key)")
        for side in ("left", "right"):
            if (node.get(side) or {}).get("type") == "JOIN":
                raise fail("at most one JOIN is supported", fix="join two datasets per query")
        left = self.base_table(node["left"])
        right = self.base_table(node["right"])
        using = node.get("using_columns") or []
        condition = node.get("condition")
        if using:
            if len(using) != 1:
                raise fail("JOIN USING takes exactly one key column", fix="USING (resident_id)")
            key = str(using[0]).lower()
            refs = []
            for i in (left, right):
                info = self.schema[self.tables[i].dataset].get(key)
                if info is None:
                    raise fail(
                        f"dataset {self.tables[i].dataset} has no column {key} to join on",
                        fix="join on a key both datasets hold",
                    )
                refs.append(ColRef(i, info))
            self.using = key
            lref, rref = refs
        elif condition is not None:
            if condition.get("type") != "COMPARE_EQUAL":
                raise fail(
                    f"the join condition must be a.key = b.key, not {self.text(condition)}",
                    fix="JOIN b ON a.key = b.key (or USING (key))",
                )
            a = self.column(condition["left"])
            b = self.column(condition["right"])
            if a.table == b.table:
                raise fail(
                    "the join condition must compare the two datasets", fix="ON a.key = b.key"
                )
            lref, rref = (a, b) if a.table == left else (b, a)
            self.using = None
        else:
            raise fail(
                "a JOIN needs USING (key) or ON a.key = b.key", fix="JOIN b USING (resident_id)"
            )
        self.check_join(lref, rref)
        self.join_keys = (lref, rref)

    def check_join(self, a: ColRef, b: ColRef) -> None:
        da, db = self.tables[a.table].dataset, self.tables[b.table].dataset
        ua, ub = self.units.get(da), self.units.get(db)
        if ua and ub:
            if a.column != ua or b.column != ub:
                raise fail(
                    f"joining two person-level datasets ({da}, {db}) must be on the person key "
                    f"({ua} = {ub}), not {a.column} = {b.column}: otherwise one person's rows can "
                    "multiply with other persons' rows",
                    fix=f"JOIN ... ON a.{ua} = b.{ub}",
                )
            return
        if not (a.info.transform == "pseudonymise" and b.info.transform == "pseudonymise"):
            raise fail(
                f"the join {da}.{a.column} = {db}.{b.column} is not a granted join: both keys must be "
                "pseudonymised with the project key",
                fix="join on pseudonymised identifier columns (e.g. enterprise_code = credit_code)",
            )

    def unit_ref(self) -> ColRef:
        for i, table in enumerate(self.tables):
            unit = self.units.get(table.dataset)
            if unit:
                return ColRef(i, self.schema[table.dataset][unit])
        names = ", ".join(t.dataset for t in self.tables)
        raise fail(
            f"{names}: no privacy unit (pseudonymised person key), so rows cannot be bounded per person",
            fix="query a person-level dataset, or join this one to it on a pseudonymised key",
        )

    # -- columns
    def column(self, node: Mapping[str, Any]) -> ColRef:
        if node.get("class") != "COLUMN_REF":
            raise fail(
                f"{self.text(node)!r} must be a plain column here",
                fix="use a column name; derive values from the released table",
            )
        names = [str(n).lower() for n in node.get("column_names") or []]
        if len(names) == 2:
            qualifier, col = names
            idx = [
                i
                for i, t in enumerate(self.tables)
                if t.alias == qualifier or t.dataset == qualifier
            ]
            if len(idx) != 1:
                raise fail(
                    f"{qualifier}.{col}: {qualifier} is not a table of this query",
                    fix="qualify columns with a table name or alias from FROM",
                )
            info = self.schema[self.tables[idx[0]].dataset].get(col)
            if info is None:
                raise fail(
                    f"dataset {self.tables[idx[0]].dataset} has no column {col}",
                    fix=f"use one of: {', '.join(self.schema[self.tables[idx[0]].dataset])}",
                )
            return ColRef(idx[0], info)
        if len(names) != 1:
            raise fail(
                f"column reference {'.'.join(names)} is not supported", fix="write table.column"
            )
        col = names[0]
        found = [
            ColRef(i, self.schema[t.dataset][col])
            for i, t in enumerate(self.tables)
            if col in self.schema[t.dataset]
        ]
        if not found:
            known = sorted({c for t in self.tables for c in self.schema[t.dataset]})
            raise fail(
                f"no column {col} in {', '.join(t.dataset for t in self.tables)}",
                fix=f"use one of: {', '.join(known)}",
            )
        if len(found) > 1:
            if self.using == col:
                return found[0]
            raise fail(
                f"column {col} is ambiguous: both joined datasets have it",
                fix=f"qualify it, e.g. {self.tables[0].alias}.{col}",
            )
        return found[0]
