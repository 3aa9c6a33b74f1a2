"""Pure state checks: decoding stored state, whether a record fits a load, ``state set`` values."""

from __future__ import annotations

import json

import pytest

from airflow_provider_dpone.contracts.errors import BadInputError, StateError
from airflow_provider_dpone.contracts.manifest import LoadSpec, parse_manifest
from airflow_provider_dpone.contracts.state import (
    CursorState,
    OffsetsState,
    ResumeState,
    XminState,
    decode_state,
    state_mismatch,
)
from airflow_provider_dpone.contracts.state_check import cursor_value_type, state_for_set

PG = {"connector": "postgres", "conn_id": "pg"}


def _load(incremental: dict | None, connector: dict | None = None) -> LoadSpec:
    source: dict = {**(connector or PG), "table": "public.orders"}
    if incremental is not None:
        source["incremental"] = incremental
    if connector and connector["connector"] == "kafka":
        source = {**connector, "topic": "t", "incremental": incremental, "fields": {"id": "int64"}}
    doc = {
        "pipeline": "p",
        "loads": [
            {
                "name": "orders",
                "source": source,
                "sink": {**PG, "table": "raw.orders", "strategy": "incremental_append", "unique_key": ["id"]},
            }
        ],
    }
    return parse_manifest(doc).load("orders")


CURSOR = _load({"mode": "cursor", "cursor": "updated_at"})
XMIN = _load({"mode": "xmin"})
OFFSETS = _load({"mode": "offsets"}, {"connector": "kafka", "conn_id": "k"})
FULL = _load(None)

# --- decode_state: what a backend stored ---------------------------------------------------------

CORRUPT = [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "a JSON array, not an object"),
    ('"2024-01-01"', "a JSON string, not an object"),
    ("42", "a JSON number, not an object"),
    ("true", "a JSON boolean, not an object"),
    ('{"cursor": "u", "value": "x"}', "no 'kind'"),
    ('{"kind": "lsn", "value": 1}', "unknown kind 'lsn'"),
    ('{"kind": "cursor", "cursor": "u"}', "missing field 'value'"),
    ('{"kind": "cursor", "cursor": "u", "value": "x", "extra": 1}', "unexpected field 'extra'"),
    ('{"kind": "cursor", "cursor": "u", "value": 42}', "'value' must be text or null, not int"),
    ('{"kind": "cursor", "cursor": 7, "value": "x"}', "'cursor' must be text, not int"),
    ('{"kind": "cursor", "cursor": "u", "value": "x", "value_type": "bogus"}', "unknown value_type 'bogus'"),
    ('{"kind": "xmin", "xmin": "12"}', "'xmin' must be an integer, not str"),
    ('{"kind": "xmin", "xmin": true}', "'xmin' must be an integer, not bool"),
    ('{"kind": "xmin", "xmin": -1}', "'xmin' must be between 0 and 2**64-1"),
    ('{"kind": "offsets", "topic": "t", "offsets": [1, 2]}', "'offsets' must map partition numbers"),
    ('{"kind": "offsets", "topic": "t", "offsets": {"0": "5"}}', "'offsets' must map partition numbers"),
    ('{"kind": "offsets", "topic": "t", "offsets": {"x": 5}}', "'offsets' must map partition numbers"),
    (
        '{"kind": "resume", "run_id": "r", "checkpoint": [], "staged_rows": 0}',
        "'checkpoint' must be an object",
    ),
]


@pytest.mark.parametrize(("raw", "reason"), CORRUPT)
def test_corrupt_state_names_key_value_reason_and_fix(raw: str, reason: str) -> None:
    with pytest.raises(StateError) as err:
        decode_state(raw, "dpone.p.orders", "orders")
    message = str(err.value)
    assert message.startswith("[DPONE303] stored state at dpone.p.orders is unreadable")
    assert reason in message
    assert f"stored value: {raw}" in message
    assert "dpone state set PATH --load orders" in message
    assert "dpone state reset PATH --load orders" in message


def test_corrupt_state_value_is_truncated_and_resume_key_names_its_load() -> None:
    raw = json.dumps({"kind": "xmin", "xmin": "x" * 1000})
    with pytest.raises(StateError) as err:
        decode_state(raw, "dpone.p.orders.__resume__", "orders.__resume__")
    message = str(err.value)
    assert raw[:200] + "…" in message and raw[:201] not in message
    assert "--load orders " in message and "--load orders." not in message


@pytest.mark.parametrize("raw", [None, "", "  ", "null"])
def test_nothing_or_json_null_is_no_state(raw: str | None) -> None:
    assert decode_state(raw, "k", "orders") is None


def test_decode_state_drops_the_backends_envelope_but_not_a_records_own_field() -> None:
    raw = json.dumps({"kind": "xmin", "xmin": 5, "run_id": "r1"})
    assert decode_state(raw, "k", "orders", envelope=("run_id",)) == XminState(5)
    resume = json.dumps({"kind": "resume", "run_id": "r1", "checkpoint": {"page": 2}, "staged_rows": 7})
    assert decode_state(resume, "k", "orders", envelope=("run_id",)) == ResumeState("r1", {"page": 2}, 7)
    old = json.dumps({"kind": "cursor", "cursor": "u", "value": "2024-01-01"})  # before value_type
    assert decode_state(old, "k", "orders") == CursorState("u", "2024-01-01", "string")
    offsets = json.dumps({"kind": "offsets", "topic": "t", "offsets": {"0": 5, "1": 0}})
    assert decode_state(offsets, "k", "orders") == OffsetsState("t", {"0": 5, "1": 0})


