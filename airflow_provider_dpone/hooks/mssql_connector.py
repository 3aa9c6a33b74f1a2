"""The SQL Server sink, on the source (``mssql_source``) and the sessions (``mssql_session``):
bulk copy (the TDS bulk-load protocol, mssql-python's ``cursor.bulkcopy``) into a staging table,
then the finalize steps ``sql.finalize`` plans with the T-SQL dialect, in one transaction the
steps themselves open and commit; ``dpone plan`` renders the same steps.

``MsSqlConnector`` is the whole connector without its connection: ``hooks.mssql`` puts it on the
official MsSqlHook, and ``MsSqlEngine`` here is the same connector standing alone (no Airflow
import), for the command line.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from contextlib import suppress
from typing import Any

from ..contracts.artifacts import (
    ExtractResult,
    InMemoryRows,
    ObjectStorageStagingManifest,
    StreamingBatches,
    iter_row_batches,
)
from ..contracts.errors import BadInputError
from ..contracts.strategies import Strategy
from ..contracts.table import TableSchema
from ..runtime.failpoints import failpoint
from ..runtime.protocols import LoadContext, StagedData, Statement
from ..runtime.staging_label import staging_label
from ..schema.planner import SchemaPlan
from ..sql.dialect import TableRef
from ..sql.finalize import TargetFacts, lock_steps, plan_finalize
from ..sql.finalize_sink import SetBasedSink
from ..sql.mssql import MSSQL as dialect
from ..sql.mssql_catalog import unique_keys_from_catalog
from ..sql.mssql_extract import decode_json_columns
from ..sql.mssql_partitions import (
    INTROSPECT_INDEXES,
    INTROSPECT_PARTITIONS,
    indexes_from_catalog,
    partition_leaves,
)
from ..sql.mssql_types import bulk_row_converter
from ..sql.steps import Outcome, Step, render, run_steps, step_dict
from ..sql.targets import staging_not_null, target_primary_key
from .connection import StandaloneConnection
from .mssql_session import fetch, results, run
from .mssql_source import MsSqlSource

log = logging.getLogger(__name__)

BULK_FORMAT = "tds_bulk_copy"


class MsSqlConnector(MsSqlSource, SetBasedSink):
    """Source and sink for SQL Server, over the connection of the class it is mixed into."""

    accepted_formats: tuple[str, ...] = ()  # rows only: no other database's file format loads here
    sql_dialect = dialect

    def _read(self, statement: str, params: Any = None) -> list[tuple[Any, ...]]:
        with self.session() as conn:
            _, names, rows = results(conn.cursor(), statement, params or ())
        return decode_json_columns(names, rows)

    def _write(self, statement: str, params: Any = None) -> None:
        with self.session() as conn:
            run(conn.cursor(), statement, params or ())

    def hosts_state(self, conn_id: str) -> bool:
        """A state table on ``conn_id`` commits in this sink's finalize when it is this connection."""
        return conn_id == self.dpone_conn_id

    # --- staging ---------------------------------------------------------------------------------

    def _create_staging(self, ctx: LoadContext, staging: TableRef, schema: TableSchema) -> None:
        """(Re)create the staging table, labelled with its load, run and birth. Committed before
        bulk copy runs: the driver's bulk copy opens a connection of its own."""
        swapped_in = ctx.load.sink.strategy is Strategy.FULL_REFRESH
        with self.session(f"create staging {staging}") as conn:
            cur = conn.cursor()
            run(cur, dialect.create_schema(staging.schema))
            run(cur, dialect.drop_table(staging))
            run(
                cur,
                dialect.create_staging_table(
                    staging, schema, swapped_in=swapped_in, not_null=staging_not_null(schema)
                ),
            )
            born = float(fetch(cur, dialect.now_epoch())[0][0])
            run(cur, dialect.set_comment(staging, staging_label(ctx, born)))

    def _bulk_copy(self, staging: TableRef, schema: TableSchema, batches: Iterable[list]) -> int:
        """Row batches into staging through the TDS bulk-load protocol, one ``bulkcopy`` per
        batch (memory stays one batch); returns the rows the server acknowledged."""
        convert = bulk_row_converter(schema)
        copied = 0
        with self.session(f"bulk copy into {staging}") as conn:
            cur = conn.cursor()
            for batch in batches:
                if not batch:
                    continue
                result = cur.bulkcopy(
                    staging.sql,
                    [convert(row) for row in batch],
                    batch_size=len(batch),
                    timeout=0,  # a large batch is not cut by the driver's 30 s default
                    column_mappings=list(schema.names),  # staging's load-order column is the server's
                    table_lock=True,  # a heap loaded under TABLOCK is minimally logged
                    keep_nulls=True,
                )
                done = int(result.get("rows_copied", -1))
                if done != len(batch):
                    raise BadInputError(
                        f"bulk copy into {staging} acknowledged {done} of {len(batch)} rows; nothing is finalized"
                    )
                copied += done
                failpoint("mid_copy")
        return copied

    def stage(self, ctx: LoadContext, extract: ExtractResult) -> StagedData:
        self.sweep_stale_staging(ctx)
        return self._stage_into(ctx, self.staging_table(ctx), extract)

    def stage_key_set(self, ctx: LoadContext, extract: ExtractResult) -> StagedData:
        """Stage the source's full key set next to the batch (reconciliation of incremental loads)."""
        return self._stage_into(ctx, self.staging_table(ctx, "keys"), extract)

    def _stage_into(self, ctx: LoadContext, staging: TableRef, extract: ExtractResult) -> StagedData:
        artifact = extract.artifact
        if isinstance(artifact, ObjectStorageStagingManifest):  # each file verified first
            from ..staging.files import manifest_row_batches

            batches: Iterable[list] = manifest_row_batches(artifact)
        elif isinstance(artifact, InMemoryRows | StreamingBatches):
            batches = iter_row_batches(artifact)
        else:
            kind = getattr(artifact, "format", None) or artifact.kind
            raise BadInputError(f"mssql sink cannot load a {kind} artifact; it loads rows")
        self._create_staging(ctx, staging, extract.schema)
        rows = self._bulk_copy(staging, extract.schema, batches)
        log.info("staged %s rows into %s by bulk copy", f"{rows:,}", staging)
        return StagedData(
            staging=str(staging), schema=extract.schema, rows=rows, bytes=None, format=BULK_FORMAT
        )

    # --- staging batch by batch (resumable extracts) --------------------------------------------

    def _staging_exists(self, staging: TableRef) -> bool:
        query, params = dialect.table_exists(staging)
        return bool(self._read(query, params)[0][0])

    def has_staging(self, ctx: LoadContext) -> bool:
        return self._staging_exists(self.staging_table(ctx))

    def open_staging(self, ctx: LoadContext, schema: TableSchema, *, resume: bool) -> bool:
        """Create the run's staging table, or keep the one a failed try of this run left
        (``resume``). True when the existing staging is kept."""
        staging = self.staging_table(ctx)
        if resume and self._staging_exists(staging):
            return True
        self.sweep_stale_staging(ctx)
        self._create_staging(ctx, staging, schema)
        return False

    def append_batch(self, ctx: LoadContext, schema: TableSchema, rows: list) -> int:
        """One batch into staging, committed by the bulk copy: a later failure keeps it."""
        return self._bulk_copy(self.staging_table(ctx), schema, [rows])

    def staged(self, ctx: LoadContext, schema: TableSchema) -> StagedData:
        staging = self.staging_table(ctx)
        rows = int(self._read(dialect.count_rows(staging))[0][0])
        return StagedData(
            staging=str(staging), schema=schema, rows=rows, bytes=None, format="checkpointed_batches"
        )

    # --- the target's catalog --------------------------------------------------------------------

    @staticmethod
    def _describe_target(cur: Any, target: TableRef) -> tuple[TableSchema | None, list[str]]:
        """The target's columns and primary key (None when it does not exist), and the columns
        with a default (or identity, or computed)."""
        rows = fetch(cur, dialect.INTROSPECT_COLUMNS, (target.sql,))
        if not rows:
            return None, []
        pk = tuple(r[0] for r in fetch(cur, dialect.INTROSPECT_PRIMARY_KEY, (target.sql,)))
        columns = tuple(dialect.column_from_catalog(r) for r in rows)
        return TableSchema(columns, pk), [r[0] for r in rows if r[7]]

    def schema_plan(self, ctx: LoadContext, schema: TableSchema) -> SchemaPlan:
        """The schema plan as of now, read-only (the engine's early check and ``dpone plan``)."""
        with self.session() as conn:
            return self._plan_schema(conn.cursor(), ctx, self.target_table(ctx), schema)

    def _target_exists(self, cur: Any, target: TableRef) -> bool:
        return bool(fetch(cur, dialect.TABLE_EXISTS, (target.sql,))[0][0])

    def target_rows(self, ctx: LoadContext, *, exact: bool = False) -> int | None:
        """None when the target is missing; else whether it has rows (0/1), or its row count."""
        target = self.target_table(ctx)
        with self.session() as conn:
            cur = conn.cursor()
            if not self._target_exists(cur, target):
                return None
            query = dialect.count_rows(target) if exact else dialect.target_has_rows(target)
            return int(fetch(cur, query)[0][0])

    def target_watermark(self, ctx: LoadContext, column: str) -> tuple[str, str] | None:
        """max(``column``) in the target as text, with its canonical type; None when empty."""
        target = self.target_table(ctx)
        with self.session() as conn:
            cur = conn.cursor()
            current, _ = self._describe_target(cur, target)
            if current is None or not current.has(column):
                raise BadInputError(
                    f"source.incremental.on_state_missing: from_target needs column '{column}' in "
                    f"{target}; it has {current.names if current else 'no columns'}"
                )
            col = current.column(column)
            value = fetch(cur, dialect.cursor_bounds(target.sql, column, dialect.native_type(col)))[0][0]
        return None if value is None else (value, col.type.value)

    def _facts(self, cur: Any, ctx: LoadContext, target: TableRef, schema: TableSchema | None) -> TargetFacts:
        """The target as finalize finds it (read after the lock in a run, read-only in a plan)."""
        strategy = ctx.load.sink.strategy
        if not self._target_exists(cur, target):
            return TargetFacts(
                exists=False, primary_key=target_primary_key(ctx.load, schema) if schema else ()
            )
        where = (target.sql,)
        pk = tuple(r[0] for r in fetch(cur, dialect.INTROSPECT_PRIMARY_KEY, where))
        unique = unique_keys_from_catalog(fetch(cur, dialect.INTROSPECT_UNIQUE_KEYS, where))
        facts = TargetFacts(True, pk, unique)
        if strategy is Strategy.FULL_REFRESH and schema is not None:
            current, _ = self._describe_target(cur, target)
            shape = [(c.name, dialect.native_type(c)) for c in current.columns] if current else []
            blockers = fetch(cur, dialect.SWAP_BLOCKERS, where)[0]
            same = shape == [(c.name, dialect.native_type(c)) for c in schema.columns]
            return TargetFacts(True, pk, unique, swappable=same and not any(blockers))
        if strategy is Strategy.PARTITION_REPLACE and fetch(cur, dialect.IS_PARTITIONED, where)[0][0]:
            rows = fetch(cur, INTROSPECT_PARTITIONS, where)
            current, _ = self._describe_target(cur, target)
            column = current.column(rows[0][5]) if current and rows else None
            if column is None:
                raise BadInputError(f"{target}: partitioned, but its partitioning column is not readable")
            indexes = indexes_from_catalog(fetch(cur, INTROSPECT_INDEXES, where))
            leaves = partition_leaves(dialect, target, column, dialect.native_type(column), rows, indexes)
            return TargetFacts(True, pk, unique, partitioned=True, leaves=leaves)
        return facts

    # --- finalize --------------------------------------------------------------------------------

    def finalize(self, ctx: LoadContext, staged: StagedData, extra: list[Statement]) -> dict[str, Any]:
        """The planned steps in one transaction, with ``extra`` (colocated state or the journal
        row): ``dialect.transaction`` frames them, ``xact_abort`` rolls all of it back on error."""
        target = self.target_table(ctx)
        begin, *closing = dialect.transaction([], extra)
        with self.session(f"finalize into {target}") as conn:
            cur = conn.cursor()
            execute = _executor(cur)
            try:
                run_steps([begin], execute)
                serialize, lock_target = lock_steps(dialect, self._job(ctx, None, None), exists=True)
                run_steps([serialize], execute)
                if self._target_exists(cur, target):
                    run_steps([lock_target], execute)
                result = self._finalize_locked(cur, ctx, staged, execute)
                failpoint("mid_finalize")  # the data is written, not committed
                run_steps(closing, execute)  # the state (or journal) row, then commit
            except BaseException:
                with suppress(Exception):
                    run(cur, dialect.rollback_finalize())
                raise
        return result

    def plan_load(
        self,
        ctx: LoadContext,
        schema: TableSchema | None,
        binary: bool = True,
        schema_plan: SchemaPlan | None = None,
    ) -> dict[str, Any]:
        """The statements this load would run, planned as a run plans them from the target's
        catalog (read-only): staging and its bulk copy, then the finalize's transaction."""
        target, staging = self.target_table(ctx), self.staging_table(ctx)
        swapped_in = ctx.load.sink.strategy is Strategy.FULL_REFRESH
        steps = [Step(dialect.create_schema(staging.schema), note="staging")]
        if schema:
            steps.append(
                Step(
                    dialect.create_staging_table(
                        staging, schema, swapped_in=swapped_in, not_null=staging_not_null(schema)
                    )
                )
            )
        names = ", ".join(schema.names) if schema else "<source columns>"
        steps.append(Step(f"-- bulk copy (TDS bulk load, TABLOCK) into {staging.sql} ({names})"))
        with self.session() as conn:
            facts = self._facts(conn.cursor(), ctx, target, schema)
        job = self._job(ctx, schema, schema_plan, key_set=self.staging_table(ctx, "keys"))
        lines = render(steps)
        if not facts.exists and ctx.expects_target:
            lines.append(f"-- fails: {target} is missing while the load's state says it was loaded")
        if ctx.load.sink.strategy is Strategy.FULL_REFRESH and not ctx.load.sink.allow_empty:
            lines.append("-- fails if the batch is empty while the target holds rows (sink.allow_empty)")
        finalize = dialect.transaction(
            lock_steps(dialect, job, facts.exists) + plan_finalize(dialect, job, facts)
        )
        return {
            "target": str(target),
            "staging": str(staging),
            "statements": lines + render(finalize),
            "steps": [step_dict(s) for s in finalize],
        }


def _executor(cur: Any) -> Callable[[Step], Outcome]:
    """Run one step on the finalize's connection: its row count, and its rows when it is a query
    (JSON sample columns decoded)."""

    def execute(step: Step) -> Outcome:
        params = tuple(step.params.values()) if isinstance(step.params, Mapping) else tuple(step.params)
        count, names, rows = results(cur, step.sql, params)
        return Outcome(count, decode_json_columns(names, rows) if names else None)

    return execute


class MsSqlEngine(MsSqlConnector, StandaloneConnection):
    """The SQL Server connector standing alone, without Airflow's classes: what ``dpone run``,
    ``plan`` and ``state`` use. Its connection comes from ``resolve_connection`` (an ``mssql``
    connection in ``AIRFLOW_CONN_<ID>``) and opens as the Airflow hook opens it."""

    def __init__(self, conn_id: str) -> None:
        super().__init__(conn_id)
