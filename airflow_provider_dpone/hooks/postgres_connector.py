"""The PostgreSQL sink, on the source (``postgres_source``) and the sessions
(``postgres_session``): COPY into a staging table, then the finalize steps ``sql.finalize``
plans, in one transaction; ``dpone plan`` renders the same steps.

``PostgresConnector`` is the whole connector without its connection: ``hooks.postgres`` puts it on
the official PostgresHook (the Airflow hook), and ``PostgresEngine`` here is the same connector
standing alone (no Airflow import), for the command line.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import closing
from typing import Any

from ..contracts.errors import MissingExtraError

try:
    import psycopg
    from psycopg.types.json import register_default_adapters
except ImportError as _exc:  # pragma: no cover - exercised by the missing-extra test
    raise MissingExtraError(_exc.name or "psycopg", "postgres") from None

from ..contracts.artifacts import (
    CSV,
    ExtractResult,
    FileExport,
    InMemoryRows,
    ObjectStorageStagingManifest,
    StreamingBatches,
    iter_row_batches,
)
from ..contracts.errors import BadInputError
from ..contracts.strategies import Strategy
from ..contracts.table import TableSchema
from ..runtime.failpoints import failpoint
from ..runtime.prefetch import Prefetched
from ..runtime.protocols import LoadContext, StagedData, Statement
from ..runtime.staging_label import staging_label
from ..schema.planner import SchemaPlan
from ..sql.dialect import TableRef
from ..sql.finalize import Leaf, TargetFacts, lock_steps, plan_finalize
from ..sql.finalize_sink import SetBasedSink
from ..sql.postgres import POSTGRES as dialect
from ..sql.steps import Outcome, Step, render, run_steps, step_dict
from ..sql.targets import staging_not_null, target_primary_key
from .connection import StandaloneConnection
from .postgres_session import one_row
from .postgres_source import BINARY, PREFETCH, TEXT, PostgresSource

log = logging.getLogger(__name__)

# json, jsonb, interval, timetz: written as text (the server parses it); the last two may arrive
# as Python values, spelled as PostgreSQL reads them
_AS_TEXT = frozenset({114, 3802, 1186, 1266})
_SPELLED = frozenset({1186, 1266})


def _pg_text(value: Any) -> Any:
    """A timedelta or a time with its offset as the text PostgreSQL reads; text and None as is."""
    import datetime as dt

    if isinstance(value, dt.timedelta):
        return f"{value.days} days {value.seconds} seconds {value.microseconds} microseconds"
    if isinstance(value, dt.time):
        return value.isoformat()
    return value


class PostgresConnector(PostgresSource, SetBasedSink):
    """Source and sink for PostgreSQL, over the connection of the class it is mixed into."""

    accepted_formats = (BINARY, TEXT)
    staged_formats = (BINARY, CSV)  # staged files: the binary COPY itself, or Parquet from CSV
    sql_dialect = dialect

    def _read(self, statement: str, params: Any = None) -> list[tuple[Any, ...]]:
        """Rows of one read-only statement (a check's SQL cannot write through here)."""
        with self.session() as conn:
            conn.read_only = True
            try:
                return conn.execute(statement, params or None).fetchall()
            finally:
                conn.rollback()

    def _write(self, statement: str, params: Any = None) -> None:
        with self.session() as conn:
            conn.execute(statement, params or None)

    def _drop_stale(self, table: TableRef) -> bool:
        """A table still locked by a live run (or a reader) is skipped, never waited for."""
        with self.session() as conn:
            try:
                conn.execute("set local lock_timeout = '1s'")
                conn.execute(dialect.drop_table(table))
            except psycopg.errors.LockNotAvailable:
                conn.rollback()  # inside the session: it would make this a failure of the load
                return False
        return True

    def hosts_state(self, conn_id: str) -> bool:
        """A state table on ``conn_id`` commits in this sink's finalize when it is this connection."""
        return conn_id == self.dpone_conn_id

    # --- sink ----------------------------------------------------------------------------

    def stage(self, ctx: LoadContext, extract: ExtractResult) -> StagedData:
        """Create the staging table and COPY the artifact into it, in one transaction."""
        # Full refresh stages a logged table that may be swapped in as the new target.
        logged = ctx.load.sink.strategy is Strategy.FULL_REFRESH
        self.sweep_stale_staging(ctx)
        return self._stage_into(ctx, self.staging_table(ctx), extract, logged=logged)

    def stage_key_set(self, ctx: LoadContext, extract: ExtractResult) -> StagedData:
        """Stage the source's full key set next to the batch (reconciliation of incremental loads)."""
        return self._stage_into(ctx, self.staging_table(ctx, "keys"), extract, logged=False)

    def _stage_into(
        self, ctx: LoadContext, staging: TableRef, extract: ExtractResult, *, logged: bool
    ) -> StagedData:
        schema = extract.schema
        artifact = extract.artifact
        with self.session() as conn:
            cur = conn.cursor()
            self._create_staging(conn, ctx, staging, schema, logged=logged)
            size: int | None = 0
            copied_rows: int | None = None  # when the rows came by several COPYs
            if isinstance(artifact, FileExport):
                if artifact.format not in self.accepted_formats:
                    raise BadInputError(f"postgres sink cannot load {artifact.format!r} exports")
                fmt = "binary" if artifact.format == BINARY else "text"
                cur.execute(dialect.UTF8_SESSION)  # the source wrote its text in UTF-8
                # The source is read ahead in a thread (a few chunks) while the sink writes.
                with (
                    closing(Prefetched(artifact.chunks, depth=PREFETCH)) as chunks,
                    cur.copy(dialect.copy_in(staging, schema.names, fmt, freeze=True)) as copy,
                ):
                    copied = 0
                    for chunk in chunks:
                        copied += len(chunk)
                        copy.write(chunk)
                        failpoint("mid_copy")
                    size = copied
            elif isinstance(artifact, InMemoryRows | StreamingBatches):
                self._copy_rows(cur, staging, schema, iter_row_batches(artifact), freeze=True)
                size = None  # rows are encoded by psycopg; the byte count is not tracked
            elif isinstance(artifact, ObjectStorageStagingManifest):  # each file verified first
                from ..staging.arrow import csv_writable, tables_as_csv
                from ..staging.files import manifest_row_batches, manifest_tables

                if artifact.manifest.format not in (BINARY, "parquet"):
                    raise BadInputError(
                        f"{artifact.manifest.uri} holds {artifact.manifest.format} files; the postgres "
                        "sink loads postgres_binary and parquet staging"
                    )
                if artifact.manifest.format == BINARY:
                    copied_rows = self._copy_binary_files(cur, staging, schema, artifact)
                elif csv_writable(schema):  # Arrow writes CSV for COPY: no row decoded in Python
                    copy_sql = dialect.copy_in(staging, schema.names, "csv", freeze=True)
                    cur.execute("set local timezone to 'UTC'")  # the CSV's timestamptz are UTC times
                    with cur.copy(copy_sql) as copy:
                        for data in tables_as_csv(manifest_tables(artifact), schema.names):
                            copy.write(data)
                else:
                    self._copy_rows(cur, staging, schema, manifest_row_batches(artifact), freeze=True)
                size = artifact.manifest.bytes
            else:
                raise BadInputError(f"postgres sink cannot load a {artifact.kind} artifact yet")
            rows = cur.rowcount if copied_rows is None else copied_rows
            conn.commit()
        log.info(
            "staged %s rows (%s bytes) into %s", f"{rows:,}", "?" if size is None else f"{size:,}", staging
        )
        fmt_name = artifact.format if isinstance(artifact, FileExport) else artifact.kind
        return StagedData(staging=str(staging), schema=schema, rows=rows, bytes=size, format=fmt_name)

    @staticmethod
    def _copy_binary_files(
        cur: psycopg.Cursor, staging: TableRef, schema: TableSchema, artifact: ObjectStorageStagingManifest
    ) -> int:
        """Binary COPY files into staging as they are read, one COPY per file (each has its own
        header); a file whose bytes differ from the manifest fails before anything is finalized.
        The rows copied."""
        from ..contracts.errors import StagingEvidenceError
        from ..staging.files import read_verified
        from ..staging.store import store_for

        manifest = artifact.manifest
        store = store_for(manifest.uri, artifact.conn_id)
        cur.execute(dialect.UTF8_SESSION)  # the source wrote its text in UTF-8
        total = 0
        for staged in manifest.files:
            with cur.copy(dialect.copy_in(staging, schema.names, "binary", freeze=True)) as copy:
                for chunk in read_verified(store, manifest, staged):
                    copy.write(chunk)
                    failpoint("mid_copy")
            if cur.rowcount != staged.rows:
                raise StagingEvidenceError(
                    f"{manifest.location(staged)} holds {cur.rowcount:,} rows; the manifest says {staged.rows:,}"
                )
            total += staged.rows
        return total

    @staticmethod
    def _create_staging(
        conn: psycopg.Connection,
        ctx: LoadContext,
        staging: TableRef,
        schema: TableSchema,
        *,
        logged: bool,
    ) -> None:
        """(Re)create the staging table, labelled with its load, run and birth (not committed)."""
        conn.execute(dialect.create_schema(staging.schema))
        conn.commit()
        conn.execute(dialect.drop_table(staging))
        conn.execute(
            dialect.create_table(staging, schema, unlogged=not logged, not_null=staging_not_null(schema))
        )
        born = one_row(conn.execute("select extract(epoch from now())"))[0]
        conn.execute(dialect.comment_table(staging, staging_label(ctx, born)))

    @staticmethod
    def _copy_rows(
        cur: psycopg.Cursor, staging: TableRef, schema: TableSchema, batches: Any, *, freeze: bool
    ) -> None:
        """Row batches into staging by text COPY (JSON, interval and timetz arrive as text, or as
        Python values written as their text; the server parses it)."""
        stored = [
            r[0]
            for r in cur.execute(
                "select atttypid from pg_attribute where attrelid = %s::regclass and attnum > 0 "
                "and not attisdropped order by attnum",
                (staging.sql,),
            )
        ]
        oids = [25 if oid in _AS_TEXT else oid for oid in stored]
        spelled = [i for i, oid in enumerate(stored) if oid in _SPELLED]
        # Text COPY: psycopg's binary array dumper cannot write empty arrays.
        with cur.copy(dialect.copy_in(staging, schema.names, "text", freeze=freeze)) as copy:
            copy.set_types(oids)
            for batch in batches:
                for row in batch:
                    if spelled:
                        row = list(row)
                        for i in spelled:
                            row[i] = _pg_text(row[i])
                    copy.write_row(row)
                failpoint("mid_copy")

    # --- staging batch by batch (resumable extracts) ------------------------------------

    def has_staging(self, ctx: LoadContext) -> bool:
        with self.session() as conn:
            return bool(one_row(conn.execute(dialect.TABLE_EXISTS, (self.staging_table(ctx).sql,)))[0])

    def open_staging(self, ctx: LoadContext, schema: TableSchema, *, resume: bool) -> bool:
        """Create the run's staging table, or keep the one a failed try of this run left
        (``resume``). True when the existing staging is kept."""
        staging = self.staging_table(ctx)
        with self.session() as conn:
            if resume and one_row(conn.execute(dialect.TABLE_EXISTS, (staging.sql,)))[0]:
                return True
            self.sweep_stale_staging(ctx)
            logged = ctx.load.sink.strategy is Strategy.FULL_REFRESH
            self._create_staging(conn, ctx, staging, schema, logged=logged)
            conn.commit()
        return False

    def append_batch(self, ctx: LoadContext, schema: TableSchema, rows: list) -> int:
        """One batch into staging, committed: a later failure keeps it for the retry."""
        staging = self.staging_table(ctx)
        with self.session() as conn:
            cur = conn.cursor()
            self._copy_rows(cur, staging, schema, [rows], freeze=False)
            count = cur.rowcount
            conn.commit()
        return count

    def staged(self, ctx: LoadContext, schema: TableSchema) -> StagedData:
        staging = self.staging_table(ctx)
        with self.session() as conn:
            rows = one_row(conn.execute(dialect.count_rows(staging)))[0]
        return StagedData(
            staging=str(staging), schema=schema, rows=rows, bytes=None, format="checkpointed_batches"
        )

    @staticmethod
    def _describe_target(cur: psycopg.Cursor, target: TableRef) -> tuple[TableSchema | None, list[str]]:
        """The target's columns and primary key (None when it does not exist), and the columns
        that have a default."""
        rows = cur.execute(dialect.INTROSPECT_COLUMNS, (target.schema, target.name)).fetchall()
        if not rows:
            return None, []
        pk = cur.execute(dialect.INTROSPECT_PRIMARY_KEY, (target.schema, target.name)).fetchall()
        columns = tuple(dialect.column_from_catalog(r) for r in rows)
        return TableSchema(columns, tuple(r[0] for r in pk)), [r[0] for r in rows if r[8]]

    def target_rows(self, ctx: LoadContext, *, exact: bool = False) -> int | None:
        """None when the target is missing; else whether it has rows (0/1), or its row count."""
        target = dialect.parse_table(ctx.load.sink.target)
        with self.session() as conn:
            if not one_row(conn.execute(dialect.TABLE_EXISTS, (target.sql,)))[0]:
                return None
            query = dialect.count_rows(target) if exact else dialect.target_has_rows(target)
            return int(one_row(conn.execute(query))[0])

    def target_watermark(self, ctx: LoadContext, column: str) -> tuple[str, str] | None:
        """max(``column``) in the target as text, with its canonical type; None when empty."""
        target = dialect.parse_table(ctx.load.sink.target)
        with self.session() as conn:
            current, _ = self._describe_target(conn.cursor(), target)
            if current is None or not current.has(column):
                raise BadInputError(
                    f"source.incremental.on_state_missing: from_target needs column '{column}' in "
                    f"{target}; it has {current.names if current else 'no columns'}"
                )
            value = one_row(conn.execute(dialect.cursor_bounds(target.sql, column)))[0]
        return None if value is None else (value, current.column(column).type.value)

    def schema_plan(self, ctx: LoadContext, schema: TableSchema) -> SchemaPlan:
        """The schema plan as of now, read-only (the engine's early check and ``dpone plan``)."""
        target = dialect.parse_table(ctx.load.sink.target)
        with self.session() as conn:
            try:
                return self._plan_schema(conn.cursor(), ctx, target, schema)
            finally:
                conn.rollback()

    # --- finalize ------------------------------------------------------------------------

    def _facts(
        self, cur: psycopg.Cursor, ctx: LoadContext, target: TableRef, schema: TableSchema | None
    ) -> TargetFacts:
        """The target as finalize finds it (read after the lock in a run, read-only in a plan)."""
        strategy = ctx.load.sink.strategy
        if not one_row(cur.execute(dialect.TABLE_EXISTS, (target.sql,)))[0]:
            return TargetFacts(
                exists=False, primary_key=target_primary_key(ctx.load, schema) if schema else ()
            )
        where = (target.schema, target.name)
        pk = tuple(r[0] for r in cur.execute(dialect.INTROSPECT_PRIMARY_KEY, where))
        unique = frozenset(frozenset(cols) for (cols,) in cur.execute(dialect.INTROSPECT_UNIQUE_KEYS, where))
        swappable = partitioned = False
        leaves: tuple[Leaf, ...] = ()
        if strategy is Strategy.FULL_REFRESH and schema is not None:
            shape = [(r[0], r[1]) for r in cur.execute(dialect.INTROSPECT_COLUMNS, where)]
            blockers = one_row(cur.execute(dialect.SWAP_BLOCKERS, (target.sql,)))
            swappable = shape == [(c.name, dialect.native_type(c)) for c in schema.columns] and not any(
                blockers
            )
        if strategy is Strategy.PARTITION_REPLACE:
            partitioned = bool(one_row(cur.execute(dialect.IS_PARTITIONED, (target.sql,)))[0])
            if partitioned:
                leaves = tuple(
                    Leaf(dialect.table(r[0], r[1]), dialect.table(r[2], r[3]), r[4], r[5])
                    for r in cur.execute(dialect.LEAF_PARTITIONS, (target.sql,))
                )
        return TargetFacts(True, pk, unique, swappable, partitioned, leaves)

    def finalize(self, ctx: LoadContext, staged: StagedData, extra: list[Statement]) -> dict[str, Any]:
        """The planned steps in one transaction, together with ``extra`` (colocated state)."""
        target = dialect.parse_table(ctx.load.sink.target)
        with self.session(f"finalize into {target}") as conn:
            # Each statement sees what committed before it (the re-plan must read the catalog
            # after the lock), whatever the server's default isolation.
            conn.isolation_level = psycopg.IsolationLevel.READ_COMMITTED
            cur = conn.cursor()
            execute = _executor(cur)
            # One finalize of a target at a time; then the target is locked before its catalog
            # is re-read: a concurrent ALTER or DROP COLUMN waits for this commit (or, if it
            # came first, is seen by the re-plan below).
            serialize, lock_target = lock_steps(dialect, self._job(ctx, None, None), exists=True)
            run_steps([serialize], execute)
            if one_row(cur.execute(dialect.TABLE_EXISTS, (target.sql,)))[0]:
                run_steps([lock_target], execute)
            result = self._finalize_locked(cur, ctx, staged, execute)
            failpoint("mid_finalize")  # the data is written, not committed
            for statement, params in extra:
                cur.execute(statement, params)
            conn.commit()
        return result

    def plan_load(
        self,
        ctx: LoadContext,
        schema: TableSchema | None,
        binary: bool = True,
        schema_plan: SchemaPlan | None = None,
    ) -> dict[str, Any]:
        """The statements this load would run, planned as a run plans them from the target's
        catalog (read-only): staging, then the finalize's steps."""
        spec = ctx.load.sink
        target, staging = dialect.parse_table(spec.target), self.staging_table(ctx)
        names = schema.names if schema else ["<source columns>"]
        steps = [Step(dialect.create_schema(staging.schema), note="staging")]
        if schema:
            unlogged = spec.strategy is not Strategy.FULL_REFRESH
            steps.append(
                Step(
                    dialect.create_table(
                        staging, schema, unlogged=unlogged, not_null=staging_not_null(schema)
                    )
                )
            )
        steps.append(Step(dialect.copy_in(staging, names, "binary" if binary else "text", freeze=True)))
        with self.session() as conn:
            try:
                facts = self._facts(conn.cursor(), ctx, target, schema)
            finally:
                conn.rollback()
        job = self._job(ctx, schema, schema_plan, key_set=self.staging_table(ctx, "keys"))
        lines = render(steps)
        if not facts.exists and ctx.expects_target:
            lines.append(f"-- fails: {target} is missing while the load's state says it was loaded")
        if spec.strategy is Strategy.FULL_REFRESH and not spec.allow_empty:
            lines.append("-- fails if the batch is empty while the target holds rows (sink.allow_empty)")
        finalize = lock_steps(dialect, job, facts.exists) + plan_finalize(dialect, job, facts)
        return {
            "target": str(target),
            "staging": str(staging),
            "statements": lines + render(finalize),
            "steps": [step_dict(s) for s in finalize],
        }


def _executor(cur: psycopg.Cursor) -> Callable[[Step], Outcome]:
    """Run one step on the finalize cursor: its row count, and its rows when it is a query."""

    def execute(step: Step) -> Outcome:
        cur.execute(step.sql, step.params or None)
        return Outcome(cur.rowcount, cur.fetchall() if cur.description else None)

    return execute


# The extras the official PostgresHook does not pass to libpq (it reads them itself).
IGNORED_EXTRAS = frozenset(
    {
        "iam",
        "redshift",
        "redshift-serverless",
        "cursor",
        "cluster-identifier",
        "workgroup-name",
        "aws_conn_id",
        "sqlalchemy_scheme",
        "sqlalchemy_query",
        "azure_conn_id",
    }
)
# Extras only the official hook can act on: IAM tokens (AWS or Azure), cursor row factories.
OFFICIAL_HOOK_EXTRAS = ("iam", "cursor")


class PostgresEngine(PostgresConnector, StandaloneConnection):
    """The PostgreSQL connector standing alone, without Airflow's classes: what ``dpone run``,
    ``plan`` and ``state`` use. Its connection comes from ``resolve_connection`` and is opened
    as the official PostgresHook opens it (host, login, password, schema as the database, port,
    every other extra as a libpq parameter); a connection with an ``iam`` or ``cursor`` extra is
    opened by the official hook itself."""

    def __init__(self, conn_id: str) -> None:
        super().__init__(conn_id)

    def get_conn(self) -> psycopg.Connection:
        conn = self.get_connection(self.conn_id)
        extra = conn.extra_dejson
        if any(extra.get(key) for key in OFFICIAL_HOOK_EXTRAS):
            from airflow.providers.postgres.hooks.postgres import PostgresHook

            return PostgresHook(postgres_conn_id=self.conn_id).get_conn()  # type: ignore[return-value]
        params: dict[str, Any] = {
            "host": conn.host,
            "user": conn.login,
            "password": conn.password,
            "dbname": conn.schema,
            "port": conn.port,
        }
        params.update((k, v) for k, v in extra.items() if k not in IGNORED_EXTRAS)
        connection = psycopg.Connection.connect(**params)
        register_default_adapters(connection)  # as the official hook does
        return connection