# --- state_mismatch: does a record fit the load ----------------------------------------------------


def test_state_mismatch() -> None:
    good = CursorState("updated_at", "2024-01-01", "date")
    assert state_mismatch(CURSOR, good) is None
    assert state_mismatch(CURSOR, None) is None
    assert state_mismatch(XMIN, XminState(1)) is None
    assert state_mismatch(OFFSETS, OffsetsState("t", {"0": 1})) is None
    assert state_mismatch(FULL, good) is None  # a load without incremental ignores state
    assert state_mismatch(CURSOR, XminState(1)) == (
        "an xmin state does not fit load 'orders', which uses cursor mode "
        '(a cursor state on \'updated_at\'); stored: {"kind": "xmin", "xmin": 1}'
    )
    assert "a cursor state on 'id' does not fit load 'orders', which uses cursor 'updated_at'" in (
        state_mismatch(CURSOR, CursorState("id", "5", "int64")) or ""
    )
    assert "which uses xmin mode (an xmin state)" in (state_mismatch(XMIN, good) or "")
    assert "which uses offsets mode (an offsets state)" in (state_mismatch(OFFSETS, XminState(1)) or "")
    resume = state_mismatch(CURSOR, ResumeState("r", {}, 0)) or ""
    assert "a resume checkpoint is stored under load 'orders' itself" in resume
    assert "orders.__resume__" in resume


# --- cursor values ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected", "value_type"),
    [
        ("2024-01-01T00:00:00Z", None, "timestamptz"),
        ("2024-01-01 00:00:00+05:30", None, "timestamptz"),
        ("2024-01-01T00:00:00.123456-08", None, "timestamptz"),
        ("2024-01-01T00:00:00", None, "timestamp"),
        ("2024-01-01", None, "date"),
        ("42", None, "int64"),
        ("-7", None, "int64"),
        ("12.50", None, "decimal"),
        ("2024-01-01 00:00:00", "timestamptz", "timestamptz"),  # ClickHouse writes zoned values so
        ("2024-01-01", "timestamp", "timestamp"),
        ("42", "int32", "int32"),
        ("12", "decimal", "decimal"),
        ("1.5e3", "float64", "float64"),
        ("abc", "string", "string"),
        ("2024-01-01T00:00:00Z", "string", "string"),
        ("0b8e6c1e-62cb-4a43-9f5d-4b0a1a4c5c6e", "uuid", "uuid"),
    ],
)
def test_cursor_value_type(text: str, expected: str | None, value_type: str) -> None:
    assert cursor_value_type(text, expected) == value_type


@pytest.mark.parametrize(
    ("text", "expected", "reason"),
    [
        ("garbage", None, "cannot tell the cursor's type from 'garbage'"),
        ("garbage", "timestamptz", "'garbage' is not an ISO 8601 timestamp"),
        ("42", "timestamptz", "'42' is not an ISO 8601 timestamp"),
        ("2024-02-30", None, "'2024-02-30' is not a valid date"),
        ("2024-13-01T00:00:00", None, "'2024-13-01T00:00:00' is not a valid timestamp"),
        ("2024-01-01T00:00:00Z", "timestamp", "has a UTC offset"),
        ("2024-01-01T00:00:00", "date", "'2024-01-01T00:00:00' is not a date (YYYY-MM-DD)"),
        ("Mon, 05 May 2014 00:15:17 +0300", "timestamptz", "not an ISO 8601 timestamp"),
        ("1e309", None, "cannot tell the cursor's type"),
        ("1e309", "float64", "'1e309' is not a finite number"),
        ("NaN", "decimal", "'NaN' is not a number"),
        ("1.5", "int64", "'1.5' is not an integer"),
        ("40000", "int16", "'40000' is out of range for int16"),
        ("9223372036854775808", None, "out of range for int64"),
        ("nope", "uuid", "'nope' is not a UUID"),
    ],
)
def test_cursor_value_type_refuses(text: str, expected: str | None, reason: str) -> None:
    with pytest.raises(ValueError) as err:
        cursor_value_type(text, expected)
    assert reason in str(err.value)


# --- state_for_set ---------------------------------------------------------------------------------

STORED_TZ = {
    "kind": "cursor",
    "cursor": "updated_at",
    "value": "2024-01-01 00:00:00+00",
    "value_type": "timestamptz",
}


