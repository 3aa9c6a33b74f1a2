"""ClickHouse source and sink on clickhouse-connect (HTTP server, or chDB in process).

Source: full and cursor-incremental extracts streamed in blocks, as Arrow record batches to
sinks that take Arrow, else as row batches. Sink: a staging table created from the target's
metadata, loaded by native Arrow insert or TSV insert, keys checked, then finalized with an
atomic EXCHANGE TABLES (full refresh), partition attach (append), lightweight delete + attach
(merge; attach only on a ReplacingMergeTree target) or REPLACE PARTITION (partition_replace).

The connection is described in ``clickhouse_client``; the source is ``clickhouse_source``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
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
    StreamingBatches,
    iter_row_batches,
)
from ..contracts.errors import BadInputError, DuplicateKeyError, UnsupportedError
from ..contracts.quality import Measurement
from ..contracts.records import as_bool
from ..contracts.strategies import Strategy
from ..contracts.table import CanonicalType, Column, TableSchema
from ..runtime.failpoints import failpoint
from ..runtime.guards import missing_target_error, null_key_error
from ..runtime.protocols import LoadContext, StagedData, Statement
from ..runtime.staging_label import KeptStaging, failed_label, kept_staging, staging_label, to_sweep
from ..schema.planner import SchemaPlan, enforce_schema_plan, plan_schema
from ..sql.clickhouse import CLICKHOUSE as dialect
from ..sql.dialect import TableRef
from .clickhouse_source import ClickHouseSource
from .quality_measure import measure_checks

log = logging.getLogger(__name__)

_TEMPORAL = {CanonicalType.DATE, CanonicalType.TIMESTAMP, CanonicalType.TIMESTAMPTZ}
_DATETIMES = {CanonicalType.TIMESTAMP, CanonicalType.TIMESTAMPTZ}
_AUTH_ERRORS = ("AUTHENTICATION_FAILED", "REQUIRED_PASSWORD", "Code: 516", "Code: 194")
# A NULL sent to a non-Nullable column fails the insert instead of becoming 0 or ''.
_INSERT_SETTINGS = {"input_format_null_as_default": 0}
_TSV_SETTINGS = {**_INSERT_SETTINGS, "date_time_input_format": "best_effort"}


def _arrow_type(column: Column) -> Any:
    """The Arrow type a canonical column's Python values are converted through."""
    t = column.type
    simple = {
        CanonicalType.BOOLEAN: pa.bool_(),
        CanonicalType.INT16: pa.int16(),
        CanonicalType.INT32: pa.int32(),
        CanonicalType.INT64: pa.int64(),
        CanonicalType.FLOAT32: pa.float32(),
        CanonicalType.FLOAT64: pa.float64(),
        CanonicalType.BINARY: pa.binary(),
        CanonicalType.DATE: pa.date32(),
        CanonicalType.TIMESTAMP: pa.timestamp("us"),
        CanonicalType.TIMESTAMPTZ: pa.timestamp("us", tz="UTC"),
    }
    if t in simple:
        return simple[t]
    if t is CanonicalType.DECIMAL:
        p, s = (
            dialect.UNBOUNDED_DECIMAL
            if column.precision is None or column.precision > 76
            else (
                column.precision,
                column.scale or 0,
            )
        )
        return pa.decimal128(p, s) if p <= 38 else pa.decimal256(p, s)
    if t is CanonicalType.ARRAY:
        return pa.list_(_arrow_type(Column("element", column.element or CanonicalType.UNKNOWN)))
    return pa.string()  # string, json (text), uuid, time, interval, unknown


def _flag(value: Any, default: bool) -> bool:
    """A boolean extra, also when it came from a connection URI as text."""
    return default if value is None else as_bool(value)


def _text(value: Any) -> Any:
    return value if value is None or isinstance(value, str) else str(value)


def rows_to_arrow(schema: TableSchema, names: list[str], rows: list) -> Any:
    """One row batch as an Arrow table with the columns renamed to ``names``."""
    arrays = []
    for i, column in enumerate(schema.columns):
        values = [r[i] for r in rows]
        arrow_type = _arrow_type(column)
        if pa.types.is_string(arrow_type):
            values = [_text(v) for v in values]
        elif column.type is CanonicalType.TIMESTAMPTZ:
            values = [v.astimezone(dt.timezone.utc) if v is not None else None for v in values]
        arrays.append(pa.array(values, type=arrow_type))
    return pa.Table.from_arrays(arrays, names=names)


