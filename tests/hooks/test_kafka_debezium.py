"""Debezium change topics (``envelope: debezium``) into ``cdc_apply``, through the real
Kafka-protocol broker. The events are built as Debezium's PostgreSQL connector documents them
(its data change events and data type mappings): the JSON converter's ``{schema, payload}``
with semantic types (MicroTimestamp, ZonedTimestamp, Date, Decimal as unscaled bytes, Json),
deletes whose ``before`` holds the key only (REPLICA IDENTITY DEFAULT), tombstones after them,
``r`` for snapshot reads; and the same envelope in Avro through the schema registry."""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid
from decimal import Decimal

import pytest

from airflow_provider_dpone.contracts.errors import BadInputError, ManifestError, SourceContractError
from airflow_provider_dpone.contracts.manifest import parse_manifest
from tests.helpers import run_first_load as run

pytestmark = pytest.mark.integration

ROW = [
    {"type": "int64", "optional": False, "field": "id"},
    {"type": "string", "optional": True, "field": "name"},
    {
        "type": "bytes",
        "optional": True,
        "name": "org.apache.kafka.connect.data.Decimal",
        "version": 1,
        "parameters": {"scale": "2", "connect.decimal.precision": "12"},
        "field": "amount",
    },
    {
        "type": "int64",
        "optional": True,
        "name": "io.debezium.time.MicroTimestamp",
        "version": 1,
        "field": "updated",
    },
    {
        "type": "string",
        "optional": True,
        "name": "io.debezium.time.ZonedTimestamp",
        "version": 1,
        "field": "ts",
    },
    {"type": "int32", "optional": True, "name": "io.debezium.time.Date", "version": 1, "field": "day"},
    {"type": "string", "optional": True, "name": "io.debezium.data.Json", "version": 1, "field": "doc"},
]
SCHEMA = {
    "type": "struct",
    "name": "dbserver1.public.items.Envelope",
    "optional": False,
    "fields": [
        {"type": "struct", "fields": ROW, "optional": True, "name": "dbserver1.public.items.Value", "field": "before"},
        {"type": "struct", "fields": ROW, "optional": True, "name": "dbserver1.public.items.Value", "field": "after"},
        {"type": "struct", "fields": [], "optional": False, "name": "io.debezium.connector.postgresql.Source", "field": "source"},
        {"type": "string", "optional": False, "field": "op"},
        {"type": "int64", "optional": True, "field": "ts_ms"},
    ],
}  # fmt: skip
FIELDS = {
    "id": "int64",
    "name": "string",
    "amount": "decimal(12,2)",
    "updated": "timestamp",
    "ts": "timestamptz",
    "day": "date",
    "doc": "json",
}
UPDATED = dt.datetime(2026, 3, 1, 12, 30, 15, 123456)


def _unscaled(amount: str) -> str:
    n = int(Decimal(amount).scaleb(2))
    return base64.b64encode(n.to_bytes(8, "big", signed=True).lstrip(b"\x00") or b"\x00").decode()


def row(i: int, name: str) -> dict:
    micros = int((UPDATED - dt.datetime(1970, 1, 1)).total_seconds()) * 1_000_000 + UPDATED.microsecond
    return {
        "id": i,
        "name": name,
        "amount": _unscaled(f"{i}.25"),
        "updated": micros + i,
        "ts": f"2026-03-01T10:00:{i % 60:02d}Z",
        "day": 20513 + i,  # days since 1970-01-01
        "doc": json.dumps({"n": i}),
    }


def key(i: int) -> bytes:
    schema = {"type": "struct", "fields": [ROW[0]], "optional": False, "name": "dbserver1.public.items.Key"}
    return json.dumps({"schema": schema, "payload": {"id": i}}).encode()


def event(op: str, before: dict | None, after: dict | None, with_schema: bool = True) -> bytes:
    payload = {"before": before, "after": after, "source": {"connector": "postgresql"}, "op": op, "ts_ms": 1}
    return json.dumps({"schema": SCHEMA, "payload": payload} if with_schema else payload).encode()


def manifest(topic: str, **source):
    load = {
        "name": "items",
        "source": {
            "connector": "kafka",
            "conn_id": "kafka",
            "topic": topic,
            "incremental": {"mode": "offsets"},
            "envelope": "debezium",
            **source,
        },
        "sink": {
            "connector": "postgres",
            "conn_id": "dst",
            "table": "raw.items",
            "strategy": "cdc_apply",
            "unique_key": ["id"],
        },
    }
    return parse_manifest(
        {"pipeline": "dbz", "state": {"backend": "table", "conn_id": "dst"}, "loads": [load]}
    )


