"""PostgreSQL source and sink, built on the official provider's PostgresHook (psycopg 3).

Source: full, cursor incremental (upper bound fixed in the extract snapshot) and XMin
incremental, streamed with memory bounded by one batch. Sink: COPY into a staging table,
then a set-based finalize in one transaction. Between two PostgreSQL databases the data
moves as binary COPY chunks and is never decoded in Python; psycopg2 reads the source's COPY
stream in the extract's snapshot (``postgres_copy_out``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import select
import threading
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager, suppress
from typing import Any

from ..contracts.errors import MissingExtraError

try:
    import psycopg
    from airflow.providers.postgres.hooks.postgres import PostgresHook
except ImportError as _exc:  # pragma: no cover - exercised by the missing-extra test
    raise MissingExtraError(_exc.name or "psycopg", "postgres") from None

from ..contracts.artifacts import (
    TSV,
    ExtractResult,
    FileExport,
    InMemoryRows,
    StreamingBatches,
    iter_row_batches,
)
from ..contracts.errors import BadInputError, TransientError
from ..contracts.manifest import SourceSpec
from ..contracts.quality import Measurement
from ..contracts.redaction import Redactor
from ..contracts.state import CursorState, StateRecord, XminState
from ..contracts.strategies import SCD2_COLUMNS, IncrementalMode, Strategy
from ..contracts.table import CanonicalType, Column, TableSchema
from ..runtime.failpoints import failpoint
from ..runtime.guards import missing_target_error
from ..runtime.prefetch import Prefetched
from ..runtime.protocols import LoadContext, StagedData, Statement
from ..runtime.staging_label import KeptStaging, failed_label, kept_staging, staging_label, to_sweep
from ..schema.planner import SchemaPlan, enforce_schema_plan, plan_schema
from ..sql.dialect import TableRef
from ..sql.postgres import POSTGRES as dialect
from .connection import conn_id_of, probe
from .postgres_copy_out import copy_out_chunks, export_snapshot, snapshot_reader
from .postgres_errors import classify
from .postgres_strategies import Finalize, active_predicate, one_row, replace_predicate
from .quality_measure import measure_checks

log = logging.getLogger(__name__)

BINARY = "postgres_binary"
TEXT = "postgres_text"
_CHUNK = 1 << 20  # coalesce COPY messages into ~1 MiB writes
_PREFETCH = 4  # chunks read ahead of the sink: memory stays within a few MiB
_MERGE_FILLFACTOR = 90
# A kept connection idle for longer is replaced, not reused: the steps of one load follow each
# other within seconds, while a connection idle through a long extract may have been cut.
IDLE_REUSE_SECONDS = 30.0
_UPDATING = {Strategy.INCREMENTAL_MERGE, Strategy.SNAPSHOT_DIFF, Strategy.SCD2}

_TEMPORAL = {CanonicalType.DATE, CanonicalType.TIMESTAMP, CanonicalType.TIMESTAMPTZ}
# Text COPY spells these differently from TSV readers ({1,2} arrays, \\x.. bytea).
_NOT_TSV = {CanonicalType.ARRAY, CanonicalType.BINARY}
_NUMERIC = {CanonicalType.INT16, CanonicalType.INT32, CanonicalType.INT64, CanonicalType.DECIMAL}


def _finalize_lock(strategy: Strategy) -> str:
    """The lock finalize takes on an existing target before re-planning its schema: a full
    refresh truncates or swaps it (the exclusive lock it needs, taken now rather than upgraded
    to later); the other strategies write rows, as an UPDATE does."""
    return "access exclusive" if strategy is Strategy.FULL_REFRESH else "row exclusive"


def _alive(conn: psycopg.Connection) -> bool:
    """Whether an idle connection is still open: a server that ended the session (an idle
    timeout, a terminated backend, a restart) has sent its goodbye, so the socket is readable."""
    try:
        return not select.select([conn.fileno()], [], [], 0)[0]
    except (OSError, ValueError, psycopg.Error):
        return False


class _OwnedStream(Iterator[Any]):
    """A lazy extract stream that owns its snapshot connection.

    Closing it closes the connection even when iteration never started (a generator's
    ``finally`` does not run then), so a load that fails before staging leaves no idle
    transaction holding locks on the source.
    """

    def __init__(self, conn: psycopg.Connection, stream: Iterator[Any]) -> None:
        self._conn, self._stream = conn, stream

    def __next__(self) -> Any:
        try:
            return next(self._stream)
        except psycopg.Error as exc:
            classified = classify(exc, "source extract")
            if classified is not None:
                raise classified from None
            raise

    def close(self) -> None:
        close = getattr(self._stream, "close", None)
        if close:
            close()
        self._conn.close()


class DponePostgresHook(PostgresHook):
    """Source and sink for PostgreSQL. Accepts ``postgres`` and ``dpone_postgres`` connections.

    Being the official PostgresHook, it also offers ``run``, ``get_records``, ``get_first`` and
    ``test_connection`` (``select 1``), for ``SQLExecuteQueryOperator`` and ``SqlSensor``.
    """

    conn_type = "dpone_postgres"
    hook_name = "dpone PostgreSQL"
    accepted_formats = (BINARY, TEXT)

    def __init__(
        self, postgres_conn_id: str | None = None, *, conn_id: str | None = None, **kwargs: Any
    ) -> None:
        """``postgres_conn_id`` (what Airflow passes) or its alias ``conn_id``; other keyword
        arguments go to PostgresHook."""
        super().__init__(postgres_conn_id=conn_id_of(self, postgres_conn_id, conn_id), **kwargs)
        self._idle: psycopg.Connection | None = None
        self._idle_since = 0.0
        self._idle_lock = threading.Lock()

    @property
    def dpone_conn_id(self) -> str:
        return self.get_conn_id()

    # --- connections ---------------------------------------------------------------------

    def redactor(self) -> Redactor:
        """A redactor knowing this connection's credentials."""
        return Redactor.of_connection(lambda: self.get_connection(self.dpone_conn_id))

    def test_connection(self) -> tuple[bool, str]:  # type: ignore[override]  # common-sql's stub says None
        """The UI's Test button: ``select 1`` on a new connection; no credential in the message."""
        return probe(self.redactor(), lambda: f"select 1 returned {self.get_first('select 1')}")

    def connect(self) -> psycopg.Connection:
        try:
            conn = self.get_conn()
        except psycopg.OperationalError as exc:
            # libpq echoes the user, database and options: never let them reach a log or report.
            message = self.redactor().redact(str(exc).strip())
            raise TransientError(f"cannot connect to '{self.dpone_conn_id}': {message}") from None
        if not isinstance(conn, psycopg.Connection):
            conn.close()
            raise MissingExtraError("psycopg", "postgres")
        conn.autocommit = False
        return conn

    @contextmanager
    def session(self, what: str | None = None) -> Iterator[psycopg.Connection]:
        """A connection for one unit of work: committed when the block ends, closed if it
        raises. A healthy one is kept for the hook's next unit instead of being closed, so a
        load opens a few connections rather than one per step (each costs a round trip, and
        TLS and auth on a remote server). ``release()`` closes it; the engine calls it after
        every load."""
        with self._idle_lock:
            conn, self._idle = self._idle, None
        if conn is not None and (
            time.monotonic() - self._idle_since > IDLE_REUSE_SECONDS or not _alive(conn)
        ):
            conn.close()  # cut by the server, or idle long enough for a firewall to have cut it
            conn = None
        if conn is None or conn.closed or conn.broken:
            conn = self.connect()
        try:
            yield conn
            conn.commit()
        except psycopg.Error as exc:
            conn.close()  # rolled back by the server; never reused in an unknown state
            classified = classify(exc, what or f"PostgreSQL '{self.dpone_conn_id}'")
            if classified is not None:
                raise classified from None
            raise
        except BaseException:
            conn.close()
            raise
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            conn.close()
            return
        # Back to the defaults connect() gives: a unit may have made its transactions read-only.
        conn.autocommit = False
        conn.read_only = conn.isolation_level = conn.deferrable = None
        with self._idle_lock:
            if self._idle is None:
                self._idle, self._idle_since, conn = conn, time.monotonic(), None
        if conn is not None:
            conn.close()

    def hosts_state(self, conn_id: str) -> bool:
        """A state table on ``conn_id`` commits in this sink's finalize when it is this connection."""
        return conn_id == self.dpone_conn_id

    def release(self) -> None:
        """Close the connection kept between units of work, if any."""
        with self._idle_lock:
            conn, self._idle = self._idle, None
        if conn is not None:
            conn.close()

    def __del__(self) -> None:  # hooks used outside a load (sensors, the CLI) close theirs too
        if getattr(self, "_idle", None) is not None:
            with suppress(Exception):
                self.release()

    def dataset(self, table: str) -> dict[str, str]:
        """OpenLineage naming: ``postgres://host:port`` and ``database.schema.table``."""
        conn = self.get_connection(self.dpone_conn_id)
        ref = dialect.parse_table(table)
        return {
            "namespace": f"postgres://{conn.host or 'localhost'}:{conn.port or 5432}",
            "name": f"{conn.schema or 'postgres'}.{ref.schema}.{ref.name}",
        }

    # --- introspection -------------------------------------------------------------------

    def _describe_relation(self, cur: psycopg.Cursor, table: TableRef) -> tuple[TableSchema, bool]:
        rows = cur.execute(dialect.INTROSPECT_COLUMNS, (table.schema, table.name)).fetchall()
        if not rows:
            raise BadInputError(f"source table {table} does not exist or has no columns")
        pk = [r[0] for r in cur.execute(dialect.INTROSPECT_PRIMARY_KEY, (table.schema, table.name))]
        columns = tuple(dialect.column_from_catalog(r) for r in rows)
        # Columns of user types (enums, domains) are selected cast to their portable type.
        casts = {
            c.name: c.native_type or r[1] for c, r in zip(columns, rows, strict=True) if c.native_type != r[1]
        }
        schema = TableSchema(columns, tuple(pk), extras=casts)
        return schema, dialect.binary_copy_safe(rows)

    def describe_source(self, cur: psycopg.Cursor, spec: SourceSpec) -> tuple[TableSchema, bool, str]:
        """Source schema, whether binary COPY is safe, and the FROM item to select from."""
        if spec.table:
            table = dialect.parse_table(spec.table)
            schema, binary_ok = self._describe_relation(cur, table)
            if spec.columns:
                missing = [c for c in spec.columns if not schema.has(c)]
                if missing:
                    raise BadInputError(f"source.columns: {missing} not in {table}; it has {schema.names}")
                cols = tuple(schema.column(c) for c in spec.columns)
                pk = tuple(k for k in schema.primary_key if k in spec.columns)
                schema = TableSchema(
                    cols, pk, extras={k: v for k, v in schema.extras.items() if k in spec.columns}
                )
            return schema, binary_ok, table.sql
        probe = dialect.table("pg_temp", "dpone_probe")
        cur.execute(f"create temp view dpone_probe as {(spec.query or '').strip().rstrip(';')}")
        schema, binary_ok = self._describe_relation(cur, dialect.table(self._temp_schema(cur), probe.name))
        cur.execute("drop view pg_temp.dpone_probe")
        return schema, binary_ok, dialect.source_relation(None, spec.query)

    @staticmethod
    def _temp_schema(cur: psycopg.Cursor) -> str:
        return one_row(cur.execute("select nspname from pg_namespace where oid = pg_my_temp_schema()"))[0]

    # --- source --------------------------------------------------------------------------

    def _window(
        self,
        cur: psycopg.Cursor,
        spec: SourceSpec,
        schema: TableSchema,
        relation: str,
        state: StateRecord | None,
    ) -> tuple[str, tuple, StateRecord | None, dict[str, Any]]:
        """WHERE clause, parameters, state candidate and report details for this extract."""
        inc = spec.incremental
        if inc is None:
            return "", (), None, {"mode": "full"}
        if inc.mode is IncrementalMode.CURSOR:
            assert inc.cursor is not None  # the manifest requires it in cursor mode
            column = schema.column(inc.cursor) if schema.has(inc.cursor) else None
            if column is None:
                raise BadInputError(
                    f"source.incremental.cursor: column '{inc.cursor}' not in source {schema.names}"
                )
            if state is not None and not isinstance(state, CursorState):
                raise BadInputError(f"stored state is {state.kind!r} but the load uses cursor mode; reset it")
            if inc.lookback and column.type not in _TEMPORAL:
                raise BadInputError(
                    f"source.incremental.lookback: only applies to date/timestamp cursors; "
                    f"'{inc.cursor}' is {column.native_type}"
                )
            native = dialect.native_type(column)
            lower = state.value if state is not None else inc.initial_value
            more = False
            if inc.chunk:
                if column.type not in _TEMPORAL | _NUMERIC:
                    raise BadInputError(
                        f"source.incremental.chunk: needs a date/time or numeric cursor; "
                        f"'{inc.cursor}' is {column.native_type}"
                    )
                bounds = dialect.chunk_bounds(
                    relation, inc.cursor, native, column.type in _TEMPORAL, lower is not None
                )
                last, upper = one_row(cur.execute(bounds, {"chunk": inc.chunk, "lower": lower}))
                if last is None:  # nothing past the watermark (least() ignores the NULL max)
                    upper = None
                more = upper is not None and upper != last
            else:
                upper = one_row(cur.execute(dialect.cursor_bounds(relation, inc.cursor)))[0]
            details = {
                "mode": "cursor",
                "cursor": inc.cursor,
                "lower": lower,
                "upper": upper,
                "lookback_seconds": inc.lookback,
            }
            if inc.chunk:
                details.update(chunk=inc.chunk, more=more)
            if upper is None:  # empty source: nothing to read, keep the old watermark
                return "false", (), state, details
            params: tuple = (upper,)
            if lower is not None:
                params = (lower, inc.lookback, upper) if inc.lookback else (lower, upper)
            where = dialect.cursor_predicate(inc.cursor, native, lower is not None, bool(inc.lookback))
            cursor_state = CursorState(cursor=inc.cursor, value=upper, value_type=column.type.value)
            return where, params, cursor_state, details
        if inc.mode is IncrementalMode.XMIN:
            if state is not None and not isinstance(state, XminState):
                raise BadInputError(f"stored state is {state.kind!r} but the load uses xmin mode; reset it")
            snap = one_row(cur.execute(dialect.SNAPSHOT_XMIN))[0]
            candidate = XminState(xmin=int(snap))
            details = {"mode": "xmin", "from_xmin": state.xmin if state else None, "snapshot_xmin": snap}
            if state is None:
                return "", (), candidate, details
            stored_epoch, low = divmod(state.xmin, 1 << 32)
            cur_epoch, cur_low = divmod(int(snap), 1 << 32)
            if cur_epoch == stored_epoch:
                return dialect.xmin_predicate(False), (low,), candidate, details
            if cur_epoch == stored_epoch + 1 and cur_low < low:
                return dialect.xmin_predicate(True), (low, cur_low), candidate, details
            details["resync"] = "xid wrapped more than once since the last run; full extract"
            return "", (), candidate, details
        raise BadInputError(f"source.incremental.mode: '{inc.mode.value}' is not supported by postgres")

    def _prepare(self, cur: psycopg.Cursor, spec: SourceSpec, state: StateRecord | None) -> tuple:
        """(schema, binary_ok, select, params, state candidate, details) in the open snapshot."""
        schema, binary_ok, relation = self.describe_source(cur, spec)
        where, params, candidate, details = self._window(cur, spec, schema, relation, state)
        if spec.window:  # a fixed range (replace loads read exactly the window they rewrite)
            if not schema.has(spec.window.column):
                raise BadInputError(
                    f"source.window.column: '{spec.window.column}' not in source {schema.names}"
                )
            where = dialect.window_predicate(schema.column(spec.window.column))
            params = (spec.window.start, spec.window.end)
            details["window"] = spec.window.model_dump()
        select = dialect.select_rows(relation, schema.names, where, casts=schema.extras)
        return schema, binary_ok, select, params, candidate, details

    def _open_snapshot(self) -> psycopg.Connection:
        conn = self.connect()
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        return conn

    def extract(
        self, spec: SourceSpec, state: StateRecord | None, *, accepted_formats: tuple[str, ...] = ()
    ) -> ExtractResult:
        """Start a REPEATABLE READ snapshot, fix the window, and return a lazy artifact."""
        conn = self._open_snapshot()
        try:
            snapshot = export_snapshot(conn) if accepted_formats else None  # for a faster COPY reader
            schema, binary_ok, select, params, candidate, details = self._prepare(conn.cursor(), spec, state)
            details["query"] = select
            if binary_ok and BINARY in accepted_formats:
                fmt: str | None = BINARY
            elif TEXT in accepted_formats:
                fmt = TEXT
            elif TSV in accepted_formats and all(c.type not in _NOT_TSV for c in schema.columns):
                fmt = TSV  # text COPY as it is: the sink parses it natively
            else:
                fmt = None
            if fmt:
                artifact: Any = FileExport(
                    format=fmt,
                    chunks=_OwnedStream(
                        conn,
                        self._copy_chunks(
                            conn, snapshot, dialect.copy_out(select, fmt == BINARY), params, details
                        ),
                    ),
                )
            else:
                artifact = StreamingBatches(
                    _OwnedStream(conn, self._row_batches(conn, select, params, spec.batch_size, details))
                )
            return ExtractResult(artifact=artifact, schema=schema, state_candidate=candidate, details=details)
        except BaseException:
            conn.close()
            raise

    def _copy_chunks(
        self,
        conn: psycopg.Connection,
        snapshot: str | None,
        statement: str,
        params: tuple,
        details: dict[str, Any],
    ) -> Iterator[bytes]:
        """COPY OUT as ~1 MiB chunks; records ``source_rows`` once the stream is complete.

        Read by psycopg2 in the extract's snapshot where it can be (far less CPU per row), else
        by psycopg 3 on the snapshot connection itself."""
        reader = None
        try:
            if snapshot is not None:
                reader = snapshot_reader(
                    conn,
                    snapshot,
                    lambda text: f"cannot connect to '{self.dpone_conn_id}': {self.redactor().redact(text)}",
                )
            details["copy_reader"] = "psycopg2" if reader is not None else "psycopg"
            if reader is not None:
                yield from copy_out_chunks(reader, statement, params, details, chunk=_CHUNK, depth=_PREFETCH)
                return
            buffer = bytearray()
            cur = conn.cursor()
            with cur.copy(statement, params or None) as copy:
                for data in copy:
                    buffer += data
                    if len(buffer) >= _CHUNK:
                        yield bytes(buffer)
                        buffer.clear()
            details["source_rows"] = cur.rowcount
            if buffer:
                yield bytes(buffer)
        finally:
            if reader is not None:
                reader.close()
            conn.close()

    @staticmethod
    def _row_batches(
        conn: psycopg.Connection, select: str, params: tuple, batch_size: int, details: dict[str, Any]
    ) -> Iterator[list]:
        from psycopg.types.string import TextLoader

        for name in ("json", "jsonb"):  # canonical rows carry JSON as text: keeps JSON null apart from NULL
            conn.adapters.register_loader(name, TextLoader)
        try:
            sent = 0
            with conn.cursor(name="dpone_extract") as cur:
                cur.itersize = batch_size
                cur.execute(select, params or None)
                while batch := cur.fetchmany(batch_size):
                    sent += len(batch)
                    yield batch
            details["source_rows"] = sent
        finally:
            conn.close()

    def plan_extract(self, spec: SourceSpec, state: StateRecord | None) -> tuple[dict[str, Any], TableSchema]:
        """The extract SQL, window and schema; the transaction is rolled back, nothing is written."""
        conn = self._open_snapshot()
        try:
            schema, binary_ok, select, params, candidate, details = self._prepare(conn.cursor(), spec, state)
            plan = {
                "sql": dialect.copy_out(select, binary_ok),
                "params": [str(p) for p in params],
                "window": details,
                "state_candidate": None if candidate is None else candidate.__dict__,
                "schema": [
                    {"name": c.name, "type": c.native_type, "nullable": c.nullable} for c in schema.columns
                ],
                "primary_key": list(schema.primary_key),
            }
            return plan, schema
        finally:
            conn.rollback()
            conn.close()

    def extract_keys(
        self, spec: SourceSpec, keys: list[str], *, accepted_formats: tuple[str, ...] = ()
    ) -> ExtractResult:
        """The full set of ``keys`` in the source now (reconciliation of incremental loads)."""
        if spec.table:
            keyed = spec.model_copy(update={"columns": keys, "incremental": None, "window": None})
        else:
            keyed = spec.model_copy(update={"query": dialect.key_set_query(spec.query or "", keys)})
        return self.extract(keyed, None, accepted_formats=accepted_formats)

    # --- sink ----------------------------------------------------------------------------

    @staticmethod
    def staging_table(ctx: LoadContext, role: str = "") -> TableRef:
        """The run's staging table; ``role`` "keys" names the reconciliation key set."""
        target = dialect.parse_table(ctx.load.sink.target)
        digest = hashlib.sha1(f"{ctx.key}|{target}|{ctx.run_id}".encode()).hexdigest()[:12]
        suffix = f"__{role}" if role else ""
        return dialect.table(ctx.load.sink.staging.schema_name, f"{target.name[:34]}__{digest}{suffix}")

    def stage(self, ctx: LoadContext, extract: ExtractResult) -> StagedData:
        """Create the staging table and COPY the artifact into it, in one transaction."""
        # Full refresh stages a logged table that may be swapped in as the new target.
        logged = ctx.load.sink.strategy is Strategy.FULL_REFRESH
        self.sweep_stale_staging(ctx)
        return self._stage_into(ctx, self.staging_table(ctx), extract, logged=logged)

    def stage_key_set(self, ctx: LoadContext, extract: ExtractResult) -> StagedData:
        """Stage the source's full key set next to the batch (reconciliation of incremental loads)."""
        return self._stage_into(ctx, self.staging_table(ctx, "keys"), extract, logged=False)

    def kept_staging(self, ctx: LoadContext) -> list[KeptStaging]:
        """Staging tables other runs of this load left behind (killed, or kept on failure)."""
        with self.session() as conn:
            rows = conn.execute(dialect.STAGING_TABLES, (ctx.load.sink.staging.schema_name,)).fetchall()
            now = one_row(conn.execute("select extract(epoch from now())"))[0]
        return kept_staging(rows, ctx, float(now))

    def sweep_stale_staging(self, ctx: LoadContext) -> list[str]:
        """Drop this load's staging tables left by other runs more than ``stale_after`` ago,
        and failed runs' beyond the newest ``max_kept``.

        Killed runs leave their staging behind (a retry of the same run reuses its name and
        recreates it). A table still locked by a live run is skipped, never waited for.
        """
        spec = ctx.load.sink.staging
        dropped: list[str] = []
        doomed = to_sweep(self.kept_staging(ctx), ctx)
        with self.session() as conn:
            for kept, why in doomed:
                table = dialect.table(spec.schema_name, kept.name)
                try:
                    conn.execute("set local lock_timeout = '1s'")
                    conn.execute(dialect.drop_table(table))
                    conn.commit()
                except psycopg.errors.LockNotAvailable:
                    conn.rollback()
                    log.info("stale staging %s is in use; left for a later run", table)
                    continue
                dropped.append(str(table))
                log.info("dropped staging %s of run %s: %s", table, kept.run_id, why)
        return dropped

    def _stage_into(
        self, ctx: LoadContext, staging: TableRef, extract: ExtractResult, *, logged: bool
    ) -> StagedData:
        schema = extract.schema
        artifact = extract.artifact
        with self.session() as conn:
            cur = conn.cursor()
            self._create_staging(conn, ctx, staging, schema, logged=logged)
            size: int | None = 0
            if isinstance(artifact, FileExport):
                if artifact.format not in self.accepted_formats:
                    raise BadInputError(f"postgres sink cannot load {artifact.format!r} exports")
                fmt = "binary" if artifact.format == BINARY else "text"
                # The source is read ahead in a thread (a few chunks) while the sink writes.
                with (
                    closing(Prefetched(artifact.chunks, depth=_PREFETCH)) as chunks,
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
            else:
                raise BadInputError(f"postgres sink cannot load a {artifact.kind} artifact yet")
            rows = cur.rowcount
            conn.commit()
        log.info(
            "staged %s rows (%s bytes) into %s", f"{rows:,}", "?" if size is None else f"{size:,}", staging
        )
        fmt_name = artifact.format if isinstance(artifact, FileExport) else artifact.kind
        return StagedData(staging=str(staging), schema=schema, rows=rows, bytes=size, format=fmt_name)

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
        conn.execute(dialect.create_table(staging, schema, unlogged=not logged))
        born = one_row(conn.execute("select extract(epoch from now())"))[0]
        conn.execute(dialect.comment_table(staging, staging_label(ctx, born)))

    @staticmethod
    def _copy_rows(
        cur: psycopg.Cursor, staging: TableRef, schema: TableSchema, batches: Any, *, freeze: bool
    ) -> None:
        """Row batches into staging by text COPY (JSON arrives as text; the server parses it)."""
        oids = [
            25 if r[0] in (114, 3802) else r[0]
            for r in cur.execute(
                "select atttypid from pg_attribute where attrelid = %s::regclass and attnum > 0 "
                "and not attisdropped order by attnum",
                (staging.sql,),
            )
        ]
        # Text COPY: psycopg's binary array dumper cannot write empty arrays.
        with cur.copy(dialect.copy_in(staging, schema.names, "text", freeze=freeze)) as copy:
            copy.set_types(oids)
            for batch in batches:
                for row in batch:
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

    def _target_primary_key(self, ctx: LoadContext, schema: TableSchema) -> tuple[str, ...]:
        spec = ctx.load.sink
        if spec.strategy in (Strategy.INCREMENTAL_MERGE, Strategy.SNAPSHOT_DIFF):
            return tuple(spec.unique_key or ())
        if spec.strategy is Strategy.SCD2:
            return (*(spec.unique_key or ()), SCD2_COLUMNS["valid_from"])
        return schema.primary_key

    @staticmethod
    def _managed_columns(ctx: LoadContext) -> list[Column]:
        """Target columns the sink maintains itself (validity, soft-delete marker)."""
        load = ctx.load
        if load.sink.strategy is Strategy.SCD2:
            n = SCD2_COLUMNS
            return [
                Column(n["valid_from"], CanonicalType.TIMESTAMPTZ, nullable=False),
                Column(n["valid_to"], CanonicalType.TIMESTAMPTZ),
                Column(n["is_current"], CanonicalType.BOOLEAN, nullable=False),
                Column(n["row_hash"], CanonicalType.STRING, nullable=False),
            ]
        if load.reconciliation.deletes == "soft":
            return [Column(load.reconciliation.soft_delete_column, CanonicalType.TIMESTAMPTZ)]
        return []

    def _target_schema(self, ctx: LoadContext, schema: TableSchema) -> TableSchema:
        managed = self._managed_columns(ctx)
        clash = [c.name for c in managed if schema.has(c.name)]
        if clash:
            raise BadInputError(
                f"source columns {clash} collide with columns the {ctx.load.sink.strategy.value} sink "
                "manages; rename them in the source query"
            )
        return TableSchema((*schema.columns, *managed), schema.primary_key, schema.extras)

    def _plan_schema(
        self, cur: psycopg.Cursor, ctx: LoadContext, target: TableRef, schema: TableSchema
    ) -> SchemaPlan:
        """The schema plan for ``schema`` into ``target``, from the target's current catalog."""
        evolution = ctx.load.schema_evolution
        current, defaults = self._describe_target(cur, target)
        return plan_schema(
            schema,
            current,
            mode=evolution.mode,
            on_type_change=evolution.on_type_change,
            ignore_target_columns=[c.name for c in self._managed_columns(ctx)],
            rewrites_all_rows=ctx.load.rewrites_whole_target,
            target_defaults=defaults,
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

    def finalize(self, ctx: LoadContext, staged: StagedData, extra: list[Statement]) -> dict[str, Any]:
        """Set-based finalize in one transaction, together with ``extra`` (colocated state)."""
        spec = ctx.load.sink
        target = dialect.parse_table(spec.target)
        staging = dialect.parse_table(staged.staging)
        schema = staged.schema
        pk = self._target_primary_key(ctx, schema)
        result: dict[str, Any] = {"target": str(target)}
        with self.session(f"finalize into {target}") as conn:
            # Each statement sees what committed before it (the re-plan must read the catalog
            # after the lock), whatever the server's default isolation.
            conn.isolation_level = psycopg.IsolationLevel.READ_COMMITTED
            cur = conn.cursor()
            cur.execute(dialect.advisory_lock(), (f"dpone:{target}",))
            # Lock the target first: a concurrent ALTER or DROP COLUMN waits for this commit
            # (or, if it came first, is seen by the re-plan below).
            if one_row(cur.execute(dialect.TABLE_EXISTS, (target.sql,)))[0]:
                cur.execute(dialect.lock_table(target, _finalize_lock(spec.strategy)))
            plan = self._plan_schema(cur, ctx, target, schema)
            enforce_schema_plan(plan, str(target))
            exists = plan.target_exists
            if not exists and ctx.expects_target:
                raise missing_target_error(ctx, during_load=True)
            for change in plan.to_apply:  # same transaction: rolled back if the load fails
                for statement in dialect.schema_change_ddl(target, change):
                    cur.execute(statement)
            result["schema_changes"] = [c.describe() for c in plan.to_apply]
            mapping = plan.column_map
            if spec.strategy is Strategy.FULL_REFRESH:
                result.update(self._finalize_full(cur, target, staging, schema, pk, exists, mapping))
            else:
                if not exists:
                    cur.execute(dialect.create_schema(target.schema))
                    cur.execute(
                        dialect.create_table(
                            target,
                            self._target_schema(ctx, schema),
                            primary_key=pk,
                            fillfactor=self._fillfactor(spec),
                        )
                    )
                    result["created"] = True
                else:
                    for column in self._managed_columns(ctx):  # e.g. soft deletes turned on later
                        cur.execute(dialect.add_column_if_missing(target, column.name, dialect.native_type(column)))
                step = Finalize(cur, ctx, target, staging, schema, mapping, staged, created=not exists)
                result.update(step.run())
            failpoint("mid_finalize")  # the data is written, not committed
            for statement, params in extra:
                cur.execute(statement, params)
            conn.commit()
        return result

    def _finalize_full(
        self,
        cur: psycopg.Cursor,
        target: TableRef,
        staging: TableRef,
        schema: TableSchema,
        pk: tuple[str, ...],
        exists: bool,
        mapping: dict[str, str],
    ) -> dict[str, Any]:
        swap = not exists
        if exists:
            target_cols = cur.execute(dialect.INTROSPECT_COLUMNS, (target.schema, target.name)).fetchall()
            same_shape = [(r[0], r[1]) for r in target_cols] == [
                (c.name, dialect.native_type(c)) for c in schema.columns
            ]
            blockers = one_row(cur.execute(dialect.SWAP_BLOCKERS, (target.sql,)))
            swap = same_shape and not mapping and not any(blockers)
        if swap:
            constraint = None
            if pk:
                constraint = f"{staging.name}_pk"
                cur.execute(dialect.add_primary_key(staging, pk, constraint))
            if not exists:  # an existing target is already locked exclusively (finalize's first lock)
                cur.execute(dialect.create_schema(target.schema))
            for statement in dialect.swap_in(staging, target, constraint):
                cur.execute(statement)
            cur.execute(dialect.analyze(target))
            return {"method": "swap", "rows_inserted": None}
        cur.execute(dialect.truncate(target))
        cur.execute(dialect.insert_select(target, staging, schema.names, mapping))
        return {"method": "truncate_insert", "rows_inserted": cur.rowcount}

    @staticmethod
    def _fillfactor(spec: Any) -> int | None:
        """Merge targets dpone creates leave room on each page, so updates stay HOT (in place)."""
        return _MERGE_FILLFACTOR if spec.strategy in _UPDATING else None

    def measure_quality(self, ctx: LoadContext, staged: StagedData, checks: list[Any]) -> list[Measurement]:
        """Measure each quality check on staging, read-only; samples carry key columns only."""
        with self.session() as conn:
            conn.read_only = True
            cur = conn.cursor()
            out = measure_checks(
                dialect,
                lambda query, params: cur.execute(query, params or None).fetchone(),
                lambda query, params: cur.execute(query, params or None).fetchall(),
                staging=dialect.parse_table(staged.staging),
                target=dialect.parse_table(ctx.load.sink.target),
                schema=staged.schema,
                keys=list(ctx.load.sink.unique_key or staged.schema.primary_key),
                staged_rows=staged.rows,
                checks=checks,
            )
            conn.rollback()
        return out

    # --- finalize journal ------------------------------------------------------------------

    @staticmethod
    def _journal(ctx: LoadContext) -> TableRef:
        return dialect.table(ctx.load.sink.staging.schema_name, "dpone_journal")

    def journal_statements(
        self, ctx: LoadContext, before: dict[str, Any] | None, after: dict[str, Any]
    ) -> list[Statement]:
        """The journal row finalize commits with the data, when state lives elsewhere."""
        table = self._journal(ctx)
        with self.session() as conn:  # created before the finalize transaction takes its locks
            if not one_row(conn.execute(dialect.TABLE_EXISTS, (table.sql,)))[0]:
                for statement in dialect.create_journal_table(table):
                    conn.execute(statement)
                conn.commit()
        params = (
            ctx.pipeline,
            ctx.load.name,
            ctx.run_id,
            None if before is None else json.dumps(before),
            json.dumps(after),
        )
        return [(dialect.upsert_journal(table), params)]

    def pending_journal(self, ctx: LoadContext) -> dict[str, Any] | None:
        """The last finalize whose state the state backend has not acknowledged, if any."""
        table = self._journal(ctx)
        with self.session() as conn:
            if not one_row(conn.execute(dialect.TABLE_EXISTS, (table.sql,)))[0]:
                return None
            row = conn.execute(dialect.select_pending_journal(table), (ctx.pipeline, ctx.load.name)).fetchone()
        if row is None:
            return None
        before = None if row[1] is None else json.loads(row[1])
        return {"run_id": row[0], "state_before": before, "state_after": json.loads(row[2])}

    def acknowledge_journal(self, ctx: LoadContext, run_id: str) -> None:
        with self.session() as conn:
            conn.execute(dialect.acknowledge_journal(self._journal(ctx)), (ctx.pipeline, ctx.load.name, run_id))
            conn.commit()

    def cleanup(self, ctx: LoadContext, staged: StagedData | None, succeeded: bool) -> None:
        keep = ctx.load.sink.staging.keep
        if keep == "always" or (keep == "on_failure" and not succeeded):
            if staged is not None:
                log.info("keeping staging table %s (staging.keep=%s)", staged.staging, keep)
            if not succeeded:
                self._mark_failed(ctx)
            return
        with self.session() as conn:
            for role in ("", "keys"):
                conn.execute(dialect.drop_table(self.staging_table(ctx, role)))
            conn.commit()

    def _mark_failed(self, ctx: LoadContext) -> None:
        """Label the run's kept staging as a failed run's (``staging.max_kept`` caps those)."""
        with self.session() as conn:
            for role in ("", "keys"):
                table = self.staging_table(ctx, role)
                row = conn.execute(dialect.TABLE_COMMENT, (table.sql,)).fetchone()
                label = failed_label(row[0] if row else None)
                if label is not None:
                    conn.execute(dialect.comment_table(table, label))

    def _planned_key(self, ctx: LoadContext, target: TableRef, schema: TableSchema | None) -> list[str]:
        """The target's primary key as finalize will find it: the existing table's, else the
        one it would be created with (a read-only catalog query; without a source schema, as
        when the extract could not be planned, nothing is read)."""
        if schema is None:
            return []
        with self.session() as conn:
            try:
                rows = conn.execute(dialect.INTROSPECT_PRIMARY_KEY, (target.schema, target.name)).fetchall()
            finally:
                conn.rollback()
        return [r[0] for r in rows] if rows else list(self._target_primary_key(ctx, schema))

    def _plan_finalize(
        self,
        ctx: LoadContext,
        target: TableRef,
        staging: TableRef,
        names: list[str],
        mapping: dict[str, str],
        schema: TableSchema | None,
    ) -> list[str]:
        """The finalize statements of the keyed and scoped strategies, as ``Finalize`` runs them."""
        load = ctx.load
        spec = load.sink
        strategy, keys = spec.strategy, list(spec.unique_key or ())
        if strategy is Strategy.INCREMENTAL_APPEND:
            return [dialect.append_rows(target, staging, names, mapping, self._planned_key(ctx, target, schema))]
        if strategy is Strategy.REPLACE:
            assert spec.replace is not None
            if schema is None:
                predicate, params = "<replaced range>", ()
            else:
                predicate, params = replace_predicate(spec.replace, schema)
            return [
                f"-- fails if any staged row is outside the replaced range; parameters {list(params)}",
                dialect.count_outside(staging, predicate),
                dialect.delete_where(target, predicate),
                dialect.insert_select(target, staging, names, mapping),
            ]
        if strategy is Strategy.PARTITION_REPLACE:
            parts = list(spec.partition_by or ())
            return [
                "-- declaratively partitioned target: each touched leaf partition is rebuilt and swapped "
                "(create ... like, insert, detach, attach, drop)",
                "-- otherwise",
                dialect.delete_matching_partitions(target, staging, parts),
                dialect.insert_select(target, staging, names, mapping),
            ]
        statements = [dialect.null_keys(staging, keys), dialect.duplicate_keys(staging, keys)]
        deletes = load.reconciliation.deletes
        keyset = self.staging_table(ctx, "keys") if load.source.incremental else staging
        if deletes != "none":
            statements.append(
                f"-- reconciliation ({deletes}): fails above max_delete_fraction "
                f"{load.reconciliation.max_delete_fraction:g} before any change"
            )
            statements.append(dialect.count_missing_keys(target, keyset, keys, mapping, active_predicate(load)))
        if strategy is Strategy.SCD2:
            n = SCD2_COLUMNS
            statements += [
                dialect.scd2_close_changed(target, staging, names, keys, mapping, n),
                dialect.scd2_insert_versions(target, staging, names, keys, mapping, n),
            ]
            if deletes != "none":
                statements.append(
                    dialect.close_missing_keys(
                        target,
                        keyset,
                        keys,
                        {n["valid_to"]: "now()", n["is_current"]: "false"},
                        active_predicate(load),
                        mapping,
                    )
                )
            return statements
        soft = load.reconciliation.soft_delete_column if deletes == "soft" else None
        if update := dialect.merge_update(
            target,
            staging,
            names,
            keys,
            mapping,
            only_changed=strategy is Strategy.SNAPSHOT_DIFF,
            undelete=soft,
        ):
            statements.append(update)
        statements.append(dialect.merge_insert(target, staging, names, keys, mapping))
        if soft:
            statements.append(
                dialect.close_missing_keys(target, keyset, keys, {soft: "now()"}, active_predicate(load), mapping)
            )
        elif deletes == "hard":
            statements.append(dialect.delete_missing_keys(target, keyset, keys, mapping))
        return statements

    def plan_load(
        self,
        ctx: LoadContext,
        schema: TableSchema | None,
        binary: bool = True,
        schema_plan: SchemaPlan | None = None,
    ) -> dict[str, Any]:
        """The DDL and finalize SQL this load would run, rendered without changing the sink (only its catalog is read)."""
        spec = ctx.load.sink
        target = dialect.parse_table(spec.target)
        staging = self.staging_table(ctx)
        names = schema.names if schema else ["<source columns>"]
        statements = [dialect.create_schema(staging.schema)]
        if schema:
            statements.append(
                dialect.create_table(staging, schema, unlogged=spec.strategy is not Strategy.FULL_REFRESH)
            )
        statements.append(dialect.copy_in(staging, names, "binary" if binary else "text", freeze=True))
        mapping = schema_plan.column_map if schema_plan else {}
        statements += [
            "-- finalize: one transaction; the target, if it exists, is locked before the schema is re-planned",
            dialect.lock_table(target, _finalize_lock(spec.strategy)),
        ]
        if schema_plan and schema_plan.to_apply:
            statements.append("-- schema changes, in the finalize transaction")
            for change in schema_plan.to_apply:
                statements += dialect.schema_change_ddl(target, change)
        if spec.strategy is Strategy.FULL_REFRESH:
            if not spec.allow_empty:
                statements.append(
                    "-- fails if the batch is empty while the target holds rows (sink.allow_empty)"
                )
            statements += ["-- if the target is absent or a plain identical table: swap"]
            constraint = None
            if schema and schema.primary_key:
                constraint = f"{staging.name}_pk"
                statements.append(dialect.add_primary_key(staging, schema.primary_key, constraint))
            statements += dialect.swap_in(staging, target, constraint)
            statements += [
                "-- otherwise",
                dialect.truncate(target),
                dialect.insert_select(target, staging, names, mapping),
            ]
        else:
            if self._managed_columns(ctx) and (schema_plan is None or schema_plan.target_exists):
                statements.append("-- an existing target gets the columns this strategy manages")
                statements += [
                    dialect.add_column_if_missing(target, c.name, dialect.native_type(c))
                    for c in self._managed_columns(ctx)
                ]
            statements += self._plan_finalize(ctx, target, staging, names, mapping, schema)
        if schema:
            statements.insert(
                1,
                dialect.create_table(
                    target,
                    self._target_schema(ctx, schema),
                    primary_key=self._target_primary_key(ctx, schema),
                    if_not_exists=True,
                    fillfactor=self._fillfactor(spec),
                ),
            )
        return {"target": str(target), "staging": str(staging), "statements": statements}
