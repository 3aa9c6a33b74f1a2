"""Records (JSON objects from APIs and messages) as typed rows: declared fields, coercion.

Pure: shared by the message and API sources.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
import uuid
from typing import Any

from .errors import BadInputError
from .table import CanonicalType as T
from .table import Column, TableSchema, column_from_type_name


def declared_schema(fields: dict[str, str]) -> TableSchema:
    """The columns declared by ``source.fields`` for schema-less JSON messages."""
    return TableSchema(tuple(column_from_type_name(name, text) for name, text in fields.items()))


# --- values ------------------------------------------------------------------------------------


def parse_timestamp(value: Any, aware: bool) -> dt.datetime:
    """A timestamp from ISO 8601, RFC 2822 (e-mail style) or epoch milliseconds."""
    if isinstance(value, dt.datetime):
        parsed = value
    elif isinstance(value, int | float):  # epoch milliseconds, as Kafka timestamps are
        parsed = dt.datetime.fromtimestamp(value / 1000, dt.timezone.utc)
    else:
        text = str(value).strip()
        try:
            parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            from email.utils import parsedate_to_datetime  # RFC 2822: "Mon, 05 May 2014 00:15:17 +0300"

            try:
                parsed = parsedate_to_datetime(text)
            except (TypeError, ValueError):
                raise ValueError(f"not an ISO 8601 or RFC 2822 timestamp: {text!r}") from None
    if aware and parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    return parsed if aware else parsed.replace(tzinfo=None)


_TRUE = frozenset({"1", "true", "t", "yes", "y", "on"})


def as_bool(value: Any) -> bool:
    """A boolean from a bool, a number or text ("true", "t", "yes", "on", "1")."""
    return value if isinstance(value, bool) else str(value).strip().lower() in _TRUE


def coerce(column: Column, value: Any) -> Any:
    """``value`` (decoded from a message) as the Python type the sinks expect for ``column``."""
    if value is None:
        return None
    t = column.type
    if t is T.JSON:
        return value if isinstance(value, str) else json.dumps(value, default=str)
    if t in (T.INT16, T.INT32, T.INT64):
        return int(value)
    if t in (T.FLOAT32, T.FLOAT64):
        return float(value)
    if t is T.DECIMAL:
        return value if isinstance(value, decimal.Decimal) else decimal.Decimal(str(value))
    if t is T.BOOLEAN:
        return as_bool(value)
    if t is T.TIMESTAMPTZ:
        return parse_timestamp(value, aware=True)
    if t is T.TIMESTAMP:
        return parse_timestamp(value, aware=False)
    if t is T.DATE:
        return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))
    if t is T.TIME:
        return value if isinstance(value, dt.time) else dt.time.fromisoformat(str(value))
    if t is T.UUID:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    if t is T.BINARY:
        return value if isinstance(value, bytes) else base64.b64decode(value)
    if t is T.ARRAY:
        return list(value)
    return value if isinstance(value, str) else str(value)


def row_of(schema: TableSchema, value: dict[str, Any]) -> list[Any]:
    """The value's fields in ``schema`` order, coerced; missing fields are NULL."""
    out = []
    for column in schema.columns:
        raw = value.get(column.name)
        try:
            out.append(coerce(column, raw))
        except (ValueError, TypeError, decimal.InvalidOperation) as exc:
            raise BadInputError(
                f"field '{column.name}': cannot read {type(raw).__name__} value as {column.type.value}: {exc}"
            ) from None
    return out
