"""ClickHouse source and sink on clickhouse-connect (HTTP server, or chDB in process).

Source: full and cursor-incremental extracts streamed in blocks, as Arrow record batches to
sinks that take Arrow, else as row batches. Sink: a staging table created from the target's
metadata, loaded by native Arrow insert or TSV insert, keys checked, then finalized with an
atomic EXCHANGE TABLES (full refresh), partition attach (append), lightweight delete + attach
(merge; attach only on a ReplacingMergeTree target) or REPLACE PARTITION (partition_replace).

The connection is described in ``clickhouse_client``; the source is ``clickhouse_source``.
``ClickHouseConnector`` is the whole connector without its connection: ``hooks.clickhouse`` puts it
on DbApiHook (the Airflow hook), and ``ClickHouseEngine`` here is the same connector standing
alone (no Airflow import), for the command line.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from typing import Any

from ..contracts.errors import MissingExtraError

try:
    import pyarrow as pa
except ImportError as _exc:  # pragma: no cover - exercised by the missing-extra test
    raise MissingExtraError(_exc.name or "clickhouse-connect", "clickhouse") from None


from ..contracts.artifacts import (
    ARROW,
    TSV,
    ArrowBatches,
    ExtractResult,
    FileExport,
    InMemoryRows,
    ObjectStorageStagingManifest,
    StreamingBatches,
    iter_row_batches,
)
from ..contracts.errors import BadInputError, UnsupportedError
from ..contracts.strategies import CHANGE_OP
from ..contracts.table import CanonicalType, TableSchema
from ..runtime.failpoints import failpoint
from ..runtime.guards import missing_target_error
from ..runtime.protocols import LoadContext, StagedData, Statement
from ..runtime.staging_label import staging_label
from ..schema.planner import SchemaPlan, enforce_schema_plan, plan_schema
from ..sql.clickhouse import CLICKHOUSE as dialect
from ..sql.clickhouse_changes import ClickHouseChanges
from ..sql.clickhouse_finalize import ClickHouseFacts, clickhouse_result, plan_clickhouse_finalize
from ..sql.dialect import TableRef
from ..sql.finalize import FinalizeJob
from ..sql.staging_sink import StagingSink
from ..sql.steps import Outcome, Step, render, run_steps, step_dict
from ..sql.targets import data_schema
from ..staging.arrow import rows_to_arrow
from .clickhouse_source import ClickHouseSource
from .connection import StandaloneConnection

log = logging.getLogger(__name__)

_TEMPORAL = {CanonicalType.DATE, CanonicalType.TIMESTAMP, CanonicalType.TIMESTAMPTZ}
_DATETIMES = {CanonicalType.TIMESTAMP, CanonicalType.TIMESTAMPTZ}
_AUTH_ERRORS = ("AUTHENTICATION_FAILED", "REQUIRED_PASSWORD", "Code: 516", "Code: 194")
# A NULL sent to a non-Nullable column fails the insert instead of becoming 0 or ''.
_INSERT_SETTINGS = {"input_format_null_as_default": 0}
_TSV_SETTINGS = {**_INSERT_SETTINGS, "date_time_input_format": "best_effort"}


class ClickHouseConnector(ClickHouseSource, StagingSink):
    """Source and sink for ClickHouse, over the connection of the class it is mixed into."""

    accepted_formats = (TSV, ARROW)
    sql_dialect = dialect

    def _read(self, statement: str, params: Any = None) -> list[tuple[Any, ...]]:
        return self.query(statement, params)

    def _write(self, statement: str, params: Any = None) -> None:
        self.command(statement, params)

    def target_table(self, ctx: LoadContext) -> TableRef:
        return self._ref(ctx.load.sink.target)

    # --- sink ----------------------------------------------------------------------------

    def _plan_schema(self, ctx: LoadContext, schema: TableSchema) -> tuple[SchemaPlan, TableSchema | None]:
        # Key columns keep their type's nullability: ClickHouse refuses to alter them.
        target = self.describe_table(self._ref(ctx.load.sink.target), with_partition_key=True)
        evo = ctx.load.schema_evolution
        plan = plan_schema(
            dialect.as_stored(schema),
            target,
            mode=evo.mode,
            on_type_change=evo.on_type_change,
            rewrites_all_rows=ctx.load.rewrites_whole_target,
            # every ClickHouse column has a default (its type's zero value when none is declared)
            target_defaults=target.names if target else (),
        )
        return plan, target

    def target_rows(self, ctx: LoadContext, *, exact: bool = False) -> int | None:
        """None when the target is missing; else whether it has rows (0/1), or its row count."""
        target = self._ref(ctx.load.sink.target)
        if self._table_info(target) is None:
            return None
        count = int(self.query(dialect.count_rows(target))[0][0])  # from part metadata: cheap
        return count if exact else min(count, 1)

    def target_watermark(self, ctx: LoadContext, column: str) -> tuple[str, str] | None:
        """max(``column``) in the target as text (date-times in UTC), with its canonical type."""
        target = self._ref(ctx.load.sink.target)
        schema = self.describe_table(target)
        if schema is None or not schema.has(column):
            raise BadInputError(
                f"source.incremental.on_state_missing: from_target needs column '{column}' in "
                f"{target}; it has {schema.names if schema else 'no columns'}"
            )
        ctype = schema.column(column).type
        value, count = self.query(dialect.cursor_max(target.sql, column, utc=ctype in _DATETIMES))[0]
        if not count:
            return None
        return (value + "+00:00" if ctype is CanonicalType.TIMESTAMPTZ else value), ctype.value

    def schema_plan(self, ctx: LoadContext, schema: TableSchema) -> SchemaPlan:
        return self._plan_schema(ctx, data_schema(schema))[0]

    def _order_by(self, ctx: LoadContext, schema: TableSchema) -> list[str]:
        return list(ctx.load.sink.unique_key or schema.primary_key)

    def _staging_database(self, staging: TableRef) -> tuple[str, ...]:
        """The statement creating the staging database, when it is missing (``create database
        if not exists`` asks for CREATE DATABASE even when it exists)."""
        query = "select count() from system.databases where name = {d:String}"
        if self.query(query, {"d": staging.schema})[0][0]:
            return ()
        return (dialect.create_database(staging.schema),)

    def stage(self, ctx: LoadContext, extract: ExtractResult) -> StagedData:
        """Apply the safe schema changes, create staging from the target, insert the batch."""
        spec = ctx.load.sink
        target = self._ref(spec.target)
        staging = self.staging_table(ctx)
        plan, existing = self._plan_schema(ctx, data_schema(extract.schema))
        enforce_schema_plan(plan, str(target))
        keys = existing.primary_key if existing else ()
        for statement in dialect.schema_changes_ddl(target, plan.to_apply, keys):
            self.command(statement)  # ClickHouse has no transactional DDL: applied before staging
        if plan.to_apply:
            log.info("applied schema changes to %s: %s", target, plan.summary())
        for statement in self._staging_database(staging):
            self.command(statement)
        self.sweep_stale_staging(ctx)
        self.command(dialect.drop_table(staging))
        now = float(self.query("select toUnixTimestamp64Micro(now64(6)) / 1e6")[0][0])
        self.command(self._create_staging(ctx, staging, extract.schema, existing, staging_label(ctx, now)))
        # a change batch's staging has the batch's own names; finalize maps them to the target's
        feed = extract.schema.has(CHANGE_OP)
        names = extract.schema.names if feed else [plan.target_column(n) for n in extract.schema.names]
        size = self._insert(staging, names, extract)
        rows = int(self.query(dialect.count_rows(staging))[0][0])
        fmt = extract.artifact.format if isinstance(extract.artifact, FileExport) else extract.artifact.kind
        log.info("staged %s rows (%s bytes, %s) into %s", f"{rows:,}", f"{size:,}", fmt, staging)
        return StagedData(
            staging=str(staging),
            schema=extract.schema,
            rows=rows,
            bytes=size,
            format=fmt,
            details={"target_existed": existing is not None, "column_map": plan.column_map},
        )

    def _create_staging(
        self,
        ctx: LoadContext,
        staging: TableRef,
        schema: TableSchema,
        existing: TableSchema | None,
        comment: str | None,
    ) -> str:
        """Staging like the target; a change batch's from its own columns (nullable but for the
        keys: a delete carries its key only), the operation and order included."""
        if schema.has(CHANGE_OP):
            keys = self._order_by(ctx, schema)
            stored = dialect.as_stored(ClickHouseChanges(dialect).staging_schema(schema, keys))
            return dialect.create_table(staging, stored, order_by=keys, comment=comment)
        if existing is not None:
            return dialect.create_table_as(staging, self.target_table(ctx), comment=comment)
        return dialect.create_table(
            staging,
            dialect.as_stored(schema),
            order_by=self._order_by(ctx, schema),
            partition_by=ctx.load.sink.partition_by or (),
            comment=comment,
        )

    def _insert(self, staging: TableRef, names: list[str], extract: ExtractResult) -> int:
        artifact = extract.artifact
        client = self.client()
        table = str(staging)
        size = 0
        if isinstance(artifact, FileExport):
            if artifact.format != TSV:
                raise BadInputError(f"clickhouse sink cannot load {artifact.format!r} exports")

            def counted() -> Iterator[bytes]:
                nonlocal size
                for chunk in artifact.chunks:
                    size += len(chunk)
                    yield chunk
                    failpoint("mid_copy")

            client.raw_insert(
                table, names, insert_block=counted(), fmt="TabSeparated", settings=_TSV_SETTINGS
            )
        elif isinstance(artifact, ArrowBatches):
            for batch in artifact.batches:
                data = pa.Table.from_batches([batch]).rename_columns(names)
                size += data.nbytes
                client.insert_arrow(table, data, settings=_INSERT_SETTINGS)
                failpoint("mid_copy")
        elif isinstance(artifact, ObjectStorageStagingManifest):
            from ..staging.arrow import arrow_type
            from ..staging.files import manifest_tables

            wanted = pa.schema(
                [
                    pa.field(n, arrow_type(c, dialect.UNBOUNDED_DECIMAL))
                    for n, c in zip(names, extract.schema.columns, strict=True)
                ]
            )
            for data in manifest_tables(artifact):  # each file verified against the manifest first
                data = data.rename_columns(names).cast(wanted)  # a numeric staged as text becomes Decimal
                size += data.nbytes
                client.insert_arrow(table, data, settings=_INSERT_SETTINGS)
                failpoint("mid_copy")
        elif isinstance(artifact, InMemoryRows | StreamingBatches):
            for batch in iter_row_batches(artifact):
                if not batch:
                    continue
                data = rows_to_arrow(extract.schema, names, batch, dialect.UNBOUNDED_DECIMAL)
                size += data.nbytes
                client.insert_arrow(table, data, settings=_INSERT_SETTINGS)
                failpoint("mid_copy")
        else:
            raise BadInputError(f"clickhouse sink cannot load a {artifact.kind} artifact")
        return size

    def stage_key_set(self, ctx: LoadContext, extract: ExtractResult) -> StagedData:
        raise UnsupportedError("reconciliation (deletes) is not supported by the clickhouse sink")

    # --- finalize ------------------------------------------------------------------------

    def _facts(self, target: TableRef, staging: TableRef | None) -> ClickHouseFacts:
        """The target from the catalog, and the staged partitions (None for a plan)."""
        info = self._table_info(target)
        partitions = None if staging is None else tuple(self._partitions(staging))
        if info is None:
            return ClickHouseFacts(exists=False, partitions=partitions)
        comment = self.query(*dialect.table_comment(target))[0][0]
        return ClickHouseFacts(True, info[0], info[2], comment, partitions)

    def _partitions(self, table: TableRef) -> list[str]:
        return [
            r[0] for r in self.query(dialect.ACTIVE_PARTITIONS, {"db": table.schema, "table": table.name})
        ]

    def _job(
        self, ctx: LoadContext, staging: TableRef, schema: TableSchema | None, rows: int | None
    ) -> FinalizeJob:
        return FinalizeJob(ctx.key, ctx.load, self.target_table(ctx), staging, schema, staged_rows=rows)

    def _execute(self, step: Step) -> Outcome:
        if step.check is not None:  # a guard: one row answered
            return Outcome(1, self.query(step.sql, dict(step.params) if step.params else None))
        self.command(step.sql)
        failpoint("mid_finalize")  # a step has landed; the next has not
        return Outcome(0)

    def finalize(self, ctx: LoadContext, staged: StagedData, extra: list[Statement]) -> dict[str, Any]:
        """The planned steps, in order; each partition lands whole or not at all."""
        if extra:
            raise UnsupportedError("state cannot be committed inside a ClickHouse finalize")
        staging = dialect.parse_table(staged.staging)
        job = self._job(ctx, staging, staged.schema, staged.rows)
        mapping = dict(staged.details.get("column_map") or {})
        job = dataclasses.replace(job, snapshot=bool(staged.details.get("snapshot")), mapping=mapping)
        facts = self._facts(job.target, staging)
        if not facts.exists and ctx.expects_target:
            raise missing_target_error(ctx, during_load=True)
        outcomes = run_steps(plan_clickhouse_finalize(dialect, job, facts), self._execute)
        return clickhouse_result(job, facts, outcomes)

    def plan_load(
        self,
        ctx: LoadContext,
        schema: TableSchema | None,
        binary: bool = True,
        schema_plan: SchemaPlan | None = None,
    ) -> dict[str, Any]:
        """The statements a run would issue, touching nothing: schema changes, staging, then
        the finalize's steps."""
        target, staging = self.target_table(ctx), self.staging_table(ctx)
        statements: list[str] = list(self._staging_database(staging))
        plan = None
        finalize: list[Step] = []
        if schema is not None:
            if schema_plan is not None:  # already made by the caller: only the target is read again
                plan, existing = schema_plan, self.describe_table(target, with_partition_key=True)
            else:
                plan, existing = self._plan_schema(ctx, data_schema(schema))
            keys = existing.primary_key if existing else ()
            statements.extend(dialect.schema_changes_ddl(target, plan.to_apply, keys))
            statements.append(self._create_staging(ctx, staging, schema, existing, None))
            columns = dialect.column_list(schema.names)
            statements.append(f"insert into {staging.sql} ({columns}) format Arrow|TabSeparated")
            finalize = plan_clickhouse_finalize(
                dialect, self._job(ctx, staging, schema, None), self._facts(target, None)
            )
        return {
            "target": str(target),
            "staging": str(staging),
            "statements": statements + render(finalize) + [dialect.drop_table(staging)],
            "steps": [step_dict(s) for s in finalize],
            "schema_plan": None if plan is None else plan.to_dict(),
        }


class ClickHouseEngine(ClickHouseConnector, StandaloneConnection):
    """The ClickHouse connector standing alone, without Airflow's classes: what ``dpone run``,
    ``plan`` and ``state`` use; its connection comes from ``resolve_connection``."""

    def __init__(self, conn_id: str) -> None:
        super().__init__(conn_id)
