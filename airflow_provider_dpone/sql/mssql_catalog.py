"""SQL Server's catalog, types and bookkeeping tables, rendered: introspection queries, the type
map both ways (``mssql_types``), DDL, and the state, journal and staging-label statements. Pure.

Identifiers are quoted with ``[...]`` (``]`` doubled); values travel as DB-API ``?`` (qmark)
parameters, the style pyodbc and mssql-python take, in the same order the PostgreSQL dialect
takes them. Statements that take no parameter (DDL, extended properties) render values as
``N'...'`` literals. Needs SQL Server 2016 or later (``drop table if exists``, ``datediff_big``,
``sp_set_session_context``); partition rebuilds need 2017 (``select into ... on filegroup``).

A statement of several parts (``declare``/``if``/``exec``) returns several results to the
driver: the executor must drain them (``cursor.nextset()``) or an error in a later part is
never raised (pyodbc issue 128). The statements whose row count finalize reads are single DML
statements.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..contracts.errors import BadInputError, UnsupportedError
from ..contracts.table import Column, TableSchema
from ..schema.planner import ChangeKind, SchemaChange
from .dialect import TableRef
from .finalize_dialect import SetBasedDialect
from .mssql_types import (
    DIALECT,
    canonical_from_native,
    cast_type,
    collation_of,
    key_type,
    native_from_catalog,
    split_native,
    stored_type,
)

MAX_IDENTIFIER = 128  # sysname
MAX_PROPERTY_BYTES = 7500  # an extended property's value (sql_variant)
DESCRIPTION = "MS_Description"  # the extended property SSMS shows as a table's description
LOAD_SEQ = "dpone_load_seq"  # staging's load order (identity), for keep_last and append dedupe


# --- introspection (parameter: the table's quoted name, as ``TableRef.sql``) ----------------------

# name, type (the base system type; the CLR type's own name), max_length (bytes, -1 for max),
# precision, scale, nullable, collation, has a default (or identity / computed), is a CLR type.
INTROSPECT_COLUMNS = """
select c.name,
       case when t.is_assembly_type = 1 then t.name else coalesce(bt.name, t.name) end,
       c.max_length, c.precision, c.scale, c.is_nullable, c.collation_name,
       cast(case when c.is_identity = 1 or c.is_computed = 1 or c.default_object_id <> 0 then 1 else 0 end as bit),
       t.is_assembly_type
from sys.columns as c
join sys.types as t on t.user_type_id = c.user_type_id
left join sys.types as bt on bt.user_type_id = c.system_type_id and bt.is_user_defined = 0
where c.object_id = object_id(?)
order by c.column_id
"""

INTROSPECT_PRIMARY_KEY = """
select c.name
from sys.indexes as i
join sys.index_columns as ic on ic.object_id = i.object_id and ic.index_id = i.index_id
join sys.columns as c on c.object_id = ic.object_id and c.column_id = ic.column_id
where i.object_id = object_id(?) and i.is_primary_key = 1 and ic.key_ordinal > 0
order by ic.key_ordinal
"""

# (index id, column) of every enabled unique index without a filter
INTROSPECT_UNIQUE_KEYS = """
select i.index_id, c.name
from sys.indexes as i
join sys.index_columns as ic on ic.object_id = i.object_id and ic.index_id = i.index_id
join sys.columns as c on c.object_id = ic.object_id and c.column_id = ic.column_id
where i.object_id = object_id(?) and i.is_unique = 1 and i.has_filter = 0 and i.is_disabled = 0
  and ic.key_ordinal > 0
order by i.index_id, ic.key_ordinal
"""

TABLE_EXISTS = "select case when object_id(?, N'U') is null then 0 else 1 end"

# The columns of a user query's first result set, as ``INTROSPECT_COLUMNS`` rows (parameter: the
# query's text); the type's base name is cut from ``system_type_name`` (``nvarchar(50)``).
DESCRIBE_QUERY = """
select name,
       case when charindex('(', system_type_name) > 0
            then left(system_type_name, charindex('(', system_type_name) - 1) else system_type_name end,
       max_length, precision, scale, is_nullable, collation_name, cast(0 as bit),
       case when assembly_qualified_type_name is null then 0 else 1 end
from sys.dm_exec_describe_first_result_set(?, null, 0)
where is_hidden = 0
order by column_ordinal
"""

IS_PARTITIONED = """
select case when exists (
  select 1 from sys.indexes as i join sys.partition_schemes as ps on ps.data_space_id = i.data_space_id
  where i.object_id = object_id(?) and i.index_id in (0, 1)) then 1 else 0 end
