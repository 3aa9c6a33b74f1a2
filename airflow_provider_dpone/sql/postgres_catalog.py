"""PostgreSQL's catalog, types and bookkeeping tables, rendered: the introspection queries, the
type map both ways, DDL, and the state, journal and staging-label statements. Pure.

Identifiers are always quoted with ``quote_ident``; values always travel as parameters.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from ..contracts.errors import BadInputError
from ..contracts.table import CanonicalType, Column, TableSchema
from ..schema.planner import ChangeKind, SchemaChange
from .dialect import TableRef
from .finalize_dialect import SetBasedDialect

DIALECT = "postgres"


# --- introspection -------------------------------------------------------------------------

INTROSPECT_COLUMNS = """
select a.attname,
       format_type(a.atttypid, a.atttypmod),
       a.attnotnull,
       t.typtype,
       tn.nspname = 'pg_catalog' as builtin,
       coalesce(format_type(t.typbasetype, t.typtypmod), '') as domain_base,
       coalesce(et.typtype, '') as elem_typtype,
       coalesce(etn.nspname = 'pg_catalog', true) as elem_builtin,
       a.atthasdef or a.attidentity <> '' or a.attgenerated <> '' as has_default
from pg_attribute a
join pg_class c on c.oid = a.attrelid
join pg_namespace n on n.oid = c.relnamespace
join pg_type t on t.oid = a.atttypid
join pg_namespace tn on tn.oid = t.typnamespace
left join pg_type et on et.oid = t.typelem and t.typcategory = 'A'
left join pg_namespace etn on etn.oid = et.typnamespace
where n.nspname = %s and c.relname = %s and a.attnum > 0 and not a.attisdropped
order by a.attnum
"""

INTROSPECT_UNIQUE_KEYS = """
select array_agg(a.attname::text order by k.ord)
from pg_index i
join pg_class c on c.oid = i.indrelid
join pg_namespace n on n.oid = c.relnamespace
cross join lateral unnest(i.indkey) with ordinality as k(attnum, ord)
join pg_attribute a on a.attrelid = c.oid and a.attnum = k.attnum
where n.nspname = %s and c.relname = %s and i.indisunique and i.indisvalid
  and i.indpred is null and i.indexprs is null
group by i.indexrelid
"""

INTROSPECT_PRIMARY_KEY = """
select a.attname
from pg_index i
join pg_class c on c.oid = i.indrelid
join pg_namespace n on n.oid = c.relnamespace
cross join lateral unnest(i.indkey) with ordinality as k(attnum, ord)
join pg_attribute a on a.attrelid = c.oid and a.attnum = k.attnum
where n.nspname = %s and c.relname = %s and i.indisprimary
order by k.ord
"""

TABLE_EXISTS = "select to_regclass(%s) is not null"

# Facts deciding whether a full refresh may swap tables instead of truncate + insert.
SWAP_BLOCKERS = """
select
  (select count(*) from pg_depend d join pg_rewrite r on r.oid = d.objid
     where d.refobjid = c.oid and r.ev_class <> c.oid) as dependent_views,
  (select count(*) from pg_constraint f where f.confrelid = c.oid) as referencing_fks,
  (select count(*) from pg_trigger g where g.tgrelid = c.oid and not g.tgisinternal) as triggers,
  (select count(*) from pg_index i where i.indrelid = c.oid and not i.indisprimary) as extra_indexes,
  c.relacl is not null as has_grants,
  c.relkind <> 'r' as not_plain_table,
  (select count(*) from pg_attrdef ad where ad.adrelid = c.oid) as column_defaults
