"""The SQL Server source: full and cursor incremental extracts (a ``rowversion`` column as a
cursor too), the cursor's upper bound fixed before any row is read, streamed as row batches of
``source.batch_size`` with ``fetchmany`` on a connection of its own: memory is bounded by one
batch, never by the table.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from ..contracts.artifacts import ExtractResult, StreamingBatches, StreamStats
from ..contracts.errors import BadInputError
from ..contracts.partitions import ParallelSpec, PartitionPlan, PartitionTask
from ..contracts.sources import SourceSpec, TableSource, sql_source
from ..contracts.state import StateRecord
from ..contracts.strategies import CHANGE_MODES, IncrementalMode
from ..contracts.table import Column, TableSchema
from ..sql.extract_plan import (
    bound_cursor,
    cursor_column,
    fixed_window,
    key_set_source,
    plan_cursor,
    plan_entry,
)
from ..sql.mssql import MSSQL as dialect
from ..sql.mssql_catalog import DESCRIBE_QUERY
from ..sql.partition_plan import and_where, partition_clause, pinned_upper, plan_ranges
from .mssql_feeds import feed_window
from .mssql_session import MsSqlSessions, classify, close_quietly, fetch


@dataclass
class _Prepared:
    """The extract's schema, its SELECT with parameters, state candidate and report details."""

    schema: TableSchema
    select: str
    params: tuple[Any, ...]
    candidate: StateRecord | None
    details: dict[str, Any]
    more: bool = False
    relation: str = ""  # the FROM item read


class _OwnedStream(Iterator[list[Sequence[Any]]]):
    """Row batches that own their connection: closing the stream closes it, even when reading
    never started, so a load that fails before staging leaves no session open on the source."""

    def __init__(self, conn: Any, stream: Generator[list[Sequence[Any]], None, None], redactor: Any) -> None:
        self._conn, self._stream, self._redactor = conn, stream, redactor

    def __next__(self) -> list[Sequence[Any]]:
        try:
            return next(self._stream)
        except Exception as exc:
            classified = classify(exc, "source extract", self._redactor)
            if classified is not None:
                raise classified from None
            raise

    def close(self) -> None:
        self._stream.close()
        close_quietly(self._conn)