"""

# Facts deciding whether a full refresh may swap tables (staging renamed in) instead of truncate
# + insert: anything the target has that a renamed staging table would not.
SWAP_BLOCKERS = """
select
  (select count(*) from sys.sql_expression_dependencies as d join sys.objects as r on r.object_id = d.referencing_id
     where d.referenced_id = t.object_id and (r.type = 'V' or d.is_schema_bound_reference = 1)) as dependent_views,
  (select count(*) from sys.foreign_keys as f where f.referenced_object_id = t.object_id
     or f.parent_object_id = t.object_id) as foreign_keys,
  (select count(*) from sys.triggers as g where g.parent_id = t.object_id) as triggers,
  (select count(*) from sys.indexes as i where i.object_id = t.object_id and i.index_id > 0
     and i.is_primary_key = 0 and i.is_hypothetical = 0) as extra_indexes,
  (select count(*) from sys.database_permissions as p where p.class = 1 and p.major_id = t.object_id) as grants,
  case when t.temporal_type <> 0 or t.is_memory_optimized = 1 or t.is_tracked_by_cdc = 1
    or exists (select 1 from sys.change_tracking_tables as ct where ct.object_id = t.object_id)
    or exists (select 1 from sys.indexes as i join sys.partition_schemes as ps on ps.data_space_id = i.data_space_id
               where i.object_id = t.object_id and i.index_id in (0, 1))
    then 1 else 0 end as not_plain_table,
  (select count(*) from sys.default_constraints as dc where dc.parent_object_id = t.object_id)
  + (select count(*) from sys.check_constraints as cc where cc.parent_object_id = t.object_id)
  + (select count(*) from sys.columns as c where c.object_id = t.object_id
       and (c.is_identity = 1 or c.is_computed = 1)) as column_rules,
  (select count(*) from sys.extended_properties as ep where ep.class = 1 and ep.major_id = t.object_id)
    as extended_properties
from sys.tables as t where t.object_id = object_id(?)
"""
SWAP_BLOCKER_NAMES = (
    "dependent views",
    "foreign keys",
    "triggers",
    "extra indexes",
    "grants",
    "temporal, memory-optimized, partitioned or change-tracked",
    "defaults, checks, identity or computed columns",
    "extended properties",
)

STAGING_TABLES = f"""
select t.name, cast(p.value as nvarchar(max))
from sys.tables as t
join sys.schemas as s on s.schema_id = t.schema_id
join sys.extended_properties as p on p.class = 1 and p.major_id = t.object_id and p.minor_id = 0
  and p.name = N'{DESCRIPTION}'
