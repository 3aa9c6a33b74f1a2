"""ClickHouse SQL: identifier quoting, type mapping both ways, DDL and finalize statements.

Pure: no driver import. Values always travel as server-side bound parameters
(``{name:Type}``); identifiers are quoted here, never pasted from user input.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from ..contracts.errors import BadInputError
from ..contracts.table import CanonicalType, Column, TableSchema
from ..schema.planner import ChangeKind, SchemaChange
from .dialect import SqlDialect, TableRef

DIALECT = "clickhouse"
UNBOUNDED_DECIMAL = (38, 10)  # where an unbounded numeric lands; wider values fail the insert


# --- types -----------------------------------------------------------------------------------

_TO_CH = {
    CanonicalType.BOOLEAN: "Bool",
    CanonicalType.INT16: "Int16",
    CanonicalType.INT32: "Int32",
    CanonicalType.INT64: "Int64",
    CanonicalType.FLOAT32: "Float32",
    CanonicalType.FLOAT64: "Float64",
    CanonicalType.STRING: "String",
    CanonicalType.BINARY: "String",
    CanonicalType.DATE: "Date32",
    CanonicalType.TIME: "String",
    CanonicalType.TIMESTAMP: "DateTime64(6)",
    CanonicalType.TIMESTAMPTZ: "DateTime64(6, 'UTC')",
    CanonicalType.INTERVAL: "String",
    CanonicalType.UUID: "UUID",
    CanonicalType.JSON: "String",
    CanonicalType.UNKNOWN: "String",
}


_SIMPLE = {
    "Bool": (CanonicalType.BOOLEAN, None, None),
    "Int8": (CanonicalType.INT16, None, None),
    "UInt8": (CanonicalType.INT16, None, None),
    "Int16": (CanonicalType.INT16, None, None),
    "UInt16": (CanonicalType.INT32, None, None),
    "Int32": (CanonicalType.INT32, None, None),
    "UInt32": (CanonicalType.INT64, None, None),
    "Int64": (CanonicalType.INT64, None, None),
    "UInt64": (CanonicalType.DECIMAL, 20, 0),
    "Int128": (CanonicalType.DECIMAL, 39, 0),
    "UInt128": (CanonicalType.DECIMAL, 39, 0),
    "Int256": (CanonicalType.DECIMAL, 77, 0),
    "UInt256": (CanonicalType.DECIMAL, 78, 0),
    "Float32": (CanonicalType.FLOAT32, None, None),
    "Float64": (CanonicalType.FLOAT64, None, None),
    "BFloat16": (CanonicalType.FLOAT32, None, None),
    "String": (CanonicalType.STRING, None, None),
    "Date": (CanonicalType.DATE, None, None),
    "Date32": (CanonicalType.DATE, None, None),
    "UUID": (CanonicalType.UUID, None, None),
    "JSON": (CanonicalType.JSON, None, None),
    "IPv4": (CanonicalType.STRING, None, None),
    "IPv6": (CanonicalType.STRING, None, None),
}
_DECIMAL_N = {"Decimal32": 9, "Decimal64": 18, "Decimal128": 38, "Decimal256": 76}


# --- introspection ---------------------------------------------------------------------------

INTROSPECT_COLUMNS = (
    "select name, type, is_in_sorting_key, is_in_partition_key from system.columns "
    "where database = {db:String} and table = {table:String} order by position"
)
TABLE_INFO = (
    "select engine, sorting_key, partition_key from system.tables "
    "where database = {db:String} and name = {table:String}"
)
ACTIVE_PARTITIONS = (
    "select distinct partition_id from system.parts "
    "where database = {db:String} and table = {table:String} and active order by partition_id"
)
STAGING_TABLES = (
    "select name, comment from system.tables "
    "where database = {db:String} and startsWith(comment, '{\"dpone_staging\"')"
)


TABLE_COMMENT = "select comment from system.tables where database = {db:String} and name = {table:String}"


_PARAM_SAFE = re.compile(r"^[A-Za-z0-9_(), ']+$")


# --- quality checks on staging (same shapes as the PostgreSQL dialect's) ----------------------


class ClickHouseDialect(SqlDialect):
    """ClickHouse SQL, rendered: identifiers quoted, values server-side bound parameters."""

    DIALECT = DIALECT
    DEFAULT_SCHEMA = "default"
    UNBOUNDED_DECIMAL = UNBOUNDED_DECIMAL
    INTROSPECT_COLUMNS = INTROSPECT_COLUMNS
    TABLE_INFO = TABLE_INFO
    ACTIVE_PARTITIONS = ACTIVE_PARTITIONS
    STAGING_TABLES = STAGING_TABLES
    TABLE_COMMENT = TABLE_COMMENT

    def quote_ident(self, name: str) -> str:
        if not name or "\x00" in name:
            raise BadInputError(f"invalid identifier {name!r}")
        return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"

    def quote_literal(self, text: str) -> str:
        return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"

    def base_type(self, column: Column) -> str:
        """The ClickHouse type of ``column`` without Nullable (a ClickHouse column keeps its own)."""
        if column.dialect == DIALECT and column.native_type:
            return self.strip_nullable(column.native_type)
        t = column.type
        if t is CanonicalType.DECIMAL:
            if column.precision is None or column.precision > 76:
                p, s = UNBOUNDED_DECIMAL
                return f"Decimal({p}, {s})"
            return f"Decimal({column.precision}, {column.scale or 0})"
        if t is CanonicalType.ARRAY:
            element = Column("element", column.element or CanonicalType.UNKNOWN)
            return f"Array(Nullable({self.base_type(element)}))"
        return _TO_CH[t]

    def column_type(self, column: Column, *, key: bool = False) -> str:
        """The full column type: Nullable unless NOT NULL, a sorting-key column, or an Array."""
        base = self.base_type(column)
        if (
            not column.nullable
            or key
            or base.startswith(("Array(", "Map(", "Tuple(", "LowCardinality(Nullable"))
        ):
            return base
        if base.startswith("LowCardinality("):
            return f"LowCardinality(Nullable({base[len('LowCardinality(') : -1]}))"
        return f"Nullable({base})"

    def strip_nullable(self, native: str) -> str:
        native = native.strip()
        if native.startswith("Nullable(") and native.endswith(")"):
            return native[len("Nullable(") : -1]
        if native.startswith("LowCardinality(Nullable(") and native.endswith("))"):
            return f"LowCardinality({native[len('LowCardinality(Nullable(') : -2]})"
        return native

    def _args(self, native: str) -> list[str]:
        inner = native[native.index("(") + 1 : native.rindex(")")]
        parts, depth, current = [], 0, ""
        for ch in inner:
            if ch == "," and depth == 0:
                parts.append(current.strip())
                current = ""
                continue
            depth += ch == "("
            depth -= ch == ")"
            current += ch
        parts.append(current.strip())
        return parts

    def to_canonical(self, name: str, native: str, *, nullable: bool | None = None) -> Column:
        """A ClickHouse column type as a canonical column (the native type is kept)."""
        text = native.strip()
        is_nullable = False
        if text.startswith("LowCardinality(") and text.endswith(")"):
            text = text[len("LowCardinality(") : -1]
        if text.startswith("Nullable(") and text.endswith(")"):
            text, is_nullable = text[len("Nullable(") : -1], True
        if text.startswith("LowCardinality(") and text.endswith(")"):
            text = text[len("LowCardinality(") : -1]
        keep: dict[str, Any] = {"native_type": native.strip(), "dialect": DIALECT}
        nullable = is_nullable if nullable is None else nullable
        head = text.split("(", 1)[0]
        if head in _SIMPLE:
            t, p, s = _SIMPLE[head]
            return Column(name, t, nullable, precision=p, scale=s, **keep)
        if head == "Decimal":
            args = self._args(text)
            p, s = int(args[0]), int(args[1]) if len(args) > 1 else 0
            return Column(name, CanonicalType.DECIMAL, nullable, precision=p, scale=s, **keep)
        if head in _DECIMAL_N:
            return Column(
                name,
                CanonicalType.DECIMAL,
                nullable,
                precision=_DECIMAL_N[head],
                scale=int(self._args(text)[0]),
                **keep,
            )
        if head in ("DateTime", "DateTime64"):
            args = self._args(text) if "(" in text else []
            zoned = any(a.startswith("'") for a in args)
            t = CanonicalType.TIMESTAMPTZ if zoned else CanonicalType.TIMESTAMP
            return Column(name, t, nullable, **keep)
        if head == "FixedString":
            return Column(name, CanonicalType.BINARY, nullable, length=int(self._args(text)[0]), **keep)
        if head in ("Enum8", "Enum16"):
            return Column(name, CanonicalType.STRING, nullable, **keep)
        if head == "Object":
            return Column(name, CanonicalType.JSON, nullable, **keep)
        if head == "Array":
            element = self.to_canonical("element", self._args(text)[0])
            if element.type is CanonicalType.ARRAY:  # nested arrays travel as text
                return Column(name, CanonicalType.UNKNOWN, nullable, **keep)
            return Column(name, CanonicalType.ARRAY, False, element=element.type, **keep)
        return Column(name, CanonicalType.UNKNOWN, nullable, **keep)

    def as_stored(self, schema: TableSchema) -> TableSchema:
        """``schema`` as ClickHouse would store it: each column through the type it would get.

        The planner compares this with the target, so a source type ClickHouse has no exact
        match for (unbounded numeric, interval, time) is not reported as a change every run.
        """
        stored = []
        for c in schema.columns:
            view = self.to_canonical(c.name, self.base_type(c), nullable=c.nullable)
            stored.append(replace(view, native_type=self.base_type(c)))
        return TableSchema(tuple(stored), schema.primary_key, schema.extras)

    def describe_query(self, query: str) -> str:
        return f"describe table ({query.strip().rstrip(';')})"

    # --- DDL -------------------------------------------------------------------------------------

    def create_database(self, database: str) -> str:
        return f"create database if not exists {self.quote_ident(database)}"

    def create_table(
        self,
        table: TableRef,
        schema: TableSchema,
        *,
        order_by: Sequence[str] = (),
        partition_by: Sequence[str] = (),
        comment: str | None = None,
    ) -> str:
        keys = set(order_by) | set(partition_by)
        cols = ",\n  ".join(
            f"{self.quote_ident(c.name)} {self.column_type(c, key=c.name in keys)}" for c in schema.columns
        )
        order = f"({self.column_list(order_by)})" if order_by else "tuple()"
        parts = [f"create table {table.sql} (\n  {cols}\n) engine = MergeTree"]
        if partition_by:
            parts.append(f"partition by ({self.column_list(partition_by)})")
        parts.append(f"order by {order}")
        if comment is not None:
            parts.append(f"comment {self.quote_literal(comment)}")
        return "\n".join(parts)

    def create_table_as(self, table: TableRef, like: TableRef, comment: str | None = None) -> str:
        """An empty table with ``like``'s columns, engine, sorting and partition key."""
        text = f"create table {table.sql} as {like.sql}"
        if comment is not None:
            text += f" comment {self.quote_literal(comment)}"
        return text

    def exchange_tables(self, a: TableRef, b: TableRef) -> str:
        return f"exchange tables {a.sql} and {b.sql}"

    def rename_table(self, source: TableRef, target: TableRef) -> str:
        return f"rename table {source.sql} to {target.sql}"

    def modify_comment(self, table: TableRef, text: str) -> str:
        return f"alter table {table.sql} modify comment {self.quote_literal(text)}"

    def schema_changes_ddl(
        self, table: TableRef, changes: Sequence[SchemaChange], keys: Sequence[str] = ()
    ) -> list[str]:
        """The DDL that applies the plan's safe changes: ADD COLUMN, and one MODIFY COLUMN per column.

        A column both widened and relaxed gets one MODIFY to its final type (two would undo each other).
        """
        out: list[str] = []
        final: dict[str, Column] = {}
        for change in changes:
            if change.kind in (ChangeKind.ADD_COLUMN, ChangeKind.NEW_COLUMN):
                assert change.result is not None
                col = replace(change.result, nullable=True)
                out.append(
                    f"alter table {table.sql} add column if not exists {self.quote_ident(col.name)} {self.column_type(col)}"
                )
            elif change.kind in (ChangeKind.WIDEN, ChangeKind.RELAX_NOT_NULL):
                assert change.target is not None
                current = final.get(change.column, change.target)
                if change.kind is ChangeKind.WIDEN:
                    assert change.result is not None
                    widened = replace(change.result, native_type=None, dialect=None)
                    final[change.column] = replace(widened, name=change.column, nullable=current.nullable)
                else:
                    final[change.column] = replace(current, nullable=True)
            else:
                raise ValueError(f"{change.kind.value} is not a change that is applied: {change.describe()}")
        for name, col in final.items():
            out.append(
                f"alter table {table.sql} modify column {self.quote_ident(name)} {self.column_type(col, key=name in keys)}"
            )
        return out

    # --- finalize --------------------------------------------------------------------------------

    def insert_select(self, target: TableRef, source: TableRef, names: Sequence[str]) -> str:
        cols = self.column_list(names)
        return f"insert into {target.sql} ({cols}) select {cols} from {source.sql}"

    def attach_partition_from(self, target: TableRef, partition_id: str, source: TableRef) -> str:
        """Copy one partition's parts from ``source`` into ``target`` (adds, replaces nothing)."""
        return f"alter table {target.sql} attach partition id {self.quote_literal(partition_id)} from {source.sql}"

    def replace_partition_from(self, target: TableRef, partition_id: str, source: TableRef) -> str:
        """Swap one partition of ``target`` for ``source``'s, atomically."""
        return f"alter table {target.sql} replace partition id {self.quote_literal(partition_id)} from {source.sql}"

    def delete_matching_keys(self, target: TableRef, staging: TableRef, keys: Sequence[str]) -> str:
        """Lightweight DELETE of the ``target`` rows whose key is in ``staging`` (either table)."""
        cols = self.column_list(keys)
        return f"delete from {target.sql} where ({cols}) in (select {cols} from {staging.sql})"

    def count_matching_keys(self, table: TableRef, other: TableRef, keys: Sequence[str]) -> str:
        """(rows of ``table`` whose key ``other`` holds)."""
        cols = self.column_list(keys)
        return f"select count() from {table.sql} where ({cols}) in (select {cols} from {other.sql})"

    def null_keys(self, staging: TableRef, keys: Sequence[str], sample: int = 5) -> str:
        """(rows with a NULL in any key column, up to ``sample`` of their keys as text)."""
        cond = " or ".join(f"isNull({self.quote_ident(k)})" for k in keys)
        return (
            f"select count(), groupArray({int(sample)})(toString(tuple({self.column_list(keys)}))) "
            f"from {staging.sql} where {cond}"
        )

    def duplicate_keys(self, staging: TableRef, keys: Sequence[str], sample: int = 5) -> str:
        """(number of duplicated keys, a few of them as tuples)."""
        cols = self.column_list(keys)
        return (
            f"select count(), groupArray({sample})(k) from ("
            f"select tuple({cols}) as k from {staging.sql} group by {cols} having count() > 1)"
        )

    def count_rows(self, table: TableRef) -> str:
        return f"select count() from {table.sql}"

    def count_newer(self, table: TableRef, column: str, param_type: str) -> str:
        return (
            f"select count() from {table.sql} where {self.quote_ident(column)} > {{watermark:{param_type}}}"
        )

    # --- source ----------------------------------------------------------------------------------

    def select_rows(self, relation: str, names: Sequence[str], where: str = "") -> str:
        text = f"select {self.column_list(names)} from {relation}"
        return f"{text} where {where}" if where else text

    def cursor_max(self, relation: str, cursor: str, *, utc: bool = False) -> str:
        """(max of ``cursor`` as text, row count); ``utc`` spells date-times in UTC."""
        zone = ", 'UTC'" if utc else ""
        return f"select toString(max({self.quote_ident(cursor)}){zone}), count() from {relation}"

    def cursor_predicate(self, cursor: str, param_type: str, has_lower: bool, lookback: bool) -> str:
        col = self.quote_ident(cursor)
        upper = f"{col} <= {{upper:{param_type}}}"
        if not has_lower:
            return upper
        lower = f"{{lower:{param_type}}}"
        if lookback:
            lower = f"{lower} - toIntervalMicrosecond({{lookback_us:Int64}})"
        return f"{col} > {lower} and {upper}"

    def param_type(self, native: str) -> str:
        """The bound-parameter type for comparing with a column of type ``native``."""
        base = self.strip_nullable(native)
        if base.startswith("LowCardinality("):
            base = base[len("LowCardinality(") : -1]
        if not _PARAM_SAFE.match(base):
            raise BadInputError(f"cannot bind a cursor value of type {native!r}")
        return base

    def quality_not_null(self, staging: TableRef, columns: Sequence[str]) -> tuple[str, str]:
        failing = " or ".join(f"isNull({self.quote_ident(c)})" for c in columns)
        per_column = ", ".join(f"countIf(isNull({self.quote_ident(c)}))" for c in columns)
        return f"select countIf({failing}), {per_column} from {staging.sql}", failing

    def quality_unique(self, staging: TableRef, columns: Sequence[str]) -> tuple[str, str]:
        cols = self.column_list(columns)
        present = " and ".join(f"isNotNull({self.quote_ident(c)})" for c in columns)
        groups = f"select {cols} from {staging.sql} where {present} group by {cols} having count() > 1"
        counts = (
            f"select count(), sum(n) from (select count() as n from {staging.sql} "
            f"where {present} group by {cols} having count() > 1)"
        )
        return counts, f"({cols}) in ({groups})"

    def quality_accepted_values(
        self, staging: TableRef, column: Column, values: Sequence[object]
    ) -> tuple[str, str, dict]:
        col = self.quote_ident(column.name)
        failing = f"isNotNull({col}) and toString({col}) not in {{accepted:Array(String)}}"
        return (
            f"select count() from {staging.sql} where {failing}",
            failing,
            {"accepted": [str(v) for v in values]},
        )

    def quality_freshness(self, staging: TableRef, column: str) -> str:
        col = self.quote_ident(column)
        return f"select toFloat64(dateDiff('microsecond', max({col}), now64(6))) / 1e6 from {staging.sql}"

    def now_epoch(self) -> str:
        return "select toUnixTimestamp64Micro(now64(6)) / 1e6"

    def staging_tables(self, schema: str) -> tuple[str, Any]:
        return STAGING_TABLES, {"db": schema}

    def table_comment(self, table: TableRef) -> tuple[str, Any]:
        return TABLE_COMMENT, {"db": table.schema, "table": table.name}

    def set_comment(self, table: TableRef, text: str) -> str:
        return self.modify_comment(table, text)


CLICKHOUSE = ClickHouseDialect()