class MsSqlSource(MsSqlSessions):
    """Extracts for the SQL Server hook (the sink builds on this class)."""

    def dataset(self, table: str) -> dict[str, str]:
        """OpenLineage naming: ``sqlserver://host:port`` and ``database.schema.table``."""
        conn = self.get_connection(self.dpone_conn_id)
        ref = dialect.parse_table(table)
        return {
            "namespace": f"sqlserver://{conn.host or 'localhost'}:{conn.port or 1433}",
            "name": f"{conn.schema or 'master'}.{ref.schema}.{ref.name}",
        }

    # --- introspection ---------------------------------------------------------------------------

    @staticmethod
    def _columns(rows: list[tuple[Any, ...]], what: str) -> tuple[Any, ...]:
        unnamed = [i + 1 for i, r in enumerate(rows) if not r[0]]
        if unnamed:
            raise BadInputError(f"{what}: result column(s) {unnamed} have no name; alias them (expr as name)")
        return tuple(dialect.column_from_catalog(r) for r in rows)

    def describe_source(self, cur: Any, spec: SourceSpec) -> tuple[TableSchema, str]:
        """The source's schema and the FROM item to select from."""
        spec = sql_source(spec, "mssql")
        if isinstance(spec, TableSource):
            table = dialect.parse_table(spec.table)
            rows = fetch(cur, dialect.INTROSPECT_COLUMNS, (table.sql,))
            if not rows:
                raise BadInputError(f"source table {table} does not exist or has no columns")
            pk = tuple(r[0] for r in fetch(cur, dialect.INTROSPECT_PRIMARY_KEY, (table.sql,)))
            schema = TableSchema(self._columns(rows, f"source table {table}"), pk)
            if spec.columns:
                missing = [c for c in spec.columns if not schema.has(c)]
                if missing:
                    raise BadInputError(f"source.columns: {missing} not in {table}; it has {schema.names}")
                kept = tuple(schema.column(c) for c in spec.columns)
                schema = TableSchema(kept, tuple(k for k in pk if k in spec.columns))
            return schema, table.sql
        relation = dialect.source_relation(None, spec.query)
        rows = fetch(cur, DESCRIBE_QUERY, (f"select * from {relation}",))
        if not rows:
            raise BadInputError("source.query: SQL Server describes no result set for it")
        return TableSchema(self._columns(rows, "source.query")), relation

    def _prepare(
        self, cur: Any, spec: SourceSpec, state: StateRecord | None, partition: PartitionTask | None = None
    ) -> _Prepared:
        """Schema, window (its upper bound measured now, or as a partition's plan fixed it) and
        SELECT of one extract."""
        schema, relation = self.describe_source(cur, spec)
        inc = spec.incremental
        if inc is not None and inc.mode in CHANGE_MODES:
            if not isinstance(spec, TableSource):  # dpone validate refuses it first
                raise BadInputError(f"source.incremental.mode: '{inc.mode.value}' needs 'table', not 'query'")
            feed = feed_window(cur, dialect.parse_table(spec.table), schema, inc, state)
            return _Prepared(feed.schema, feed.select, feed.params, feed.candidate, feed.details)
        where, candidate = "", None
        params: tuple[Any, ...] = ()
        details: dict[str, Any] = {"mode": "full"}
        more = False
        if inc is not None and inc.mode is IncrementalMode.CURSOR:
            plan = plan_cursor(inc, state, cursor_column(inc, schema))
            native = dialect.native_type(plan.column)
            pinned, upper = pinned_upper(partition)
            if pinned and not plan.chunk:
                window = bound_cursor(plan, upper)
            elif plan.chunk:
                bounds = dialect.chunk_bounds(relation, plan.cursor, native, plan.temporal, plan.has_lower)
                maximum, chunk_end = fetch(cur, bounds, dialect.chunk_params(plan.chunk, plan.lower))[0]
                window = bound_cursor(plan, maximum, chunk_end)
            else:
                # the column's own type: a rowversion cursor stops below min_active_rowversion()
                own = plan.column.native_type if plan.column.dialect == dialect.DIALECT else None
                maximum = fetch(cur, dialect.cursor_bounds(relation, plan.cursor, own or native))[0][0]
                window = bound_cursor(plan, maximum)
            candidate, details, more = window.candidate, window.details, window.more
            if window.empty:  # nothing past the watermark: read nothing, keep the old watermark
                where = "1 = 0"
            else:
                params = (window.upper,)
                if plan.has_lower:
                    lookback = (plan.lookback,) if plan.lookback_applies else ()
                    params = (plan.lower, *lookback, window.upper)
                where = dialect.cursor_predicate(plan.cursor, native, plan.has_lower, plan.lookback_applies)
        elif inc is not None:
            raise BadInputError(
                f"source.incremental.mode: '{inc.mode.value}' is not supported by mssql "
                "(cursor, change_tracking, cdc)"
            )
        if isinstance(spec, TableSource) and spec.window:  # a fixed range (replace reads what it rewrites)
            fixed = fixed_window(spec.window, schema)
            where, params = dialect.window_predicate(fixed.column), (fixed.start, fixed.end)
            details["window"] = fixed.details()
        if partition is not None:  # one range of a partitioned load
            clause = partition_clause(dialect, schema, spec, partition)
            where, params = and_where([(where, params), clause])
            details["partition"] = partition.range.describe()
        select = dialect.select_rows(relation, schema.names, where, casts=dialect.read_casts(schema))
        return _Prepared(schema, select, params, candidate, details, more, relation)

    # --- source ----------------------------------------------------------------------------------

    def extract(
        self,
        spec: SourceSpec,
        state: StateRecord | None,
        *,
        accepted_formats: tuple[str, ...] = (),
        partition: PartitionTask | None = None,
    ) -> ExtractResult:
        """Fix the window and return lazily read row batches (``accepted_formats``: SQL Server
        exports no file format another sink reads, so rows it is; ``partition``: only that range
        of a partitioned load, in the window its plan fixed)."""
        conn = self.connect()
        try:
            prepared = self._prepare(conn.cursor(), spec, state, partition)
            prepared.details["query"] = prepared.select
            stats = StreamStats()
            batches = self._row_batches(conn, prepared.select, prepared.params, spec.batch_size, stats)
            artifact = StreamingBatches(_OwnedStream(conn, batches, self.redactor()))
            return ExtractResult(
                artifact,
                prepared.schema,
                prepared.candidate,
                prepared.details,
                more=prepared.more,
                stats=stats,
            )
        except BaseException:
            close_quietly(conn)
            raise

    @staticmethod
    def _row_batches(
        conn: Any, select: str, params: tuple[Any, ...], batch_size: int, stats: StreamStats
    ) -> Generator[list[Sequence[Any]], None, None]:
        cur = conn.cursor()
        try:
            cur.arraysize = batch_size
            cur.execute(select, params) if params else cur.execute(select)
            sent = 0
            while batch := cur.fetchmany(batch_size):
                sent += len(batch)
                yield [tuple(r) for r in batch]
            stats.source_rows = sent
        finally:
            with suppress(Exception):
                cur.close()  # unread rows would keep the connection busy for the reset below
            close_quietly(conn)  # ends the change feed's snapshot transaction too

    def plan_extract(self, spec: SourceSpec, state: StateRecord | None) -> tuple[dict[str, Any], TableSchema]:
        """The extract SQL, window and schema; reads the catalog and the cursor's bounds only."""
        with self.session() as conn:  # the session ends a change feed's snapshot transaction
            prepared = self._prepare(conn.cursor(), spec, state)
        params = [str(p) for p in prepared.params]
        plan = plan_entry(prepared.select, params, prepared.details, prepared.candidate, prepared.schema)
        return plan, prepared.schema

    def plan_partitions(
        self, spec: SourceSpec, state: StateRecord | None, parallel: ParallelSpec
    ) -> PartitionPlan:
        """The window and the key ranges of a partitioned load; reads the catalog and bounds only."""
        with self.session() as conn:
            cur = conn.cursor()
            prepared = self._prepare(cur, spec, state)

            def measure(column: Column) -> tuple[str | None, str | None]:
                low, high = fetch(cur, dialect.key_bounds(prepared.relation, column))[0]
                return low, high

            return plan_ranges(spec, prepared.schema, parallel, measure, prepared.candidate, prepared.details)

    def extract_keys(
        self, spec: SourceSpec, keys: list[str], *, accepted_formats: tuple[str, ...] = ()
    ) -> ExtractResult:
        """The full set of ``keys`` in the source now (reconciliation of incremental loads)."""
        keyed = key_set_source(spec, keys, "mssql", dialect.key_set_query)
        return self.extract(keyed, None, accepted_formats=accepted_formats)
