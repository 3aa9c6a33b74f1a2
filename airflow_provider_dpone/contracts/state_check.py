"""What ``dpone state set --value`` may write: the value checked against the load, no I/O.

The cursor column's type comes from the stored state's ``value_type`` when it has one (what the
source recorded), else from the value itself; no database is asked. A cursor value is stored as
given (the text the source database binds), with its canonical type as ``value_type``.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import uuid
from dataclasses import replace
from typing import Any

from .errors import BadInputError, StateError
from .manifest import LoadSpec
from .records import parse_timestamp
from .state import XMIN_MAX, CursorState, StateRecord, XminState, state_from_dict, state_mismatch
from .strategies import IncrementalMode
from .table import CanonicalType as T

# ASCII digits only: ``int()`` and ``\d`` also take other scripts' digits; databases do not.
_DIGITS = re.compile(r"[0-9]+")
_INTEGER = re.compile(r"[+-]?[0-9]+")
_PLAIN_NUMBER = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)")
_FLOAT = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# A UTC offset at the end of the time part: Z, +05, +0530, +05:30.
_OFFSET = re.compile(r"(?:[Zz]|[+-][0-9]{2}(?::?[0-9]{2})?)$")
_INT_BITS = {T.INT16: 16, T.INT32: 32, T.INT64: 64}
_HINT = (
    "give a date (2024-01-01), a timestamp (2024-01-01T00:00:00Z), an integer, or a whole record "
    'as JSON with its value_type ({"kind": "cursor", "cursor": ..., "value": ..., "value_type": "string"})'
)


def _integer(text: str, bits: int) -> None:
    if not _INTEGER.fullmatch(text):
        raise ValueError(f"{text!r} is not an integer")
    if not -(2 ** (bits - 1)) <= int(text) < 2 ** (bits - 1):
        raise ValueError(f"{text!r} is out of range for int{bits}")


def _date(text: str) -> None:
    if not _DATE.fullmatch(text):
        raise ValueError(f"{text!r} is not a date (YYYY-MM-DD)")
    try:
        dt.date.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a valid date: {exc}") from None


def _timestamp(text: str) -> bool:
    """Check an ISO 8601 timestamp (or date); True when it carries a UTC offset."""
    if not _DATE.match(text):
        raise ValueError(f"{text!r} is not an ISO 8601 timestamp (2024-01-01T00:00:00Z)")
    if len(text) == 10:
        _date(text)
        return False
    try:
        parse_timestamp(text, aware=True)
    except ValueError:
        raise ValueError(f"{text!r} is not a valid timestamp") from None
    return bool(_OFFSET.search(text[10:]))


def _check(text: str, value_type: T) -> None:
    """Raise ValueError unless ``text`` is a value of a cursor column of ``value_type``."""
    if value_type in _INT_BITS:
        _integer(text, _INT_BITS[value_type])
    elif value_type is T.DECIMAL:
        if not _PLAIN_NUMBER.fullmatch(text):
            raise ValueError(f"{text!r} is not a number")
    elif value_type in (T.FLOAT32, T.FLOAT64):
        if not _FLOAT.fullmatch(text) or not math.isfinite(float(text)):
            raise ValueError(f"{text!r} is not a finite number")
    elif value_type is T.DATE:
        _date(text)
    elif value_type is T.TIMESTAMPTZ:
        _timestamp(text)  # a value without an offset is read in the source's time zone
    elif value_type is T.TIMESTAMP and _timestamp(text):
        raise ValueError(
            f"{text!r} has a UTC offset, but the cursor is a timestamp without time zone "
            "(the database would drop the offset); give the local time without one"
        )
    elif value_type is T.UUID:
        try:
            uuid.UUID(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a UUID") from None


def _inferred(text: str) -> T:
    if _INTEGER.fullmatch(text):
        _integer(text, 64)
        return T.INT64
    if _PLAIN_NUMBER.fullmatch(text):
        return T.DECIMAL
    if _DATE.fullmatch(text):
        _date(text)
        return T.DATE
    if _DATE.match(text):
        return T.TIMESTAMPTZ if _timestamp(text) else T.TIMESTAMP
    raise ValueError(f"cannot tell the cursor's type from {text!r}; {_HINT}")


def cursor_value_type(text: str, expected: str | None = None) -> str:
    """The canonical type name (``value_type``) of cursor value ``text``.

    With ``expected`` (a canonical type name), ``text`` must be a value of that type, which is
    returned. Without it the type is inferred: ``int64``, ``decimal``, ``date``,
    ``timestamptz`` (with a UTC offset) or ``timestamp``. Raises ValueError saying why
    ``text`` does not parse.
    """
    if expected is None:
        return _inferred(text).value
    _check(text, T(expected))
    return expected


def _stored_type(cursor: str | None, stored: Any) -> str | None:
    """The ``value_type`` of the stored state, read defensively: only a well-formed record on
    ``cursor`` counts (corrupt or foreign state says nothing), and not ``"string"``, the
    default that records written before the type was recorded carry."""
    try:
        record = state_from_dict(stored)
    except StateError:
        return None
    if isinstance(record, CursorState) and record.cursor == cursor and record.value_type != T.STRING.value:
        return record.value_type
    return None


def _bad(message: str) -> BadInputError:
    return BadInputError(f"--value: {message}")


def _scalar(text: str) -> str:
    """``text`` as a watermark: JSON ``null``, booleans, arrays, NaN and infinities are not;
    a JSON string is unquoted."""
    try:
        decoded = json.loads(text)
    except ValueError:
        return text
    if isinstance(decoded, str):
        return decoded.strip()
    if isinstance(decoded, bool) or not isinstance(decoded, int | float) or not math.isfinite(decoded):
        raise _bad(
            f"{text!r} is not a watermark; give the new cursor value or xmin "
            "(`dpone state reset` clears the state)"
        )
    return text


def state_for_set(load: LoadSpec, value: str | None, stored: Any = None) -> StateRecord:
    """The record ``dpone state set --value`` writes for ``load``; raises ``BadInputError``.

    ``value`` is a whole record as JSON (``{"kind": ...}``) or just the new position: the
    cursor value for a cursor load, the 64-bit xmin for an xmin load. ``stored`` is the state
    stored now, as its JSON value, corrupt or not: a cursor value must be of the type it
    recorded (a ``timestamptz`` cursor refuses ``42``). A record without ``value_type`` gets
    the cursor's type; one with it must match.
    """
    inc = load.source.incremental
    if inc is None:
        raise BadInputError(f"load '{load.name}' has no source.incremental, so it keeps no state to set")
    if value is None:
        raise BadInputError("state set needs --value (a state record as JSON, or the new watermark)")
    text = value.strip()
    expected = _stored_type(inc.cursor, stored)
    if text.startswith("{"):
        try:
            given = json.loads(text)
            record = state_from_dict(given)
        except ValueError as exc:
            raise _bad(f"not valid JSON: {exc}") from None
        except StateError as exc:
            raise _bad(exc.message) from None
        mismatch = state_mismatch(load, record)
        if mismatch:
            raise _bad(mismatch)
        assert record is not None  # a JSON object is never "no state"
        if not isinstance(record, CursorState):
            return record
        if record.value is None:
            raise _bad("a cursor record needs a value; `dpone state reset` clears the state")
        declared = record.value_type if "value_type" in given else None
        if declared and expected and declared != expected:
            raise _bad(
                f"value_type {declared!r} does not match the stored state's {expected!r} "
                f"(the type of cursor '{inc.cursor}')"
            )
        try:
            value_type = cursor_value_type(record.value, declared or expected)
        except ValueError as exc:
            raise _bad(str(exc)) from None
        return replace(record, value_type=value_type)
    text = _scalar(text) if text else text
    if not text:
        raise _bad("empty; give the new watermark (`dpone state reset` clears the state)")
    if inc.mode is IncrementalMode.XMIN:
        if not _DIGITS.fullmatch(text) or int(text) > XMIN_MAX:
            raise _bad(f"an xmin load needs a non-negative integer xmin (64-bit), got {text!r}")
        return XminState(xmin=int(text))
    if inc.mode is not IncrementalMode.CURSOR:
        raise _bad(
            f"a {inc.mode.value} load takes a whole state record as JSON "
            f'({{"kind": "{inc.mode.value}", ...}}), not {text!r}'
        )
    try:
        value_type = cursor_value_type(text, expected)
    except ValueError as exc:
        held = f"; cursor '{inc.cursor}' holds {expected} values (the stored state's value_type)"
        raise _bad(f"{exc}{held if expected else ''}") from None
    return CursorState(cursor=inc.cursor or "", value=text, value_type=value_type)
