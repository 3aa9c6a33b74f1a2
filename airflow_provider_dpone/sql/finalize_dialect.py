"""The statements a set-based finalize needs from a transactional SQL database.

``sql.finalize`` plans every strategy with these; a database whose SQL is standard where this
base is (``insert ... select``, ``not exists`` joins) overrides only what it spells differently.
Pure: renders strings, never connects.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

from ..contracts.table import Column, TableSchema
from ..schema.planner import SchemaChange
from .dialect import SAMPLE_LIMIT, SqlDialect, TableRef


class SetBasedDialect(SqlDialect):
    """A SQL dialect whose finalize is set-based statements in one transaction."""

    def create_schema(self, schema: str) -> str:
        return f"create schema if not exists {self.quote_ident(schema)}"

    def truncate(self, table: TableRef) -> str:
        return f"truncate table {table.sql}"

    def insert_select(
        self,
        target: TableRef,
        staging: TableRef,
        columns: Sequence[str],
        column_map: Mapping[str, str] | None = None,
        where: str = "",
    ) -> str:
        """INSERT staged rows (those matching ``where``); ``column_map`` renames staging columns."""
        into = self.column_list([self._target_name(column_map, c) for c in columns])
        statement = f"insert into {target.sql} ({into}) select {self.column_list(columns)} from {staging.sql}"
        return f"{statement} where {where}" if where else statement

    def count_outside(self, staging: TableRef, predicate: str) -> str:
        """Staged rows for which ``predicate`` is not true (false or NULL)."""
        return f"select count(*) from {staging.sql} where ({predicate}) is not true"

    def delete_where(self, target: TableRef, predicate: str) -> str:
        return f"delete from {target.sql} where {predicate}"

    def _target_name(self, column_map: Mapping[str, str] | None, name: str) -> str:
        return column_map.get(name, name) if column_map else name

    def _key_match(self, keys: Sequence[str], column_map: Mapping[str, str] | None) -> str:
        return " and ".join(
            f"t.{self.quote_ident(self._target_name(column_map, k))} = s.{self.quote_ident(k)}" for k in keys
        )

    def _locked_target(self, target: TableRef) -> str:
        """The target aliased ``t`` where a finalize reads it under its write lock (a dialect
        adds its lock hints)."""
        return f"{target.sql} as t"

    def _merge_sets(
        self, values: Sequence[str], column_map: Mapping[str, str] | None, undelete: str | None
    ) -> list[str]:
        """The SET list of a merge's UPDATE: each non-key column from staging ``s``; a
        soft-delete column cleared on rows that came back."""
        sets = [
            f"{self.quote_ident(self._target_name(column_map, c))} = s.{self.quote_ident(c)}" for c in values
        ]
        return [*sets, f"{self.quote_ident(undelete)} = null"] if undelete else sets

    def _changed_columns(
        self, values: Sequence[str], column_map: Mapping[str, str] | None
    ) -> tuple[str, str]:
        """The target's and staging's value columns, as ``t.`` and ``s.`` lists."""
        t_cols = ", ".join(f"t.{self.quote_ident(self._target_name(column_map, c))}" for c in values)
        return t_cols, ", ".join(f"s.{self.quote_ident(c)}" for c in values)

    def _missing_from(
        self, keyset: TableRef, keys: Sequence[str], column_map: Mapping[str, str] | None
    ) -> str:
        return f"not exists (select 1 from {keyset.sql} as s where {self._key_match(keys, column_map)})"

    def _delete_target(self, target: TableRef) -> str:
        """DELETE of the target aliased ``t`` (T-SQL names the alias first: ``delete t from``)."""
        return f"delete from {target.sql} as t"

    def delete_keys_in(
        self,
        target: TableRef,
        keyset: TableRef,
        keys: Sequence[str],
        column_map: Mapping[str, str] | None,
        where: str,
    ) -> str:
        """Delete target rows whose key is in the ``keyset`` rows (alias ``s``) matching ``where``."""
        return f"{self._delete_target(target)} where {self.keys_in(keyset, keys, column_map, where)}"

    def merge_insert(
        self,
        target: TableRef,
        staging: TableRef,
        columns: Sequence[str],
        keys: Sequence[str],
        column_map: Mapping[str, str] | None = None,
    ) -> str:
        into = self.column_list([self._target_name(column_map, c) for c in columns])
        scols = ", ".join(f"s.{self.quote_ident(c)}" for c in columns)
        return (
            f"insert into {target.sql} ({into}) select {scols} from {staging.sql} as s "
            f"where not exists (select 1 from {self._locked_target(target)} where {self._key_match(keys, column_map)})"
        )

    @abstractmethod
    def advisory_lock(self) -> str:
        """A statement taking a transaction-scoped lock on one text parameter (the target's name)."""

    @abstractmethod
    def lock_table(self, table: TableRef, mode: str = "access exclusive") -> str:
        """Lock ``table`` until commit: "access exclusive" or "row exclusive"."""

    @abstractmethod
    def schema_change_ddl(self, table: TableRef, change: SchemaChange) -> list[str]:
        """The DDL of one safe schema change."""

    @abstractmethod
    def native_type(self, column: Column) -> str:
        """The column's type as this database spells it."""

    @abstractmethod
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
        """A table with ``schema``'s columns and key."""

    @abstractmethod
    def add_column_if_missing(self, table: TableRef, name: str, native: str) -> str:
        """Add a managed column unless the table has it."""

    @abstractmethod
    def add_primary_key(self, table: TableRef, primary_key: Sequence[str], constraint: str) -> str:
        """A named primary key on staging, before it is swapped in."""

    @abstractmethod
    def swap_in(self, staging: TableRef, target: TableRef, primary_key_constraint: str | None) -> list[str]:
        """Replace ``target`` by ``staging`` (full refresh of a plain identical table)."""

    @abstractmethod
    def analyze(self, table: TableRef, columns: Sequence[str] = ()) -> str:
        """Refresh the planner's statistics of ``table``."""

    @abstractmethod
    def duplicate_keys(self, staging: TableRef, keys: Sequence[str], limit: int = SAMPLE_LIMIT) -> str:
        """Up to ``limit`` rows: a duplicated key's values, then how often it occurs."""

    @abstractmethod
    def keep_last_per_key(self, staging: TableRef, keys: Sequence[str]) -> str:
        """Delete every staged row but the last one per key."""

    @abstractmethod
    def count_missing_keys(
        self,
        target: TableRef,
        keyset: TableRef,
        keys: Sequence[str],
        column_map: Mapping[str, str] | None = None,
        active: str = "",
    ) -> str:
        """One row: (target rows whose key is not in ``keyset``, all target rows), among ``active``."""

    @abstractmethod
    def delete_missing_keys(
        self,
        target: TableRef,
        keyset: TableRef,
        keys: Sequence[str],
        column_map: Mapping[str, str] | None = None,
    ) -> str:
        """Hard delete of target rows gone from ``keyset``."""

    @abstractmethod
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
        """Set ``assignments`` on active target rows gone from ``keyset`` (soft delete, SCD2 close),
        or on those ``picked`` (a condition on ``t``, e.g. ``keys_in``: a change feed's deletes)."""

    def keys_in(
        self, keyset: TableRef, keys: Sequence[str], column_map: Mapping[str, str] | None, where: str
    ) -> str:
        """Target rows (alias ``t``) whose key is in the ``keyset`` rows (alias ``s``) matching ``where``."""
        return (
            f"exists (select 1 from {keyset.sql} as s where {where} and {self._key_match(keys, column_map)})"
        )

    @abstractmethod
    def append_rows(
        self,
        target: TableRef,
        staging: TableRef,
        names: Sequence[str],
        mapping: dict[str, str],
        keys: Sequence[str],
    ) -> str:
        """Insert the batch; with a target key, rows already there are skipped."""

    @abstractmethod
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
        """Update matched target rows from staging (None when no column is not a key)."""

    @abstractmethod
    def scd2_close_changed(
        self,
        target: TableRef,
        staging: TableRef,
        columns: Sequence[str],
        keys: Sequence[str],
        column_map: Mapping[str, str] | None,
        names: Mapping[str, str],
    ) -> str:
        """Close the current version of keys whose row changed."""

    @abstractmethod
    def scd2_insert_versions(
        self,
        target: TableRef,
        staging: TableRef,
        columns: Sequence[str],
        keys: Sequence[str],
        column_map: Mapping[str, str] | None,
        names: Mapping[str, str],
    ) -> str:
        """Open a version for new keys and for keys whose current version was closed."""

    @abstractmethod
    def window_predicate(self, column: Column) -> str:
        """``column`` within a half-open range given as two parameters."""

    @abstractmethod
    def delete_matching_partitions(self, target: TableRef, staging: TableRef, columns: Sequence[str]) -> str:
        """Delete target rows whose partition values occur in staging."""

    @abstractmethod
    def count_per_constraint(self, staging: TableRef, constraints: Sequence[str]) -> str:
        """One row: all staged rows, then the rows each partition constraint holds."""

    @abstractmethod
    def replace_partition(
        self, parent: TableRef, old: TableRef, new: TableRef, bound: str, constraint: str
    ) -> tuple[list[str], list[str]]:
        """(prepare ``new`` like ``old``; swap ``new`` in for ``old``)."""

    # --- the crash journal (state committed with the data, acknowledged later) -------------

    @abstractmethod
    def table_exists(self, table: TableRef) -> tuple[str, Any]:
        """(query, parameters): one row, whether ``table`` exists."""

    @abstractmethod
    def create_journal_table(self, table: TableRef) -> list[str]:
        """Create the journal table (pipeline, load, run_id, state_before, state_after, acknowledged)."""

    @abstractmethod
    def upsert_journal(self, table: TableRef) -> str:
        """Write a load's journal row; parameters (pipeline, load, run_id, before, after) as JSON text."""

    @abstractmethod
    def select_pending_journal(self, table: TableRef) -> str:
        """run_id, state_before, state_after (JSON text) of an unacknowledged row; (pipeline, load)."""

    @abstractmethod
    def acknowledge_journal(self, table: TableRef) -> str:
        """Mark the row acknowledged; parameters (pipeline, load, run_id)."""
