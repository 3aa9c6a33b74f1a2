"""Row batches as Arrow tables for ClickHouse's native Arrow insert."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pyarrow as pa

from ..contracts.table import CanonicalType, Column, TableSchema
from ..sql.clickhouse import CLICKHOUSE as dialect


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
