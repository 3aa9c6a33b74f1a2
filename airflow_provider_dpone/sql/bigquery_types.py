"""BigQuery types: canonical columns to BigQuery types and back, the type a column is staged
with (what a Parquet load job can write), the cast from staging to the target, and typed
literals for values a script must carry inline. Pure: no driver import.

Three spellings of one column:

* the target type (``native_type``): what a table dpone creates holds. INT16/INT32 widen to
  INT64, FLOAT32 to FLOAT64; a bounded decimal keeps its precision as ``NUMERIC(p, s)`` or
  ``BIGNUMERIC(p, s)`` (BigQuery enforces both); text has no length (STRING holds any, so a
  longer source string never needs DDL); UUID and INTERVAL are text, as the staged files carry
  them (PostgreSQL's interval text is not BigQuery's INTERVAL literal).
* the staging type (``staging_type``): the type a load job writes from the staged Parquet
  file, whose text columns (TIME, JSON, an unbounded decimal) stay STRING.
* the cast (``from_staging``) from the staging column to the target type, in finalize.

Reading a table back (``column_from_field``) gives each column the ``native_type`` spelling
this module renders, so the shared planner compares a BigQuery target with ``stored`` source
columns natively: an INT32 source column loads into the INT64 column it created, no change.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import replace
from decimal import Decimal
from typing import Any

from ..contracts.errors import UnsupportedError
from ..contracts.table import CanonicalType, Column

DIALECT = "bigquery"
NUMERIC_MAX = (38, 9)  # NUMERIC: up to 29 integer digits and 9 after the point
BIGNUMERIC_MAX = (76, 38)  # BIGNUMERIC: 38 integer digits (76.76 in all) and 38 after the point
ARROW_DECIMAL_MAX = 38  # wider (or unbounded) decimals are staged as text (staging.arrow)

_TARGET = {
    CanonicalType.BOOLEAN: "BOOL",
    CanonicalType.INT16: "INT64",
    CanonicalType.INT32: "INT64",
    CanonicalType.INT64: "INT64",
    CanonicalType.FLOAT32: "FLOAT64",
    CanonicalType.FLOAT64: "FLOAT64",
    CanonicalType.STRING: "STRING",
    CanonicalType.BINARY: "BYTES",
    CanonicalType.DATE: "DATE",
    CanonicalType.TIME: "TIME",
    CanonicalType.TIMESTAMP: "DATETIME",
    CanonicalType.TIMESTAMPTZ: "TIMESTAMP",
    CanonicalType.INTERVAL: "STRING",
    CanonicalType.UUID: "STRING",
    CanonicalType.JSON: "JSON",
    CanonicalType.UNKNOWN: "STRING",
}
# Canonical types whose staged Parquet column is text, though the target type is not STRING.
_STAGED_AS_TEXT = frozenset({CanonicalType.TIME, CanonicalType.JSON})

# REST field types (legacy and standard spellings) -> the spelling this module renders.
_FIELD_NAMES = {
    "INTEGER": "INT64",
    "INT64": "INT64",
    "FLOAT": "FLOAT64",
    "FLOAT64": "FLOAT64",
    "BOOLEAN": "BOOL",
    "BOOL": "BOOL",
    "RECORD": "STRUCT",
    "STRUCT": "STRUCT",
}
_FROM_NATIVE = {
    "INT64": CanonicalType.INT64,
    "FLOAT64": CanonicalType.FLOAT64,
    "BOOL": CanonicalType.BOOLEAN,
    "STRING": CanonicalType.STRING,
    "BYTES": CanonicalType.BINARY,
    "DATE": CanonicalType.DATE,
    "TIME": CanonicalType.TIME,
    "DATETIME": CanonicalType.TIMESTAMP,
    "TIMESTAMP": CanonicalType.TIMESTAMPTZ,
    "JSON": CanonicalType.JSON,
}


def decimal_type(precision: int | None, scale: int | None, *, name: str = "") -> str:
    """The narrowest BigQuery decimal holding ``precision`` digits, ``scale`` after the point;
    an unbounded decimal is BIGNUMERIC (values with more than 38 fraction digits fail the cast)."""
    if precision is None:
        return "BIGNUMERIC"
    s = scale or 0
    if s <= NUMERIC_MAX[1] and precision - s <= NUMERIC_MAX[0] - NUMERIC_MAX[1]:
        return f"NUMERIC({precision}, {s})"
    if s <= BIGNUMERIC_MAX[1] and precision - s <= BIGNUMERIC_MAX[0] - BIGNUMERIC_MAX[1]:
        return f"BIGNUMERIC({precision}, {s})"
    raise UnsupportedError(
        f"column '{name}': decimal({precision},{s}) does not fit BigQuery's BIGNUMERIC (at most 38 "
        "digits before and 38 after the point); cast it in the source query"
    )


def native_type(column: Column) -> str:
    """The target type of ``column`` (a BigQuery column keeps its own)."""
    if column.dialect == DIALECT and column.native_type:
        return column.native_type
    if column.type is CanonicalType.DECIMAL:
        return decimal_type(column.precision, column.scale, name=column.name)
    if column.type is CanonicalType.ARRAY:
        return f"ARRAY<{native_type(_element(column))}>"
    return _TARGET[column.type]


def staging_type(column: Column) -> str:
    """The type of ``column`` in a staging table a Parquet load job fills (the staged file's
    type: text where ``staging.arrow`` writes text, an unparameterized decimal otherwise)."""
    t = column.type
    if t in _STAGED_AS_TEXT:
        return "STRING"
    if t is CanonicalType.DECIMAL:
        if column.precision is None or column.precision > ARROW_DECIMAL_MAX:
            return "STRING"
        return _unparameterized(decimal_type(column.precision, column.scale, name=column.name))
    if t is CanonicalType.ARRAY:
        return f"ARRAY<{staging_type(_element(column))}>"
    return _TARGET[t]


def from_staging(column: Column, expr: str) -> str:
    """``expr`` (the staging column) as the target type: a cast where the staging type differs."""
    staged, target = staging_type(column), native_type(column)
    if staged == _unparameterized(target):
        return expr
    if staged.startswith("ARRAY<"):
        inner = from_staging(_element(column), "e")
        return f"array(select {inner} from unnest({expr}) as e with offset as o order by o)"
    if target == "JSON":
        return f"parse_json({expr})"
    if target == "GEOGRAPHY":
        return f"st_geogfromtext({expr})"
    return f"cast({expr} as {_unparameterized(target)})"


def stored(column: Column) -> Column:
    """``column`` as a BigQuery target holds it (for the shared planner's native comparison)."""
    return replace(column, native_type=native_type(column), dialect=DIALECT)


def column_from_field(
    name: str,
    field_type: str,
    mode: str = "NULLABLE",
    *,
    precision: int | None = None,
    scale: int | None = None,
    max_length: int | None = None,
    native: str | None = None,
) -> Column:
    """A column of a BigQuery table (a REST ``TableFieldSchema``); ``native`` spells a STRUCT's
    or RANGE's full type, which dpone carries as unknown."""
    kind = _FIELD_NAMES.get(field_type.upper(), field_type.upper())
    if kind in ("NUMERIC", "BIGNUMERIC"):
        p, s = (
            (precision, scale or 0)
            if precision is not None
            else (NUMERIC_MAX if kind == "NUMERIC" else BIGNUMERIC_MAX)
        )
        spelled = f"{kind}({precision}, {scale or 0})" if precision is not None else kind
        element = Column(
            name, CanonicalType.DECIMAL, precision=p, scale=s, native_type=spelled, dialect=DIALECT
        )
    elif kind in ("STRING", "BYTES") and max_length:
        canonical = CanonicalType.STRING if kind == "STRING" else CanonicalType.BINARY
        spelled = f"{kind}({max_length})"
        element = Column(name, canonical, length=max_length, native_type=spelled, dialect=DIALECT)
    elif kind in _FROM_NATIVE:
        element = Column(name, _FROM_NATIVE[kind], native_type=kind, dialect=DIALECT)
    else:  # STRUCT, GEOGRAPHY, INTERVAL, RANGE: kept as BigQuery spells them, loaded as text elsewhere
        element = Column(name, CanonicalType.UNKNOWN, native_type=native or kind, dialect=DIALECT)
    if mode.upper() == "REPEATED":
        return Column(
            name,
            CanonicalType.ARRAY,
            element=element.type,
            native_type=f"ARRAY<{element.native_type}>",
            dialect=DIALECT,
        )
    return replace(element, nullable=mode.upper() != "REQUIRED")


def _element(column: Column) -> Column:
    return Column(column.name, column.element or CanonicalType.UNKNOWN)


def _unparameterized(native: str) -> str:
    """``NUMERIC(12, 2)`` -> ``NUMERIC``; ``STRING(40)`` -> ``STRING`` (a staging column holds any)."""
    head, _, _ = native.partition("(")
    return head if not native.startswith(("ARRAY<", "STRUCT<", "RANGE<")) else native


# --- literals ------------------------------------------------------------------------------------

_ESCAPES = {"\\": "\\\\", "'": "\\'", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def quote_string(text: str) -> str:
    """A GoogleSQL string literal: backslash escapes; other control characters as ``\\uXXXX``."""
    out = []
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "'" + "".join(out) + "'"


def literal(value: Any) -> str:
    """A typed literal for a value a multi-statement script carries inline (scripts take no
    query parameters on every backend, so their values are rendered, never concatenated raw)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return f"cast({quote_string(str(value).replace('inf', 'infinity'))} as float64)"
        return repr(value)
    if isinstance(value, Decimal):
        digits = value.as_tuple()
        scale = -int(digits.exponent) if isinstance(digits.exponent, int) else 0
        kind = "numeric" if scale <= 9 and len(digits.digits) - scale <= 29 else "bignumeric"
        return f"{kind} {quote_string(str(value))}"
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            return f"datetime {quote_string(value.isoformat(sep=' '))}"
        utc = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
        return f"timestamp {quote_string(utc.isoformat(sep=' ') + '+00')}"
    if isinstance(value, dt.date):
        return f"date {quote_string(value.isoformat())}"
    if isinstance(value, dt.time):
        return f"time {quote_string(value.isoformat())}"
    if isinstance(value, bytes | bytearray):
        import base64

        return f"from_base64({quote_string(base64.b64encode(bytes(value)).decode())})"
    if isinstance(value, str):
        return quote_string(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    raise TypeError(f"no BigQuery literal for {type(value).__name__}")