from pg_class c where c.oid = to_regclass(%s)
"""

_SIMPLE_TYPES: dict[str, CanonicalType] = {
    "boolean": CanonicalType.BOOLEAN,
    "smallint": CanonicalType.INT16,
    "integer": CanonicalType.INT32,
    "bigint": CanonicalType.INT64,
    "real": CanonicalType.FLOAT32,
    "double precision": CanonicalType.FLOAT64,
    "text": CanonicalType.STRING,
    "bytea": CanonicalType.BINARY,
    "date": CanonicalType.DATE,
    "interval": CanonicalType.INTERVAL,
    "uuid": CanonicalType.UUID,
    "json": CanonicalType.JSON,
    "jsonb": CanonicalType.JSON,
    "timestamp without time zone": CanonicalType.TIMESTAMP,
    "timestamp with time zone": CanonicalType.TIMESTAMPTZ,
    "time without time zone": CanonicalType.TIME,
}
_PARAM = re.compile(r"^(?P<base>[a-z ]+?)(\((?P<args>[\d, ]+)\))?(?P<rest>[a-z ]*)$")


_CANONICAL_TO_NATIVE: dict[CanonicalType, str] = {
    CanonicalType.BOOLEAN: "boolean",
    CanonicalType.INT16: "smallint",
    CanonicalType.INT32: "integer",
    CanonicalType.INT64: "bigint",
    CanonicalType.FLOAT32: "real",
    CanonicalType.FLOAT64: "double precision",
    CanonicalType.BINARY: "bytea",
    CanonicalType.DATE: "date",
    CanonicalType.TIME: "time",
    CanonicalType.TIMESTAMP: "timestamp",
    CanonicalType.TIMESTAMPTZ: "timestamptz",
    CanonicalType.INTERVAL: "interval",
    CanonicalType.UUID: "uuid",
    CanonicalType.JSON: "jsonb",
    CanonicalType.UNKNOWN: "text",
}


SNAPSHOT_XMIN = "select pg_snapshot_xmin(pg_current_snapshot())::text::bigint"


# Leaf partitions of a partitioned table: name, parent, bound clause and full constraint.
LEAF_PARTITIONS = """
select n.nspname, c.relname, pn.nspname, pc.relname,
       pg_get_expr(c.relpartbound, c.oid), pg_get_partition_constraintdef(c.oid)
