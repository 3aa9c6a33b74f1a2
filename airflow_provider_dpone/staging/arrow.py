"""Canonical row batches as Arrow tables: ClickHouse's native Arrow insert and Parquet staging
files. A decimal without precision (or wider than Arrow holds) takes the caller's ``unbounded``
(precision, scale), or stays text when it is None (staged files: lossless, the sink casts it)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pyarrow as pa

from ..contracts.table import CanonicalType, Column, TableSchema

UNBOUNDED = (38, 10)  # where an unbounded numeric lands unless the caller says otherwise


def arrow_type(column: Column, unbounded: tuple[int, int] | None = UNBOUNDED) -> Any:
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
        if unbounded is None and (column.precision is None or column.precision > 38):
            return pa.string()  # staged files keep such a numeric's text: lossless, the sink casts it
        p, s = (
            (unbounded or UNBOUNDED)
            if column.precision is None or column.precision > 76
            else (
                column.precision,
                column.scale or 0,
            )
        )
        return pa.decimal128(p, s) if p <= 38 else pa.decimal256(p, s)
    if t is CanonicalType.ARRAY:
        return pa.list_(arrow_type(Column("element", column.element or CanonicalType.UNKNOWN), unbounded))
    return pa.string()  # string, json (text), uuid, time, interval, unknown


def _utc(value: Any) -> Any:
    """A timestamptz value in UTC; a value without offset is read as UTC (never the worker's zone)."""
    if value is None or not isinstance(value, dt.datetime):
        return value
    return (
        value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value.astimezone(dt.timezone.utc)
    )


def _text(value: Any) -> Any:
    return value if value is None or isinstance(value, str) else str(value)


def rows_to_arrow(
    schema: TableSchema, names: list[str], rows: list, unbounded: tuple[int, int] | None = UNBOUNDED
) -> Any:
    """One row batch as an Arrow table with the columns renamed to ``names``."""
    arrays = []
    for i, column in enumerate(schema.columns):
        values = [r[i] for r in rows]
        typ = arrow_type(column, unbounded)
        if pa.types.is_string(typ):
            values = [_text(v) for v in values]
        elif column.type is CanonicalType.TIMESTAMPTZ:
            values = [_utc(v) for v in values]
        arrays.append(pa.array(values, type=typ))
    return pa.Table.from_arrays(arrays, names=names)


_NOT_CSV = frozenset({CanonicalType.BINARY, CanonicalType.ARRAY})


def csv_writable(schema: TableSchema) -> bool:
    """Whether Arrow writes every column of ``schema`` as CSV a database reads back exactly
    (bytes and lists it cannot write; those files are loaded row by row)."""
    return all(c.type not in _NOT_CSV for c in schema.columns)


def tables_as_csv(tables: Any, names: list[str]) -> Any:
    """Each Arrow table's ``names`` columns as CSV bytes, no header: a string is always quoted
    (an empty one is ``""``) and NULL is an unquoted empty field, as PostgreSQL's CSV COPY reads
    them. A timestamp with time zone is written as its UTC time without an offset (formatting
    offsets is Arrow's slowest path, about 40 times slower): the reader's session must be in
    UTC. Memory: one table and its text."""
    import io

    import pyarrow.compute as pc
    import pyarrow.csv as pcsv

    options = pcsv.WriteOptions(include_header=False, quoting_style="needed")
    for table in tables:
        chosen = table.select(names)
        for i, field in enumerate(chosen.schema):
            if pa.types.is_timestamp(field.type) and field.type.tz is not None:
                naive = pc.cast(chosen.column(i), pa.timestamp(field.type.unit))  # same instants, UTC
                chosen = chosen.set_column(i, field.name, naive)
        out = io.BytesIO()
        pcsv.write_csv(chosen, out, write_options=options)
        yield out.getvalue()
