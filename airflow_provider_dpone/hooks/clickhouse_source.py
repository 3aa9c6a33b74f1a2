"""The ClickHouse source: full and cursor-incremental extracts streamed in blocks, as Arrow
record batches to sinks that take Arrow, else as row batches."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..contracts.artifacts import (
    ARROW,
    ArrowBatches,
    ExtractResult,
    StreamingBatches,
    StreamStats,
)
from ..contracts.errors import BadInputError, UnsupportedError
from ..contracts.sources import SourceSpec, TableSource, sql_source
from ..contracts.state import StateRecord
from ..contracts.strategies import IncrementalMode
from ..contracts.table import Column, TableSchema
from ..sql.clickhouse import CLICKHOUSE as dialect
from ..sql.extract_plan import (
    bound_cursor,
    cursor_column,
    fixed_window,
    key_set_source,
    plan_cursor,
    plan_entry,
)
from .clickhouse_client import ClickHouseClient


@dataclass
class _Window:
    """The rows an extract reads (WHERE clause, named parameters), its state candidate and the
    report's details."""

    where: str
    params: dict[str, Any]
    candidate: StateRecord | None
    details: dict[str, Any]


class ClickHouseSource(ClickHouseClient):
    """Extracts for the ClickHouse hook (the sink builds on this class)."""

    def _describe_source(self, spec: SourceSpec) -> tuple[TableSchema, str]:
        spec = sql_source(spec, "clickhouse")
        if isinstance(spec, TableSource):
            ref = self._ref(spec.table)
            schema = self.describe_table(ref)
            if schema is None:
                raise BadInputError(f"source table {ref} does not exist or has no columns")
            relation = ref.sql
        else:
            query = spec.query.strip().rstrip(";")
            rows = self.query(dialect.describe_query(query))
            schema = TableSchema(tuple(dialect.to_canonical(r[0], r[1]) for r in rows))
            relation = f"({query}) as dpone_source"
        if isinstance(spec, TableSource) and spec.columns:
            missing = [c for c in spec.columns if not schema.has(c)]
            if missing:
                raise BadInputError(f"source.columns: {missing} not in the source columns {schema.names}")
            keep = tuple(schema.column(c) for c in spec.columns)
            schema = TableSchema(keep, tuple(k for k in schema.primary_key if k in spec.columns))
        return schema, relation

    def count_newer(self, table: str, column: str, watermark: str | None) -> int:
        """Rows of ``table`` whose ``column`` is greater than ``watermark`` (all rows if None)."""
        ref = self._ref(table)
        schema = self.describe_table(ref)
        if schema is None:
            raise BadInputError(f"table {ref} does not exist")
        if not schema.has(column):
            raise BadInputError(f"column '{column}' not in {ref} ({schema.names})")
        if watermark is None:
            return int(self.query(dialect.count_rows(ref))[0][0])
        native = schema.column(column).native_type or "String"
        statement = dialect.count_newer(ref, column, dialect.param_type(native))
        return int(self.query(statement, {"watermark": watermark})[0][0])

    # --- source --------------------------------------------------------------------------

    def _window(
        self, spec: SourceSpec, schema: TableSchema, relation: str, state: StateRecord | None
    ) -> _Window:
        """The rows this extract reads (WHERE clause, parameters), its state candidate and details."""
        inc = spec.incremental
        window = _Window("", {}, None, {"mode": "full"})
        if inc is not None:
            if inc.mode is not IncrementalMode.CURSOR:
                raise UnsupportedError(
                    f"source.incremental.mode: '{inc.mode.value}' is not supported by clickhouse; allowed: cursor"
                )
            plan = plan_cursor(inc, state, cursor_column(inc, schema), no_chunks="clickhouse")
            maximum, count = self.query(dialect.cursor_max(relation, plan.cursor))[0]
            bounds = bound_cursor(plan, maximum if count else None)
            window = _Window("0", {}, bounds.candidate, bounds.details)
            if not bounds.empty:
                ptype = self._param_type(plan.column)
                window.where = dialect.cursor_predicate(
                    plan.cursor, ptype, plan.has_lower, plan.lookback_applies
                )
                window.params["upper"] = bounds.upper
                if plan.has_lower:
                    window.params["lower"] = plan.lower
                if plan.lookback_applies:
                    window.params["lookback_us"] = int(plan.lookback * 1_000_000)
        if isinstance(spec, TableSource) and spec.window:
            fixed = fixed_window(spec.window, schema)
            ptype, col = self._param_type(fixed.column), dialect.quote_ident(fixed.column.name)
            clause = f"{col} >= {{wstart:{ptype}}} and {col} < {{wend:{ptype}}}"
            window.where = f"({window.where}) and {clause}" if window.where else clause
            window.params.update(wstart=fixed.start, wend=fixed.end)
            window.details["window"] = fixed.details()
        return window

    @staticmethod
    def _param_type(column: Column) -> str:
        return dialect.param_type(column.native_type or dialect.base_type(column))

    def extract(
        self, spec: SourceSpec, state: StateRecord | None, *, accepted_formats: tuple[str, ...] = ()
    ) -> ExtractResult:
        """Fix the window (the cursor's max now), then stream the rows lazily in blocks."""
        schema, relation = self._describe_source(spec)
        window = self._window(spec, schema, relation, state)
        select = dialect.select_rows(relation, schema.names, window.where)
        window.details["query"] = select
        settings = {"max_block_size": spec.batch_size}
        stats = StreamStats()
        if ARROW in accepted_formats:
            artifact: Any = ArrowBatches(self._arrow_batches(select, window.params, settings, stats))
        else:
            artifact = StreamingBatches(self._row_batches(select, window.params, settings, stats))
        return ExtractResult(artifact, schema, window.candidate, window.details, stats=stats)

    def _arrow_batches(self, select: str, params: dict, settings: dict, stats: StreamStats) -> Iterator[Any]:
        sent = 0
        with self.client().query_arrow_stream(select, parameters=params, settings=settings) as stream:
            for batch in stream:
                sent += batch.num_rows
                yield batch
        stats.source_rows = sent

    def _row_batches(self, select: str, params: dict, settings: dict, stats: StreamStats) -> Iterator[list]:
        sent = 0
        with self.client().query_row_block_stream(select, parameters=params, settings=settings) as stream:
            for block in stream:
                sent += len(block)
                yield [tuple(r) for r in block]
        stats.source_rows = sent

    def plan_extract(self, spec: SourceSpec, state: StateRecord | None) -> tuple[dict[str, Any], TableSchema]:
        schema, relation = self._describe_source(spec)
        window = self._window(spec, schema, relation, state)
        statement = dialect.select_rows(relation, schema.names, window.where)
        params = {k: str(v) for k, v in window.params.items()}
        plan = plan_entry(statement, params, window.details, window.candidate, schema)
        return plan, schema

    def extract_keys(
        self, spec: SourceSpec, keys: list[str], *, accepted_formats: tuple[str, ...] = ()
    ) -> ExtractResult:
        def distinct_keys(query: str, columns: list[str]) -> str:
            return f"select distinct {dialect.column_list(columns)} from ({query})"

        keyed = key_set_source(spec, keys, "clickhouse", distinct_keys)
        return self.extract(keyed, None, accepted_formats=accepted_formats)