def test_json_events_with_their_schema_apply_inserts_updates_deletes(clean_pg, kafka) -> None:
    pg = clean_pg
    topic = f"dbz_{uuid.uuid4().hex[:8]}"
    kafka.create_topic(topic, 3)
    messages = [(key(i), event("r", None, row(i, f"snap{i}"))) for i in range(1, 21)]
    messages += [(key(21), event("c", None, row(21, "new")))]
    messages += [(key(2), event("u", None, row(2, "changed")))]
    messages += [
        (key(3), event("d", {**dict.fromkeys(FIELDS, None), "id": 3}, None)),
        (key(3), None),
    ]
    kafka.produce(topic, messages)
    m = manifest(topic, fields=FIELDS)
    r1 = run(m)
    assert r1.status == "success", r1.error
    assert r1.sink["finalize"]["rows_deleted"] == 0  # the first batch created the target
    got = pg.query(
        "dst", "select id, name, amount::text, updated, ts, day, doc->>'n' from raw.items order by id"
    )
    assert [g[0] for g in got] == [1, 2, *range(4, 22)]
    one = got[0]
    assert one[1:4] == ("snap1", "1.25", UPDATED + dt.timedelta(microseconds=1))
    assert one[4] == dt.datetime(2026, 3, 1, 10, 0, 1, tzinfo=dt.timezone.utc)
    assert one[5] == dt.date(2026, 3, 2) and one[6] == "1"  # day 20514
    assert got[1][1] == "changed"
    assert r1.state_after["kind"] == "offsets" and sum(r1.state_after["offsets"].values()) == 24

    kafka.produce(
        topic,
        [
            (key(4), event("d", {"id": 4, "name": None}, None)),
            (key(4), None),
            (key(5), event("u", None, row(5, "v2"))),
        ],
    )
    r2 = run(m, "r2")
    assert r2.sink["finalize"]["rows_deleted"] == 1 and r2.sink["finalize"]["rows_updated"] == 1
    assert pg.query("dst", "select count(*), max(name) filter (where id = 5) from raw.items") == [(19, "v2")]
    r3 = run(m, "r3")
    assert r3.rows == 0 and r3.state_after == r2.state_after


def test_a_delete_without_before_takes_its_key_and_events_without_schema_need_iso_times(
    clean_pg, kafka
) -> None:
    pg = clean_pg
    topic = f"dbz_{uuid.uuid4().hex[:8]}"
    kafka.create_topic(topic, 1)
    plain = {**row(1, "a"), "amount": "1.25", "updated": "2026-03-01T12:30:15", "day": "2026-03-03"}
    kafka.produce(topic, [(key(1), event("c", None, plain, with_schema=False))])
    m = manifest(topic, fields=FIELDS)
    assert run(m).status == "success"
    kafka.produce(topic, [(key(1), event("d", None, None, with_schema=False))])
    assert run(m, "r2").sink["finalize"]["rows_deleted"] == 1
    assert pg.query("dst", "select count(*) from raw.items") == [(0,)]
    kafka.produce(topic, [(key(2), event("c", None, row(2, "b"), with_schema=False))])
    with pytest.raises(BadInputError, match=r"holds a number.*schemas.enable=true"):
        run(m, "r3")


def test_a_truncate_event_fails_before_anything_is_applied(clean_pg, kafka) -> None:
    pg = clean_pg
    topic = f"dbz_{uuid.uuid4().hex[:8]}"
    kafka.create_topic(topic, 1)
    kafka.produce(topic, [(key(1), event("c", None, row(1, "a")))])
    m = manifest(topic, fields=FIELDS)
    r1 = run(m)
    kafka.produce(topic, [(key(2), event("c", None, row(2, "b"))), (None, event("t", None, None))])
    with pytest.raises(SourceContractError, match="truncated"):
        run(m, "r2")
    assert pg.query("dst", "select id from raw.items") == [(1,)]
    assert (
        json.loads(pg.query("dst", "select state::text from dpone.state")[0][0])["offsets"]
        == r1.state_after["offsets"]
    )


