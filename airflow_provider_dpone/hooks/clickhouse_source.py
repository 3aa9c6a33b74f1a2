"""The ClickHouse source: full and cursor-incremental extracts streamed in blocks, as Arrow
record batches to sinks that take Arrow, else as row batches."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..contracts.artifacts import (
    ARROW,
    ArrowBatches,
    ExtractResult,
    StreamingBatches,
)
from ..contracts.errors import BadInputError, UnsupportedError
from ..contracts.manifest import SourceSpec
from ..contracts.state import CursorState, StateRecord
from ..contracts.strategies import IncrementalMode
from ..contracts.table import CanonicalType, TableSchema
from ..sql.clickhouse import CLICKHOUSE as dialect
from .clickhouse_client import ClickHouseClient

_TEMPORAL = {CanonicalType.DATE, CanonicalType.TIMESTAMP, CanonicalType.TIMESTAMPTZ}
_DATETIMES = {CanonicalType.TIMESTAMP, CanonicalType.TIMESTAMPTZ}


class ClickHouseSource(ClickHouseClient):
    """Extracts for the ClickHouse hook (the sink builds on this class)."""

    def _describe_source(self, spec: SourceSpec) -> tuple[TableSchema, str]:
        if spec.table:
            ref = self._ref(spec.table)
            schema = self.describe_table(ref)
            if schema is None:
                raise BadInputError(f"source table {ref} does not exist or has no columns")
            relation = ref.sql
        else:
            query = (spec.query or "").strip().rstrip(";")
            rows = self.query(dialect.describe_query(query))
            schema = TableSchema(tuple(dialect.to_canonical(r[0], r[1]) for r in rows))
            relation = f"({query}) as dpone_source"
        if spec.columns:
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
    ) -> tuple[str, dict[str, Any], StateRecord | None, dict[str, Any]]:
        inc = spec.incremental
        where, params, candidate = "", {}, None
        details: dict[str, Any] = {"mode": "full"}
        if inc is not None:
            if inc.mode is not IncrementalMode.CURSOR:
                raise UnsupportedError(
                    f"source.incremental.mode: '{inc.mode.value}' is not supported by clickhouse; allowed: cursor"
                )
            if not schema.has(inc.cursor or ""):
                raise BadInputError(
                    f"source.incremental.cursor: column '{inc.cursor}' not in source {schema.names}"
                )
            column = schema.column(inc.cursor or "")
            if state is not None and not isinstance(state, CursorState):
                raise BadInputError(f"stored state is {state.kind!r} but the load uses cursor mode; reset it")
            if inc.lookback and column.type not in _TEMPORAL:
                raise BadInputError(
                    f"source.incremental.lookback: only applies to date/time cursors; "
                    f"'{inc.cursor}' is {column.native_type}"
                )
            if inc.chunk:
                raise UnsupportedError(
                    "source.incremental.chunk is not supported by the clickhouse source yet"
                )
            lower = state.value if state is not None else inc.initial_value
            upper, count = self.query(dialect.cursor_max(relation, column.name))[0]
            upper = upper if count else None
            details = {
                "mode": "cursor",
                "cursor": column.name,
                "lower": lower,
                "upper": upper,
                "lookback_seconds": inc.lookback,
            }
            if upper is None:
                return "0", {}, state, details
            ptype = dialect.param_type(column.native_type or dialect.base_type(column))
            where = dialect.cursor_predicate(column.name, ptype, lower is not None, bool(inc.lookback))
            params = {"upper": upper}
            if lower is not None:
                params["lower"] = lower
            if inc.lookback:
                params["lookback_us"] = int(inc.lookback * 1_000_000)
            candidate = CursorState(cursor=column.name, value=upper, value_type=column.type.value)
        if spec.window:
            if not schema.has(spec.window.column):
                raise BadInputError(
                    f"source.window.column: '{spec.window.column}' not in source {schema.names}"
                )
            column = schema.column(spec.window.column)
            ptype = dialect.param_type(column.native_type or dialect.base_type(column))
            col = dialect.quote_ident(column.name)
            clause = f"{col} >= {{wstart:{ptype}}} and {col} < {{wend:{ptype}}}"
            where = f"({where}) and {clause}" if where else clause
            params.update(wstart=spec.window.start, wend=spec.window.end)
            details["window"] = spec.window.model_dump()
        return where, params, candidate, details

    def extract(
        self, spec: SourceSpec, state: StateRecord | None, *, accepted_formats: tuple[str, ...] = ()
    ) -> ExtractResult:
        """Fix the window (the cursor's max now), then stream the rows lazily in blocks."""
        schema, relation = self._describe_source(spec)
        where, params, candidate, details = self._window(spec, schema, relation, state)
        select = dialect.select_rows(relation, schema.names, where)
        details["query"] = select
        settings = {"max_block_size": spec.batch_size}
        if ARROW in accepted_formats:
            artifact: Any = ArrowBatches(self._arrow_batches(select, params, settings, details))
        else:
            artifact = StreamingBatches(self._row_batches(select, params, settings, details))
        return ExtractResult(artifact=artifact, schema=schema, state_candidate=candidate, details=details)

    def _arrow_batches(self, select: str, params: dict, settings: dict, details: dict) -> Iterator[Any]:
        sent = 0
        with self.client().query_arrow_stream(select, parameters=params, settings=settings) as stream:
            for batch in stream:
                sent += batch.num_rows
                yield batch
        details["source_rows"] = sent

    def _row_batches(self, select: str, params: dict, settings: dict, details: dict) -> Iterator[list]:
        sent = 0
        with self.client().query_row_block_stream(select, parameters=params, settings=settings) as stream:
            for block in stream:
                sent += len(block)
                yield [tuple(r) for r in block]
        details["source_rows"] = sent

    def plan_extract(self, spec: SourceSpec, state: StateRecord | None) -> tuple[dict[str, Any], TableSchema]:
        schema, relation = self._describe_source(spec)
        where, params, candidate, details = self._window(spec, schema, relation, state)
        plan = {
            "sql": dialect.select_rows(relation, schema.names, where),
            "params": {k: str(v) for k, v in params.items()},
            "window": details,
            "state_candidate": None if candidate is None else candidate.__dict__,
            "schema": [
                {"name": c.name, "type": c.native_type, "nullable": c.nullable} for c in schema.columns
            ],
            "primary_key": list(schema.primary_key),
        }
        return plan, schema

    def extract_keys(
        self, spec: SourceSpec, keys: list[str], *, accepted_formats: tuple[str, ...] = ()
    ) -> ExtractResult:
        if spec.table:
            keyed = spec.model_copy(update={"columns": keys, "incremental": None, "window": None})
        else:
            cols = dialect.column_list(keys)
            keyed = spec.model_copy(update={"query": f"select distinct {cols} from ({spec.query})"})
        return self.extract(keyed, None, accepted_formats=accepted_formats)
