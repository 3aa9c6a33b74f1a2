"""Split a table's key column into the ranges of a partitioned load, and render one range as a
WHERE clause. Pure: the source measures ``min`` and ``max`` of the column; this decides the rest.

Ranges are of equal width between the measured bounds (cheap: two index lookups, no scan), the
first open below and the last open above, so every row falls into exactly one range whatever
was inserted after the bounds were measured; NULL keys go with the first. A column whose values
cannot be split by width (text, uuid) is refused with the columns that can.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

from ..contracts.errors import BadInputError
from ..contracts.partitions import ParallelSpec, PartitionPlan, PartitionRange, PartitionTask
from ..contracts.records import parse_timestamp
from ..contracts.sources import SourceSpec, TableSource
from ..contracts.state import StateRecord
from ..contracts.strategies import IncrementalMode
from ..contracts.table import CanonicalType, Column, TableSchema

INTEGERS = frozenset({CanonicalType.INT16, CanonicalType.INT32, CanonicalType.INT64})
SPLITTABLE = INTEGERS | {
    CanonicalType.DECIMAL,
    CanonicalType.DATE,
    CanonicalType.TIMESTAMP,
    CanonicalType.TIMESTAMPTZ,
}


class RangeDialect(Protocol):
    def quote_ident(self, name: str) -> str: ...

    def range_predicate(self, column: Column, lower: bool, upper: bool, nulls: bool) -> str: ...


def split_column(schema: TableSchema, by: str, table: str) -> Column:
    """The column ``parallel.by`` names: of the source's primary key (a row's key does not change
    while its partitions are read one after another), of a type that splits by width."""
    if not schema.has(by):
        raise BadInputError(f"parallel.by: column '{by}' is not in {table} ({', '.join(schema.names)})")
    if by not in schema.primary_key:
        key = ", ".join(schema.primary_key) or "none"
        raise BadInputError(
            f"parallel.by: '{by}' is not a primary-key column of {table} (its key: {key}); a row "
            "whose value changes between two partitions' reads would be missed or read twice"
        )
    column = schema.column(by)
    if column.type not in SPLITTABLE:
        raise BadInputError(
            f"parallel.by: '{by}' is {column.native_type or column.type.value}; split by an "
            "integer, numeric, date or timestamp key column"
        )
    return column


def split_ranges(column: Column, minimum: str | None, maximum: str | None, n: int) -> list[PartitionRange]:
    """At most ``n`` ranges of ``column`` between the measured bounds (None: an empty table, one
    range). Fewer when the span holds fewer distinct values (integers, dates)."""
    if minimum is None or maximum is None or n <= 1:
        return [PartitionRange(0, 1, column.name, nulls=True)]
    cuts = _cuts(column, minimum, maximum, n)
    bounds: list[str | None] = [None, *cuts, None]
    count = len(bounds) - 1
    return [
        PartitionRange(i, count, column.name, bounds[i], bounds[i + 1], nulls=i == 0) for i in range(count)
    ]


def _cuts(column: Column, minimum: str, maximum: str, n: int) -> list[str]:
    """The ``n - 1`` (or fewer, distinct) inner bounds between ``minimum`` and ``maximum``, as
    text every dialect's cast reads: plain digits (no exponent), times to the millisecond."""
    kind = column.type
    try:
        if kind in INTEGERS or kind is CanonicalType.DECIMAL:
            low, high = Decimal(minimum), Decimal(maximum)
            if kind in INTEGERS or column.scale == 0:  # whole values: n slices of their count
                start, count = int(low), int(high) - int(low) + 1
                cuts = [str(start + _ceil_div(count * i, n)) for i in range(1, n)]
            else:
                cuts = [format(low + (high - low) / n * i, "f") for i in range(1, n)]
        elif kind is CanonicalType.DATE:
            day, last = dt.date.fromisoformat(minimum[:10]), dt.date.fromisoformat(maximum[:10])
            days = (last - day).days + 1  # whole days, like whole values
            cuts = [(day + dt.timedelta(days=_ceil_div(days * i, n))).isoformat() for i in range(1, n)]
        else:
            aware = kind is CanonicalType.TIMESTAMPTZ
            first_ts, last_ts = parse_timestamp(minimum, aware=aware), parse_timestamp(maximum, aware=aware)
            width = last_ts - first_ts  # milliseconds: SQL Server's datetime takes no more digits
            cuts = [(first_ts + width * i / n).isoformat(timespec="milliseconds") for i in range(1, n)]
        # a bound at or below the minimum, or repeated, would make an empty range: keep the
        # distinct ones strictly inside the span
        kept: list[str] = []
        for cut in cuts:
            if cut not in kept and _inside(kind, cut, minimum, maximum):
                kept.append(cut)
        return kept
    except (InvalidOperation, ValueError, OverflowError) as exc:  # NaN, infinity, unreadable text
        raise BadInputError(
            f"parallel.by: cannot split '{column.name}' between {minimum!r} and {maximum!r} ({exc or type(exc).__name__})"
        ) from None


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _inside(kind: CanonicalType, value: str, low: str, high: str) -> bool:
    if kind in INTEGERS or kind is CanonicalType.DECIMAL:
        return Decimal(low) < Decimal(value) <= Decimal(high)
    if kind is CanonicalType.DATE:
        return low[:10] < value <= high[:10]
    aware = kind is CanonicalType.TIMESTAMPTZ
    return (
        parse_timestamp(low, aware=aware)
        < parse_timestamp(value, aware=aware)
        <= parse_timestamp(high, aware=aware)
    )


