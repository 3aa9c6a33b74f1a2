"""One planner for incremental and bounded extracts: cursor, lookback, chunk and fixed window.

Every SQL source and the REST source's cursor decide their window here; a source only renders
its dialect's predicate and parameters and runs the bounds query. Pure: no driver, no I/O.

A cursor extract is planned in two phases:

1. ``plan_cursor`` checks the load against the source (the cursor column exists, the stored
   state is a cursor state on that column, lookback and chunk fit the column's type) and fixes
   the lower bound (the stored watermark, else ``initial_value``) and whether lookback applies.
   The source then measures the bounds the plan asks for: the cursor's max, and for a chunked
   backfill the max past the lower bound and the upper end of the next chunk.
2. ``bound_cursor`` turns what was measured into the window to read: the upper bound, whether
   rows remain past it (``more``: the next chunk), the state candidate and the report's details.

A source that learns its upper bound only by reading (an API's newest record) calls
``advance_cursor`` with the newest value once its stream is drained.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

from ..contracts.errors import BadInputError, UnsupportedError
from ..contracts.records import parse_timestamp
from ..contracts.sources import IncrementalSpec, SourceSpec, TableSource, WindowSpec, sql_source
from ..contracts.state import CursorState, StateRecord
from ..contracts.table import CanonicalType, Column, TableSchema

TEMPORAL = frozenset({CanonicalType.DATE, CanonicalType.TIMESTAMP, CanonicalType.TIMESTAMPTZ})
NUMERIC = frozenset({CanonicalType.INT16, CanonicalType.INT32, CanonicalType.INT64, CanonicalType.DECIMAL})

_Record = TypeVar("_Record", bound=StateRecord)


def expect_state(state: StateRecord | None, kind: type[_Record], mode: str) -> _Record | None:
    """``state`` if it is a ``kind`` record (or None); else the error naming what is stored."""
    if state is not None and not isinstance(state, kind):
        raise BadInputError(f"stored state is {state.kind!r} but the load uses {mode} mode; reset it")
    return state


def cursor_column(inc: IncrementalSpec, schema: TableSchema) -> Column:
    """The source's cursor column; a load naming a column the source lacks fails here."""
    if inc.cursor is None or not schema.has(inc.cursor):
        raise BadInputError(f"source.incremental.cursor: column '{inc.cursor}' not in source {schema.names}")
    return schema.column(inc.cursor)


@dataclass(frozen=True)
class CursorPlan:
    """What a cursor extract reads from, before its upper bound is measured.

    Rows are read past ``lower`` (exclusive; ``lower - lookback`` when lookback applies) up to
    the measured upper bound (inclusive). ``chunk`` is the size of one backfill chunk, in
    seconds for date/time cursors, in cursor units for numeric ones.
    """

    column: Column
    lower: str | None
    lookback: float
    chunk: float | None
    state: CursorState | None  # kept as the candidate when nothing is past the watermark
    skip_loaded: bool = False  # records at or before a stored watermark are skipped (see below)

    @property
    def cursor(self) -> str:
        return self.column.name

    @property
    def temporal(self) -> bool:
        return self.column.type in TEMPORAL

    @property
    def has_lower(self) -> bool:
        return self.lower is not None

    @property
    def lookback_applies(self) -> bool:
        """Lookback widens a lower bound; a first run (no lower bound) reads everything anyway."""
        return self.lower is not None and self.lookback > 0

    def already_loaded(self, value: str) -> bool:
        """Whether a record's cursor ``value`` is at or before the stored watermark of a load
        that skips those (an unkeyed append, ``incremental.at_watermark: skip``): an API whose
        filter is coarser than its cursor (a whole day) hands them back, and an earlier run
        loaded them. Never for a watermark that is a window's end rather than a record's."""
        if not self.skip_loaded or self.lower is None:
            return False
        return not cursor_after(self.column.type, value, self.lower)

    def since(self) -> dt.datetime | None:
        """The lower bound minus lookback, as an aware timestamp (an API's filter value)."""
        if self.lower is None:
            return None
        return parse_timestamp(self.lower, aware=True) - dt.timedelta(seconds=self.lookback)

    def details(self, **upper: str | None) -> dict[str, Any]:
        """The report's details; ``upper`` once the upper bound is known."""
        return {
            "mode": "cursor",
            "cursor": self.cursor,
            "lower": self.lower,
            **upper,
            "lookback_seconds": self.lookback,
        }