class DponeClickHouseHook(ClickHouseSource):
    """Source and sink for ClickHouse; also a DbApiHook (``run``, ``get_records``, ``get_first``
    through a small DB-API adapter), for ``SQLExecuteQueryOperator`` and ``SqlSensor``."""

    conn_name_attr = "clickhouse_conn_id"
    default_conn_name = "clickhouse_default"
    conn_type = "dpone_clickhouse"
    hook_name = "dpone ClickHouse"

    accepted_formats = (TSV, ARROW)

    # --- sink ----------------------------------------------------------------------------

    def staging_table(self, ctx: LoadContext) -> TableRef:
        target = self._ref(ctx.load.sink.target)
        digest = hashlib.sha1(f"{ctx.key}|{target}|{ctx.run_id}".encode()).hexdigest()[:12]
        return dialect.table(ctx.load.sink.staging.schema_name, f"{target.name[:40]}__{digest}")

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
        return self._plan_schema(ctx, schema)[0]

    def _order_by(self, ctx: LoadContext, schema: TableSchema) -> list[str]:
        return list(ctx.load.sink.unique_key or schema.primary_key)

    def kept_staging(self, ctx: LoadContext) -> list[KeptStaging]:
        """Staging tables other runs of this load left behind (killed, or kept on failure)."""
        now = float(self.query("select toUnixTimestamp64Micro(now64(6)) / 1e6")[0][0])
        rows = self.query(dialect.STAGING_TABLES, {"db": ctx.load.sink.staging.schema_name})
        return kept_staging([(r[0], r[1]) for r in rows], ctx, now)

    def sweep_stale_staging(self, ctx: LoadContext) -> list[str]:
        """Drop this load's staging tables left by other runs more than ``stale_after`` ago,
        and failed runs' beyond the newest ``max_kept``."""
        spec = ctx.load.sink.staging
        dropped = []
        for kept, why in to_sweep(self.kept_staging(ctx), ctx):
            table = dialect.table(spec.schema_name, kept.name)
            self.command(dialect.drop_table(table))
            dropped.append(str(table))
            log.info("dropped staging %s of run %s: %s", table, kept.run_id, why)
        return dropped

    def stage(self, ctx: LoadContext, extract: ExtractResult) -> StagedData:
        """Apply the safe schema changes, create staging from the target, insert the batch."""
        spec = ctx.load.sink
        target = self._ref(spec.target)
        staging = self.staging_table(ctx)
        plan, existing = self._plan_schema(ctx, extract.schema)
        enforce_schema_plan(plan, str(target))
        keys = existing.primary_key if existing else ()
        for statement in dialect.schema_changes_ddl(target, plan.to_apply, keys):
            self.command(statement)  # ClickHouse has no transactional DDL: applied before staging
        if plan.to_apply:
            log.info("applied schema changes to %s: %s", target, plan.summary())
        self.command(dialect.create_database(staging.schema))
        self.sweep_stale_staging(ctx)
        self.command(dialect.drop_table(staging))
        now = float(self.query("select toUnixTimestamp64Micro(now64(6)) / 1e6")[0][0])
        if existing is not None:
            self.command(dialect.create_table_as(staging, target, comment=staging_label(ctx, now)))
        else:
            self.command(
                dialect.create_table(
                    staging,
                    dialect.as_stored(extract.schema),
                    order_by=self._order_by(ctx, extract.schema),
                    partition_by=spec.partition_by or (),
                    comment=staging_label(ctx, now),
                )
            )
        names = [plan.target_column(n) for n in extract.schema.names]
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
        elif isinstance(artifact, InMemoryRows | StreamingBatches):
            for batch in iter_row_batches(artifact):
                if not batch:
                    continue
                data = rows_to_arrow(extract.schema, names, batch)
                size += data.nbytes
                client.insert_arrow(table, data, settings=_INSERT_SETTINGS)
                failpoint("mid_copy")
        else:
            raise BadInputError(f"clickhouse sink cannot load a {artifact.kind} artifact")
        return size

    def stage_key_set(self, ctx: LoadContext, extract: ExtractResult) -> StagedData:
        raise UnsupportedError("reconciliation (deletes) is not supported by the clickhouse sink")

    def measure_quality(self, ctx: LoadContext, staged: StagedData, checks: list[Any]) -> list[Measurement]:
        def fetchall(statement: str, params: Any) -> list:
            return self.query(statement, params)

        return measure_checks(
            dialect,
            lambda statement, params: next(iter(fetchall(statement, params)), None),
            fetchall,
            staging=dialect.parse_table(staged.staging),
            target=self._ref(ctx.load.sink.target),
            schema=staged.schema,
            keys=list(ctx.load.sink.unique_key or staged.schema.primary_key),
            staged_rows=staged.rows,
            checks=checks,
        )

    def _check_keys(self, ctx: LoadContext, staging: TableRef, keys: list[str]) -> None:
        """NULL or duplicate keys in staging stop the load before the target is touched."""
        nulls, sample = self.query(dialect.null_keys(staging, keys))[0]
        if nulls:
            raise null_key_error(ctx.key, keys, int(nulls), list(sample))
        count, sample = self.query(dialect.duplicate_keys(staging, keys))[0]
        if count:
            shown = ", ".join(str(tuple(s) if isinstance(s, tuple | list) else s) for s in sample)
            raise DuplicateKeyError(
                f"{count} key(s) of unique_key {keys} occur more than once in the batch "
                f"(e.g. {shown}); target untouched. ClickHouse has no row order to keep the last by: "
                "deduplicate in the source query"
            )

    def _partitions(self, table: TableRef) -> list[str]:
        return [
            r[0] for r in self.query(dialect.ACTIVE_PARTITIONS, {"db": table.schema, "table": table.name})
        ]

    def finalize(self, ctx: LoadContext, staged: StagedData, extra: list[Statement]) -> dict[str, Any]:
        if extra:
            raise UnsupportedError("state cannot be committed inside a ClickHouse finalize")
        spec = ctx.load.sink
        strategy = spec.strategy
        target = self._ref(spec.target)
        staging = dialect.parse_table(staged.staging)
        keys = list(spec.unique_key or ())
        if keys:
            if spec.on_duplicate_keys != "fail":
                raise UnsupportedError(
                    "sink.on_duplicate_keys: only 'fail' is supported by clickhouse (no row order to keep the last by)"
                )
            self._check_keys(ctx, staging, keys)
        result: dict[str, Any] = {"target": str(target), "rows_inserted": staged.rows}
        info = self._table_info(target)
        if info is None and ctx.expects_target:
            raise missing_target_error(ctx, during_load=True)
        if info is None:
            self.command(dialect.create_database(target.schema))
            self.command(dialect.rename_table(staging, target))
            self.command(dialect.modify_comment(target, ""))  # drop the staging label
            result.update(method="rename", created=True)
            return result
        engine, _, partition_key = info
        if strategy is Strategy.FULL_REFRESH:
            comment = self.query(dialect.TABLE_COMMENT, {"db": target.schema, "table": target.name})[0][0]
            self.command(dialect.exchange_tables(staging, target))
            self.command(dialect.modify_comment(target, comment))  # the target keeps its own comment
            result["method"] = "exchange"
        elif strategy is Strategy.INCREMENTAL_APPEND:
            result.update(method="attach_partitions", partitions=self._attach_all(target, staging))
        elif strategy is Strategy.INCREMENTAL_MERGE:
            if engine.startswith("Replacing"):
                result["method"] = "replacing_merge_tree"
            else:
                self.command(dialect.delete_matching_keys(target, staging, keys))
                result["method"] = "delete_insert"
            failpoint("mid_finalize")
            result["partitions"] = self._attach_all(target, staging)
        elif strategy is Strategy.PARTITION_REPLACE:
            wanted = ", ".join(spec.partition_by or ())
            if not partition_key or partition_key.replace("`", "").strip("()") != wanted:
                raise BadInputError(
                    f"sink.partition_by: target {target} is partitioned by ({partition_key or 'nothing'}), "
                    f"not ({wanted}); REPLACE PARTITION needs the same partition key"
                )
            replaced = []
            for partition_id in self._partitions(staging):
                self.command(dialect.replace_partition_from(target, partition_id, staging))
                replaced.append(partition_id)
                failpoint("mid_finalize")
            result.update(method="replace_partition", partitions_replaced=replaced)
        else:
            raise UnsupportedError(
                f"sink.strategy: '{strategy.value}' is not supported by the clickhouse sink"
            )
        return result

    def _attach_all(self, target: TableRef, staging: TableRef) -> list[str]:
        """Copy every staged partition into the target; each partition lands whole or not at all."""
        attached = []
        for partition_id in self._partitions(staging):
            self.command(dialect.attach_partition_from(target, partition_id, staging))
            attached.append(partition_id)
        return attached

    def cleanup(self, ctx: LoadContext, staged: StagedData | None, succeeded: bool) -> None:
        keep = ctx.load.sink.staging.keep
        if keep == "always" or (keep == "on_failure" and not succeeded):
            if staged is not None:
                log.info("keeping staging table %s (staging.keep=%s)", staged.staging, keep)
            if not succeeded:  # labelled as a failed run's: staging.max_kept caps those
                staging = self.staging_table(ctx)
                found = self.query(dialect.TABLE_COMMENT, {"db": staging.schema, "table": staging.name})
                label = failed_label(found[0][0] if found else None)
                if label is not None:
                    self.command(dialect.modify_comment(staging, label))
            return
        self.command(dialect.drop_table(self.staging_table(ctx)))

    def plan_load(
        self,
        ctx: LoadContext,
        schema: TableSchema | None,
        binary: bool = True,
        schema_plan: SchemaPlan | None = None,
    ) -> dict[str, Any]:
        """The statements a run would issue, touching nothing."""
        spec = ctx.load.sink
        target = self._ref(spec.target)
        staging = self.staging_table(ctx)
        statements: list[str] = [dialect.create_database(staging.schema)]
        plan = None
        if schema is not None:
            if schema_plan is not None:  # already made by the caller: only the target is read again
                plan, existing = schema_plan, self.describe_table(target, with_partition_key=True)
            else:
                plan, existing = self._plan_schema(ctx, schema)
            statements.extend(
                dialect.schema_changes_ddl(target, plan.to_apply, existing.primary_key if existing else ())
            )
            if existing is not None:
                statements.append(dialect.create_table_as(staging, target))
            else:
                statements.append(
                    dialect.create_table(
                        staging,
                        dialect.as_stored(schema),
                        order_by=self._order_by(ctx, schema),
                        partition_by=spec.partition_by or (),
                    )
                )
            statements.append(
                f"insert into {staging.sql} ({dialect.column_list(schema.names)}) format Arrow|TabSeparated"
            )
            keys = list(spec.unique_key or ())
            if keys:
                statements += [dialect.null_keys(staging, keys), dialect.duplicate_keys(staging, keys)]
            statements += self._plan_finalize(ctx, target, staging, keys, existing is not None)
        statements.append(dialect.drop_table(staging))
        return {
            "target": str(target),
            "staging": str(staging),
            "statements": statements,
            "schema_plan": None if plan is None else plan.to_dict(),
        }

    @staticmethod
    def _plan_finalize(
        ctx: LoadContext, target: TableRef, staging: TableRef, keys: list[str], exists: bool
    ) -> list[str]:
        strategy = ctx.load.sink.strategy
        if not exists:
            return [dialect.rename_table(staging, target)]
        each = "-- for each partition id in system.parts of the staging table:"
        if strategy is Strategy.FULL_REFRESH:
            return [dialect.exchange_tables(staging, target)]
        if strategy is Strategy.INCREMENTAL_MERGE:
            return [
                dialect.delete_matching_keys(target, staging, keys)
                + "  -- unless the target is a ReplacingMergeTree",
                each,
                dialect.attach_partition_from(target, "<id>", staging),
            ]
        if strategy is Strategy.PARTITION_REPLACE:
            return [each, dialect.replace_partition_from(target, "<id>", staging)]
        return [each, dialect.attach_partition_from(target, "<id>", staging)]
