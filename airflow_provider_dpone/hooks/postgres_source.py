"""The PostgreSQL source: full, cursor incremental (upper bound fixed in the extract snapshot)
and XMin incremental, streamed with memory bounded by one batch. Between two PostgreSQL
databases the data moves as binary COPY chunks and is never decoded in Python; psycopg2 reads
the source's COPY stream in the extract's snapshot (``postgres_copy_out``).
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import Any

from ..contracts.errors import MissingExtraError

try:
    import psycopg
except ImportError as _exc:  # pragma: no cover - exercised by the missing-extra test
    raise MissingExtraError(_exc.name or "psycopg", "postgres") from None

from ..contracts.artifacts import (
    CSV,
    TSV,
    ExtractResult,
    FileExport,
    StreamingBatches,
    StreamStats,
)
from ..contracts.errors import BadInputError
from ..contracts.partitions import ParallelSpec, PartitionPlan, PartitionTask
from ..contracts.sources import SourceSpec, TableSource, sql_source
from ..contracts.state import StateRecord, XminState
from ..contracts.strategies import IncrementalMode
from ..contracts.table import CanonicalType, Column, TableSchema
from ..sql.dialect import TableRef
from ..sql.extract_plan import (
    bound_cursor,
    cursor_column,
    expect_state,
    fixed_window,
    key_set_source,
    plan_cursor,
    plan_entry,
)
from ..sql.partition_plan import and_where, partition_clause, pinned_upper, plan_ranges
from ..sql.postgres import POSTGRES as dialect
from ..sql.postgres_cdc import is_cdc, set_snapshot, snapshot_rows
from ..sql.targets import with_op
from .postgres_copy_out import copy_out_chunks, export_snapshot, snapshot_reader
from .postgres_errors import classify
from .postgres_session import PostgresSessions, one_row

BINARY = "postgres_binary"
TEXT = "postgres_text"
_CHUNK = 1 << 20  # coalesce COPY messages into ~1 MiB writes
PREFETCH = 4  # chunks read ahead of the sink: memory stays within a few MiB

# Text COPY spells these differently from TSV readers ({1,2} arrays, \\x.. bytea).
NOT_TSV = {CanonicalType.ARRAY, CanonicalType.BINARY}


@dataclass
class _Window:
    """The rows an extract reads (WHERE clause and its parameters), its state candidate, the
    report's details and whether a chunked backfill has rows past it."""

    where: str
    params: tuple
    candidate: StateRecord | None
    details: dict[str, Any]
    more: bool = False


@dataclass
class _Prepared:
    schema: TableSchema
    binary_ok: bool  # binary COPY reads every column faithfully
    select: str
    window: _Window
    relation: str  # the FROM item read


class OwnedStream(Iterator[Any]):
    """A lazy extract stream that owns its snapshot connection.

    Closing it closes the connection even when iteration never started (a generator's
    ``finally`` does not run then), so a load that fails before staging leaves no idle
    transaction holding locks on the source.
    """

    def __init__(self, conn: psycopg.Connection, stream: Generator[Any, None, None]) -> None:
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
        self._stream.close()
        self._conn.close()


