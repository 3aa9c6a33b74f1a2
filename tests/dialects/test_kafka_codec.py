"""Kafka message codec: schemas from Avro / JSON Schema, value coercion, row encoding (pure)."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from decimal import Decimal

import pytest

from airflow_provider_dpone.contracts import records
from airflow_provider_dpone.contracts.errors import BadInputError
from airflow_provider_dpone.contracts.table import CanonicalType as T
from airflow_provider_dpone.contracts.table import Column, TableSchema
from airflow_provider_dpone.dialects import kafka as codec


def test_avro_record_to_columns() -> None:
    schema = codec.avro_schema(
        json.dumps(
            {
                "type": "record",
                "name": "R",
                "fields": [
                    {"name": "id", "type": "long"},
                    {"name": "n", "type": ["null", "int"]},
                    {
                        "name": "amount",
                        "type": {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 3},
                    },
                    {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
                    {"name": "day", "type": {"type": "int", "logicalType": "date"}},
                    {"name": "ref", "type": {"type": "string", "logicalType": "uuid"}},
                    {"name": "tags", "type": {"type": "array", "items": "string"}},
                    {"name": "attrs", "type": {"type": "map", "values": "string"}},
                    {"name": "either", "type": ["int", "string"]},
                ],
            }
        )
    )
    got = {c.name: (c.type, c.nullable) for c in schema.columns}
    assert got == {
        "id": (T.INT64, False),
        "n": (T.INT32, True),
        "amount": (T.DECIMAL, False),
        "at": (T.TIMESTAMPTZ, False),
        "day": (T.DATE, False),
        "ref": (T.UUID, False),
        "tags": (T.ARRAY, False),
        "attrs": (T.JSON, False),
        "either": (T.JSON, True),
    }
    assert schema.column("amount").precision == 10 and schema.column("amount").scale == 3
    with pytest.raises(BadInputError, match="record"):
        codec.avro_schema('"string"')


def test_json_schema_to_columns() -> None:
    schema = codec.json_schema(
        json.dumps(
            {
                "type": "object",
                "properties": {
                    "id": {"type": "integer"},
                    "at": {"type": "string", "format": "date-time"},
                    "score": {"type": ["number", "null"]},
                    "meta": {"type": "object"},
                },
                "required": ["id", "at"],
            }
        )
    )
    assert [(c.name, c.type, c.nullable) for c in schema.columns] == [
        ("id", T.INT64, False),
        ("at", T.TIMESTAMPTZ, False),
        ("score", T.FLOAT64, True),
        ("meta", T.JSON, True),
    ]


def test_values_are_coerced_to_the_declared_types() -> None:
    schema = records.declared_schema(
        {"id": "int64", "amount": "decimal(12,2)", "at": "timestamptz", "doc": "json"}
    )
    row = records.row_of(schema, {"id": "7", "amount": 1.5, "at": "2026-01-01T00:00:00Z", "doc": {"a": [1]}})
    assert row == [7, Decimal("1.5"), dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc), '{"a": [1]}']
    assert records.row_of(schema, {}) == [None, None, None, None]  # absent fields are NULL
    with pytest.raises(BadInputError, match="field 'id'"):
        records.row_of(schema, {"id": "seven"})


def test_rows_encode_exactly() -> None:
    schema = TableSchema(
        (
            Column("id", T.INT64, False),
            Column("amount", T.DECIMAL, precision=12, scale=2),
            Column("at", T.TIMESTAMPTZ),
            Column("ref", T.UUID),
            Column("doc", T.JSON),
            Column("blob", T.BINARY),
        )
    )
    ref = uuid.UUID(int=1)
    row = (
        1,
        Decimal("0.10"),
        dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
        ref,
        '{"x": null}',
        b"\x00\xff",
    )
    encoder = codec.RowEncoder(schema, ["id"])
    assert json.loads(encoder.value(row)) == {
        "id": 1,
        "amount": "0.10",
        "at": "2026-01-01T00:00:00+00:00",
        "ref": str(ref),
        "doc": {"x": None},
        "blob": "AP8=",
    }
    assert encoder.key(row) == b"1"
    assert codec.RowEncoder(schema, ["id", "ref"]).key(row) == f'[1,"{ref}"]'.encode()
    assert codec.RowEncoder(schema, ["amount"]).key((None,) * 6) is None
    assert codec.decode_key(b"\xff\x00") == "0xff00" and codec.decode_key(b"k") == "k"
