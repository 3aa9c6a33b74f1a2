"""PostgreSQL SQL rendering. Pure: builds strings and parameter tuples, never connects.

Identifiers are always quoted with :func:`quote_ident`; values always travel as parameters.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from ..contracts.errors import BadInputError
from ..contracts.table import CanonicalType, Column, TableSchema
from ..schema.planner import ChangeKind, SchemaChange
from .dialect import TableRef
from .finalize_dialect import SetBasedDialect

DIALECT = "postgres"
Statement = tuple[str, tuple]


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


class PostgresDialect(SetBasedDialect):
    """PostgreSQL SQL, rendered: identifiers quoted, values always parameters."""

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

    def set_not_null(self, table: TableRef, columns: Sequence[str]) -> str:
        parts = ", ".join(f"alter column {self.quote_ident(c)} set not null" for c in columns)
        return f"alter table {table.sql} {parts}"

    # --- extract -------------------------------------------------------------------------------

    def source_relation(self, table: TableRef | None, query: str | None) -> str:
        """A FROM item for a table or a user query (wrapped as a subquery)."""
        if table is not None:
            return table.sql
        assert query is not None
        return f"({query.strip().rstrip(';')}) as dpone_src"

    def select_rows(
        self, relation: str, columns: Sequence[str], where: str = "", casts: dict[str, str] | None = None
    ) -> str:
        """SELECT of ``columns``; ``casts`` maps a column to the type it is read as (same name)."""
        casts = casts or {}
        items = ", ".join(
            f"{self.quote_ident(c)}::{casts[c]} as {self.quote_ident(c)}"
            if c in casts
            else self.quote_ident(c)
            for c in columns
        )
        sql = f"select {items} from {relation}"
        return f"{sql} where {where}" if where else sql

    def copy_out(self, select_sql: str, binary: bool) -> str:
        return f"copy ({select_sql}) to stdout (format {'binary' if binary else 'text'})"

    def copy_in(self, table: TableRef, columns: Sequence[str], fmt: str, freeze: bool = False) -> str:
        opts = f"format {fmt}" + (", freeze" if freeze else "")
        return f"copy {table.sql} ({self.column_list(columns)}) from stdin ({opts})"

    def cursor_bounds(self, relation: str, cursor: str) -> str:
        return f"select max({self.quote_ident(cursor)})::text from {relation}"

    def chunk_bounds(self, relation: str, cursor: str, native: str, temporal: bool, has_lower: bool) -> str:
        """(max cursor, upper bound of the next chunk) past the stored position ``lower``.

        Chunks are ``(lower, lower + chunk]``; the first one (no lower) is ``[min, min + chunk]``.
        Past a gap in the data the chunk restarts at the next existing value, so gaps cost no
        empty runs. Named parameters: ``chunk`` (seconds for date/time cursors) and ``lower``.
        """
        col = self.quote_ident(cursor)
        step = "make_interval(secs => %(chunk)s)" if temporal else f"%(chunk)s::{native}"
        if not has_lower:
            upper = f"least(max({col}), (min({col}) + {step})::{native})"
            return f"select max({col})::text, {upper}::text from {relation}"
        nxt = f"(min({col}) + {step})::{native}"
        aligned = f"(%(lower)s::{native} + {step})::{native}"
        upper = f"least(max({col}), case when min({col}) > {aligned} then {nxt} else {aligned} end)"
        return f"select max({col})::text, {upper}::text from {relation} where {col} > %(lower)s::{native}"

    def cursor_predicate(self, cursor: str, native: str, has_lower: bool, lookback: bool) -> str:
        """``cursor > lower [- lookback] and cursor <= upper``; values come as parameters."""
        col = self.quote_ident(cursor)
        upper = f"{col} <= %s::{native}"
        if not has_lower:
            return upper
        lower = f"%s::{native}"
        if lookback:
            lower = f"({lower} - make_interval(secs => %s))"
        return f"{col} > {lower} and {upper}"

    def xmin_predicate(self, wrapped: bool) -> str:
        """Rows whose 32-bit xmin is at or past the stored position (handling one wraparound)."""
        if wrapped:
            return "(xmin::text::bigint >= %s or xmin::text::bigint < %s)"
        return "xmin::text::bigint >= %s"

    # --- staging and finalize ------------------------------------------------------------------

    def duplicate_keys(self, staging: TableRef, keys: Sequence[str], limit: int = 5) -> str:
        k = self.column_list(keys)
        return (
            f"select {k}, count(*) from {staging.sql} group by {k} having count(*) > 1 "
            f"order by count(*) desc limit {int(limit)}"
        )

    def keep_last_per_key(self, staging: TableRef, keys: Sequence[str]) -> str:
        """Drop all but the last-loaded row per key (COPY keeps extract order in a fresh table)."""
        k = self.column_list(keys)
        return (
            f"delete from {staging.sql} s using (select ctid, row_number() over "
            f"(partition by {k} order by ctid desc) as rn from {staging.sql}) d "
            f"where s.ctid = d.ctid and d.rn > 1"
        )

    def merge_update(
        self,
        target: TableRef,
        staging: TableRef,
        columns: Sequence[str],
        keys: Sequence[str],
        column_map: Mapping[str, str] | None = None,
        *,
        only_changed: bool = False,
        undelete: str | None = None,
    ) -> str | None:
        """Set-based update of matched rows; None when every column is a key.

        ``only_changed`` skips rows whose values are already equal (no dead tuples, no WAL);
        ``undelete`` names a soft-delete column cleared on rows that came back.
        """
        values = [c for c in columns if c not in keys]
        if not values and not undelete:
            return None
        assignments = [
            f"{self.quote_ident(self._target_name(column_map, c))} = s.{self.quote_ident(c)}" for c in values
        ]
        if undelete:
            assignments.append(f"{self.quote_ident(undelete)} = null")
        statement = (
            f"update {target.sql} as t set {', '.join(assignments)} from {staging.sql} as s "
            f"where {self._key_match(keys, column_map)}"
        )
        if only_changed:
            changed = []
            if values:
                t_cols = ", ".join(f"t.{self.quote_ident(self._target_name(column_map, c))}" for c in values)
                s_cols = ", ".join(f"s.{self.quote_ident(c)}" for c in values)
                changed.append(f"row({t_cols}) is distinct from row({s_cols})")
            if undelete:
                changed.append(f"t.{self.quote_ident(undelete)} is not null")
            statement += f" and ({' or '.join(changed)})"
        return statement

    def count_missing_keys(
        self,
        target: TableRef,
        keyset: TableRef,
        keys: Sequence[str],
        column_map: Mapping[str, str] | None = None,
        active: str = "",
    ) -> str:
        """(target rows whose key is not in ``keyset``, all target rows), among ``active`` rows."""
        where = f" where {active}" if active else ""
        return (
            f"select count(*) filter (where {self._missing_from(keyset, keys, column_map)}), count(*) "
            f"from {target.sql} as t{where}"
        )

    def delete_missing_keys(
        self,
        target: TableRef,
        keyset: TableRef,
        keys: Sequence[str],
        column_map: Mapping[str, str] | None = None,
    ) -> str:
        return f"delete from {target.sql} as t where {self._missing_from(keyset, keys, column_map)}"

    def close_missing_keys(
        self,
        target: TableRef,
        keyset: TableRef,
        keys: Sequence[str],
        assignments: Mapping[str, str],
        active: str,
        column_map: Mapping[str, str] | None = None,
    ) -> str:
        """Soft delete: set ``assignments`` (column -> SQL expression) on active rows gone from ``keyset``."""
        sets = ", ".join(f"{self.quote_ident(c)} = {expr}" for c, expr in assignments.items())
        return f"update {target.sql} as t set {sets} where {active} and {self._missing_from(keyset, keys, column_map)}"

    def row_hash(self, columns: Sequence[str], alias: str = "s") -> str:
        """md5 of the row's text form: equal values give equal hashes across runs."""
        return f"md5(row({', '.join(f'{alias}.{self.quote_ident(c)}' for c in columns)})::text)"

    def scd2_close_changed(
        self,
        target: TableRef,
        staging: TableRef,
        columns: Sequence[str],
        keys: Sequence[str],
        column_map: Mapping[str, str] | None,
        names: Mapping[str, str],
    ) -> str:
        """Close the current version of keys whose row hash changed."""
        return (
            f"update {target.sql} as t set {self.quote_ident(names['valid_to'])} = now(), "
            f"{self.quote_ident(names['is_current'])} = false from {staging.sql} as s "
            f"where {self._key_match(keys, column_map)} and t.{self.quote_ident(names['is_current'])} "
            f"and t.{self.quote_ident(names['row_hash'])} <> {self.row_hash(columns)}"
        )

    def scd2_insert_versions(
        self,
        target: TableRef,
        staging: TableRef,
        columns: Sequence[str],
        keys: Sequence[str],
        column_map: Mapping[str, str] | None,
        names: Mapping[str, str],
    ) -> str:
        """Open a version for every staged key without a current one (new or just closed)."""
        into = self.column_list(
            [self._target_name(column_map, c) for c in columns]
            + [names["valid_from"], names["valid_to"], names["is_current"], names["row_hash"]]
        )
        scols = ", ".join(f"s.{self.quote_ident(c)}" for c in columns)
        return (
            f"insert into {target.sql} ({into}) select {scols}, now(), null, true, {self.row_hash(columns)} "
            f"from {staging.sql} as s where not exists (select 1 from {target.sql} as t "
            f"where {self._key_match(keys, column_map)} and t.{self.quote_ident(names['is_current'])})"
        )

    def window_predicate(self, column: Column) -> str:
        """``start <= column < end`` with both bounds as parameters cast to the column's type."""
        col, native = self.quote_ident(column.name), self.native_type(column)
        return f"{col} >= %s::{native} and {col} < %s::{native}"

    def delete_matching_partitions(self, target: TableRef, staging: TableRef, columns: Sequence[str]) -> str:
        """Scoped delete: every target row whose partition values occur in staging (NULLs match)."""
        match = " and ".join(
            f"t.{self.quote_ident(c)} is not distinct from s.{self.quote_ident(c)}" for c in columns
        )
        return f"delete from {target.sql} as t where exists (select 1 from {staging.sql} as s where {match})"

    def count_per_constraint(self, staging: TableRef, constraints: Sequence[str]) -> str:
        """One scan of staging counting the rows each (catalog-rendered) partition constraint holds."""
        counts = ", ".join(f"count(*) filter (where {c})" for c in constraints)
        return f"select count(*), {counts} from {staging.sql}"

    def replace_partition(
        self, parent: TableRef, old: TableRef, new: TableRef, bound: str, constraint: str
    ) -> tuple[list[str], list[str]]:
        """(statements before filling ``new``, statements that swap it in for ``old``).

        ``bound`` and ``constraint`` come from the catalog (``pg_get_expr`` and
        ``pg_get_partition_constraintdef``), never from user input. The CHECK constraint lets
        ATTACH skip its validation scan.
        """
        check = self.quote_ident("dpone_partition_bound")
        prepare = [f"create table {new.sql} (like {old.sql} including all)"]
        swap = [
            f"alter table {new.sql} add constraint {check} check ({constraint})",
            f"alter table {parent.sql} detach partition {old.sql}",
            f"alter table {parent.sql} attach partition {new.sql} {bound}",
            self.drop_table(old),
            f"alter table {new.sql} rename to {self.quote_ident(old.name)}",
            f"alter table {old.sql} drop constraint {check}",
        ]
        return prepare, swap

    def append_rows(
        self,
        target: TableRef,
        staging: TableRef,
        names: Sequence[str],
        mapping: dict[str, str],
        keys: Sequence[str],
    ) -> str:
        """``incremental_append``: insert the batch; with a target key, rows already there (lookback
        or xmin overlap) are skipped."""
        statement = self.insert_select(target, staging, names, mapping)
        return statement + (f" on conflict ({self.column_list(keys)}) do nothing" if keys else "")

    def add_column_if_missing(self, table: TableRef, name: str, native: str) -> str:
        return f"alter table {table.sql} add column if not exists {self.quote_ident(name)} {native}"

    def key_set_query(self, query: str, keys: Sequence[str]) -> str:
        """The key columns of a user query, as a query."""
        return f"select {self.column_list(keys)} from ({query.strip().rstrip(';')}) as dpone_keys"

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

    def lock_table(self, table: TableRef, mode: str = "access exclusive") -> str:
        """LOCK TABLE; ``row exclusive`` (a writer's lock) keeps DDL such as ALTER out until commit."""
        if mode not in ("access exclusive", "row exclusive"):
            raise ValueError(f"lock mode {mode!r}")
        return f"lock table {table.sql} in {mode} mode"

    def null_keys(self, staging: TableRef, keys: Sequence[str], limit: int = 5) -> str:
        """(rows with a NULL in any key column, up to ``limit`` of their keys as JSON arrays)."""
        cond = " or ".join(f"{self.quote_ident(k)} is null" for k in keys)
        sample = f"select json_build_array({self.column_list(keys)})::text as k from {staging.sql} where {cond} limit {int(limit)}"
        return f"select (select count(*) from {staging.sql} where {cond}), (select array_agg(k) from ({sample}) s)"

    def target_has_rows(self, table: TableRef) -> str:
        """Whether ``table`` holds at least one row (stops at the first)."""
        return f"select exists (select from {table.sql})"

    def swap_in(self, staging: TableRef, target: TableRef, primary_key_constraint: str | None) -> list[str]:
        """Statements that replace ``target`` by ``staging`` (run inside one transaction)."""
        moved = self.table(target.schema, staging.name)
        stmts = [
            self.drop_table(target),
            f"alter table {staging.sql} set schema {self.quote_ident(target.schema)}",
            f"alter table {moved.sql} rename to {self.quote_ident(target.name)}",
        ]
        if primary_key_constraint:
            stmts.append(
                f"alter table {target.sql} rename constraint {self.quote_ident(primary_key_constraint)} "
                f"to {self.quote_ident(target.name + '_pkey')}"
            )
        return stmts

    def advisory_lock(self) -> str:
        return "select pg_advisory_xact_lock(hashtextextended(%s, 0))"

    def analyze(self, table: TableRef, columns: Sequence[str] = ()) -> str:
        """ANALYZE the table, or only ``columns`` (enough for the planner to join on keys)."""
        return f"analyze {table.sql}" + (f" ({self.column_list(columns)})" if columns else "")

    def _all_not_null(self, columns: Sequence[str]) -> str:
        return " and ".join(f"{self.quote_ident(c)} is not null" for c in columns)

    def quality_not_null(self, staging: TableRef, columns: Sequence[str]) -> tuple[str, str]:
        """(counts query: any-NULL rows then one count per column, predicate of failing rows)."""
        failing = " or ".join(f"{self.quote_ident(c)} is null" for c in columns)
        per_column = ", ".join(f"count(*) filter (where {self.quote_ident(c)} is null)" for c in columns)
        return f"select count(*) filter (where {failing}), {per_column} from {staging.sql}", failing

    def quality_unique(self, staging: TableRef, columns: Sequence[str]) -> tuple[str, str]:
        """(query: duplicated values and the rows holding them, predicate of failing rows)."""
        cols = self.column_list(columns)
        groups = f"select {cols} from {staging.sql} where {self._all_not_null(columns)} group by {cols} having count(*) > 1"
        counts = (
            f"select count(*), coalesce(sum(n), 0) from (select count(*) as n from {staging.sql} "
            f"where {self._all_not_null(columns)} group by {cols} having count(*) > 1) as d"
        )
        return counts, f"({cols}) in ({groups})"

    def quality_accepted_values(
        self, staging: TableRef, column: Column, values: Sequence[object]
    ) -> tuple[str, str, tuple]:
        """(count query, failing predicate, its parameters: the accepted values as one array)."""
        col = self.quote_ident(column.name)
        failing = f"{col} is not null and not ({col} = any(%s::{self.native_type(column)}[]))"
        return f"select count(*) from {staging.sql} where {failing}", failing, ([str(v) for v in values],)

    def quality_freshness(self, staging: TableRef, column: str) -> str:
        """Age in seconds of the newest value (NULL when the batch has none)."""
        col = self.quote_ident(column)
        return f"select extract(epoch from now() - max({col})::timestamptz)::float8 from {staging.sql}"

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


POSTGRES = PostgresDialect()
