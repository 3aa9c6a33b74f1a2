"""Records (JSON objects from APIs and messages) as typed rows: declared fields, coercion.

Pure: shared by the message and API sources.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
import uuid
from collections.abc import Callable
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
        text = value.strip() if isinstance(value, str) else str(value).strip()
        try:
            parsed = dt.datetime.fromisoformat(text)
        except ValueError:
            parsed = _slow_timestamp(text)
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=dt.timezone.utc) if aware else parsed
    return parsed if aware else parsed.replace(tzinfo=None)


def _slow_timestamp(text: str) -> dt.datetime:
    """The forms ``fromisoformat`` of Python 3.10 refuses: a "Z" suffix; RFC 2822."""
    if text[-1:] in ("Z", "z"):
        try:
            return dt.datetime.fromisoformat(text[:-1] + "+00:00")
        except ValueError:
            pass
    from email.utils import parsedate_to_datetime  # RFC 2822: "Mon, 05 May 2014 00:15:17 +0300"

    try:
        return parsedate_to_datetime(text)
    except (TypeError, ValueError):
        raise ValueError(f"not an ISO 8601 or RFC 2822 timestamp: {text!r}") from None


_TRUE = frozenset({"1", "true", "t", "yes", "y", "on"})


def as_bool(value: Any) -> bool:
    """A boolean from a bool, a number or text ("true", "t", "yes", "on", "1")."""
    return value if isinstance(value, bool) else str(value).strip().lower() in _TRUE


def _text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


def _json(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


_FALSE = frozenset({"0", "false", "f", "no", "n", "off"})


def _bool(value: Any) -> bool | None:
    """A record's boolean: a JSON boolean, 0 or 1, or text naming one (``true``/``false``,
    ``yes``/``no``, ``on``/``off``, ``t``/``f``, ``1``/``0``; empty text is NULL). Anything
    else fails: ``2`` or ``"maybe"`` never load as false."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float | decimal.Decimal) and value in (0, 1):
        return bool(value)
    text = value.strip().lower() if isinstance(value, str) else None
    if text in _TRUE or text in _FALSE or text == "":
        return None if text == "" else text in _TRUE
    raise ValueError(f"{value!r} is not a boolean")


def _int(value: Any) -> int:
    """An integer from an integer, a float or decimal without a fraction, or integer text; a
    fraction is refused, never cut off (``int(12.7)`` would load 12), and so is a boolean."""
    if isinstance(value, bool):
        raise TypeError("a boolean is not an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, float | decimal.Decimal):
        whole = (
            value.is_integer()
            if isinstance(value, float)
            else value.is_finite() and value == value.to_integral_value()
        )
        if not whole:
            raise ValueError(f"{value!r} is not a whole number")
        return int(value)
    return int(str(value).strip())


def _decimal(value: Any) -> decimal.Decimal:
    return value if isinstance(value, decimal.Decimal) else decimal.Decimal(str(value))


def _date(value: Any) -> dt.date:
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))


def _time(value: Any) -> dt.time:
    return value if isinstance(value, dt.time) else dt.time.fromisoformat(str(value))


def _uuid(value: Any) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def _binary(value: Any) -> bytes:
    return value if isinstance(value, bytes) else base64.b64decode(value)


# One converter per canonical type, picked once per column rather than once per value.
_CONVERTERS: dict[T, Callable[[Any], Any]] = {
    T.JSON: _json,
    T.INT16: _int,
    T.INT32: _int,
    T.INT64: _int,
    T.FLOAT32: float,
    T.FLOAT64: float,
    T.DECIMAL: _decimal,
    T.BOOLEAN: _bool,
    T.TIMESTAMPTZ: lambda value: parse_timestamp(value, aware=True),
    T.TIMESTAMP: lambda value: parse_timestamp(value, aware=False),
    T.DATE: _date,
    T.TIME: _time,
    T.UUID: _uuid,
    T.BINARY: _binary,
    T.ARRAY: list,
}


def coerce(column: Column, value: Any) -> Any:
    """``value`` (decoded from a message) as the Python type the sinks expect for ``column``."""
    return None if value is None else _CONVERTERS.get(column.type, _text)(value)


def row_of(schema: TableSchema, value: dict[str, Any]) -> list[Any]:
    """The value's fields in ``schema`` order, coerced; missing fields are NULL."""
    plan = _plans.get(id(schema))
    if plan is None or plan[0] is not schema:
        plan = (schema, tuple((c.name, _CONVERTERS.get(c.type, _text)) for c in schema.columns))
        if len(_plans) >= 64:  # a process reads few schemas; never let the cache grow
            _plans.clear()
        _plans[id(schema)] = plan
    get = value.get
    try:
        return [None if (raw := get(name)) is None else convert(raw) for name, convert in plan[1]]
    except (ValueError, TypeError, decimal.InvalidOperation):
        pass
    for column in schema.columns:  # name the field that failed
        raw = value.get(column.name)
        try:
            coerce(column, raw)
        except (ValueError, TypeError, decimal.InvalidOperation) as exc:
            raise BadInputError(
                f"field '{column.name}': cannot read {type(raw).__name__} value as {column.type.value}: {exc}"
            ) from None
    raise AssertionError("unreachable: a conversion failed once and then succeeded")  # pragma: no cover


# schema id -> (schema, ((field, converter), ...)); the schema is kept so its id stays its own.
_plans: dict[int, tuple[TableSchema, tuple[tuple[str, Callable[[Any], Any]], ...]]] = {}
