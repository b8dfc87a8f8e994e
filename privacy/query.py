"""DP queries: a restricted SELECT form, parsed by DuckDB's own parser and checked node by node.

The analyst's text is never executed. DuckDB's `json_serialize_sql()` turns it into a parse
tree; every node is checked against a short whitelist and the engine then writes its own SQL
from the checked pieces (fixed table aliases, quoted catalogue column names, literals bound as
parameters). Accepted:

    SELECT <group columns>, <aggregates>
    FROM <dataset> [[AS] a] [JOIN <dataset> [[AS] b] USING (<key>) | ON a.<key> = b.<key>]
    [WHERE <simple predicates on public columns>]
    [GROUP BY <columns> | GROUP BY ALL]

Aggregates: COUNT(*), COUNT(column), COUNT(DISTINCT <privacy unit>), SUM(column),
AVG(column) (MEAN), QUANTILE(column, q) (QUANTILE_CONT), MEDIAN(column), each with an
optional AS alias. Predicates: =, <>, <, <=, >, >=, [NOT] IN (literals), [NOT] BETWEEN,
IS [NOT] NULL, combined with AND / OR / NOT, on columns that are not identifiers and not
sensitive. Everything else (subqueries, CTEs, UNION, window functions, SELECT *, DISTINCT,
HAVING, ORDER BY, LIMIT, expressions, raw columns without aggregation) is refused with a
`ValidationError` on field `dp.query` naming the problem and a fix.

Rules that come from the privacy model rather than from SQL:
- GROUP BY columns need public categories (manifest `categories`, recorded in the workspace's
  `_shuyu_columns` when the column is kept), so the released group set is fixed in advance.
  Without them the request must opt into unknown-keys mode (`unknown_keys=True`, needs δ > 0):
  groups are then released only when their noisy count passes a threshold (see engine).
- SUM / AVG / QUANTILE need numeric bounds from the manifest (tightened by a top_bottom_code
  transform). Missing bounds are an error: clamping to bounds is what gives the sensitivity.
- Every dataset needs a privacy unit: the pseudonymised person key (by default the column that
  is a direct identifier pseudonymised in the workspace, i.e. `resident_id`). A join between two
  person-level datasets must be on that key; a join with a dataset without persons must be on
  keys pseudonymised on both sides (the joins the grant's pseudonymisation makes possible).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal

import duckdb

from shuyu.errors import PlatformError, ValidationError

FIELD = "dp.query"
DEFAULT_DELTA = 1e-6
MAX_DELTA = 1e-3
MAX_EPSILON = 10.0
UNIT_IDENTIFIER_KIND = "cn_resident_id"
SUPPORTED = (
    "COUNT(*), COUNT(DISTINCT <person key>), SUM(col), AVG(col), QUANTILE(col, q), MEDIAN(col)"
)
FORM = "SELECT <group columns>, <aggregates> FROM <dataset> [JOIN ...] [WHERE ...] [GROUP BY ...]"

NUMERIC_SQL = {
    "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
    "UBIGINT", "FLOAT", "DOUBLE", "REAL",
}  # fmt: skip


def _fail(message: str, fix: str | None = None) -> ValidationError:
    return ValidationError(message, field=FIELD, fix=fix or f"write {FORM} using {SUPPORTED}")


# --------------------------------------------------------------------------- request


@dataclass(frozen=True)
class DPRequest:
    """What the engine needs from a job's `dp:` block (jobs.spec.DPQuery plus two engine knobs).

    `delta` is only consumed in unknown-keys mode (thresholded group release); with public
    categories the release is pure ε-DP and δ spent is 0. `unknown_keys` is the explicit opt-in.
    """

    query: str
    epsilon: float
    max_contributions: int = 1
    delta: float = DEFAULT_DELTA
    unknown_keys: bool = False


def as_request(query: Any) -> DPRequest:
    """Accept a DPRequest, a jobs.spec.DPQuery (or any object with those attributes) or a mapping."""
    if isinstance(query, DPRequest):
        request = query
    else:
        get = query.get if isinstance(query, Mapping) else (lambda k, d=None: getattr(query, k, d))
        delta = get("delta", None)
        request = DPRequest(
            query=get("query"),  # type: ignore[arg-type]  # checked below
            epsilon=get("epsilon"),  # type: ignore[arg-type]
            max_contributions=get("max_contributions", 1),
            delta=DEFAULT_DELTA if delta is None else delta,
            unknown_keys=bool(get("unknown_keys", False)),
        )
    if not isinstance(request.query, str) or not request.query.strip():
        raise _fail("the DP query is empty", fix=f"write {FORM}")
    eps = request.epsilon
    if (
        isinstance(eps, bool)
        or not isinstance(eps, int | float)
        or not math.isfinite(eps)
        or eps <= 0
    ):
        raise ValidationError(
            f"epsilon must be a positive number, not {eps!r}",
            field="dp.epsilon",
            fix="e.g. epsilon: 1.0",
        )
    if eps > MAX_EPSILON:
        raise ValidationError(
            f"epsilon {eps:g} is above the engine's maximum of {MAX_EPSILON:g} per query",
            field="dp.epsilon",
            fix="split the analysis into several queries or ask for less",
        )
    k = request.max_contributions
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= 1000:
        raise ValidationError(
            f"max_contributions must be a whole number from 1 to 1000, not {k!r}",
            field="dp.max_contributions",
            fix="e.g. max_contributions: 12 (rows kept per person)",
        )
    d = request.delta
    if isinstance(d, bool) or not isinstance(d, int | float) or not 0 <= d <= MAX_DELTA:
        raise ValidationError(
            f"delta must be between 0 and {MAX_DELTA:g}, not {d!r}",
            field="dp.delta",
            fix="use a small delta such as 1e-6 (well below 1 / number of persons)",
        )
    return DPRequest(
        request.query.strip().rstrip(";").strip(), float(eps), k, float(d), request.unknown_keys
    )


# --------------------------------------------------------------------------- workspace columns


@dataclass(frozen=True)
class ColumnInfo:
    """One workspace column as `_shuyu_columns` describes it, plus its DuckDB type."""

    dataset: str
    name: str
    type: str  # manifest type
    sql_type: str  # type in the workspace table (after the transform)
    role: str
    transform: str
    transform_options: tuple[tuple[str, Any], ...]
    bounds: tuple[Any, Any] | None
    categories: tuple[str, ...] | None

    @property
    def is_identifier(self) -> bool:
        return self.role == "direct_identifier" or self.transform == "pseudonymise"

    @property
    def public(self) -> bool:
        """May appear in WHERE / GROUP BY: not an identifier, not a sensitive value."""
        return not self.is_identifier and self.role != "sensitive"

    def value_bounds(self) -> tuple[float, float] | None:
        """Numeric bounds valid for the workspace values, or None."""
        if self.type not in ("integer", "float") or self.transform not in (
            "keep",
            "top_bottom_code",
        ):
            return None
        bounds = None if self.bounds is None else (float(self.bounds[0]), float(self.bounds[1]))
        if self.transform == "top_bottom_code":
            opts = dict(self.transform_options)
            coded = (float(opts["lower"]), float(opts["upper"]))
            bounds = (
                coded if bounds is None else (max(bounds[0], coded[0]), min(bounds[1], coded[1]))
            )
            if bounds[0] > bounds[1]:
                bounds = coded
        return bounds


Schema = dict[str, dict[str, ColumnInfo]]


def load_columns(workspace: Path | str) -> Schema:
    """The column metadata of a workspace file (opened read-only)."""
    try:
        con = duckdb.connect(str(workspace), read_only=True)
    except duckdb.Error as exc:
        raise PlatformError(
            f"cannot open the workspace {workspace}: {str(exc).splitlines()[0]}",
            fix="build the workspace first (shuyu workspace build)",
        ) from exc
    try:
        return read_columns(con, None)
    finally:
        con.close()


def read_columns(con: duckdb.DuckDBPyConnection, catalog: str | None) -> Schema:
    prefix = f'"{catalog}".' if catalog else ""
    try:
        rows = con.execute(
            f"SELECT dataset, column_name, type, role, transform, bounds, categories FROM {prefix}_shuyu_columns"
        ).fetchall()
        types = {
            (t, c): str(dt)
            for t, c, dt in con.execute(
                "SELECT table_name, column_name, data_type FROM duckdb_columns() "
                + (
                    "WHERE database_name = ?"
                    if catalog
                    else "WHERE database_name = current_database()"
                ),
                [catalog] if catalog else [],
            ).fetchall()
        }
    except duckdb.Error as exc:
        raise PlatformError(
            "the file is not a shuyu workspace (no _shuyu_columns table)",
            fix="run DP queries on a workspace built by the platform",
        ) from exc
    schema: Schema = {}
    for dataset, column, typ, role, transform, bounds, categories in rows:
        parsed = json.loads(transform)
        if isinstance(parsed, str):
            name, options = parsed, {}
        else:
            name, options = next(iter(parsed.items()))
            options = options if isinstance(options, dict) else {"to": options}
        schema.setdefault(dataset, {})[column] = ColumnInfo(
            dataset=dataset,
            name=column,
            type=typ,
            sql_type=types.get((dataset, column), "VARCHAR"),
            role=role,
            transform=name,
            transform_options=tuple(sorted(options.items())),
            bounds=tuple(json.loads(bounds)) if bounds else None,  # type: ignore[arg-type]
            categories=tuple(categories) if categories is not None else None,
        )
    return schema


def resolve_units(
    schema: Schema,
    unit_column: str | Mapping[str, str] | None = None,
    identifier_kinds: Mapping[tuple[str, str], str | None] | None = None,
) -> dict[str, str]:
    """dataset -> privacy-unit column, for the datasets that hold persons.

    Explicit `unit_column` (one name for every dataset that has it, or a dataset -> column map)
    wins. Otherwise: a column that is a direct identifier pseudonymised in the workspace and,
    when `identifier_kinds` (from the manifests) is given, of kind cn_resident_id. Several
    candidates without manifest kinds is an error: configure the unit.
    """
    units: dict[str, str] = {}
    for dataset, columns in schema.items():
        if isinstance(unit_column, Mapping):
            if dataset in unit_column:
                units[dataset] = unit_column[dataset]
            continue
        if isinstance(unit_column, str):
            if unit_column in columns:
                units[dataset] = unit_column
            continue
        candidates = [
            c.name
            for c in columns.values()
            if c.role == "direct_identifier" and c.transform == "pseudonymise"
        ]
        if identifier_kinds is not None:
            candidates = [
                c for c in candidates if identifier_kinds.get((dataset, c)) == UNIT_IDENTIFIER_KIND
            ]
        if len(candidates) == 1:
            units[dataset] = candidates[0]
        elif len(candidates) > 1:
            raise PlatformError(
                f"dataset {dataset} has several pseudonymised person keys ({', '.join(candidates)})",
                fix="configure the privacy unit column (unit_column=...)",
            )
    for dataset, column in units.items():
        if dataset in schema and column not in schema[dataset]:
            raise PlatformError(f"privacy unit column {column} is not in dataset {dataset}")
    return units


# --------------------------------------------------------------------------- parsed form


@dataclass(frozen=True)
class ColRef:
    table: int  # index into ParsedQuery.tables; the engine aliases it t0 / t1
    info: ColumnInfo

    @property
    def column(self) -> str:
        return self.info.name

    @property
    def sql(self) -> str:
        return f't{self.table}."{self.info.name}"'


@dataclass(frozen=True)
class TableRef:
    dataset: str
    alias: str


@dataclass(frozen=True)
class GroupKey:
    ref: ColRef
    name: str
    categories: tuple[str, ...] | None  # None: unknown keys (thresholded)


AggKind = Literal["count", "count_column", "count_distinct", "sum", "avg", "quantile"]


@dataclass(frozen=True)
class Aggregate:
    kind: AggKind
    name: str
    label: str  # canonical form, e.g. SUM(wage_base)
    ref: ColRef | None = None
    q: float | None = None
    bounds: tuple[float, float] | None = None


@dataclass(frozen=True)
class ParsedQuery:
    sql: str
    tables: tuple[TableRef, ...]
    join_keys: tuple[ColRef, ColRef] | None
    where_sql: str | None
    where_params: tuple[Any, ...]
    groups: tuple[GroupKey, ...]
    aggregates: tuple[Aggregate, ...]
    output: tuple[str, ...]  # output column names in SELECT order
    unit: ColRef
    unknown_keys: bool  # some group column has no public categories: thresholded release
    notes: tuple[str, ...] = field(default=())

    @property
    def datasets(self) -> tuple[str, ...]:
        return tuple(sorted({t.dataset for t in self.tables}))


# --------------------------------------------------------------------------- parser

_SELECT_KEYS = {
    "type", "modifiers", "cte_map", "select_list", "from_table", "where_clause",
    "group_expressions", "group_sets", "aggregate_handling", "having", "sample", "qualify",
}  # fmt: skip
_COMPARE = {
    "COMPARE_EQUAL": "=",
    "COMPARE_NOTEQUAL": "<>",
    "COMPARE_LESSTHAN": "<",
    "COMPARE_GREATERTHAN": ">",
    "COMPARE_LESSTHANOREQUALTO": "<=",
    "COMPARE_GREATERTHANOREQUALTO": ">=",
}
_FLIP = {"=": "=", "<>": "<>", "<": ">", ">": "<", "<=": ">=", ">=": "<="}
_UNSUPPORTED_AGG = {
    "min": "MIN/MAX release a single person's value",
    "max": "MIN/MAX release a single person's value",
    "arg_min": "ARG_MIN/ARG_MAX release a single row",
    "arg_max": "ARG_MIN/ARG_MAX release a single row",
    "first": "FIRST/LAST release a single row",
    "last": "FIRST/LAST release a single row",
    "list": "LIST releases raw values",
    "array_agg": "ARRAY_AGG releases raw values",
    "string_agg": "STRING_AGG releases raw values",
    "mode": "MODE is not supported",
    "stddev": "STDDEV/VARIANCE are not supported yet",
    "stddev_samp": "STDDEV/VARIANCE are not supported yet",
    "stddev_pop": "STDDEV/VARIANCE are not supported yet",
    "variance": "STDDEV/VARIANCE are not supported yet",
    "var_samp": "STDDEV/VARIANCE are not supported yet",
    "var_pop": "STDDEV/VARIANCE are not supported yet",
    "quantile_disc": "QUANTILE_DISC returns a data value",
}


def _serialize(sql: str) -> dict[str, Any]:
    con = duckdb.connect()
    try:
        raw = con.execute("SELECT json_serialize_sql(?)", [sql]).fetchone()[0]  # type: ignore[index]
    finally:
        con.close()
    tree = json.loads(raw)
    if tree.get("error"):
        message = str(tree.get("error_message", "cannot be parsed"))
        if "Only SELECT" in message:
            raise _fail("a DP query is one SELECT statement", fix=f"write {FORM}")
        raise _fail(f"the DP query is not valid SQL: {message}", fix=f"write {FORM}")
    return tree


def parse_dp_query(
    sql: str,
    schema: Schema,
    units: Mapping[str, str] | None = None,
    *,
    unknown_keys: bool = False,
) -> ParsedQuery:
    """Check `sql` against the whitelist and the workspace's columns; raise ValidationError."""
    return _Parser(
        sql.strip().rstrip(";").strip(),
        schema,
        resolve_units(schema) if units is None else dict(units),
        unknown_keys,
    ).parse()