AVRO_ROW = {
    "type": "record",
    "name": "Value",
    "namespace": "dbserver1.public.items",
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "name", "type": ["null", "string"], "default": None},
        {
            "name": "amount",
            "type": ["null", {"type": "bytes", "scale": 2, "precision": 12, "connect.version": 1,
                              "connect.parameters": {"scale": "2", "connect.decimal.precision": "12"},
                              "connect.name": "org.apache.kafka.connect.data.Decimal", "logicalType": "decimal"}],
            "default": None,
        },
        {"name": "updated", "type": ["null", {"type": "long", "connect.version": 1,
                                              "connect.name": "io.debezium.time.MicroTimestamp"}], "default": None},
        {"name": "day", "type": ["null", {"type": "int", "connect.version": 1,
                                          "connect.name": "io.debezium.time.Date"}], "default": None},
    ],
}  # fmt: skip
AVRO = json.dumps(
    {
        "type": "record",
        "name": "Envelope",
        "namespace": "dbserver1.public.items",
        "fields": [
            {"name": "before", "type": ["null", AVRO_ROW], "default": None},
            {"name": "after", "type": ["null", "Value"], "default": None},
            {"name": "op", "type": "string"},
            {"name": "ts_ms", "type": ["null", "long"], "default": None},
        ],
    }
)


def test_avro_events_through_the_schema_registry(clean_pg, kafka) -> None:
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    pg = clean_pg
    topic = f"dbz_{uuid.uuid4().hex[:8]}"
    kafka.create_topic(topic, 2)
    registry = SchemaRegistryClient({"url": kafka.registry.url})
    serialize = AvroSerializer(registry, AVRO)
    ctx = SerializationContext(topic, MessageField.VALUE)
    micros = (UPDATED - dt.datetime(1970, 1, 1)) // dt.timedelta(microseconds=1)

    def value(i: int, name: str) -> dict:
        return {"id": i, "name": name, "amount": Decimal(f"{i}.50"), "updated": micros, "day": 20513}

    events = [{"before": None, "after": value(i, f"n{i}"), "op": "c", "ts_ms": 1} for i in range(1, 6)]
    events.append(
        {
            "before": {"id": 2, "name": None, "amount": None, "updated": None, "day": None},
            "after": None,
            "op": "d",
            "ts_ms": 2,
        }
    )
    kafka.produce(topic, [(str(e["after"] or e["before"])[:9].encode(), serialize(e, ctx)) for e in events])
    report = run(manifest(topic, value_format="avro"))
    assert report.status == "success", report.error
    assert pg.query("dst", "select id, name, amount::text, updated, day from raw.items order by id")[:2] == [
        (1, "n1", "1.50", UPDATED, dt.date(2026, 3, 1)),
        (3, "n3", "3.50", UPDATED, dt.date(2026, 3, 1)),
    ]
    types = dict(
        pg.query(
            "dst", "select column_name, data_type from information_schema.columns where table_name = 'items'"
        )
    )
    assert (
        types["updated"] == "timestamp without time zone"
        and types["day"] == "date"
        and types["amount"] == "numeric"
    )


def test_a_debezium_topic_needs_cdc_apply_and_declared_json_fields() -> None:
    with pytest.raises(ManifestError, match="only 'cdc_apply' applies it"):
        body = manifest("t", fields=FIELDS).model_dump(mode="json", by_alias=True)
        body["loads"][0]["sink"]["strategy"] = "incremental_merge"
        parse_manifest(body)
    with pytest.raises(ManifestError, match="needs 'fields'"):
        manifest("t")


def test_json_events_into_clickhouse(clean_pg, clean_ch, kafka) -> None:
    ch = clean_ch
    topic = f"dbz_{uuid.uuid4().hex[:8]}"
    kafka.create_topic(topic, 2)
    kafka.produce(topic, [(key(i), event("c", None, row(i, f"n{i}"))) for i in range(1, 11)])
    kafka.produce(
        topic, [(key(2), event("u", None, row(2, "two"))), (key(2), event("u", None, row(2, "zwei")))]
    )
    kafka.produce(
        topic, [(key(3), event("d", {**dict.fromkeys(FIELDS, None), "id": 3}, None)), (key(3), None)]
    )
    body = manifest(topic, fields=FIELDS).model_dump(mode="json", by_alias=True, exclude_none=True)
    body["loads"][0]["sink"] = {
        "connector": "clickhouse",
        "conn_id": "ch",
        "table": "raw.items",
        "strategy": "cdc_apply",
        "unique_key": ["id"],
    }
    m = parse_manifest(body)
    r1 = run(m)
    assert r1.status == "success", r1.error
    rows = ch.query("select id, name, toString(amount), day from raw.items order by id")
    assert [r[0] for r in rows] == [1, 2, *range(4, 11)]
    assert rows[1][1] == "zwei" and rows[0][2] == "1.25" and rows[0][3] == dt.date(2026, 3, 2)