from pg_partition_tree(%s::regclass) t
join pg_class c on c.oid = t.relid
join pg_namespace n on n.oid = c.relnamespace
join pg_class pc on pc.oid = t.parentrelid
join pg_namespace pn on pn.oid = pc.relnamespace
where t.isleaf and t.level > 0
order by 1, 2
"""

IS_PARTITIONED = "select relkind = 'p' from pg_class where oid = to_regclass(%s)"


# --- quality gates (read-only queries over staging) -----------------------------------------


# --- staging housekeeping: each staging table carries its load, run and birth in a comment -----


TABLE_COMMENT = "select obj_description(to_regclass(%s), 'pg_class')"


STAGING_TABLES = """
select c.relname, d.description
from pg_class c
join pg_namespace n on n.oid = c.relnamespace
join pg_description d on d.objoid = c.oid and d.classoid = 'pg_class'::regclass and d.objsubid = 0
where n.nspname = %s and c.relkind in ('r', 'p') and d.description like '{"dpone_staging"%%'
"""


class PostgresCatalog(SetBasedDialect):
    """PostgreSQL's catalog, types, DDL and bookkeeping statements (``PostgresDialect`` adds
    the extract, finalize and quality statements)."""

    DIALECT = DIALECT
    DEFAULT_SCHEMA = "public"
    INTROSPECT_COLUMNS = INTROSPECT_COLUMNS
    INTROSPECT_UNIQUE_KEYS = INTROSPECT_UNIQUE_KEYS
    INTROSPECT_PRIMARY_KEY = INTROSPECT_PRIMARY_KEY
    TABLE_EXISTS = TABLE_EXISTS
    SWAP_BLOCKERS = SWAP_BLOCKERS
    SNAPSHOT_XMIN = SNAPSHOT_XMIN
    LEAF_PARTITIONS = LEAF_PARTITIONS
    IS_PARTITIONED = IS_PARTITIONED
    TABLE_COMMENT = TABLE_COMMENT
    STAGING_TABLES = STAGING_TABLES

    def quote_ident(self, name: str) -> str:
        if not name or "\x00" in name:
            raise BadInputError(f"invalid identifier {name!r}")
        return '"' + name.replace('"', '""') + '"'

    def _unless(self, exists: str, ddl: str, race: str) -> str:
        """``ddl`` run only when ``exists`` (a query) finds nothing; ``race`` (the errors of a
        concurrent session that created it first) is not an error."""
        body = f"if not exists ({exists}) then begin {ddl}; exception when {race} then null; end; end if;"
        tag = "$dpone$"
        while tag in body:
            tag = tag[:-1] + "_$"
        return f"do {tag} begin {body} end {tag}"

    def create_schema(self, schema: str) -> str:
        """The schema, created only when it is missing: ``create schema if not exists`` asks for
        CREATE on the database even when the schema exists, which a role granted only the
        schema lacks. A concurrent creation is not an error (it surfaces as either error)."""
        return self._unless(
            f"select from pg_namespace where nspname = {self.quote_literal(schema)}",
            f"create schema {self.quote_ident(schema)}",
            "duplicate_schema or unique_violation",
        )

    def quote_literal(self, text: str) -> str:
        """A string literal (standard_conforming_strings, on by default since PostgreSQL 9.1)."""
        if "\x00" in text:
            raise BadInputError("a string literal cannot contain NUL")
        return "'" + text.replace("'", "''") + "'"

    def canonical_from_native(self, native: str) -> tuple[CanonicalType, int | None, int | None, int | None]:
        """(type, precision, scale, length) for a ``format_type`` string."""
        if native.endswith("[]"):
            return CanonicalType.ARRAY, None, None, None
        m = _PARAM.match(native)
        if not m:
            return CanonicalType.UNKNOWN, None, None, None
        base = (m["base"] + m["rest"]).strip()
        args = [int(a) for a in m["args"].split(",")] if m["args"] else []
        if base in _SIMPLE_TYPES:
            return _SIMPLE_TYPES[base], None, None, None
        if base == "numeric":
            return (
                CanonicalType.DECIMAL,
                (args[0] if args else None),
                (args[1] if len(args) > 1 else None),
                None,
            )
        if base in ("character varying", "character"):
            return CanonicalType.STRING, None, None, (args[0] if args else None)
        return CanonicalType.UNKNOWN, None, None, None

    def column_from_catalog(self, row: Sequence) -> Column:
        """Build a Column from one INTROSPECT_COLUMNS row.

        Enums become ``text`` and domains their base type: the target database need not have the
        user-defined type, and both keep the same COPY representation.
        """
        name, native, notnull, typtype, _builtin, domain_base, elem_typtype, elem_builtin = row[:8]
        if typtype == "e":
            native = "text"
        elif typtype == "d":
            native = domain_base
        elif native.endswith("[]") and not elem_builtin:
            native = "text[]" if elem_typtype == "e" else native
        ctype, precision, scale, length = self.canonical_from_native(native)
        element = None
        if ctype is CanonicalType.ARRAY:
            element = self.canonical_from_native(native[:-2])[0]
        return Column(
            name=name,
            type=ctype,
            nullable=not notnull,
            precision=precision,
            scale=scale,
            length=length,
            element=element,
            native_type=native,
            dialect=DIALECT,
        )

    def binary_copy_safe(self, source_rows: Sequence[Sequence]) -> bool:
        """Binary COPY checks array element type ids, so an array of a user type forces text COPY."""
        return not any(r[1].endswith("[]") and not r[7] for r in source_rows)

    def native_type(self, column: Column) -> str:
        """The PostgreSQL type for a column: its own native type when it came from PostgreSQL."""
        if column.dialect == DIALECT and column.native_type:
            return column.native_type
        if column.type is CanonicalType.DECIMAL:
            if column.precision is None:
                return "numeric"
            return f"numeric({column.precision},{column.scale or 0})"
        if column.type is CanonicalType.STRING:
            return f"varchar({column.length})" if column.length else "text"
        if column.type is CanonicalType.ARRAY:
            element = Column("e", column.element or CanonicalType.UNKNOWN)
            return self.native_type(element) + "[]"
        return _CANONICAL_TO_NATIVE[column.type]

    # --- DDL -----------------------------------------------------------------------------------

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
        cols = []
        for c in schema.columns:
            nn = " not null" if not_null and (not c.nullable or c.name in primary_key) else ""
            cols.append(f"{self.quote_ident(c.name)} {self.native_type(c)}{nn}")
        if primary_key:
            cols.append(f"primary key ({self.column_list(primary_key)})")
        kind = "unlogged table" if unlogged else "table"
        exists = "if not exists " if if_not_exists else ""
        storage = f" with (fillfactor = {int(fillfactor)})" if fillfactor else ""
        return f"create {kind} {exists}{table.sql} (\n  " + ",\n  ".join(cols) + "\n)" + storage

    def add_primary_key(self, table: TableRef, primary_key: Sequence[str], constraint: str) -> str:
        return f"alter table {table.sql} add constraint {self.quote_ident(constraint)} primary key ({self.column_list(primary_key)})"

    def add_column_if_missing(self, table: TableRef, name: str, native: str) -> str:
        """Only when missing: ``add column if not exists`` needs the table's owner even when the
        column is there, which a role granted only DML on the target lacks."""
        return self._unless(
            f"select from pg_attribute where attrelid = {self.quote_literal(table.sql)}::regclass "
            f"and attname = {self.quote_literal(name)} and not attisdropped",
            f"alter table {table.sql} add column {self.quote_ident(name)} {native}",
            "duplicate_column",
        )

    def schema_change_ddl(self, table: TableRef, change: SchemaChange) -> list[str]:
        """The DDL that applies one safe change of the schema plan to ``table``."""
        if change.kind in (ChangeKind.ADD_COLUMN, ChangeKind.NEW_COLUMN):
            assert change.result is not None
            return [
                f"alter table {table.sql} add column {self.quote_ident(change.result.name)} {self.native_type(change.result)}"
            ]
        if change.kind is ChangeKind.WIDEN:
            assert change.result is not None
            col, new_type = self.quote_ident(change.column), self.native_type(change.result)
            return [f"alter table {table.sql} alter column {col} type {new_type} using {col}::{new_type}"]
        if change.kind is ChangeKind.RELAX_NOT_NULL:
            return [f"alter table {table.sql} alter column {self.quote_ident(change.column)} drop not null"]
        raise ValueError(f"{change.kind.value} is not a change that is applied: {change.describe()}")

    def create_state_table(self, table: TableRef) -> list[str]:
        return [
            self.create_schema(table.schema),
            f"create table if not exists {table.sql} (\n"
            "  pipeline text not null,\n  load text not null,\n  state jsonb not null,\n"
            "  run_id text,\n  updated_at timestamptz not null default now(),\n"
            "  primary key (pipeline, load)\n)",
        ]

    def select_state(self, table: TableRef) -> str:
        return f"select state::text from {table.sql} where pipeline = %s and load = %s"

    def list_state(self, table: TableRef) -> str:
        return f"select pipeline, load, state::text, run_id, updated_at::text from {table.sql} where pipeline = %s order by load"

    def upsert_state(self, table: TableRef) -> str:
        return (
            f"insert into {table.sql} (pipeline, load, state, run_id, updated_at) "
            "values (%s, %s, %s::jsonb, %s, now()) on conflict (pipeline, load) do update set "
            "state = excluded.state, run_id = excluded.run_id, updated_at = excluded.updated_at"
        )

    def delete_state(self, table: TableRef) -> str:
        return f"delete from {table.sql} where pipeline = %s and load = %s"

    # --- finalize journal: the state a finalize committed, until the state backend has it ---------

    def create_journal_table(self, table: TableRef) -> list[str]:
        return [
            self.create_schema(table.schema),
            f"create table if not exists {table.sql} (\n"
            "  pipeline text not null,\n  load text not null,\n  run_id text not null,\n"
            "  state_before jsonb,\n  state_after jsonb not null,\n"
            "  finalized_at timestamptz not null default now(),\n"
            "  acknowledged boolean not null default false,\n"
            "  primary key (pipeline, load)\n)",
        ]

    def upsert_journal(self, table: TableRef) -> str:
        return (
            f"insert into {table.sql} (pipeline, load, run_id, state_before, state_after, finalized_at, "
            "acknowledged) values (%s, %s, %s, %s::jsonb, %s::jsonb, now(), false) "
            "on conflict (pipeline, load) do update set run_id = excluded.run_id, "
            "state_before = excluded.state_before, state_after = excluded.state_after, "
            "finalized_at = excluded.finalized_at, acknowledged = false"
        )

    def select_pending_journal(self, table: TableRef) -> str:
        return (
            f"select run_id, state_before::text, state_after::text from {table.sql} "
            "where pipeline = %s and load = %s and not acknowledged"
        )

    def acknowledge_journal(self, table: TableRef) -> str:
        return f"update {table.sql} set acknowledged = true where pipeline = %s and load = %s and run_id = %s"

    def comment_table(self, table: TableRef, text: str) -> str:
        """COMMENT takes no bind parameters; ``text`` is rendered as a quoted literal."""
        return f"comment on table {table.sql} is {self.quote_literal(text)}"

    def table_exists(self, table: TableRef) -> tuple[str, Any]:
        return TABLE_EXISTS, (table.sql,)

    def now_epoch(self) -> str:
        return "select extract(epoch from now())"

    def staging_tables(self, schema: str) -> tuple[str, Any]:
        return STAGING_TABLES, (schema,)

    def table_comment(self, table: TableRef) -> tuple[str, Any]:
        return TABLE_COMMENT, (table.sql,)

    def set_comment(self, table: TableRef, text: str) -> str:
        return self.comment_table(table, text)
