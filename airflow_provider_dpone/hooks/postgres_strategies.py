"""Set-based finalize of each keyed or scoped strategy for the PostgreSQL sink.

Everything here runs on the sink's finalize cursor, inside its one transaction: a failure at
any statement (a guard, a constraint, a crash) rolls back the whole finalize.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ..contracts.errors import (
    BadInputError,
    DuplicateKeyError,
    EmptySourceError,
    MassDeleteError,
    StagingMismatchError,
)
from ..contracts.manifest import LoadSpec, ReplaceSpec
from ..contracts.strategies import SCD2_COLUMNS, Strategy
from ..contracts.table import TableSchema
from ..runtime.guards import null_key_error
from ..runtime.protocols import LoadContext, StagedData
from ..sql.dialect import TableRef
from ..sql.postgres import POSTGRES as dialect

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)


def one_row(cursor: psycopg.Cursor) -> tuple[Any, ...]:
    """The row a statement that always answers one row (an aggregate, a catalog probe) returned."""
    row = cursor.fetchone()
    if row is None:
        raise RuntimeError("the statement answered no row")
    return tuple(row)


def replace_predicate(spec: ReplaceSpec | None, schema: TableSchema) -> tuple[str, tuple]:
    """The rows ``replace`` rewrites: the window (bounds as parameters) or the author's predicate."""
    assert spec is not None  # the manifest requires it for this strategy
    if spec.where:  # SQL from the manifest author, like a source query
        return f"({spec.where})", ()
    window = spec.window
    assert window is not None
    if not schema.has(window.column):
        raise BadInputError(
            f"sink.replace.window.column: '{window.column}' not in source columns {schema.names}"
        )
    return dialect.window_predicate(schema.column(window.column)), (window.start, window.end)


def active_predicate(load: LoadSpec) -> str:
    """Target rows (alias ``t``) that count as present: not already soft-deleted or closed."""
    if load.sink.strategy is Strategy.SCD2:
        return f"t.{dialect.quote_ident(SCD2_COLUMNS['is_current'])}"
    if load.reconciliation.deletes == "soft":
        return f"t.{dialect.quote_ident(load.reconciliation.soft_delete_column)} is null"
    return ""