class PostgresSource(PostgresSessions):
    """Extracts for the PostgreSQL hook (the sink builds on this class)."""

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
        spec = sql_source(spec, "postgres")
        if isinstance(spec, TableSource):
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
        cur.execute(f"create temp view dpone_probe as {spec.query.strip().rstrip(';')}")
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
        partition: PartitionTask | None = None,
    ) -> _Window:
        """The incremental part of this extract: WHERE clause, parameters, state candidate (a
        partition's cursor window is the one its plan fixed)."""
        inc = spec.incremental
        if inc is None:
            return _Window("", (), None, {"mode": "full"})
        if inc.mode is IncrementalMode.CURSOR:
            plan = plan_cursor(inc, state, cursor_column(inc, schema))
            native = dialect.native_type(plan.column)
            pinned, upper = pinned_upper(partition)
            if pinned and not plan.chunk:
                window = bound_cursor(plan, upper)
            elif plan.chunk:
                bounds = dialect.chunk_bounds(relation, plan.cursor, native, plan.temporal, plan.has_lower)
                maximum, chunk_end = one_row(cur.execute(bounds, {"chunk": plan.chunk, "lower": plan.lower}))
                window = bound_cursor(plan, maximum, chunk_end)
            else:
                maximum = one_row(cur.execute(dialect.cursor_bounds(relation, plan.cursor)))[0]
                window = bound_cursor(plan, maximum)
            if window.empty:  # nothing past the watermark: read nothing, keep the old watermark
                return _Window("false", (), window.candidate, window.details)
            params: tuple = (window.upper,)
            if plan.has_lower:
                lookback = (plan.lookback,) if plan.lookback_applies else ()
                params = (plan.lower, *lookback, window.upper)
            where = dialect.cursor_predicate(plan.cursor, native, plan.has_lower, plan.lookback_applies)
            return _Window(where, params, window.candidate, window.details, window.more)
        if inc.mode is IncrementalMode.XMIN:
            stored = expect_state(state, XminState, "xmin")
            snap = one_row(cur.execute(dialect.SNAPSHOT_XMIN))[0]
            candidate = XminState(xmin=int(snap))
            details = {"mode": "xmin", "from_xmin": stored.xmin if stored else None, "snapshot_xmin": snap}
            if stored is None:
                return _Window("", (), candidate, details)
            stored_epoch, low = divmod(stored.xmin, 1 << 32)
            cur_epoch, cur_low = divmod(int(snap), 1 << 32)
            if cur_epoch == stored_epoch:
                return _Window(dialect.xmin_predicate(False), (low,), candidate, details)
            if cur_epoch == stored_epoch + 1 and cur_low < low:
                return _Window(dialect.xmin_predicate(True), (low, cur_low), candidate, details)
            details["resync"] = "xid wrapped more than once since the last run; full extract"
            return _Window("", (), candidate, details)
        raise BadInputError(f"source.incremental.mode: '{inc.mode.value}' is not supported by postgres")

    def _prepare(
        self,
        cur: psycopg.Cursor,
        spec: SourceSpec,
        state: StateRecord | None,
        partition: PartitionTask | None = None,
    ) -> _Prepared:
        """The extract's schema, SELECT and window, fixed in the open snapshot."""
        schema, binary_ok, relation = self.describe_source(cur, spec)
        window = self._window(cur, spec, schema, relation, state, partition)
        if isinstance(spec, TableSource) and spec.window:  # a fixed range (replace reads what it rewrites)
            fixed = fixed_window(spec.window, schema)
            window.where = dialect.window_predicate(fixed.column)
            window.params = (fixed.start, fixed.end)
            window.details["window"] = fixed.details()
        if partition is not None:  # one range of a partitioned load
            clause = partition_clause(dialect, schema, spec, partition)
            window.where, window.params = and_where([(window.where, window.params), clause])
            window.details["partition"] = partition.range.describe()
        select = dialect.select_rows(relation, schema.names, window.where, casts=schema.extras)
        return _Prepared(schema, binary_ok, select, window, relation)

    def _open_snapshot(self, snapshot: str | None = None) -> psycopg.Connection:
        """A REPEATABLE READ transaction: a new snapshot, or the exported ``snapshot``."""
        conn = self.connect()
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        if snapshot is not None:
            try:
                conn.execute(set_snapshot(snapshot))
            except BaseException:
                conn.close()
                raise
        return conn

    def connect_params(self) -> dict[str, Any]:
        """The libpq parameters of this hook's connections (a replication connection's)."""
        conn = self.connect()
        try:
            params: dict[str, Any] = dict(conn.info.get_parameters())
            if conn.info.password:
                params["password"] = conn.info.password
            return params
        finally:
            conn.close()

    # --- change data capture (``hooks.postgres_cdc``) ----------------------------------------

    def bind_run(self, ctx: Any) -> None:
        """The load this hook serves: names its replication slot and publication by default."""
        self._run_key: str | None = ctx.key

    def _cdc(self, spec: SourceSpec) -> Any:
        return self.cdc_feed(spec, getattr(self, "_run_key", None))

    def cdc_feed(self, spec: SourceSpec, key: str | None) -> Any:
        """The change feed of load ``key`` (``pipeline.load``): its slot's health, setup, drop."""
        from .postgres_cdc import CdcReader

        return CdcReader(self, spec, key)

    def acknowledge(self, ctx: Any, state: StateRecord) -> None:
        """After the sink and the state committed: a change feed's slot moves to the state."""
        inc = ctx.load.source.incremental
        if inc is not None and inc.mode is IncrementalMode.CDC and ctx.load.source.connector == "postgres":
            self._cdc(ctx.load.source).acknowledge(state)

    def extract(
        self,
        spec: SourceSpec,
        state: StateRecord | None,
        *,
        accepted_formats: tuple[str, ...] = (),
        partition: PartitionTask | None = None,
        feed_snapshot: str | None = None,
    ) -> ExtractResult:
        """Start a REPEATABLE READ snapshot, fix the window, and return a lazy artifact
        (``partition``: only that range of a partitioned load, in the window its plan fixed;
        ``feed_snapshot``: a change feed's first read, in its slot's exported snapshot, as
        snapshot rows of a change batch)."""
        if is_cdc(spec) and feed_snapshot is None:
            return self._cdc(spec).extract(state, accepted_formats)
        conn = self._open_snapshot(feed_snapshot)
        try:
            if feed_snapshot is not None:  # the reader imports it too; never a fallback to another
                snapshot: str | None = one_row(conn.execute("select pg_export_snapshot()"))[0]
            else:
                snapshot = export_snapshot(conn) if accepted_formats else None  # for a faster COPY reader
            prepared = self._prepare(conn.cursor(), spec, state, partition)
            schema, select, window = prepared.schema, prepared.select, prepared.window
            if feed_snapshot is not None:
                schema, select = with_op(schema, ordered=True), snapshot_rows(select)
            window.details["query"] = select
            if prepared.binary_ok and BINARY in accepted_formats:
                fmt: str | None = BINARY
            elif TEXT in accepted_formats:
                fmt = TEXT
            elif TSV in accepted_formats and all(c.type not in NOT_TSV for c in schema.columns):
                fmt = TSV  # text COPY as it is: the sink parses it natively
            elif CSV in accepted_formats and all(c.type not in NOT_TSV for c in schema.columns):
                fmt = CSV  # CSV COPY, parsed by pyarrow (staged files): no row decoded in Python
            else:
                fmt = None
            stats = StreamStats()
            if fmt:
                copy = dialect.copy_out(select, fmt == BINARY, csv=fmt == CSV)
                chunks = self._copy_chunks(conn, snapshot, copy, window.params, window.details, stats)
                artifact: Any = FileExport(format=fmt, chunks=OwnedStream(conn, chunks))
            else:
                batches = self._row_batches(conn, select, window.params, spec.batch_size, stats)
                artifact = StreamingBatches(OwnedStream(conn, batches))
            return ExtractResult(
                artifact, schema, window.candidate, window.details, more=window.more, stats=stats
            )
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
        stats: StreamStats,
    ) -> Generator[bytes, None, None]:
        """COPY OUT as ~1 MiB chunks; records the rows sent in ``stats`` once the stream is complete.

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
            session = reader.cursor() if reader is not None else conn
            if " (format csv" in statement:  # text whose parsing must not depend on session settings
                session.execute(dialect.CSV_SESSION)
            else:  # binary or text COPY: their text in UTF-8, whatever the database's encoding
                session.execute(dialect.UTF8_SESSION)
            if reader is not None:
                yield from copy_out_chunks(reader, statement, params, stats, chunk=_CHUNK, depth=PREFETCH)
                return
            buffer = bytearray()
            cur = conn.cursor()
            with cur.copy(statement, params or None) as copy:
                for data in copy:
                    buffer += data
                    if len(buffer) >= _CHUNK:
                        yield bytes(buffer)
                        buffer.clear()
            stats.source_rows = cur.rowcount
            if buffer:
                yield bytes(buffer)
        finally:
            if reader is not None:
                reader.close()
            conn.close()

    @staticmethod
    def _row_batches(
        conn: psycopg.Connection, select: str, params: tuple, batch_size: int, stats: StreamStats
    ) -> Generator[list, None, None]:
        from psycopg.types.string import TextLoader

        # As text: JSON (keeps JSON null apart from NULL), interval (a timedelta has no months:
        # '1 mon' would become '30 days') and timetz (Python's time cannot carry its offset).
        for name in ("json", "jsonb", "interval", "timetz"):
            conn.adapters.register_loader(name, TextLoader)
        try:
            sent = 0
            with conn.cursor(name="dpone_extract") as cur:
                cur.itersize = batch_size
                cur.execute(select, params or None)
                while batch := cur.fetchmany(batch_size):
                    sent += len(batch)
                    yield batch
            stats.source_rows = sent
        finally:
            conn.close()

    def plan_extract(self, spec: SourceSpec, state: StateRecord | None) -> tuple[dict[str, Any], TableSchema]:
        """The extract SQL, window and schema; the transaction is rolled back, nothing is written."""
        if is_cdc(spec):
            feed_plan: tuple[dict[str, Any], TableSchema] = self._cdc(spec).plan(state)
            return feed_plan
        conn = self._open_snapshot()
        try:
            prepared = self._prepare(conn.cursor(), spec, state)
            schema, window = prepared.schema, prepared.window
            statement = dialect.copy_out(prepared.select, prepared.binary_ok)
            params = [str(p) for p in window.params]
            plan = plan_entry(statement, params, window.details, window.candidate, schema)
            return plan, schema
        finally:
            conn.rollback()
            conn.close()

    def plan_partitions(
        self, spec: SourceSpec, state: StateRecord | None, parallel: ParallelSpec
    ) -> PartitionPlan:
        """The window and the key ranges of a partitioned load, measured in one snapshot; the
        transaction is rolled back, nothing is written."""
        conn = self._open_snapshot()
        try:
            cur = conn.cursor()
            prepared = self._prepare(cur, spec, state)
            window, relation = prepared.window, prepared.relation

            def measure(column: Column) -> tuple[str | None, str | None]:
                low, high = one_row(cur.execute(dialect.key_bounds(relation, column)))
                return low, high

            return plan_ranges(spec, prepared.schema, parallel, measure, window.candidate, window.details)
        finally:
            conn.rollback()
            conn.close()

    def extract_keys(
        self, spec: SourceSpec, keys: list[str], *, accepted_formats: tuple[str, ...] = ()
    ) -> ExtractResult:
        """The full set of ``keys`` in the source now (reconciliation of incremental loads)."""
        keyed = key_set_source(spec, keys, "postgres", dialect.key_set_query)
        return self.extract(keyed, None, accepted_formats=accepted_formats)