def range_where(dialect: RangeDialect, column: Column, part: PartitionRange) -> tuple[str, tuple[Any, ...]]:
    """The WHERE clause of one range and its parameters (lower, then upper); empty for a range
    open on both sides that includes NULLs (the whole table)."""
    lower, upper = part.lower is not None, part.upper is not None
    if not lower and not upper and part.nulls:
        return "", ()
    params = tuple(v for v in (part.lower, part.upper) if v is not None)
    return dialect.range_predicate(column, lower, upper, part.nulls), params


def and_where(clauses: Sequence[tuple[str, tuple[Any, ...]]]) -> tuple[str, tuple[Any, ...]]:
    """Clauses joined with AND (each parenthesised), their parameters in the same order."""
    kept = [(w, p) for w, p in clauses if w]
    if len(kept) == 1:
        return kept[0]
    where = " and ".join(f"({w})" for w, _ in kept)
    params: tuple[Any, ...] = tuple(v for _, p in kept for v in p)
    return where, params


def plan_ranges(
    spec: SourceSpec,
    schema: TableSchema,
    parallel: ParallelSpec,
    measure: Callable[[Column], tuple[str | None, str | None]],
    candidate: StateRecord | None,
    details: dict[str, Any],
) -> PartitionPlan:
    """The partition plan of a table source whose window was just fixed (``candidate``,
    ``details``): ``measure`` reads the key column's min and max in the same snapshot. A cursor
    window's upper bound is pinned, so every partition reads the same window."""
    if not isinstance(spec, TableSource):
        raise BadInputError("parallel: splits a table source ('table'), not a query")
    column = split_column(schema, parallel.by, spec.table)
    minimum, maximum = measure(column)
    ranges = split_ranges(column, minimum, maximum, parallel.partitions)
    inc = spec.incremental
    cursor = inc is not None and inc.mode is IncrementalMode.CURSOR
    if inc is not None and not cursor:
        raise BadInputError(f"parallel: source.incremental.mode '{inc.mode.value}' cannot be split")
    if cursor and inc is not None and inc.chunk:
        raise BadInputError("parallel: source.incremental.chunk cannot be combined with partitions")
    upper = details.get("upper") if cursor else None
    return PartitionPlan(tuple(ranges), candidate, dict(details), upper, cursor)


def partition_clause(
    dialect: RangeDialect, schema: TableSchema, spec: SourceSpec, partition: PartitionTask | None
) -> tuple[str, tuple[Any, ...]]:
    """The WHERE clause (and parameters) that restricts an extract to its partition; empty
    without one."""
    if partition is None:
        return "", ()
    table = spec.table if isinstance(spec, TableSource) else "the source"
    column = split_column(schema, partition.range.by, table)
    return range_where(dialect, column, partition.range)


def pinned_upper(partition: PartitionTask | None) -> tuple[bool, str | None]:
    """Whether the plan fixed the cursor window's upper bound, and the bound (None: nothing past
    the watermark when the plan was made)."""
    if partition is None or not partition.pinned:
        return False, None
    return True, partition.cursor_upper