class Finalize:
    """One finalize of ``staging`` into ``target`` by the load's strategy (not full refresh)."""

    def __init__(
        self,
        cur: psycopg.Cursor,
        ctx: LoadContext,
        target: TableRef,
        staging: TableRef,
        schema: TableSchema,
        mapping: dict[str, str],
        staged: StagedData,
        *,
        created: bool,
    ) -> None:
        self.cur, self.ctx, self.target, self.staging = cur, ctx, target, staging
        self.schema, self.mapping, self.staged, self.created = schema, mapping, staged, created
        self.names = schema.names
        self.keys = list(ctx.load.sink.unique_key or ())
        self.deletes = ctx.load.reconciliation.deletes

    def run(self) -> dict[str, Any]:
        strategy = self.ctx.load.sink.strategy
        steps = {
            Strategy.INCREMENTAL_APPEND: self.append,
            Strategy.INCREMENTAL_MERGE: self.merge,
            Strategy.SNAPSHOT_DIFF: self.snapshot_diff,
            Strategy.SCD2: self.scd2,
            Strategy.REPLACE: self.replace,
            Strategy.PARTITION_REPLACE: self.partition_replace,
        }
        if strategy not in steps:
            raise BadInputError(f"sink.strategy: '{strategy.value}' is not supported by the postgres sink")
        return steps[strategy]()

    # --- helpers -------------------------------------------------------------------------

    def _execute(self, statement: str, params: tuple = ()) -> int:
        self.cur.execute(statement, params or None)
        return self.cur.rowcount

    def _check_columns(self, field: str, columns: list[str]) -> None:
        missing = [c for c in columns if not self.schema.has(c)]
        if missing:
            raise BadInputError(f"{field}: {missing} not in source columns {self.schema.names}")

    def _dedupe(self) -> int:
        """Fail on NULL or duplicate keys in the batch, or keep the last row per key; rows removed."""
        self._check_columns("sink.unique_key", self.keys)
        nulls, sample = one_row(self.cur.execute(dialect.null_keys(self.staging, self.keys)))
        if nulls:
            raise null_key_error(self.ctx.key, self.keys, nulls, sample or [])
        dupes = self.cur.execute(dialect.duplicate_keys(self.staging, self.keys)).fetchall()
        if not dupes:
            return 0
        if self.ctx.load.sink.on_duplicate_keys == "fail":
            sample = ", ".join(f"{dict(zip(self.keys, d[:-1], strict=True))} x{d[-1]}" for d in dupes)
            raise DuplicateKeyError(
                f"{len(dupes)}+ unique_key values occur more than once in this batch "
                f"(sample: {sample}); fix the source or set sink.on_duplicate_keys: keep_last"
            )
        return self._execute(dialect.keep_last_per_key(self.staging, self.keys))

    def _keyset(self) -> TableRef:
        """Where the source's full key set is: the batch itself for full extracts."""
        if self.ctx.load.source.incremental is None:
            return self.staging
        key_set = self.staged.details.get("key_set")
        if not key_set:
            raise BadInputError(
                "reconciliation of an incremental load needs the staged key set; none was staged"
            )
        return dialect.parse_table(key_set)

    def _active(self) -> str:
        return active_predicate(self.ctx.load)

    def _delete_guard(self) -> tuple[TableRef, int] | None:
        """Count the rows reconciliation would delete; fail before any change above the limit."""
        if self.deletes == "none" or self.created:
            return None
        keyset = self._keyset()
        missing, total = one_row(
            self.cur.execute(
                dialect.count_missing_keys(self.target, keyset, self.keys, self.mapping, self._active())
            )
        )
        limit = self.ctx.load.reconciliation.max_delete_fraction
        if total and missing / total > limit:
            raise MassDeleteError(
                f"reconciliation would delete {missing:,} of {total:,} rows of {self.target} "
                f"({missing / total:.1%}), above reconciliation.max_delete_fraction {limit:g}; nothing "
                "was changed. Check the source; if the deletes are real, raise the limit for one run"
            )
        log.info("reconciliation: %s of %s target rows are gone from the source", missing, total)
        return keyset, missing

    def _apply_deletes(self, guard: tuple[TableRef, int] | None) -> dict[str, Any]:
        if guard is None:
            return {}
        keyset, _ = guard
        if self.ctx.load.sink.strategy is Strategy.SCD2:
            n = SCD2_COLUMNS
            deleted = self._execute(
                dialect.close_missing_keys(
                    self.target,
                    keyset,
                    self.keys,
                    {n["valid_to"]: "now()", n["is_current"]: "false"},
                    self._active(),
                    self.mapping,
                )
            )
            return {"rows_closed_deleted": deleted, "deletes": "close_version"}
        if self.deletes == "soft":
            column = self.ctx.load.reconciliation.soft_delete_column
            deleted = self._execute(
                dialect.close_missing_keys(
                    self.target, keyset, self.keys, {column: "now()"}, self._active(), self.mapping
                )
            )
            return {"rows_deleted": deleted, "deletes": "soft"}
        deleted = self._execute(dialect.delete_missing_keys(self.target, keyset, self.keys, self.mapping))
        return {"rows_deleted": deleted, "deletes": "hard"}

    # --- strategies ----------------------------------------------------------------------

    def append(self) -> dict[str, Any]:
        target = self.target
        keys = [r[0] for r in self.cur.execute(dialect.INTROSPECT_PRIMARY_KEY, (target.schema, target.name))]
        statement = dialect.append_rows(target, self.staging, self.names, self.mapping, keys)
        return {"method": "insert", "rows_inserted": self._execute(statement)}

    def merge(self, *, only_changed: bool = False) -> dict[str, Any]:
        removed = self._dedupe()
        guard = self._delete_guard()
        result: dict[str, Any] = {"duplicates_removed": removed}
        if self.created:  # the target was created in this transaction: every row is new
            inserted = self._execute(dialect.insert_select(self.target, self.staging, self.names, self.mapping))
            return {**result, "method": "insert", "rows_updated": 0, "rows_inserted": inserted}
        self._execute(dialect.analyze(self.staging, self.keys))  # row count and key stats: joins use the index
        undelete = self.ctx.load.reconciliation.soft_delete_column if self.deletes == "soft" else None
        update = dialect.merge_update(
            self.target,
            self.staging,
            self.names,
            self.keys,
            self.mapping,
            only_changed=only_changed,
            undelete=undelete,
        )
        updated = self._execute(update) if update else 0
        result["rows_updated"] = updated
        unique = {
            frozenset(cols)
            for (cols,) in self.cur.execute(
                dialect.INTROSPECT_UNIQUE_KEYS, (self.target.schema, self.target.name)
            )
        }
        if (
            update
            and not only_changed
            and updated == self.staged.rows - removed
            and frozenset(self.mapping.get(k, k) for k in self.keys) in unique
            and guard is None
        ):
            # Keys are unique on both sides and every staged row matched one: nothing is new.
            return {**result, "method": "update", "rows_inserted": 0}
        inserted = self._execute(
            dialect.merge_insert(self.target, self.staging, self.names, self.keys, self.mapping)
        )
        result.update(method="update_insert", rows_inserted=inserted)
        if only_changed:
            result["rows_unchanged"] = self.staged.rows - removed - updated - inserted
        result.update(self._apply_deletes(guard))
        return result

    def snapshot_diff(self) -> dict[str, Any]:
        """Converge to the source snapshot: changed rows updated, new inserted, gone deleted."""
        result = self.merge(only_changed=True)
        if result["method"] != "insert":  # a first load into a new target is a plain insert
            result["method"] = "diff"
        return result

    def scd2(self) -> dict[str, Any]:
        """Close the current version of changed keys and open a new one; unchanged keys stay."""
        removed = self._dedupe()
        guard = self._delete_guard()
        n = SCD2_COLUMNS
        if not self.created:
            self._execute(dialect.analyze(self.staging, self.keys))
        closed = 0
        if not self.created:
            closed = self._execute(
                dialect.scd2_close_changed(self.target, self.staging, self.names, self.keys, self.mapping, n)
            )
        opened = self._execute(
            dialect.scd2_insert_versions(self.target, self.staging, self.names, self.keys, self.mapping, n)
        )
        result = {
            "method": "scd2",
            "duplicates_removed": removed,
            "rows_closed_changed": closed,
            "rows_inserted": opened,
            "rows_unchanged": self.staged.rows - removed - opened,
        }
        result.update(self._apply_deletes(guard))
        return result

    def replace(self) -> dict[str, Any]:
        """Delete the window (or predicate) from the target and insert the batch, which must fit it."""
        predicate, params = replace_predicate(self.ctx.load.sink.replace, self.schema)
        outside = one_row(self.cur.execute(dialect.count_outside(self.staging, predicate), params or None))[0]
        if outside:
            raise StagingMismatchError(
                f"{outside:,} staged row(s) fall outside sink.replace; the source must read only the "
                "replaced range (set source.window, or filter the query); the target is untouched"
            )
        deleted = 0 if self.created else self._execute(dialect.delete_where(self.target, predicate), params)
        if deleted and not self.staged.rows and not self.ctx.load.sink.allow_empty:
            raise EmptySourceError(
                f"{self.ctx.key}: the source returned 0 rows and replace would delete {deleted:,} rows "
                f"of {self.target} in the replaced range, leaving it empty; nothing was changed. If "
                "the range is really empty now, set sink.allow_empty: true for this load"
            )
        inserted = self._execute(dialect.insert_select(self.target, self.staging, self.names, self.mapping))
        return {"method": "delete_insert", "rows_deleted": deleted, "rows_inserted": inserted}

    def partition_replace(self) -> dict[str, Any]:
        """Rewrite every partition the batch touches: swap declarative partitions, else scoped delete."""
        columns = list(self.ctx.load.sink.partition_by or ())
        self._check_columns("sink.partition_by", columns)
        partitioned = one_row(self.cur.execute(dialect.IS_PARTITIONED, (self.target.sql,)))[0]
        if not partitioned:
            deleted = 0
            if not self.created:
                deleted = self._execute(dialect.delete_matching_partitions(self.target, self.staging, columns))
            inserted = self._execute(dialect.insert_select(self.target, self.staging, self.names, self.mapping))
            return {"method": "scoped_delete_insert", "rows_deleted": deleted, "rows_inserted": inserted}
        leaves = self.cur.execute(dialect.LEAF_PARTITIONS, (self.target.sql,)).fetchall()
        if not leaves:
            raise StagingMismatchError(
                f"{self.target} is partitioned but has no partitions; create them first"
            )
        total, *per_leaf = one_row(
            self.cur.execute(dialect.count_per_constraint(self.staging, [leaf[5] for leaf in leaves]))
        )
        if sum(per_leaf) != total:
            raise StagingMismatchError(
                f"{total - sum(per_leaf):,} staged row(s) fall in no partition of {self.target}; "
                "create the partition (or a default partition) first; the target is untouched"
            )
        replaced, inserted = [], 0
        for (schema, name, parent_schema, parent_name, bound, constraint), rows in zip(
            leaves, per_leaf, strict=True
        ):
            if not rows:
                continue
            old = dialect.table(schema, name)
            new = dialect.table(schema, f"{name[:40]}__dpone_new")
            prepare, swap = dialect.replace_partition(
                dialect.table(parent_schema, parent_name), old, new, bound, constraint
            )
            self._execute(dialect.drop_table(new))
            for statement in prepare:
                self._execute(statement)
            inserted += self._execute(
                dialect.insert_select(new, self.staging, self.names, self.mapping, where=constraint)
            )
            for statement in swap:
                self._execute(statement)
            replaced.append(str(old))
        log.info("replaced partitions %s of %s", replaced, self.target)
        return {"method": "partition_swap", "partitions_replaced": replaced, "rows_inserted": inserted}