def plan_cursor(
    inc: IncrementalSpec, state: StateRecord | None, column: Column, *, no_chunks: str | None = None
) -> CursorPlan:
    """Check a cursor load against its column and stored state; fix its lower bound.

    ``no_chunks`` names a source that cannot read in chunks: a chunked load fails naming it.
    Raises ``BadInputError`` for a state of another kind or on another column, lookback on a
    cursor that is not a date/time, a chunk on a cursor that is neither date/time nor numeric.
    """
    stored = expect_state(state, CursorState, "cursor")
    if stored is not None and stored.cursor != column.name:
        raise BadInputError(
            f"stored state is a cursor on '{stored.cursor}' but the load's cursor is '{column.name}'; reset it"
        )
    if inc.lookback and column.type not in TEMPORAL:
        raise BadInputError(
            f"source.incremental.lookback: only applies to date/time cursors; "
            f"'{column.name}' is {column.native_type}"
        )
    if inc.chunk and no_chunks is not None:
        raise UnsupportedError(f"source.incremental.chunk is not supported by the {no_chunks} source yet")
    if inc.chunk and column.type not in TEMPORAL | NUMERIC:
        raise BadInputError(
            f"source.incremental.chunk: needs a date/time or numeric cursor; "
            f"'{column.name}' is {column.native_type}"
        )
    lower = stored.value if stored is not None else inc.initial_value
    # only a stored watermark says what was loaded (an initial_value is where to start)
    skip = inc.at_watermark == "skip" and stored is not None and not inc.lookback
    return CursorPlan(column, lower, inc.lookback, inc.chunk or None, stored, skip)


@dataclass(frozen=True)
class CursorWindow:
    """The window a cursor extract reads: ``(lower [- lookback], upper]``.

    ``upper`` None means nothing is past the watermark: read nothing and keep the stored state
    (``candidate`` is then that state). ``more`` says a chunked backfill has rows past ``upper``.
    """

    plan: CursorPlan
    upper: str | None
    more: bool
    candidate: CursorState | None
    details: dict[str, Any]

    @property
    def empty(self) -> bool:
        return self.upper is None


def bound_cursor(plan: CursorPlan, maximum: str | None, chunk_end: str | None = None) -> CursorWindow:
    """The window from the measured bounds: the cursor's ``maximum`` (None: no rows; a chunked
    plan measures it past the lower bound) and, for a chunked plan, ``chunk_end``, the upper end
    of the next chunk."""
    if plan.chunk:
        upper = None if maximum is None else chunk_end
        more = upper is not None and upper != maximum
    else:
        upper, more = maximum, False
    details = plan.details(upper=upper)
    if plan.chunk:
        details.update(chunk=plan.chunk, more=more)
    return CursorWindow(plan, upper, more, _candidate(plan, upper), details)


def advance_cursor(plan: CursorPlan, newest: str | None) -> CursorWindow:
    """The window of a source that reads past ``lower`` with no measured upper bound and saw
    ``newest`` as the largest cursor value: the state advances only past the lower bound, else
    the stored state stays (and the upper bound reported is the lower one)."""
    if newest is not None and (plan.lower is None or cursor_after(plan.column.type, newest, plan.lower)):
        candidate: CursorState | None = _candidate(plan, newest)
    else:
        candidate = plan.state
    upper = candidate.value if candidate is not None else plan.lower
    return CursorWindow(plan, upper, False, candidate, plan.details(upper=upper))


def _candidate(plan: CursorPlan, upper: str | None) -> CursorState | None:
    if upper is None:
        return plan.state  # nothing to read: keep the old watermark
    return CursorState(cursor=plan.cursor, value=upper, value_type=plan.column.type.value)


def cursor_after(kind: CanonicalType, value: str, bound: str) -> bool:
    """``value > bound`` compared as values of the cursor's type, not as text."""
    if kind in TEMPORAL:
        return parse_timestamp(value, aware=True) > parse_timestamp(bound, aware=True)
    if kind in NUMERIC:
        try:
            return Decimal(value) > Decimal(bound)
        except InvalidOperation:
            raise BadInputError(f"cursor value {value!r} or {bound!r} is not a number") from None
    return value > bound


@dataclass(frozen=True)
class FixedWindow:
    """A fixed range of one column: ``start <= column < end`` (a replace load's window)."""

    column: Column
    start: str
    end: str

    def details(self) -> dict[str, str]:
        return {"column": self.column.name, "start": self.start, "end": self.end}


def fixed_window(window: WindowSpec, schema: TableSchema) -> FixedWindow:
    """The fixed window on a column of the source; a column the source lacks fails here."""
    if not schema.has(window.column):
        raise BadInputError(f"source.window.column: '{window.column}' not in source {schema.names}")
    return FixedWindow(schema.column(window.column), window.start, window.end)


def plan_entry(
    statement: str, params: Any, details: dict[str, Any], candidate: StateRecord | None, schema: TableSchema
) -> dict[str, Any]:
    """What ``dpone plan`` shows of a SQL source's extract: the statement and its parameters,
    the window, the state the run would store, and the source's columns and key."""
    return {
        "sql": statement,
        "params": params,
        "window": details,
        "state_candidate": None if candidate is None else candidate.__dict__,
        "schema": [{"name": c.name, "type": c.native_type, "nullable": c.nullable} for c in schema.columns],
        "primary_key": list(schema.primary_key),
    }


def key_set_source(
    spec: SourceSpec, keys: list[str], connector: str, key_set_query: Callable[[str, list[str]], str]
) -> SourceSpec:
    """``spec`` reading only ``keys``, in full (the key set reconciliation compares): a table's
    key columns, or a query's keys as the dialect's ``key_set_query`` wraps it."""
    sql = sql_source(spec, connector)
    if isinstance(sql, TableSource):
        return sql.model_copy(update={"columns": keys, "incremental": None, "window": None})
    return sql.model_copy(update={"query": key_set_query(sql.query, keys), "incremental": None})
