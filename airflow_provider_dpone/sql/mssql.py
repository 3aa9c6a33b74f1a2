"""The SQL Server (T-SQL) dialect: finalize statements for every strategy of the shared planner
(``sql.finalize``), the finalize transaction and its locks, on top of the reads
(``mssql_extract``) and the catalog (``mssql_catalog``). Pure: renders strings, never connects.

Upserts are an UPDATE ... FROM ... JOIN followed by an INSERT ... WHERE NOT EXISTS, in the one
finalize transaction, never T-SQL MERGE: MERGE has a long record of wrong-result, constraint
and concurrency bugs (Aaron Bertrand, "Use Caution with SQL Server's MERGE Statement",
mssqltips 3074; Hugo Kornelis's 2023 review of which remain), and even a correct MERGE needs
HOLDLOCK to be safe against concurrent inserts. The two statements here read the target with
UPDLOCK + SERIALIZABLE, so the key range stays locked between them: the race-free upsert
Bertrand recommends instead of MERGE.

A finalize runs as ``transaction(lock_steps(...) + plan_finalize(...), state_statements)``:
``set xact_abort on`` (any error rolls the whole transaction back), a lock timeout, ``begin
transaction``, the per-target application lock (``sp_getapplock``, owned by the transaction),
the target's table lock, the planned steps, the state or journal row, ``commit``. The driver
runs in autocommit mode so these statements own the transaction.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from ..contracts.errors import UnsupportedError
from .dialect import SAMPLE_LIMIT, TableRef
from .mssql_catalog import LOAD_SEQ
from .mssql_extract import MsSqlReads
from .mssql_partitions import PartitionSlot, clone_indexes
from .steps import Step

FINALIZE_AT = "dpone.finalize_at"  # session context key: the finalize's one timestamp
# now() of the finalize transaction (PostgreSQL's now() is the transaction's start): every
# validity bound of one finalize is the same instant.
NOW = f"coalesce(cast(session_context(N'{FINALIZE_AT}') as datetimeoffset(7)), sysdatetimeoffset())"
LOCK_TIMEOUT_MS = 600_000
# Expressions the shared planner writes in PostgreSQL, as T-SQL.
_EXPRESSIONS = {"now()": NOW, "false": "0", "true": "1", "null": "null"}
_BARE_COLUMN = re.compile(r"^t\.\[(?:[^\]]|\]\])+\]$")


class MsSqlDialect(MsSqlReads):
    """SQL Server SQL, rendered: identifiers ``[quoted]``, values ``?`` parameters."""

    def __init__(self, lock_timeout_ms: int = LOCK_TIMEOUT_MS) -> None:
        self.lock_timeout_ms = int(lock_timeout_ms)

    # --- the finalize transaction ----------------------------------------------------------------

    def begin_finalize(self) -> str:
        return (
            f"set xact_abort on; set lock_timeout {self.lock_timeout_ms}; begin transaction; "
            "declare @dpone_now datetimeoffset(7) = sysdatetimeoffset(); "
            f"exec sys.sp_set_session_context @key = N'{FINALIZE_AT}', @value = @dpone_now;"
        )

    def _reset(self) -> str:
        return f"set lock_timeout -1; exec sys.sp_set_session_context @key = N'{FINALIZE_AT}', @value = null;"

    def commit_finalize(self) -> str:
        return f"commit transaction; {self._reset()}"

    def rollback_finalize(self) -> str:
        """What the executor runs when a step (or a check) failed: nothing of the finalize stays."""
        return f"if @@trancount > 0 rollback transaction; {self._reset()}"

    def transaction(self, steps: Sequence[Step], extra: Sequence[tuple[str, Any]] = ()) -> list[Step]:
        """``steps`` (locks first) and ``extra`` (the state row or the crash journal row) in one
        transaction: they commit together or not at all."""
        state = [Step(sql, tuple(params), note="state, committed with the data") for sql, params in extra]
        begin = Step(
            self.begin_finalize(), note="one transaction: any error rolls all of it back (xact_abort)"
        )
        return [begin, *steps, *state, Step(self.commit_finalize())]

    def advisory_lock(self) -> str:
        """The per-target finalize lock, owned by the transaction (released at commit or rollback);
        one parameter: its resource name (up to 255 characters, compared as binary). A lock not
        granted within the timeout (or a deadlock) fails the finalize before anything changes."""
        return (
            "declare @dpone_lock int; "
            "exec @dpone_lock = sys.sp_getapplock @Resource = ?, @LockMode = N'Exclusive', "
            f"@LockOwner = N'Transaction', @LockTimeout = {self.lock_timeout_ms}; "
            "if @dpone_lock < 0 throw 50001, N'dpone: the finalize lock of this target was not granted "
            "(another finalize holds it past the lock timeout, or a deadlock); nothing was changed', 1;"
        )

    def lock_table(self, table: TableRef, mode: str = "access exclusive") -> str:
        """Lock ``table`` until commit by reading one row under a locking hint (T-SQL has no LOCK
        TABLE). "access exclusive" (a full refresh): TABLOCKX, HOLDLOCK. "row exclusive": a
        REPEATABLEREAD read keeps the table's intent lock, so ALTER (Sch-M) waits for the commit
        while other readers and writers go on."""
        hints = {"access exclusive": "tablockx, holdlock", "row exclusive": "repeatableread"}
        if mode not in hints:
            raise ValueError(f"lock mode {mode!r}")
        return f"select top (1) 1 from {table.sql} with ({hints[mode]})"

    # --- staging and finalize ------------------------------------------------------------------

    def count_outside(self, staging: TableRef, predicate: str) -> str:
        """Staged rows for which ``predicate`` is not true (false or unknown)."""
        return f"select count_big(*) from {staging.sql} where case when {predicate} then 0 else 1 end = 1"

    def analyze(self, table: TableRef, columns: Sequence[str] = ()) -> str:
        """UPDATE STATISTICS (it commits on its own even inside a transaction); with ``columns``,
        multi-column statistics on the join keys (single-column ones are created automatically)."""
        if not columns:
            return f"update statistics {table.sql}"
        exists = (
            f"select 1 from sys.stats where object_id = object_id({self.quote_literal(table.sql)}) "
            "and name = N'dpone_keys'"
        )
        return (
            f"if not exists ({exists}) create statistics [dpone_keys] on {table.sql} "
            f"({self.column_list(columns)})"
        )

    def duplicate_keys(self, staging: TableRef, keys: Sequence[str], limit: int = SAMPLE_LIMIT) -> str:
        k = self.column_list(keys)
        return (
            f"select top ({int(limit)}) {k}, count_big(*) from {staging.sql} group by {k} "
            "having count_big(*) > 1 order by count_big(*) desc"
        )

    def keep_last_per_key(self, staging: TableRef, keys: Sequence[str]) -> str:
        """Drop all but the last-loaded row per key (staging's load-order identity column)."""
        return (
            f"with dpone_d as (select row_number() over (partition by {self.column_list(keys)} "
            f"order by {self.quote_ident(LOAD_SEQ)} desc) as dpone_rn from {staging.sql}) "
            "delete from dpone_d where dpone_rn > 1"
        )

    def _locked_target(self, target: TableRef) -> str:
        return f"{target.sql} as t with (updlock, serializable)"

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
        """UPDATE ... FROM ... JOIN of matched rows; None when every column is a key.

        ``only_changed`` skips rows whose values are equal already (``exists (select t.* except
        select s.*)`` compares NULLs as equal); ``undelete`` clears a soft-delete column on rows
        that came back.
        """
        values = [c for c in columns if c not in keys]
        if not values and not undelete:
            return None
        sets = self._merge_sets(values, column_map, undelete)
        statement = (
            f"update t set {', '.join(sets)} from {self._locked_target(target)} "
            f"join {staging.sql} as s on {self._key_match(keys, column_map)}"
        )
        if only_changed:
            changed = []
            if values:
                t_cols, s_cols = self._changed_columns(values, column_map)
                changed.append(f"exists (select {t_cols} except select {s_cols})")
            if undelete:
                changed.append(f"t.{self.quote_ident(undelete)} is not null")
            statement += f" where {' or '.join(changed)}"
        return statement

    def append_rows(
        self,
        target: TableRef,
        staging: TableRef,
        names: Sequence[str],
        mapping: dict[str, str],
        keys: Sequence[str],
    ) -> str:
        """``incremental_append``: insert the batch; with a target key, rows already there (lookback
        overlap) are skipped, and of a key staged twice the first loaded is kept (as PostgreSQL's
        ``on conflict do nothing``)."""
        staged = {self._target_name(mapping, n): n for n in names}
        if not keys or any(k not in staged for k in keys):
            return self.insert_select(target, staging, names, mapping)
        skeys = [staged[k] for k in keys]
        into = self.column_list([self._target_name(mapping, n) for n in names])
        scols = ", ".join(f"s.{self.quote_ident(n)}" for n in names)
        numbered = (
            f"(select *, row_number() over (partition by {self.column_list(skeys)} "
            f"order by {self.quote_ident(LOAD_SEQ)}) as dpone_rn from {staging.sql}) as s"
        )
        return (
            f"insert into {target.sql} ({into}) select {scols} from {numbered} where s.dpone_rn = 1 and "
            f"not exists (select 1 from {self._locked_target(target)} where {self._key_match(skeys, mapping)})"
        )

    def _active(self, active: str) -> str:
        """The planner's "row is present" condition in T-SQL: a bit column is no predicate on its
        own (``t.[is_current]`` becomes ``t.[is_current] = 1``)."""
        return f"{active} = 1" if _BARE_COLUMN.match(active) else active

    def count_missing_keys(
        self,
        target: TableRef,
        keyset: TableRef,
        keys: Sequence[str],
        column_map: Mapping[str, str] | None = None,
        active: str = "",
    ) -> str:
        """One row: (target rows whose key is not in ``keyset``, all target rows), among ``active``
        rows (an aggregate cannot hold a subquery in T-SQL: two counts)."""
        cond = self._active(active)
        missing = self._missing_from(keyset, keys, column_map)
        gone = f"{cond} and {missing}" if cond else missing
        every = f" where {cond}" if cond else ""
        return (
            f"select (select count_big(*) from {target.sql} as t where {gone}), "
            f"(select count_big(*) from {target.sql} as t{every})"
        )

    def _delete_target(self, target: TableRef) -> str:
        return f"delete t from {target.sql} as t"

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
        """Soft delete / SCD2 close: set ``assignments`` on active rows gone from ``keyset``."""
        sets = ", ".join(f"{self.quote_ident(c)} = {_EXPRESSIONS.get(e, e)}" for c, e in assignments.items())
        cond = self._active(active)
        rows = picked or self._missing_from(keyset, keys, column_map)
        return f"update t set {sets} from {target.sql} as t where {f'{cond} and ' if cond else ''}{rows}"

    def row_hash(self, columns: Sequence[str], alias: str = "s") -> str:
        """SHA-256 (hex) of the row as JSON (NULLs kept, columns in order under fixed names): equal
        values give equal hashes across runs."""
        items = ", ".join(f"{alias}.{self.quote_ident(c)} as [c{i}]" for i, c in enumerate(columns))
        row = f"(select {items} for json path, include_null_values, without_array_wrapper)"
        return f"convert(char(64), hashbytes('SHA2_256', {row}), 2)"

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
        current = f"t.{self.quote_ident(names['is_current'])}"
        return (
            f"update t set {self.quote_ident(names['valid_to'])} = {NOW}, {self.quote_ident(names['is_current'])} = 0 "
            f"from {self._locked_target(target)} join {staging.sql} as s on {self._key_match(keys, column_map)} "
            f"where {current} = 1 and t.{self.quote_ident(names['row_hash'])} <> {self.row_hash(columns)}"
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
            f"insert into {target.sql} ({into}) select {scols}, {NOW}, null, 1, {self.row_hash(columns)} "
            f"from {staging.sql} as s where not exists (select 1 from {self._locked_target(target)} "
            f"where {self._key_match(keys, column_map)} and t.{self.quote_ident(names['is_current'])} = 1)"
        )

    def delete_matching_partitions(self, target: TableRef, staging: TableRef, columns: Sequence[str]) -> str:
        """Scoped delete: every target row whose partition values occur in staging (NULLs match)."""
        match = " and ".join(
            f"(t.{c} = s.{c} or (t.{c} is null and s.{c} is null))" for c in map(self.quote_ident, columns)
        )
        return (
            f"delete t from {target.sql} as t where exists (select 1 from {staging.sql} as s where {match})"
        )

    def count_per_constraint(self, staging: TableRef, constraints: Sequence[str]) -> str:
        """One scan of staging counting the rows each partition's range holds."""
        counts = ", ".join(f"count_big(case when {c} then 1 end)" for c in constraints)
        return f"select count_big(*), {counts} from {staging.sql}"

    def replace_partition(
        self, parent: TableRef, old: TableRef, new: TableRef, bound: str, constraint: str
    ) -> tuple[list[str], list[str]]:
        """(build ``new`` like partition ``bound`` of ``parent``; switch it in).

        ``new`` is made on the partition's filegroup with the parent's columns (``select top (0)
        * into ... on``), its indexes and a trusted CHECK of the partition's range (rendered from
        the catalog's boundaries, never from user input); the swap empties the partition (TRUNCATE
        ... WITH (PARTITIONS)) and switches ``new`` in: metadata only, in the transaction.
        """
        if not isinstance(old, PartitionSlot):
            raise UnsupportedError(f"{old} is not a partition read from the SQL Server catalog")
        number = int(bound)
        check = self.quote_ident(f"{new.name[:100]}_bound")
        prepare = [
            f"select top (0) * into {new.sql} on {self.quote_ident(old.filegroup)} from {parent.sql}",
            *clone_indexes(self, new, old.indexes, old.filegroup),
            f"alter table {new.sql} with check add constraint {check} check ({constraint})",
        ]
        swap = [
            f"truncate table {parent.sql} with (partitions ({number}))",
            f"alter table {new.sql} switch to {parent.sql} partition {number}",
            self.drop_table(new),
        ]
        return prepare, swap

    def swap_in(self, staging: TableRef, target: TableRef, primary_key_constraint: str | None) -> list[str]:
        """Replace ``target`` by ``staging`` inside the transaction: drop, move to the target's
        schema (ALTER SCHEMA ... TRANSFER), rename (sp_rename, transactional), rename the key, and
        drop the staging label that moved with the table."""
        stmts = [self.drop_table(target)]
        if staging.schema != target.schema:
            stmts.append(f"alter schema {self.quote_ident(target.schema)} transfer {staging.sql}")
        moved = target.sibling(staging.name)
        stmts.append(
            f"exec sp_rename {self.quote_literal(moved.sql)}, {self.quote_literal(target.name)}, N'OBJECT'"
        )
        if primary_key_constraint:
            old = self.table(target.schema, primary_key_constraint)
            new = f"{target.name[:120]}_pkey"
            stmts.append(
                f"exec sp_rename {self.quote_literal(old.sql)}, {self.quote_literal(new)}, N'OBJECT'"
            )
        stmts.append(self.drop_comment(target))
        return stmts


MSSQL = MsSqlDialect()
