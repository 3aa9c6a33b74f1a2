"""Kafka messages <-> canonical rows: schemas from Avro / JSON Schema, typed values, JSON out.

Pure helpers (no client): the Kafka hook uses them to build the source schema of a topic and
to turn decoded message values into rows, and rows into JSON messages.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
import uuid
from collections.abc import Sequence
from typing import Any

from ..contracts.errors import BadInputError
from ..contracts.table import CanonicalType as T
from ..contracts.table import Column, TableSchema

ENVELOPE = (
    Column("_topic", T.STRING, False),
    Column("_partition", T.INT32, False),
    Column("_offset", T.INT64, False),
    Column("_timestamp", T.TIMESTAMPTZ, True),
    Column("_key", T.STRING, True),
)


# --- schemas -----------------------------------------------------------------------------------


def _avro_column(name: str, avro: Any) -> Column:
    nullable = False
    if isinstance(avro, list):  # a union: ["null", X] is a nullable X; anything wider is JSON
        rest = [t for t in avro if t != "null"]
        nullable = len(rest) < len(avro)
        if len(rest) != 1:
            return Column(name, T.JSON, True)
        avro = rest[0]
    spec = avro if isinstance(avro, dict) else {"type": avro}
    kind, logical = spec.get("type"), spec.get("logicalType")
    if isinstance(kind, dict | list):
        inner = _avro_column(name, kind)
        return Column(
            name, inner.type, nullable or inner.nullable, inner.precision, inner.scale, element=inner.element
        )
    if logical == "decimal":
        return Column(name, T.DECIMAL, nullable, precision=spec.get("precision"), scale=spec.get("scale", 0))
    if logical in ("timestamp-millis", "timestamp-micros"):
        return Column(name, T.TIMESTAMPTZ, nullable)
    if logical in ("local-timestamp-millis", "local-timestamp-micros"):
        return Column(name, T.TIMESTAMP, nullable)
    if logical == "date":
        return Column(name, T.DATE, nullable)
    if logical in ("time-millis", "time-micros"):
        return Column(name, T.TIME, nullable)
    if logical == "uuid":
        return Column(name, T.UUID, nullable)
    simple = {
        "boolean": T.BOOLEAN,
        "int": T.INT32,
        "long": T.INT64,
        "float": T.FLOAT32,
        "double": T.FLOAT64,
        "string": T.STRING,
        "bytes": T.BINARY,
        "fixed": T.BINARY,
        "enum": T.STRING,
    }
    if kind in simple:
        return Column(name, simple[kind], nullable)
    if kind == "array":
        element = _avro_column("element", spec.get("items"))
        if element.type in (T.ARRAY, T.JSON):
            return Column(name, T.JSON, nullable)
        return Column(name, T.ARRAY, nullable, element=element.type)
    return Column(name, T.JSON, nullable)  # record, map


def avro_schema(schema_str: str) -> TableSchema:
    """The columns of an Avro record schema (a registry ``AVRO`` schema)."""
    parsed = json.loads(schema_str)
    if not isinstance(parsed, dict) or parsed.get("type") != "record":
        raise BadInputError("the value's Avro schema must be a record")
    return TableSchema(tuple(_avro_column(f["name"], f["type"]) for f in parsed.get("fields", [])))


def _json_schema_column(name: str, prop: dict[str, Any], required: bool) -> Column:
    kinds = prop.get("type", "string")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    nullable = "null" in kinds or not required
    rest = [k for k in kinds if k != "null"]
    kind = rest[0] if len(rest) == 1 else "object"
    fmt = prop.get("format")
    if kind == "integer":
        return Column(name, T.INT64, nullable)
    if kind == "number":
        return Column(name, T.FLOAT64, nullable)
    if kind == "boolean":
        return Column(name, T.BOOLEAN, nullable)
    if kind == "string":
        by_format = {"date-time": T.TIMESTAMPTZ, "date": T.DATE, "time": T.TIME, "uuid": T.UUID}
        return Column(name, by_format.get(str(fmt), T.STRING), nullable, length=prop.get("maxLength"))
    return Column(name, T.JSON, nullable)


def json_schema(schema_str: str) -> TableSchema:
    """The columns of a JSON Schema object (a registry ``JSON`` schema)."""
    parsed = json.loads(schema_str)
    props = parsed.get("properties")
    if not isinstance(props, dict):
        raise BadInputError("the value's JSON Schema must be an object with 'properties'")
    required = set(parsed.get("required", []))
    return TableSchema(tuple(_json_schema_column(n, p, n in required) for n, p in props.items()))


# FieldDescriptor.TYPE_* numbers (stable in the protobuf wire spec)
_PROTO_TYPES = {
    1: T.FLOAT64,  # double
    2: T.FLOAT32,  # float
    3: T.INT64,  # int64
    4: T.DECIMAL,  # uint64: wider than int64
    5: T.INT32,  # int32
    6: T.DECIMAL,  # fixed64 (unsigned)
    7: T.INT64,  # fixed32 (unsigned)
    8: T.BOOLEAN,
    9: T.STRING,
    12: T.BINARY,
    13: T.INT64,  # uint32
    14: T.STRING,  # enum: its name
    15: T.INT32,  # sfixed32
    16: T.INT64,  # sfixed64
    17: T.INT32,  # sint32
    18: T.INT64,  # sint64
}
_PROTO_MESSAGE = 11
_PROTO_WELL_KNOWN = {
    "google.protobuf.Timestamp": T.TIMESTAMPTZ,
    "google.protobuf.StringValue": T.STRING,
    "google.protobuf.Int64Value": T.INT64,
    "google.protobuf.Int32Value": T.INT32,
    "google.protobuf.BoolValue": T.BOOLEAN,
    "google.protobuf.DoubleValue": T.FLOAT64,
}


def _proto_type(field: Any) -> T:
    if field.type == _PROTO_MESSAGE:
        return _PROTO_WELL_KNOWN.get(field.message_type.full_name, T.JSON)
    return _PROTO_TYPES.get(field.type, T.JSON)


def protobuf_schema(message: Any) -> TableSchema:
    """The columns of a protobuf message descriptor (every field nullable: absent reads NULL)."""
    columns = []
    for field in message.fields:
        repeated = field.is_repeated if hasattr(field, "is_repeated") else field.label == 3
        kind = _proto_type(field)
        if repeated:
            scalar = field.type != _PROTO_MESSAGE and kind is not T.DECIMAL
            columns.append(
                Column(field.name, T.ARRAY, True, element=kind)
                if scalar
                else Column(field.name, T.JSON, True)
            )
        elif kind is T.DECIMAL:
            columns.append(Column(field.name, T.DECIMAL, True, precision=20, scale=0))
        else:
            columns.append(Column(field.name, kind, True))
    return TableSchema(tuple(columns))


def _b64(value: Any) -> str:
    return base64.b64encode(bytes(value)).decode()


def _converter(column: Column) -> Any:
    """How values of a JSON, array or interval column become JSON."""
    t = column.type
    if t is T.JSON:
        return lambda v: json.loads(v) if isinstance(v, str) else v
    if t is T.INTERVAL:
        return lambda v: v.total_seconds() if isinstance(v, dt.timedelta) else str(v)
    return lambda v: [x.isoformat() if isinstance(x, dt.date | dt.time) else x for x in v]


def _default(value: Any) -> Any:
    """JSON for the values json cannot write itself (called by the C encoder, only for those)."""
    if isinstance(value, decimal.Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return _b64(value)
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    return str(value)


# Columns whose values the default hook cannot place right: JSON text must be embedded parsed.
_NEEDS_CONVERSION = {T.JSON, T.ARRAY, T.INTERVAL}


class RowEncoder:
    """Rows as Kafka messages: a JSON object per row (decimals as strings, times ISO 8601,
    bytes base64), keyed by the value of a single key column, or a JSON array of several.

    Converters are chosen once per schema, so encoding a row is one dict and one dumps.
    """

    def __init__(self, schema: TableSchema, key_columns: Sequence[str] = ()) -> None:
        self.names = schema.names
        self.converters = [_converter(c) if c.type in _NEEDS_CONVERSION else None for c in schema.columns]
        self.plain = all(f is None for f in self.converters)
        self.dumps = json.JSONEncoder(separators=(",", ":"), default=_default).encode
        index = {name: i for i, name in enumerate(self.names)}
        self.key_at = [index[k] for k in key_columns]

    def _jsonable(self, row: Sequence[Any]) -> dict[str, Any]:
        if self.plain:
            return dict(zip(self.names, row, strict=True))
        return {
            n: v if f is None or v is None else f(v)
            for n, f, v in zip(self.names, self.converters, row, strict=True)
        }

    def value(self, row: Sequence[Any]) -> bytes:
        return self.dumps(self._jsonable(row)).encode()

    def key(self, row: Sequence[Any]) -> bytes | None:
        if not self.key_at:
            return None
        if len(self.key_at) > 1:
            return self.dumps([row[i] for i in self.key_at]).encode()
        v = row[self.key_at[0]]
        if v is None:
            return None
        if isinstance(v, str):
            return v.encode()
        return str(v if isinstance(v, int | float) else _default(v)).encode()


def decode_key(key: bytes | None) -> str | None:
    if key is None:
        return None
    try:
        return key.decode()
    except UnicodeDecodeError:
        return "0x" + key.hex()
