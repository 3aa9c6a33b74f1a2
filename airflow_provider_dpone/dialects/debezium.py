"""Debezium change events, as a change batch's rows. Pure: decoded message values in, rows out.

A Debezium event's value is an envelope ``{before, after, source, op, ts_ms}`` (with the JSON
converter's ``schemas.enable``, wrapped as ``{schema, payload}``). ``op`` is ``c`` (insert),
``u`` (update), ``d`` (delete), ``r`` (a snapshot read) or ``t`` (truncate). A delete's row is
``before`` (with REPLICA IDENTITY DEFAULT only its key), else the event key. A null value (the
tombstone that follows a delete) carries nothing.

Debezium writes dates, times and decimals in encodings only its schema names (semantic types,
``connect.name`` in Avro): days, milliseconds, microseconds or nanoseconds since the epoch,
unscaled big-endian bytes. Values are decoded by those names; a JSON event without its schema
whose declared date or time field holds a number fails, since its unit cannot be known.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
from collections.abc import Callable, Mapping
from typing import Any

from ..contracts.errors import BadInputError, SourceContractError
from ..contracts.table import CanonicalType as T
from ..contracts.table import TableSchema

OPS = {
    "c": "I",
    "u": "U",
    "r": "U",
    "d": "D",
}
# What Debezium writes for a TOASTed value an update left unchanged (unavailable.value.placeholder)
UNAVAILABLE = "__debezium_unavailable_value"  # a snapshot read is an upsert: the batch is not a full snapshot
_EPOCH = dt.datetime(1970, 1, 1)
_DAY = dt.date(1970, 1, 1)
TEMPORAL = frozenset({T.DATE, T.TIME, T.TIMESTAMP, T.TIMESTAMPTZ})


def _micros(value: Any, per_second: int) -> int:
    """``value`` units (``per_second`` of them a second) as whole microseconds, rounded half
    to even in integers (no float: nanoseconds since 1970 exceed its precision)."""
    whole, rest = divmod(int(value) * 1_000_000, per_second)
    return whole + (1 if 2 * rest > per_second or (2 * rest == per_second and whole % 2) else 0)


def _since_epoch(per_second: int) -> Callable[[Any], Any]:
    def convert(value: Any) -> Any:
        if isinstance(value, dt.datetime):
            return value
        return _EPOCH + dt.timedelta(microseconds=_micros(value, per_second))

    return convert


def _time_of_day(per_second: int) -> Callable[[Any], Any]:
    def convert(value: Any) -> Any:
        if isinstance(value, dt.time):
            return value
        micros = _micros(value, per_second)
        if not 0 <= micros < 86_400_000_000:  # PostgreSQL's 24:00:00 has no Python time
            raise SourceContractError(
                f"a time of day of {value} units ({per_second}/s) is not within one day"
            )
        return (_EPOCH + dt.timedelta(microseconds=micros)).time()

    return convert


def _date(value: Any) -> Any:
    return value if isinstance(value, dt.date) else _DAY + dt.timedelta(days=int(value))


def _unscaled(raw: Any, scale: int) -> decimal.Decimal:
    if isinstance(raw, decimal.Decimal):
        return raw
    data = base64.b64decode(raw) if isinstance(raw, str) else bytes(raw)
    return decimal.Decimal(int.from_bytes(data, "big", signed=True)).scaleb(-scale)


def _scaled(scale: int) -> Callable[[Any], decimal.Decimal]:
    return lambda raw: _unscaled(raw, scale)


def _variable_scale(value: Any) -> decimal.Decimal:
    return _unscaled(value["value"], int(value["scale"]))


def _bytes(value: Any) -> Any:
    return base64.b64decode(value) if isinstance(value, str) else value


def _json_text(value: Any) -> Any:
    return value if isinstance(value, str) else json.dumps(value)


def _zoned(value: Any) -> Any:
    return (
        value
        if isinstance(value, dt.datetime)
        else dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    )


# Debezium's and Kafka Connect's semantic types: how each value is written.
SEMANTIC: dict[str, Callable[[Any], Any]] = {
    "io.debezium.time.Date": _date,
    "org.apache.kafka.connect.data.Date": _date,
    "io.debezium.time.Time": _time_of_day(1_000),
    "org.apache.kafka.connect.data.Time": _time_of_day(1_000),
    "io.debezium.time.MicroTime": _time_of_day(1_000_000),
    "io.debezium.time.NanoTime": _time_of_day(1_000_000_000),
    "io.debezium.time.Timestamp": _since_epoch(1_000),
    "org.apache.kafka.connect.data.Timestamp": _since_epoch(1_000),
    "io.debezium.time.MicroTimestamp": _since_epoch(1_000_000),
    "io.debezium.time.NanoTimestamp": _since_epoch(1_000_000_000),
    "io.debezium.time.ZonedTimestamp": _zoned,
    "io.debezium.data.Json": _json_text,
}


def field_converters(
    fields: list[Mapping[str, Any]], name_key: str, type_key: str
) -> dict[str, Callable[[Any], Any]]:
    """Per field of a row schema (a Connect ``struct``'s ``fields`` or an Avro record's), the
    decoder of its Debezium encoding; fields written plainly are absent."""
    out: dict[str, Callable[[Any], Any]] = {}
    for f in fields:
        kind = f.get(type_key)
        if isinstance(kind, list):  # an Avro union ["null", X]
            kind = next((k for k in kind if k != "null"), None)
        spec: Mapping[str, Any] = kind if isinstance(kind, dict) else f
        semantic = spec.get("connect.name") or spec.get("name")
        name = f[name_key]
        if semantic in SEMANTIC:
            out[name] = SEMANTIC[semantic]
        elif semantic == "org.apache.kafka.connect.data.Decimal":
            params = spec.get("parameters") or spec.get("connect.parameters") or {}
            out[name] = _scaled(int(params.get("scale", spec.get("scale", 0))))
        elif semantic == "io.debezium.data.VariableScaleDecimal":
            out[name] = _variable_scale
        elif spec.get("type") == "bytes":
            out[name] = _bytes
    return out


_SEMANTIC_TYPES = {
    "io.debezium.time.Date": T.DATE,
    "org.apache.kafka.connect.data.Date": T.DATE,
    "io.debezium.time.Time": T.TIME,
    "org.apache.kafka.connect.data.Time": T.TIME,
    "io.debezium.time.MicroTime": T.TIME,
    "io.debezium.time.NanoTime": T.TIME,
    "io.debezium.time.Timestamp": T.TIMESTAMP,
    "org.apache.kafka.connect.data.Timestamp": T.TIMESTAMP,
    "io.debezium.time.MicroTimestamp": T.TIMESTAMP,
    "io.debezium.time.NanoTimestamp": T.TIMESTAMP,
    "io.debezium.time.ZonedTimestamp": T.TIMESTAMPTZ,
    "io.debezium.data.Json": T.JSON,
    "io.debezium.data.Uuid": T.UUID,
    "io.debezium.data.VariableScaleDecimal": T.DECIMAL,
}


def avro_row_schema(avro_text: str) -> tuple[TableSchema, dict[str, Callable[[Any], Any]]]:
    """The row's columns of a Debezium Avro value schema, typed by their semantic names, and
    their decoders."""
    import dataclasses

    from . import kafka as codec

    record = row_record(avro_text)
    plain = codec.avro_schema(json.dumps(record))
    semantic: dict[str, Any] = {}
    for f in record.get("fields", []):
        kind = f.get("type")
        kind = next((k for k in kind if k != "null"), None) if isinstance(kind, list) else kind
        if isinstance(kind, dict):
            semantic[f["name"]] = kind
    columns = []
    for column in plain.columns:
        spec = semantic.get(column.name, {})
        name = spec.get("connect.name")
        if name in _SEMANTIC_TYPES:
            column = dataclasses.replace(column, type=_SEMANTIC_TYPES[name])
        elif name == "org.apache.kafka.connect.data.Decimal":
            params = spec.get("connect.parameters") or {}
            scale = int(params.get("scale", spec.get("scale", 0)))
            column = dataclasses.replace(column, type=T.DECIMAL, scale=scale, precision=spec.get("precision"))
        columns.append(column)
    converters = field_converters(record.get("fields", []), "name", "type")
    return TableSchema(tuple(columns)), converters


def row_record(avro_text: str) -> dict[str, Any]:
    """The row record of a Debezium Avro value schema (``before``'s type; ``after`` refers to it)."""
    parsed = json.loads(avro_text)
    for f in parsed.get("fields", []) if isinstance(parsed, dict) else []:
        if f.get("name") in ("before", "after"):
            for kind in f["type"] if isinstance(f["type"], list) else [f["type"]]:
                if isinstance(kind, dict) and kind.get("type") == "record":
                    return kind
    raise BadInputError(
        "schema registry: the value schema is not a Debezium envelope (no before/after record)"
    )


class Envelope:
    """Turns Debezium event values into change rows of ``schema`` (the row's columns)."""

    def __init__(
        self, topic: str, schema: TableSchema, converters: dict[str, Callable[[Any], Any]] | None = None
    ):
        self.topic, self.schema = topic, schema
        self.fixed = converters  # from the registry's schema; else each event's own
        self.temporal = {c.name for c in schema.columns if c.type in TEMPORAL}

    def change(self, value: Any, key: Any) -> tuple[str, dict[str, Any]] | None:
        """(operation, row) of one event value, None for events that change no row."""
        payload, converters = value, self.fixed
        if isinstance(value, dict) and "payload" in value and "schema" in value:
            payload = value["payload"]
            converters = self._connect_converters(value["schema"]) if converters is None else converters
        if not isinstance(payload, dict) or "op" not in payload:
            raise SourceContractError(
                f"topic {self.topic}: a message is not a Debezium change event (no 'op')"
            )
        op = payload["op"]
        if op == "t":
            raise SourceContractError(
                f"topic {self.topic}: the source table was truncated; a change batch cannot apply a "
                "truncate. Nothing was applied; reload the target, then reset the load's offsets"
            )
        if op not in OPS:
            return None  # m: a logical decoding message
        row = payload.get("before") if op == "d" else payload.get("after")
        if row is None and op == "d":
            row = _key_payload(key)
        if not isinstance(row, dict):
            raise SourceContractError(f"topic {self.topic}: a '{op}' event without its row")
        if op != "d":
            self._check_available(row)
        return OPS[op], self._decoded(row, converters)

    def _check_available(self, row: dict[str, Any]) -> None:
        """Debezium's placeholder for a value it could not read is never written as data."""
        missing = sorted(k for k, v in row.items() if _unavailable(v))
        if missing:
            raise SourceContractError(
                f"topic {self.topic}: an event holds Debezium's placeholder '{UNAVAILABLE}' in {missing} "
                "(a TOASTed value the update left unchanged): the row cannot be written whole. Nothing "
                "was applied; set REPLICA IDENTITY FULL on the source table, then reload the target"
            )

    def _decoded(
        self, row: dict[str, Any], converters: dict[str, Callable[[Any], Any]] | None
    ) -> dict[str, Any]:
        if converters is None:  # no schema: a number in a date or time field has no known unit
            for name in self.temporal:
                if isinstance(row.get(name), int | float):
                    raise BadInputError(
                        f"topic {self.topic}: field '{name}' holds a number, which Debezium writes in a "
                        "unit only its schema names; enable the converter's schemas "
                        "(value.converter.schemas.enable=true) or use Avro"
                    )
            return row
        return {k: (converters[k](v) if v is not None and k in converters else v) for k, v in row.items()}

    def _connect_converters(self, schema: dict[str, Any]) -> dict[str, Callable[[Any], Any]]:
        for f in schema.get("fields", []):
            if f.get("field") in ("after", "before") and f.get("type") == "struct":
                return field_converters(f.get("fields", []), "field", "type")
        return {}


_MARKS = (UNAVAILABLE, base64.b64encode(UNAVAILABLE.encode()).decode(), UNAVAILABLE.encode())
_MARK_BYTES = list(UNAVAILABLE.encode())


def _unavailable(value: Any) -> bool:
    """Whether ``value`` is Debezium's placeholder in one of the shapes it writes it: as text or
    bytes, a one-element array of it (text arrays), an array of its bytes (number and boolean
    arrays), or a map from it to it (hstore)."""
    if isinstance(value, str | bytes):
        return value in _MARKS
    if isinstance(value, list):
        return value in ([UNAVAILABLE], _MARK_BYTES) or (len(value) == 1 and _unavailable(value[0]))
    if isinstance(value, dict):
        return UNAVAILABLE in value
    return False


def _key_payload(key: Any) -> Any:
    if isinstance(key, bytes | str):
        try:
            key = json.loads(key)
        except ValueError:
            return None
    if isinstance(key, dict) and "payload" in key and "schema" in key:
        return key["payload"]
    return key