@pytest.mark.parametrize(
    ("load", "value", "stored", "record"),
    [
        (
            CURSOR,
            "2024-01-01T00:00:00Z",
            None,
            CursorState("updated_at", "2024-01-01T00:00:00Z", "timestamptz"),
        ),
        (
            CURSOR,
            " 2024-01-01T00:00:00 ",
            None,
            CursorState("updated_at", "2024-01-01T00:00:00", "timestamp"),
        ),
        (CURSOR, "2024-01-01", None, CursorState("updated_at", "2024-01-01", "date")),
        (CURSOR, "42", None, CursorState("updated_at", "42", "int64")),
        (CURSOR, '"2024-01-01"', None, CursorState("updated_at", "2024-01-01", "date")),
        (CURSOR, "2024-06-01", STORED_TZ, CursorState("updated_at", "2024-06-01", "timestamptz")),
        (CURSOR, "2024-06-01", "{corrupt", CursorState("updated_at", "2024-06-01", "date")),
        (  # "string" is the default older records carry: it does not constrain
            CURSOR,
            "2024-06-01",
            {**STORED_TZ, "value_type": "string"},
            CursorState("updated_at", "2024-06-01", "date"),
        ),
        (
            CURSOR,
            '{"kind": "cursor", "cursor": "updated_at", "value": "abc", "value_type": "string"}',
            None,
            CursorState("updated_at", "abc", "string"),
        ),
        (XMIN, "900", None, XminState(900)),
        (XMIN, '{"kind": "xmin", "xmin": 18446744073709551615}', None, XminState(2**64 - 1)),
        (
            CURSOR,
            '{"kind": "cursor", "cursor": "updated_at", "value": "2024-01-02T00:00:00Z"}',
            None,
            CursorState("updated_at", "2024-01-02T00:00:00Z", "timestamptz"),
        ),
        (
            CURSOR,
            '{"kind": "cursor", "cursor": "updated_at", "value": "7", "value_type": "int32"}',
            None,
            CursorState("updated_at", "7", "int32"),
        ),
        (
            OFFSETS,
            '{"kind": "offsets", "topic": "t", "offsets": {"0": 3}}',
            None,
            OffsetsState("t", {"0": 3}),
        ),
    ],
)
def test_state_for_set(load: LoadSpec, value: str, stored: object, record: object) -> None:
    assert state_for_set(load, value, stored) == record


@pytest.mark.parametrize(
    ("load", "value", "stored", "reason"),
    [
        (CURSOR, None, None, "needs --value"),
        (CURSOR, "", None, "--value: empty"),
        (CURSOR, "  ", None, "--value: empty"),
        (CURSOR, '""', None, "--value: empty"),
        (CURSOR, "null", None, "'null' is not a watermark"),
        (CURSOR, "[]", None, "'[]' is not a watermark"),
        (CURSOR, "{}", None, "no 'kind' field"),
        (CURSOR, "NaN", None, "'NaN' is not a watermark"),
        (CURSOR, "Infinity", None, "'Infinity' is not a watermark"),
        (CURSOR, "-Infinity", None, "'-Infinity' is not a watermark"),
        (CURSOR, "1e309", None, "'1e309' is not a watermark"),
        (CURSOR, "true", None, "'true' is not a watermark"),
        (CURSOR, "garbage", STORED_TZ, "'garbage' is not an ISO 8601 timestamp"),
        (CURSOR, "garbage", None, "cannot tell the cursor's type"),
        (
            CURSOR,
            "42",
            STORED_TZ,
            "cursor 'updated_at' holds timestamptz values (the stored state's value_type)",
        ),
        (CURSOR, "2024-02-30", None, "not a valid date"),
        (CURSOR, "2024-13-01T00:00:00", None, "not a valid timestamp"),
        (CURSOR, "{not json", None, "not valid JSON"),
        (CURSOR, '{"kind": "xmin", "xmin": 1}', None, "uses cursor mode"),
        (CURSOR, '{"kind": "cursor", "cursor": "id", "value": "5"}', None, "uses cursor 'updated_at'"),
        (CURSOR, '{"kind": "cursor", "cursor": "updated_at", "value": null}', None, "dpone state reset"),
        (
            CURSOR,
            '{"kind": "cursor", "cursor": "updated_at", "value": "7", "value_type": "int64"}',
            STORED_TZ,
            "value_type 'int64' does not match the stored state's 'timestamptz'",
        ),
        (
            CURSOR,
            '{"kind": "cursor", "cursor": "updated_at", "value": "garbage", "value_type": "timestamptz"}',
            None,
            "'garbage' is not an ISO 8601 timestamp",
        ),
        (CURSOR, '{"kind": "resume", "run_id": "r", "checkpoint": {}}', None, "resume checkpoint"),
        (XMIN, "-1", None, "non-negative integer"),
        (XMIN, "1.5", None, "non-negative integer"),
        (XMIN, "18446744073709551616", None, "non-negative integer"),
        (XMIN, "2024-01-01", None, "non-negative integer"),
        (XMIN, '{"kind": "xmin", "xmin": -5}', None, "'xmin' must be between 0 and 2**64-1"),
        (OFFSETS, "5", None, "takes a whole state record as JSON"),
        (FULL, "5", None, "no source.incremental"),
    ],
)
def test_state_for_set_refuses(load: LoadSpec, value: str | None, stored: object, reason: str) -> None:
    with pytest.raises(BadInputError) as err:
        state_for_set(load, value, stored)
    assert reason in str(err.value)