where s.name = ? and cast(p.value as nvarchar(max)) like N'{{"dpone[_]staging"%'
"""

TABLE_COMMENT = f"""
select cast(p.value as nvarchar(max)) from sys.extended_properties as p
where p.class = 1 and p.major_id = object_id(?) and p.minor_id = 0 and p.name = N'{DESCRIPTION}'
"""


def unique_keys_from_catalog(rows: Sequence[Sequence[Any]]) -> frozenset[frozenset[str]]:
    """The column sets of unique indexes, from ``INTROSPECT_UNIQUE_KEYS`` rows."""
    by_index: dict[Any, set[str]] = {}
    for index_id, column in rows:
        by_index.setdefault(index_id, set()).add(column)
    return frozenset(frozenset(cols) for cols in by_index.values())


class MsSqlCatalog(SetBasedDialect):
    """SQL Server's catalog, types, DDL and bookkeeping statements (``MsSqlDialect`` adds the
    extract, finalize and quality statements)."""

    DIALECT = DIALECT
    DEFAULT_SCHEMA = "dbo"
    INTROSPECT_COLUMNS = INTROSPECT_COLUMNS
    INTROSPECT_PRIMARY_KEY = INTROSPECT_PRIMARY_KEY
    INTROSPECT_UNIQUE_KEYS = INTROSPECT_UNIQUE_KEYS
    TABLE_EXISTS = TABLE_EXISTS
    IS_PARTITIONED = IS_PARTITIONED
    SWAP_BLOCKERS = SWAP_BLOCKERS
    STAGING_TABLES = STAGING_TABLES
    TABLE_COMMENT = TABLE_COMMENT
    LOAD_SEQ = LOAD_SEQ

    def quote_ident(self, name: str) -> str:
        """``[name]`` with ``]`` doubled; refuses empty names, NUL and names over 128 characters."""
        if not name or "\x00" in name or len(name) > MAX_IDENTIFIER:
            raise BadInputError(
                f"invalid SQL Server identifier {name!r} (1 to {MAX_IDENTIFIER} characters, no NUL)"
            )
        return "[" + name.replace("]", "]]") + "]"

    def quote_literal(self, text: str) -> str:
        """A Unicode string literal, ``N'...'`` with ``'`` doubled."""
        if "\x00" in text:
            raise BadInputError("a string literal cannot contain NUL")
        return "N'" + text.replace("'", "''") + "'"

    # --- types ---------------------------------------------------------------------------------

    def canonical_from_native(self, native: str) -> tuple[Any, int | None, int | None, int | None]:
        return canonical_from_native(native)

    def column_from_catalog(self, row: Sequence[Any]) -> Column:
        """A Column from one ``INTROSPECT_COLUMNS`` row; refuses spatial, hierarchyid,
        sql_variant and CLR user types, naming the column."""
        name, type_name, max_length, precision, scale, nullable, collation, _default, clr = row[:9]
        if clr and type_name.lower() not in ("geometry", "geography", "hierarchyid"):
            raise UnsupportedError(
                f"column '{name}' is of the CLR type {type_name}; select it converted to a standard "
                "type in a source query, or leave the column out"
            )
        native = native_from_catalog(type_name, max_length, precision, scale, collation)
        ctype, p, s, length = canonical_from_native(native, name)
        return Column(
            name=name,
            type=ctype,
            nullable=bool(nullable),
            precision=p,
            scale=s,
            length=length,
            native_type=native,
            dialect=DIALECT,
        )

    def native_type(self, column: Column) -> str:
        """The SQL Server type of a column (with its collation when it came from SQL Server)."""
        return stored_type(column)

    def cast_type(self, column: Column) -> str:
        """The type a parameter is CAST to when compared with ``column``."""
        return cast_type(self.native_type(column))

    # --- DDL -----------------------------------------------------------------------------------

    def create_schema(self, schema: str) -> str:
        """CREATE SCHEMA must be alone in its batch: run through ``exec`` when missing."""
        create = self.quote_literal(f"create schema {self.quote_ident(schema)}")
        return f"if schema_id({self.quote_literal(schema)}) is null exec({create})"

    def _if_missing(self, table: TableRef) -> str:
        return f"if object_id({self.quote_literal(table.sql)}, N'U') is null\n"

    def create_table(
        self,
        table: TableRef,
        schema: TableSchema,
        *,
        primary_key: Sequence[str] = (),
        unlogged: bool = False,
        if_not_exists: bool = False,
        not_null: bool = True,
        fillfactor: int | None = None,
    ) -> str:
        """A table with ``schema``'s columns (NULL or NOT NULL always stated) and a named primary
        key. ``unlogged`` has no SQL Server equivalent and is ignored (bulk loads are minimally
        logged by the recovery model, not by the table)."""
        return self._create(table, schema.columns, primary_key, if_not_exists, not_null, fillfactor, extra=())

    def create_staging_table(
        self, table: TableRef, schema: TableSchema, *, swapped_in: bool, not_null: bool = True
    ) -> str:
        """A staging table; unless a full refresh may swap it in as the target, it gets an identity
        column numbering rows in load order (``keep_last``, and ``incremental_append``'s choice of
        the first row of a key staged twice). Bulk copy must skip that column."""
        extra = () if swapped_in else (f"{self.quote_ident(LOAD_SEQ)} bigint identity(1,1) not null",)
        return self._create(table, schema.columns, (), False, not_null, None, extra=extra)

    def _create(
        self,
        table: TableRef,
        columns: Sequence[Column],
        primary_key: Sequence[str],
        if_not_exists: bool,
        not_null: bool,
        fillfactor: int | None,
        extra: Sequence[str],
    ) -> str:
        lines = []
        for c in columns:
            keyed = c.name in primary_key
            nn = " not null" if not_null and (not c.nullable or keyed) else " null"
            native = key_type(c) if keyed else stored_type(c)
            lines.append(f"{self.quote_ident(c.name)} {native}{nn}")
        lines += extra
        if primary_key:
            storage = f" with (fillfactor = {int(fillfactor)})" if fillfactor else ""
            name = self.quote_ident(f"{table.name[: MAX_IDENTIFIER - 5]}_pkey")
            lines.append(f"constraint {name} primary key ({self.column_list(primary_key)}){storage}")
        exists = self._if_missing(table) if if_not_exists else ""
        return f"{exists}create table {table.sql} (\n  " + ",\n  ".join(lines) + "\n)"

    def add_primary_key(self, table: TableRef, primary_key: Sequence[str], constraint: str) -> str:
        return (
            f"alter table {table.sql} add constraint {self.quote_ident(constraint)} "
            f"primary key ({self.column_list(primary_key)})"
        )

    def add_column_if_missing(self, table: TableRef, name: str, native: str) -> str:
        exists = f"col_length({self.quote_literal(table.sql)}, {self.quote_literal(name)})"
        return f"if {exists} is null alter table {table.sql} add {self.quote_ident(name)} {native} null"

    def schema_change_ddl(self, table: TableRef, change: SchemaChange) -> list[str]:
        """The DDL of one safe change. ALTER COLUMN restates the whole type, the collation (else
        the column takes the database default) and NULL / NOT NULL (else it becomes nullable)."""
        if change.kind in (ChangeKind.ADD_COLUMN, ChangeKind.NEW_COLUMN):
            assert change.result is not None
            col = self.quote_ident(change.result.name)
            return [f"alter table {table.sql} add {col} {stored_type(change.result)} null"]
        column = self.quote_ident(change.column)
        if change.kind is ChangeKind.WIDEN:
            assert change.result is not None
            native = cast_type(stored_type(change.result))
            collation = collation_of(change.target.native_type if change.target else None) or collation_of(
                stored_type(change.result)
            )
            if collation and split_native(native)[0] in ("char", "varchar", "nchar", "nvarchar"):
                native += f" collate {collation}"
            nullable = " null" if change.result.nullable else " not null"
            return [f"alter table {table.sql} alter column {column} {native}{nullable}"]
        if change.kind is ChangeKind.RELAX_NOT_NULL:
            assert change.target is not None
            return [f"alter table {table.sql} alter column {column} {stored_type(change.target)} null"]
        raise ValueError(f"{change.kind.value} is not a change that is applied: {change.describe()}")

    # --- state table: the load's state, committed in the finalize transaction ---------------------

    def _key_columns(self) -> str:
        return "  [pipeline] nvarchar(250) not null,\n  [load] nvarchar(200) not null,\n"

    def create_state_table(self, table: TableRef) -> list[str]:
        return [
            self.create_schema(table.schema),
            f"{self._if_missing(table)}create table {table.sql} (\n{self._key_columns()}"
            "  [state] nvarchar(max) not null,\n  [run_id] nvarchar(250) null,\n"
            "  [updated_at] datetimeoffset(7) not null default sysdatetimeoffset(),\n"
            f"  constraint {self.quote_ident(table.name[:100] + '_pkey')} primary key ([pipeline], [load])\n)",
        ]

    def select_state(self, table: TableRef) -> str:
        return f"select [state] from {table.sql} where [pipeline] = ? and [load] = ?"

    def list_state(self, table: TableRef) -> str:
        return (
            f"select [pipeline], [load], [state], [run_id], convert(nvarchar(40), [updated_at], 127) "
            f"from {table.sql} where [pipeline] = ? order by [load]"
        )

    def _upsert(self, table: TableRef, declare: str, assign: str, columns: str, values: str) -> str:
        """UPDATE, then INSERT when no row matched, in one batch (no MERGE): the key range stays
        locked between the two (UPDLOCK, SERIALIZABLE), so two writers cannot both insert."""
        return (
            f"declare {declare};\n"
            f"update {table.sql} with (updlock, serializable) set {assign} "
            "where [pipeline] = @pipeline and [load] = @load;\n"
            f"if @@rowcount = 0 insert into {table.sql} ({columns}) values ({values});"
        )

    def upsert_state(self, table: TableRef) -> str:
        """Parameters (pipeline, load, state as JSON text, run_id)."""
        return self._upsert(
            table,
            "@pipeline nvarchar(250) = ?, @load nvarchar(200) = ?, @state nvarchar(max) = ?, "
            "@run_id nvarchar(250) = ?",
            "[state] = @state, [run_id] = @run_id, [updated_at] = sysdatetimeoffset()",
            "[pipeline], [load], [state], [run_id], [updated_at]",
            "@pipeline, @load, @state, @run_id, sysdatetimeoffset()",
        )

    def delete_state(self, table: TableRef) -> str:
        return f"delete from {table.sql} where [pipeline] = ? and [load] = ?"

    # --- finalize journal: the state a finalize committed, until the state backend has it ---------

    def create_journal_table(self, table: TableRef) -> list[str]:
        return [
            self.create_schema(table.schema),
            f"{self._if_missing(table)}create table {table.sql} (\n{self._key_columns()}"
            "  [run_id] nvarchar(250) not null,\n  [state_before] nvarchar(max) null,\n"
            "  [state_after] nvarchar(max) not null,\n"
            "  [finalized_at] datetimeoffset(7) not null default sysdatetimeoffset(),\n"
            "  [acknowledged] bit not null default 0,\n"
            f"  constraint {self.quote_ident(table.name[:100] + '_pkey')} primary key ([pipeline], [load])\n)",
        ]

    def upsert_journal(self, table: TableRef) -> str:
        """Parameters (pipeline, load, run_id, state before, state after), states as JSON text."""
        return self._upsert(
            table,
            "@pipeline nvarchar(250) = ?, @load nvarchar(200) = ?, @run_id nvarchar(250) = ?, "
            "@before nvarchar(max) = ?, @after nvarchar(max) = ?",
            "[run_id] = @run_id, [state_before] = @before, [state_after] = @after, "
            "[finalized_at] = sysdatetimeoffset(), [acknowledged] = 0",
            "[pipeline], [load], [run_id], [state_before], [state_after], [finalized_at], [acknowledged]",
            "@pipeline, @load, @run_id, @before, @after, sysdatetimeoffset(), 0",
        )

    def select_pending_journal(self, table: TableRef) -> str:
        return (
            f"select [run_id], [state_before], [state_after] from {table.sql} "
            "where [pipeline] = ? and [load] = ? and [acknowledged] = 0"
        )

    def acknowledge_journal(self, table: TableRef) -> str:
        return (
            f"update {table.sql} set [acknowledged] = 1 where [pipeline] = ? and [load] = ? and [run_id] = ?"
        )

    def table_exists(self, table: TableRef) -> tuple[str, Any]:
        return TABLE_EXISTS, (table.sql,)

    # --- staging labels: the table's MS_Description extended property ----------------------------

    def now_epoch(self) -> str:
        return "select cast(datediff_big(microsecond, '19700101', sysutcdatetime()) as float) / 1000000.0"

    def staging_tables(self, schema: str) -> tuple[str, Any]:
        return STAGING_TABLES, (schema,)

    def table_comment(self, table: TableRef) -> tuple[str, Any]:
        return TABLE_COMMENT, (table.sql,)

    def _property(self, proc: str, table: TableRef, value: str | None) -> str:
        args = [f"@name = N'{DESCRIPTION}'"]
        if value is not None:
            args.append(f"@value = {self.quote_literal(value)}")
        args += [
            f"@level0type = N'SCHEMA', @level0name = {self.quote_literal(table.schema)}",
            f"@level1type = N'TABLE', @level1name = {self.quote_literal(table.name)}",
        ]
        return f"exec sys.{proc} " + ", ".join(args)

    def _has_description(self, table: TableRef) -> str:
        return (
            "exists (select 1 from sys.extended_properties where class = 1 and minor_id = 0 "
            f"and major_id = object_id({self.quote_literal(table.sql)}) and name = N'{DESCRIPTION}')"
        )

    def set_comment(self, table: TableRef, text: str) -> str:
        """Set the table's description (``MS_Description``): update it, or add it when absent.
        The procedures take no bind parameters here: the text is a quoted literal."""
        if len(text.encode("utf-16-le")) > MAX_PROPERTY_BYTES:
            raise BadInputError(f"a table description holds at most {MAX_PROPERTY_BYTES} bytes")
        return (
            f"if {self._has_description(table)}\n  {self._property('sp_updateextendedproperty', table, text)}\n"
            f"else\n  {self._property('sp_addextendedproperty', table, text)}"
        )

    comment_table = set_comment

    def drop_comment(self, table: TableRef) -> str:
        return f"if {self._has_description(table)} {self._property('sp_dropextendedproperty', table, None)}"

    def count_rows(self, table: TableRef) -> str:
        return f"select count_big(*) from {table.sql}"

    def target_has_rows(self, table: TableRef) -> str:
        return f"select case when exists (select 1 from {table.sql}) then 1 else 0 end"
