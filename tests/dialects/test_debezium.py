"""Debezium's value encodings and envelope, decoded without a broker."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from airflow_provider_dpone.contracts.errors import BadInputError, SourceContractError
from airflow_provider_dpone.contracts.records import declared_schema
from airflow_provider_dpone.dialects.debezium import SEMANTIC, Envelope, field_converters

pytestmark = pytest.mark.unit


def test_semantic_types_decode_to_their_values() -> None:
    assert SEMANTIC["io.debezium.time.Date"](20513) == dt.date(2026, 3, 1)
    assert SEMANTIC["io.debezium.time.MicroTimestamp"](1_000_001) == dt.datetime(1970, 1, 1, 0, 0, 1, 1)
    assert SEMANTIC["io.debezium.time.Timestamp"](1500) == dt.datetime(1970, 1, 1, 0, 0, 1, 500000)
    assert SEMANTIC["io.debezium.time.MicroTime"](3_600_000_001) == dt.time(1, 0, 0, 1)
    assert SEMANTIC["io.debezium.time.ZonedTimestamp"]("2026-03-01T10:00:00Z").tzinfo == dt.timezone.utc
    fields = [
        {"field": "a", "type": "bytes", "name": "org.apache.kafka.connect.data.Decimal", "parameters": {"scale": "2"}},
        {"field": "b", "type": "struct", "name": "io.debezium.data.VariableScaleDecimal"},
        {"field": "c", "type": "bytes"},
        {"field": "d", "type": "string"},
    ]  # fmt: skip
    convert = field_converters(fields, "field", "type")
    assert convert["a"]("/zg=") == Decimal("-2.00")  # 0xff38 = -200, scale 2
    assert convert["b"]({"scale": 3, "value": "MDk="}) == Decimal("12.345")  # 0x3039 = 12345
    assert convert["c"]("AAE=") == b"\x00\x01" and "d" not in convert


def test_envelope_ops_keys_and_refusals() -> None:
    env = Envelope("t", declared_schema({"id": "int64", "at": "timestamp"}))
    assert env.change({"op": "c", "after": {"id": 1, "at": "2026-01-01T00:00:00"}}, None) == (
        "I",
        {"id": 1, "at": "2026-01-01T00:00:00"},
    )
    assert env.change({"op": "r", "after": {"id": 1}}, None)[0] == "U"
    assert env.change({"op": "d", "before": None}, b'{"schema": {}, "payload": {"id": 7}}') == (
        "D",
        {"id": 7},
    )
    assert env.change({"op": "m"}, None) is None
    with pytest.raises(BadInputError, match="holds a number"):
        env.change({"op": "c", "after": {"id": 1, "at": 1700000000000}}, None)
    with pytest.raises(SourceContractError, match="truncated"):
        env.change({"op": "t"}, None)
    with pytest.raises(SourceContractError, match="not a Debezium change event"):
        env.change({"id": 1}, None)


def test_nanoseconds_round_in_integers_and_24h_is_refused() -> None:
    nano = SEMANTIC["io.debezium.time.NanoTimestamp"]
    assert nano(1238694760834100599).microsecond == 834101  # a float would give 834100
    assert nano(1500).microsecond == 2 and nano(2500).microsecond == 2  # half to even
    with pytest.raises(SourceContractError, match="not within one day"):
        SEMANTIC["io.debezium.time.MicroTime"](86_400_000_000)


def test_the_unavailable_value_placeholder_is_never_written() -> None:
    env = Envelope("t", declared_schema({"id": "int64", "body": "string"}))
    with pytest.raises(SourceContractError, match=r"placeholder.*\['body'\].*REPLICA IDENTITY FULL"):
        env.change({"op": "u", "after": {"id": 1, "body": "__debezium_unavailable_value"}}, None)
    assert (
        env.change({"op": "d", "before": {"id": 1, "body": "__debezium_unavailable_value"}}, None)[0] == "D"
    )


@pytest.mark.parametrize(
    "value",
    [
        ["__debezium_unavailable_value"],
        list(b"__debezium_unavailable_value"),
        {"__debezium_unavailable_value": "x"},
    ],
)
def test_the_placeholder_in_arrays_and_maps_is_refused_too(value) -> None:
    env = Envelope("t", declared_schema({"id": "int64", "tags": "json"}))
    with pytest.raises(SourceContractError, match="placeholder"):
        env.change({"op": "u", "after": {"id": 1, "tags": value}}, None)
    assert env.change({"op": "u", "after": {"id": 1, "tags": ["a", "b"]}}, None)[0] == "U"
