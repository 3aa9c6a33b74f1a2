"""PostgreSQL SQL rendering: extract, finalize and quality statements on top of the catalog
(``postgres_catalog``). Pure: builds strings and parameter tuples, never connects.

Identifiers are always quoted with ``quote_ident``; values always travel as parameters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..contracts.table import Column
from .dialect import TableRef
from .postgres_catalog import PostgresCatalog


class PostgresDialect(PostgresCatalog):
    """PostgreSQL SQL, rendered: identifiers quoted, values always parameters."""

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

    # Session settings a CSV export is read with: ISO dates, intervals in the default style,
    # floats with every digit (servers before 12 round them to 15 otherwise); transaction-local.
    CSV_SESSION = (
        "set local datestyle to 'ISO, YMD'; set local intervalstyle to 'postgres'; "
        "set local extra_float_digits to 3"
    )

    # Text in a binary or text COPY travels in the session's client encoding: pinned to UTF-8 on
    # both ends, so databases of other encodings exchange the same characters.
    UTF8_SESSION = "set local client_encoding to 'UTF8'"

    def copy_out(self, select_sql: str, binary: bool, *, csv: bool = False) -> str:
        fmt = "csv, encoding 'UTF8'" if csv else "binary" if binary else "text"
        return f"copy ({select_sql}) to stdout (format {fmt})"

    def copy_in(self, table: TableRef, columns: Sequence[str], fmt: str, freeze: bool = False) -> str:
        opts = f"format {fmt}" + (", freeze" if freeze else "")
        return f"copy {table.sql} ({self.column_list(columns)}) from stdin ({opts})"

    def cursor_bounds(self, relation: str, cursor: str) -> str:
        return f"select max({self.quote_ident(cursor)})::text from {relation}"

    def bound_param(self, column: Column) -> str:
        return f"%s::{self.native_type(column)}"

    def key_bounds(self, relation: str, column: Column) -> str:
        col = self.quote_ident(column.name)
        return f"select min({col})::text, max({col})::text from {relation}"

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
        assignments = self._merge_sets(values, column_map, undelete)
        statement = (
            f"update {target.sql} as t set {', '.join(assignments)} from {staging.sql} as s "
            f"where {self._key_match(keys, column_map)}"
        )
        if only_changed:
            changed = []
            if values:
                t_cols, s_cols = self._changed_columns(values, column_map)
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
        """(target rows whose key is not in ``keyset``, all target rows), among ``active`` rows.
        Two scalar subqueries: a ``not exists`` inside an aggregate's FILTER is never planned as
        an anti-join (one scan of the key set per target row); in a WHERE it is."""
        missing = self._missing_from(keyset, keys, column_map)
        where = f" where {active}" if active else ""
        return (
            f"select (select count(*) from {target.sql} as t where {f'({active}) and ' if active else ''}{missing}), "
            f"(select count(*) from {target.sql} as t{where})"
        )

    def delete_missing_keys(
        self,
        target: TableRef,
        keyset: TableRef,
        keys: Sequence[str],
        column_map: Mapping[str, str] | None = None,
    ) -> str:
        return f"{self._delete_target(target)} where {self._missing_from(keyset, keys, column_map)}"

    def close_missing_keys(
        self,
        target: TableRef,
        keyset: TableRef,
        keys: Sequence[str],
        assignments: Mapping[str, str],
        active: str,
        column_map: Mapping[str, str] | None = None,
        picked: str | None = None,
    ) -> str:
        """Soft delete: set ``assignments`` (column -> SQL expression) on active rows gone from ``keyset``."""
        sets = ", ".join(f"{self.quote_ident(c)} = {expr}" for c, expr in assignments.items())
        rows = picked or self._missing_from(keyset, keys, column_map)
        return f"update {target.sql} as t set {sets} where {active} and {rows}"

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
        return self.range_predicate(column, lower=True, upper=True, nulls=False)

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

    def key_set_query(self, query: str, keys: Sequence[str]) -> str:
        """The key columns of a user query, as a query."""
        return f"select {self.column_list(keys)} from ({query.strip().rstrip(';')}) as dpone_keys"

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


POSTGRES = PostgresDialect()