class _Parser:
    def __init__(self, sql: str, schema: Schema, units: Mapping[str, str], unknown_keys: bool):
        self.sql = sql
        self.schema = schema
        self.units = units
        self.allow_unknown = unknown_keys
        self.tables: list[TableRef] = []
        self.params: list[Any] = []
        self.using: str | None = None  # the USING key, which may be named unqualified
        self.join_keys: tuple[ColRef, ColRef] | None = None

    # -- helpers
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

    def parse(self) -> ParsedQuery:
        if not self.sql:
            raise _fail("the DP query is empty", fix=f"write {FORM}")
        tree = _serialize(self.sql)
        statements = tree.get("statements") or []
        if len(statements) != 1:
            raise _fail(
                f"a DP query is exactly one SELECT statement; found {len(statements)}",
                fix="send one query per dp: action",
            )
        statement = statements[0]
        if statement.get("named_param_map"):
            raise _fail(
                "query parameters ($1, ?) are not supported", fix="write the values as literals"
            )
        node = statement["node"]
        kind = node.get("type")
        if kind == "SET_OPERATION_NODE":
            op = str(node.get("setop_type", "UNION"))
            raise _fail(
                f"{op} is not supported: a DP query is one SELECT",
                fix="run separate DP queries (each spends its own epsilon)",
            )
        if kind != "SELECT_NODE":
            raise _fail(f"only a plain SELECT is supported, not {kind}", fix=f"write {FORM}")
        self.check_select_node(node)

        self.parse_from(node.get("from_table") or {})
        unit = self.unit_ref()
        where_sql = self.parse_where(node.get("where_clause"))

        # GROUP BY
        group_all = node.get("aggregate_handling") == "FORCE_AGGREGATES"
        if node.get("aggregate_handling") not in ("STANDARD_HANDLING", "FORCE_AGGREGATES", None):
            raise _fail(f"aggregate handling {node.get('aggregate_handling')} is not supported")
        group_exprs = node.get("group_expressions") or []
        sets = node.get("group_sets") or []
        if group_exprs and sets != [list(range(len(group_exprs)))]:
            raise _fail(
                "GROUPING SETS, ROLLUP and CUBE are not supported",
                fix="GROUP BY plain columns; run one query per grouping",
            )
        group_refs: list[ColRef] = []
        for expr in group_exprs:
            group_refs.append(self.group_column(expr))

        # SELECT list
        select_list = node.get("select_list") or []
        plain: list[tuple[ColRef, str, Mapping[str, Any]]] = []
        aggregates: list[Aggregate] = []
        output: list[str] = []
        for item in select_list:
            cls = item.get("class")
            if cls == "COLUMN_REF":
                ref = self.column(item)
                name = item.get("alias") or ref.column
                plain.append((ref, name, item))
                output.append(name)
            elif cls == "FUNCTION" or cls == "AGGREGATE":
                agg = self.aggregate(item, unit)
                aggregates.append(agg)
                output.append(agg.name)
            elif cls == "STAR":
                raise _fail(
                    "SELECT * would release raw rows",
                    fix="select group columns and aggregates, e.g. SELECT district, COUNT(*) ... GROUP BY district",
                )
            elif cls == "WINDOW":
                raise _fail(
                    f"window functions are not supported: {self.text(item)}",
                    fix=f"use plain aggregates: {SUPPORTED}",
                )
            elif cls == "SUBQUERY":
                raise _fail(f"subqueries are not supported: {self.text(item)}", fix=f"write {FORM}")
            else:
                raise _fail(
                    f"{self.text(item)!r} is not allowed in SELECT: only group columns and aggregates",
                    fix=f"use {SUPPORTED}; compute derived values from the released table",
                )
        if not aggregates:
            raise _fail(
                "a DP query must aggregate: selecting columns without COUNT/SUM/AVG/QUANTILE would release raw values",
                fix=f"add an aggregate, e.g. SELECT district, COUNT(*) FROM ... GROUP BY district ({SUPPORTED})",
            )
        if group_all:
            group_refs = [ref for ref, _, _ in plain]
        if plain and not group_refs:
            names = ", ".join(n for _, n, _ in plain)
            raise _fail(
                f"{names} is selected without GROUP BY: that would release raw values",
                fix=f"add GROUP BY {names}",
            )
        group_keys_sql = [r.sql for r in group_refs]
        if len(set(group_keys_sql)) != len(group_keys_sql):
            raise _fail("a GROUP BY column is listed twice", fix="list each group column once")
        groups: list[GroupKey] = []
        for ref in group_refs:
            match = [name for r, name, _ in plain if r.sql == ref.sql]
            if not match:
                raise _fail(
                    f"GROUP BY {ref.column} is not in the SELECT list",
                    fix=f"add {ref.column} to the SELECT list so each row says which group it is",
                )
            groups.append(self.group_key(ref, match[0]))
        for ref, _name, item in plain:
            if ref.sql not in group_keys_sql:
                raise _fail(
                    f"{self.text(item)} is selected but not grouped by",
                    fix="add it to GROUP BY or remove it from the SELECT list",
                )
        if len(set(output)) != len(output):
            dup = next(n for n in output if output.count(n) > 1)
            raise _fail(
                f"two output columns are both named {dup!r}", fix="give them distinct AS aliases"
            )
        if len(set(group_keys_sql)) != len(plain):
            raise _fail("a group column is selected twice", fix="select each group column once")

        unknown = any(g.categories is None for g in groups)
        notes: list[str] = []
        if unknown:
            notes.append(
                "unknown-keys mode: groups are released only when their noisy row count passes a "
                "threshold chosen from epsilon and delta"
            )
        return ParsedQuery(
            sql=self.sql,
            tables=tuple(self.tables),
            join_keys=self.join_keys,
            where_sql=where_sql,
            where_params=tuple(self.params),
            groups=tuple(groups),
            aggregates=tuple(aggregates),
            output=tuple(output),
            unit=unit,
            unknown_keys=unknown,
            notes=tuple(notes),
        )

    def check_select_node(self, node: Mapping[str, Any]) -> None:
        for modifier in node.get("modifiers") or []:
            mtype = modifier.get("type")
            if mtype == "DISTINCT_MODIFIER":
                raise _fail("SELECT DISTINCT is not supported", fix="GROUP BY the columns instead")
            if mtype == "ORDER_MODIFIER":
                raise _fail(
                    "ORDER BY is not supported: the engine releases every group in a fixed order",
                    fix="sort the released table afterwards",
                )
            if mtype == "LIMIT_MODIFIER" or mtype == "LIMIT_PERCENT_MODIFIER":
                raise _fail(
                    "LIMIT is not supported: which groups are kept would depend on the data",
                    fix="remove LIMIT and filter the released table afterwards",
                )
            raise _fail(f"{mtype} is not supported", fix=f"write {FORM}")
        if (node.get("cte_map") or {}).get("map"):
            raise _fail("WITH (common table expressions) is not supported", fix=f"write {FORM}")
        if node.get("having") is not None:
            raise _fail(
                "HAVING is not supported: filtering groups on true aggregate values leaks them",
                fix="filter the released (noisy) table afterwards",
            )
        if node.get("qualify") is not None:
            raise _fail("QUALIFY is not supported", fix=f"write {FORM}")
        if node.get("sample") is not None:
            raise _fail("sampling (USING SAMPLE) is not supported", fix="remove it")
        for key, value in node.items():
            if key not in _SELECT_KEYS and value not in (None, [], {}, "", False):
                raise _fail(f"SQL feature {key!r} is not supported", fix=f"write {FORM}")

    # -- FROM
    def base_table(self, node: Mapping[str, Any]) -> int:
        kind = node.get("type")
        if kind == "SUBQUERY":
            raise _fail("subqueries are not supported in FROM", fix="query a dataset directly")
        if kind == "TABLE_FUNCTION":
            raise _fail(
                f"table functions are not supported: {self.text(node.get('function') or node)}",
                fix="name a granted dataset, e.g. FROM contributions",
            )
        if kind == "JOIN":
            raise _fail("at most one JOIN is supported", fix="join two datasets per query")
        if kind == "EMPTY":
            raise _fail("a DP query reads FROM a dataset", fix="add FROM <dataset>")
        if kind != "BASE_TABLE":
            raise _fail(f"FROM {kind} is not supported", fix="name a granted dataset")
        if node.get("schema_name") or node.get("catalog_name"):
            raise _fail(
                "qualified table names (schema.table) are not supported",
                fix="name the dataset alone, e.g. FROM contributions",
            )
        if node.get("sample") is not None:
            raise _fail("TABLESAMPLE is not supported", fix="remove it")
        if node.get("column_name_alias"):
            raise _fail("column aliases on a table (t(a, b)) are not supported", fix="remove them")
        if node.get("at_clause") is not None:
            raise _fail("AT (time travel) is not supported", fix="remove it")
        name = str(node.get("table_name", "")).lower()
        if name not in self.schema or name.startswith("_"):
            known = ", ".join(sorted(self.schema)) or "none"
            raise _fail(
                f"dataset {node.get('table_name')!r} is not in this project's workspace",
                fix=f"use one of: {known}",
            )
        alias = str(node.get("alias") or name).lower()
        if any(t.alias == alias for t in self.tables):
            raise _fail(
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
            raise _fail(
                "cross joins (FROM a, b) are not supported",
                fix="JOIN b USING (<pseudonymised key>)",
            )
        if join_type != "INNER" or ref_type != "REGULAR":
            what = ref_type if ref_type != "REGULAR" else join_type
            raise _fail(f"{what} JOIN is not supported", fix="use an inner JOIN ... USING (key)")
        for side in ("left", "right"):
            if (node.get(side) or {}).get("type") == "JOIN":
                raise _fail("at most one JOIN is supported", fix="join two datasets per query")
        left = self.base_table(node["left"])
        right = self.base_table(node["right"])
        using = node.get("using_columns") or []
        condition = node.get("condition")
        if using:
            if len(using) != 1:
                raise _fail("JOIN USING takes exactly one key column", fix="USING (resident_id)")
            key = str(using[0]).lower()
            refs = []
            for i in (left, right):
                info = self.schema[self.tables[i].dataset].get(key)
                if info is None:
                    raise _fail(
                        f"dataset {self.tables[i].dataset} has no column {key} to join on",
                        fix="join on a key both datasets hold",
                    )
                refs.append(ColRef(i, info))
            self.using = key
            lref, rref = refs
        elif condition is not None:
            if condition.get("type") != "COMPARE_EQUAL":
                raise _fail(
                    f"the join condition must be a.key = b.key, not {self.text(condition)}",
                    fix="JOIN b ON a.key = b.key (or USING (key))",
                )
            a = self.column(condition["left"])
            b = self.column(condition["right"])
            if a.table == b.table:
                raise _fail(
                    "the join condition must compare the two datasets", fix="ON a.key = b.key"
                )
            lref, rref = (a, b) if a.table == left else (b, a)
            self.using = None
        else:
            raise _fail(
                "a JOIN needs USING (key) or ON a.key = b.key", fix="JOIN b USING (resident_id)"
            )
        self.check_join(lref, rref)
        self.join_keys = (lref, rref)

    def check_join(self, a: ColRef, b: ColRef) -> None:
        da, db = self.tables[a.table].dataset, self.tables[b.table].dataset
        ua, ub = self.units.get(da), self.units.get(db)
        if ua and ub:
            if a.column != ua or b.column != ub:
                raise _fail(
                    f"joining two person-level datasets ({da}, {db}) must be on the person key "
                    f"({ua} = {ub}), not {a.column} = {b.column}: otherwise one person's rows can "
                    "multiply with other persons' rows",
                    fix=f"JOIN ... ON a.{ua} = b.{ub}",
                )
            return
        if not (a.info.transform == "pseudonymise" and b.info.transform == "pseudonymise"):
            raise _fail(
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
        raise _fail(
            f"{names}: no privacy unit (pseudonymised person key), so rows cannot be bounded per person",
            fix="query a person-level dataset, or join this one to it on a pseudonymised key",
        )

    # -- columns
    def column(self, node: Mapping[str, Any]) -> ColRef:
        if node.get("class") != "COLUMN_REF":
            raise _fail(
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
                raise _fail(
                    f"{qualifier}.{col}: {qualifier} is not a table of this query",
                    fix="qualify columns with a table name or alias from FROM",
                )
            info = self.schema[self.tables[idx[0]].dataset].get(col)
            if info is None:
                raise _fail(
                    f"dataset {self.tables[idx[0]].dataset} has no column {col}",
                    fix=f"use one of: {', '.join(self.schema[self.tables[idx[0]].dataset])}",
                )
            return ColRef(idx[0], info)
        if len(names) != 1:
            raise _fail(
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
            raise _fail(
                f"no column {col} in {', '.join(t.dataset for t in self.tables)}",
                fix=f"use one of: {', '.join(known)}",
            )
        if len(found) > 1:
            if self.using == col:
                return found[0]
            raise _fail(
                f"column {col} is ambiguous: both joined datasets have it",
                fix=f"qualify it, e.g. {self.tables[0].alias}.{col}",
            )
        return found[0]

    def group_column(self, expr: Mapping[str, Any]) -> ColRef:
        if expr.get("class") == "CONSTANT":
            raise _fail("GROUP BY by position is not supported", fix="GROUP BY column names")
        if expr.get("class") != "COLUMN_REF":
            raise _fail(
                f"GROUP BY {self.text(expr)} is not supported: group by plain columns",
                fix="GROUP BY a column with public categories, e.g. GROUP BY district",
            )
        return self.column(expr)

    def group_key(self, ref: ColRef, name: str) -> GroupKey:
        info = ref.info
        if info.is_identifier:
            raise _fail(
                f"GROUP BY {info.name}: it is an identifier (pseudonymised key); grouping by it "
                "would publish keys",
                fix="group by a column with public categories, e.g. district",
            )
        if info.categories:
            return GroupKey(ref, name, info.categories)
        if info.role == "sensitive":
            raise _fail(
                f"GROUP BY {info.name}: it is a sensitive column without public categories",
                fix="aggregate it (SUM/AVG/QUANTILE) instead of grouping by it",
            )
        if not self.allow_unknown:
            raise _fail(
                f"GROUP BY {info.name}: the column has no declared public categories, so the set of "
                "groups itself would depend on the data",
                fix=(
                    f"declare `categories:` for {info.dataset}.{info.name} in the manifest (and keep it "
                    "in the grant), or opt into unknown-keys mode (unknown_keys: true, delta > 0)"
                ),
            )
        return GroupKey(ref, name, None)

    # -- aggregates
    def aggregate(self, node: Mapping[str, Any], unit: ColRef) -> Aggregate:
        fname = str(node.get("function_name", "")).lower()
        snippet = self.text(node)
        if node.get("class") != "FUNCTION":
            raise _fail(f"{snippet!r} is not supported", fix=f"use {SUPPORTED}")
        if node.get("filter") is not None:
            raise _fail(
                f"FILTER (WHERE ...) is not supported: {snippet}", fix="use the query's WHERE"
            )
        if (node.get("order_bys") or {}).get("orders"):
            raise _fail(
                f"ORDER BY inside an aggregate is not supported: {snippet}", fix="remove it"
            )
        if node.get("export_state"):
            raise _fail(f"EXPORT_STATE is not supported: {snippet}")
        if node.get("schema") or node.get("catalog"):
            raise _fail(f"qualified function names are not supported: {snippet}")
        args = [a.get("expression", a) for a in node.get("arguments") or []]
        distinct = bool(node.get("distinct"))
        alias = node.get("alias") or ""
        if fname in _UNSUPPORTED_AGG:
            raise _fail(f"{snippet}: {_UNSUPPORTED_AGG[fname]}", fix=f"use {SUPPORTED}")
        if distinct and fname != "count":
            raise _fail(f"DISTINCT is only supported as COUNT(DISTINCT person key): {snippet}")
        if fname == "count_star":
            return Aggregate("count", alias or "count", "COUNT(*)")
        if fname == "count":
            if len(args) != 1:
                raise _fail(f"COUNT takes one column: {snippet}", fix="COUNT(*) or COUNT(column)")
            ref = self.value_column(args[0], snippet)
            if distinct:
                if ref.column != unit.column or not ref.info.is_identifier:
                    raise _fail(
                        f"{snippet}: COUNT(DISTINCT ...) is only supported on the person key "
                        f"({unit.column}); distinct counts of other columns have no bounded sensitivity",
                        fix=f"COUNT(DISTINCT {unit.column})",
                    )
                return Aggregate(
                    "count_distinct",
                    alias or f"count_distinct_{ref.column}",
                    f"COUNT(DISTINCT {ref.column})",
                    ref=unit,
                )
            return Aggregate(
                "count_column", alias or f"count_{ref.column}", f"COUNT({ref.column})", ref=ref
            )
        if fname in ("sum", "avg", "mean", "median", "quantile", "quantile_cont"):
            kind: AggKind = "quantile"
            q: float | None = None
            if fname in ("sum", "avg", "mean", "median"):
                if len(args) != 1:
                    raise _fail(f"{fname.upper()} takes one column: {snippet}")
                kind = {"sum": "sum", "avg": "avg", "mean": "avg", "median": "quantile"}[fname]  # type: ignore[assignment]
                q = 0.5 if fname == "median" else None
            else:
                if len(args) != 2:
                    raise _fail(
                        f"QUANTILE takes a column and one q in [0, 1]: {snippet}",
                        fix="e.g. QUANTILE(wage_base, 0.9)",
                    )
                q = self.quantile_q(args[1], snippet)
            ref = self.value_column(args[0], snippet)
            bounds = self.bounds_for(ref, fname.upper())
            col = ref.column
            if kind == "sum":
                return Aggregate("sum", alias or f"sum_{col}", f"SUM({col})", ref, None, bounds)
            if kind == "avg":
                return Aggregate("avg", alias or f"avg_{col}", f"AVG({col})", ref, None, bounds)
            assert q is not None
            if fname == "median":
                return Aggregate(
                    "quantile", alias or f"median_{col}", f"MEDIAN({col})", ref, q, bounds
                )
            return Aggregate(
                "quantile",
                alias or f"quantile_{col}_{q:g}",
                f"QUANTILE({col}, {q:g})",
                ref,
                q,
                bounds,
            )
        if node.get("is_operator") or not fname.replace("_", "").isalnum():
            raise _fail(
                f"expressions are not allowed in SELECT (operator {fname!r}): only group columns and aggregates",
                fix="select the plain aggregate; compute derived values from the released table",
            )
        raise _fail(
            f"{fname.upper()}() is not allowed in SELECT: only group columns and aggregates",
            fix=f"use {SUPPORTED}",
        )

    def value_column(self, node: Mapping[str, Any], snippet: str) -> ColRef:
        if node.get("class") != "COLUMN_REF":
            raise _fail(
                f"aggregate arguments must be a plain column, not an expression: {snippet}",
                fix="aggregate a column; derive values from the released table",
            )
        return self.column(node)

    def quantile_q(self, node: Mapping[str, Any], snippet: str) -> float:
        literal = node.get("literal") or {}
        if node.get("class") != "CONSTANT" or literal.get("kind") not in (
            "INTEGER",
            "NUMERIC",
            "DECIMAL",
            "DOUBLE",
        ):
            raise _fail(
                f"QUANTILE takes one literal q in [0, 1]: {snippet}",
                fix="e.g. QUANTILE(wage_base, 0.9); one quantile per aggregate",
            )
        q = float(str(literal.get("text")))
        if not 0 <= q <= 1:
            raise _fail(f"quantile q must be in [0, 1], not {q:g}: {snippet}")
        return q

    def bounds_for(self, ref: ColRef, what: str) -> tuple[float, float]:
        info = ref.info
        if info.type not in ("integer", "float"):
            raise _fail(
                f"{what}({info.name}): {info.dataset}.{info.name} is a {info.type} column; "
                f"{what} needs a numeric column",
                fix="aggregate a numeric column with bounds",
            )
        if info.transform not in ("keep", "top_bottom_code"):
            raise _fail(
                f"{what}({info.name}): the grant transforms it ({info.transform}), so its manifest "
                "bounds do not describe the workspace values",
                fix="aggregate a kept or top_bottom_coded column",
            )
        bounds = info.value_bounds()
        if bounds is None:
            raise _fail(
                f"{what}({info.name}): {info.dataset}.{info.name} has no bounds in the manifest; DP "
                "sums, averages and quantiles need them to bound one person's influence",
                fix=f"add `bounds: [low, high]` to column {info.name} of the {info.dataset} manifest "
                "and register a new version",
            )
        return bounds

    # -- WHERE
    def parse_where(self, node: Mapping[str, Any] | None) -> str | None:
        if node is None:
            return None
        return self.predicate(node)

    def predicate(self, node: Mapping[str, Any]) -> str:
        cls, kind = node.get("class"), node.get("type")
        if cls == "CONJUNCTION" and kind in ("CONJUNCTION_AND", "CONJUNCTION_OR"):
            op = " AND " if kind == "CONJUNCTION_AND" else " OR "
            return "(" + op.join(self.predicate(c) for c in node.get("children") or []) + ")"
        if kind == "OPERATOR_NOT":
            children = node.get("children") or []
            if len(children) != 1:
                raise _fail(f"unsupported NOT: {self.text(node)}")
            return f"(NOT {self.predicate(children[0])})"
        if cls == "COMPARISON" and kind in _COMPARE:
            left, right = node.get("left") or {}, node.get("right") or {}
            op = _COMPARE[kind]
            if left.get("class") != "COLUMN_REF" and right.get("class") == "COLUMN_REF":
                left, right, op = right, left, _FLIP[op]
            ref = self.filter_column(left, node)
            return f"({ref.sql} {op} {self.literal(right, ref, node)})"
        if kind in ("COMPARE_IN", "COMPARE_NOT_IN"):
            children = node.get("children") or []
            if len(children) < 2:
                raise _fail(f"IN needs a list of values: {self.text(node)}")
            ref = self.filter_column(children[0], node)
            values = ", ".join(self.literal(c, ref, node) for c in children[1:])
            neg = "NOT " if kind == "COMPARE_NOT_IN" else ""
            return f"({ref.sql} {neg}IN ({values}))"
        if kind == "COMPARE_BETWEEN":
            ref = self.filter_column(node.get("input") or {}, node)
            lo = self.literal(node.get("lower") or {}, ref, node)
            hi = self.literal(node.get("upper") or {}, ref, node)
            return f"({ref.sql} BETWEEN {lo} AND {hi})"
        if kind in ("OPERATOR_IS_NULL", "OPERATOR_IS_NOT_NULL"):
            children = node.get("children") or []
            if len(children) != 1:
                raise _fail(f"unsupported IS NULL: {self.text(node)}")
            ref = self.filter_column(children[0], node)
            return f"({ref.sql} IS {'NOT ' if kind == 'OPERATOR_IS_NOT_NULL' else ''}NULL)"
        if cls == "SUBQUERY":
            raise _fail(
                f"subqueries are not supported: {self.text(node)}", fix="use literal values"
            )
        raise _fail(
            f"the WHERE condition {self.text(node)!r} is not a simple predicate",
            fix="use column = / <> / < / <= / > / >= literal, IN (...), BETWEEN, IS NULL, joined by AND / OR / NOT",
        )

    def filter_column(self, node: Mapping[str, Any], whole: Mapping[str, Any]) -> ColRef:
        if node.get("class") != "COLUMN_REF":
            raise _fail(
                f"the WHERE condition {self.text(whole)!r} must compare a column with literals",
                fix="e.g. WHERE gender = '女' AND month >= DATE '2025-01-01'",
            )
        ref = self.column(node)
        info = ref.info
        if info.is_identifier:
            raise _fail(
                f"WHERE on {info.name}: filtering on identifiers or pseudonyms singles out persons",
                fix="filter on public columns (categories, dates, public attributes)",
            )
        if not info.public:
            raise _fail(
                f"WHERE on {info.name}: it is a sensitive column; filters may only use public or "
                "category columns",
                fix="filter on public columns; aggregate sensitive ones",
            )
        return ref

    def literal(self, node: Mapping[str, Any], ref: ColRef, whole: Mapping[str, Any]) -> str:
        """Bind a literal as a parameter cast to the column's workspace type."""
        sql_type = ref.info.sql_type.upper()
        cast_to: str | None = None
        if node.get("class") == "CAST":
            cast_to = str((node.get("type_expr") or {}).get("type_name", "")).upper()
            if cast_to not in ("DATE", "TIMESTAMP") or node.get("try_cast"):
                raise _fail(
                    f"only DATE '...' and TIMESTAMP '...' literals are supported: {self.text(node)}"
                )
            node = node.get("child") or {}
        if node.get("class") != "CONSTANT":
            raise _fail(
                f"the WHERE condition {self.text(whole)!r} must compare a column with literals",
                fix="write values literally, e.g. 'a', 3, DATE '2025-01-01'",
            )
        lit = node.get("literal") or {}
        lkind, text = lit.get("kind"), lit.get("text")
        if lkind == "NULL_LITERAL":
            raise _fail("compare with NULL using IS NULL / IS NOT NULL", fix="WHERE col IS NULL")
        value: Any
        base = sql_type.split("(")[0]
        if base in NUMERIC_SQL or base.startswith("DECIMAL"):
            if lkind not in ("INTEGER", "NUMERIC", "DECIMAL", "DOUBLE") or cast_to:
                raise _fail(
                    f"{ref.column} is numeric: compare it with a number, not {self.text(node)}",
                    fix=f"e.g. {ref.column} >= 10",
                )
            value = (
                float(str(text))
                if base in ("FLOAT", "DOUBLE", "REAL") or base.startswith("DECIMAL")
                else _as_int(text)
            )
        elif base in ("DATE", "TIMESTAMP", "TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ"):
            if lkind != "STRING":
                raise _fail(
                    f"{ref.column} is a date: compare it with DATE 'YYYY-MM-DD'",
                    fix=f"e.g. {ref.column} >= DATE '2025-01-01'",
                )
            try:
                value = (
                    date.fromisoformat(str(text))
                    if base == "DATE"
                    else datetime.fromisoformat(str(text))
                )
            except ValueError:
                raise _fail(
                    f"{text!r} is not an ISO date for {ref.column}", fix="e.g. DATE '2025-01-01'"
                ) from None
        elif base == "BOOLEAN":
            if lkind != "BOOLEAN":
                raise _fail(
                    f"{ref.column} is boolean: compare it with TRUE or FALSE",
                    fix=f"e.g. {ref.column} = TRUE",
                )
            value = str(text).lower() == "true"
        elif base == "VARCHAR":
            if lkind != "STRING" or cast_to:
                raise _fail(
                    f"{ref.column} is text: compare it with a quoted string, not {self.text(node)}",
                    fix=f"e.g. {ref.column} = '{(ref.info.categories or ('value',))[0]}'",
                )
            value = str(text)
        else:
            raise _fail(f"filters on {ref.column} ({sql_type}) are not supported")
        self.params.append(value)
        return f"CAST(? AS {sql_type})"


def _as_int(text: Any) -> int | float:
    try:
        return int(str(text))
    except ValueError:
        return float(str(text))
