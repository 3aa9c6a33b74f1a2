"""Kafka as source and sink against a real Kafka-protocol broker (noida-db)."""

from __future__ import annotations

import json
import signal
import uuid

import pytest

from airflow_provider_dpone.contracts.errors import BadInputError, ManifestError
from airflow_provider_dpone.contracts.manifest import parse_manifest
from tests.helpers import run_first_load as run
from tests.helpers import run_killed

pytestmark = pytest.mark.integration


def topic_name() -> str:
    return f"t_{uuid.uuid4().hex[:8]}"


def manifest(source: dict, sink: dict, **load):
    body = {"name": "msgs", "source": source, "sink": sink, **load}
    return parse_manifest(
        {"pipeline": "kfk", "state": {"backend": "table", "conn_id": "dst"}, "loads": [body]}
    )


def to_kafka(topic: str, **sink):
    return manifest(
        {"connector": "postgres", "conn_id": "src", "table": "orders"},
        {
            "connector": "kafka",
            "conn_id": "kafka",
            "topic": topic,
            "strategy": "incremental_merge",
            "unique_key": ["id"],
            **sink,
        },
    )


def from_kafka(topic: str, sink: dict | None = None, **source):
    return manifest(
        {
            "connector": "kafka",
            "conn_id": "kafka",
            "topic": topic,
            "incremental": {"mode": "offsets"},
            **source,
        },
        {
            "connector": "postgres",
            "conn_id": "dst",
            "table": "raw.msgs",
            "strategy": "incremental_append",
            **(sink or {}),
        },
    )


ORDERS = """
create table orders (id bigint primary key, amount numeric(12,2) not null, note text,
                     at timestamptz not null, doc jsonb, _dpone_deleted_at timestamptz);
insert into orders select g, g * 1.5, 'n' || g, timestamptz '2026-01-01 00:00+00' + g * interval '1 s',
                          jsonb_build_object('g', g), null
from generate_series(1, 500) g;
"""


def test_postgres_to_kafka_keyed_upserts_in_one_transaction(clean_pg, kafka) -> None:
    pg = clean_pg
    pg.execute("src", ORDERS)
    topic = topic_name()
    kafka.create_topic(topic, 3)
    report = run(to_kafka(topic), "r1")
    assert report.sink["finalize"]["method"] == "transaction" and report.rows == 500
    messages = kafka.consume_all(topic)
    assert len(messages) == 500 and len({p for p, *_ in messages}) == 3  # spread by key
    by_key = {k.decode(): json.loads(v) for _, _, k, v in messages}
    assert by_key["7"] == {
        "id": 7,
        "amount": "10.50",  # exact: decimals travel as strings
        "note": "n7",
        "at": "2026-01-01T00:00:07+00:00",
        "doc": {"g": 7},
        "_dpone_deleted_at": None,
    }
    # The same key always lands in the same partition (murmur2, as the Java client).
    partitions = {k: p for p, _, k, _ in messages}
    run(to_kafka(topic), "r2")
    again = kafka.consume_all(topic)
    assert len(again) == 1000 and all(partitions[k] == p for p, _, k, _ in again)


def test_deleted_rows_become_tombstones(clean_pg, kafka) -> None:
    pg = clean_pg
    pg.execute("src", ORDERS)
    pg.execute("src", "update orders set _dpone_deleted_at = now() where id in (3, 4)")
    topic = topic_name()
    kafka.create_topic(topic, 1)
    m = manifest(
        {"connector": "postgres", "conn_id": "src", "table": "orders"},
        {
            "connector": "kafka",
            "conn_id": "kafka",
            "topic": topic,
            "strategy": "incremental_merge",
            "unique_key": ["id"],
        },
        reconciliation={"deletes": "hard"},
    )
    report = run(m, "r1")
    assert report.sink["finalize"]["tombstones"] == 2
    tombstones = sorted(k for _, _, k, v in kafka.consume_all(topic) if v is None)
    assert tombstones == [b"3", b"4"]


def test_an_incremental_load_sends_the_flagged_rows_of_each_window_as_tombstones(clean_pg, kafka) -> None:
    """The flag is the source's: an incremental read needs no key set to carry deletes."""
    pg = clean_pg
    pg.execute("src", ORDERS)
    topic = topic_name()
    kafka.create_topic(topic, 1)
    m = manifest(
        {"connector": "postgres", "conn_id": "src", "table": "orders", "incremental": {"mode": "cursor", "cursor": "at"}},
        {"connector": "kafka", "conn_id": "kafka", "topic": topic, "strategy": "incremental_merge", "unique_key": ["id"]},
        reconciliation={"deletes": "hard"},
    )  # fmt: skip
    assert run(m, "r1").sink["finalize"]["tombstones"] == 0
    pg.execute("src", "update orders set _dpone_deleted_at = now(), at = now() where id in (7, 8)")
    second = run(m, "r2")
    assert second.rows == 2 and second.sink["finalize"]["tombstones"] == 2
    tombstones = sorted(k for _, _, k, v in kafka.consume_all(topic) if v is None)
    assert tombstones == [b"7", b"8"]


def test_deletes_without_the_flag_column_fail_before_producing(clean_pg, kafka) -> None:
    pg = clean_pg
    pg.execute("src", ORDERS)
    topic = topic_name()
    kafka.create_topic(topic, 1)
    sink = {"connector": "kafka", "conn_id": "kafka", "topic": topic, "strategy": "incremental_merge"}
    m = manifest(
        {"connector": "postgres", "conn_id": "src", "query": "select id, amount from orders"},
        {**sink, "unique_key": ["id"]},
        reconciliation={"deletes": "hard"},
    )
    with pytest.raises(BadInputError, match="'_dpone_deleted_at' is not a source column"):
        run(m, "r1")
    assert kafka.consume_all(topic) == []


def test_a_failed_load_publishes_nothing_and_the_retry_publishes_once(clean_pg, kafka) -> None:
    pg = clean_pg
    pg.execute("src", ORDERS)
    topic = topic_name()
    kafka.create_topic(topic, 2)
    m = to_kafka(topic)

    # dies after every message was produced, before the commit
    assert run_killed(m, "r1", "mid_finalize") == -signal.SIGKILL
    assert kafka.consume_all(topic) == []  # read_committed consumers see nothing
    assert len(kafka.consume_all(topic, committed_only=False)) == 500  # the data is in the log, uncommitted
    run(m, "r1")  # the retry fences the killed producer (same transactional.id) and commits its own
    committed = kafka.consume_all(topic)
    assert len(committed) == 500 and len({k for _, _, k, _ in committed}) == 500


def test_full_refresh_and_replace_into_a_topic_are_refused() -> None:
    for strategy in ("full_refresh", "replace"):
        sink = {"connector": "kafka", "conn_id": "kafka", "topic": "t", "strategy": strategy}
        if strategy == "replace":
            sink["replace"] = {"where": "true"}
        with pytest.raises(ManifestError, match="append-only log; it cannot be replaced"):
            manifest({"connector": "postgres", "conn_id": "src", "table": "orders"}, sink)
    with pytest.raises(ManifestError, match="give 'topic'"):
        manifest(
            {"connector": "postgres", "conn_id": "src", "table": "orders"},
            {"connector": "kafka", "conn_id": "kafka", "table": "t", "strategy": "incremental_append"},
        )


def _events(first: int, last: int) -> list[tuple[bytes, bytes]]:
    return [
        (
            str(i).encode(),
            json.dumps(
                {"id": i, "amount": f"{i}.25", "at": f"2026-01-01T00:00:{i % 60:02d}Z", "tags": {"n": i}}
            ).encode(),
        )
        for i in range(first, last + 1)
    ]


FIELDS = {"id": "int64", "amount": "decimal(12,2)", "at": "timestamptz", "tags": "json"}


def test_kafka_to_postgres_reads_to_the_high_watermark_and_keeps_offsets(clean_pg, kafka) -> None:
    pg = clean_pg
    topic = topic_name()
    kafka.create_topic(topic, 3)
    kafka.produce(topic, _events(1, 300))
    m = from_kafka(topic, fields=FIELDS, batch_size=100)
    first = run(m, "r1")
    assert first.rows == 300 and first.source["window"]["pending_messages"] == 300
    state = json.loads(pg.query("dst", "select state::text from dpone.state")[0][0])
    assert state["kind"] == "offsets" and sum(state["offsets"].values()) == 300
    cols = pg.query(
        "dst", "select column_name, data_type from information_schema.columns where table_name = 'msgs'"
    )
    types = dict(cols)
    assert (
        types["amount"] == "numeric"
        and types["at"] == "timestamp with time zone"
        and types["_offset"] == "bigint"
    )
    row = pg.query("dst", "select amount::text, at, tags->>'n', _key from raw.msgs where id = 42")[0]
    assert row[0] == "42.25" and row[2] == "42" and row[3] == "42" and row[1].second == 42
    kafka.produce(topic, _events(301, 350))
    second = run(m, "r2")  # only the new messages
    assert second.rows == 50
    assert pg.query("dst", "select count(*), count(distinct (_partition, _offset)) from raw.msgs") == [
        (350, 350)
    ]
    assert run(m, "r3").rows == 0


def test_a_failed_load_keeps_the_offsets_and_the_retry_converges(clean_pg, kafka) -> None:
    pg = clean_pg
    topic = topic_name()
    kafka.create_topic(topic, 2)
    kafka.produce(topic, _events(1, 100))
    m = from_kafka(topic, {"strategy": "incremental_merge", "unique_key": ["id"]}, fields=FIELDS)
    run(m, "r1")
    before = pg.query("dst", "select state::text from dpone.state")
    kafka.produce(topic, _events(101, 150) + _events(7, 7))  # 50 new, one update
    pg.execute(
        "dst",
        """
        create sequence raw.fail_n;
        create function raw.fail_once() returns trigger language plpgsql as $$
        begin if nextval('raw.fail_n') <= 1 then raise exception 'injected failure'; end if; return new; end $$;
        create trigger fail_once before insert or update on raw.msgs
          for each statement execute function raw.fail_once();
        """,
    )
    with pytest.raises(Exception, match="injected failure"):
        run(m, "r2")
    assert pg.query("dst", "select state::text from dpone.state") == before  # offsets unchanged
    assert pg.query("dst", "select count(*) from raw.msgs") == [(100,)]
    retry = run(m, "r2")  # the Airflow retry: the same messages again, from the stored offsets
    assert retry.rows == 51
    assert pg.query("dst", "select count(*), count(distinct id) from raw.msgs") == [(150, 150)]
    assert (
        sum(json.loads(pg.query("dst", "select state::text from dpone.state")[0][0])["offsets"].values())
        == 151
    )


AVRO = json.dumps(
    {
        "type": "record",
        "name": "Order",
        "fields": [
            {"name": "id", "type": "long"},
            {
                "name": "amount",
                "type": {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2},
            },
            {"name": "at", "type": {"type": "long", "logicalType": "timestamp-micros"}},
            {"name": "note", "type": ["null", "string"], "default": None},
            {"name": "tags", "type": {"type": "array", "items": "string"}},
        ],
    }
)


def test_avro_values_through_the_schema_registry(clean_pg, kafka) -> None:
    import datetime as dt
    from decimal import Decimal

    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    pg = clean_pg
    topic = topic_name()
    kafka.create_topic(topic, 2)
    registry = SchemaRegistryClient({"url": kafka.registry.url})
    serialize = AvroSerializer(registry, AVRO)
    ctx = SerializationContext(topic, MessageField.VALUE)
    at = dt.datetime(2026, 5, 1, 12, 0, tzinfo=dt.timezone.utc)
    values = [
        {
            "id": i,
            "amount": Decimal(f"{i}.10"),
            "at": at,
            "note": None if i % 2 else f"n{i}",
            "tags": ["a", str(i)],
        }
        for i in range(1, 21)
    ]
    kafka.produce(topic, [(str(v["id"]).encode(), serialize(v, ctx)) for v in values])
    report = run(from_kafka(topic, value_format="avro"), "r1")
    assert report.rows == 20
    rows = pg.query("dst", "select id, amount::text, at, note, tags from raw.msgs order by id")
    assert rows[1] == (2, "2.10", at, "n2", ["a", "2"]) and rows[0][3] is None


def test_json_schema_values_through_the_schema_registry(clean_pg, kafka) -> None:
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.json_schema import JSONSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    pg = clean_pg
    topic = topic_name()
    kafka.create_topic(topic, 1)
    schema = json.dumps(
        {
            "$schema": "http://json-schema.org/draft-07/schema#",
            "title": "Event",
            "type": "object",
            "properties": {
                "id": {"type": "integer"},
                "kind": {"type": "string"},
                "at": {"type": "string", "format": "date-time"},
                "score": {"type": ["number", "null"]},
            },
            "required": ["id", "kind", "at"],
        }
    )
    registry = SchemaRegistryClient({"url": kafka.registry.url})
    serialize = JSONSerializer(schema, registry)
    ctx = SerializationContext(topic, MessageField.VALUE)
    events = [{"id": i, "kind": "k", "at": "2026-02-01T00:00:00+00:00", "score": i / 2} for i in range(1, 11)]
    kafka.produce(topic, [(None, serialize(e, ctx)) for e in events])
    assert run(from_kafka(topic, value_format="json_schema"), "r1").rows == 10
    assert pg.query("dst", "select sum(score), min(at)::text from raw.msgs") == [
        (27.5, "2026-02-01 00:00:00+00")
    ]


def test_kafka_to_clickhouse(clean_pg, clean_ch, kafka) -> None:
    ch = clean_ch
    topic = topic_name()
    kafka.create_topic(topic, 3)
    kafka.produce(topic, _events(1, 200))
    m = manifest(
        {
            "connector": "kafka",
            "conn_id": "kafka",
            "topic": topic,
            "incremental": {"mode": "offsets"},
            "fields": FIELDS,
        },
        {
            "connector": "clickhouse",
            "conn_id": "ch",
            "table": "raw.msgs",
            "strategy": "incremental_merge",
            "unique_key": ["id"],
        },
    )
    assert run(m, "r1").rows == 200
    kafka.produce(
        topic,
        [(b"5", json.dumps({"id": 5, "amount": "99.99", "at": "2026-01-02T00:00:00Z", "tags": {}}).encode())],
    )
    assert run(m, "r2").rows == 1
    assert ch.query("select count(), uniqExact(id) from raw.msgs") == [(200, 200)]
    assert ch.query("select toString(amount) from raw.msgs where id = 5") == [("99.99",)]


def test_consumer_group_is_committed_after_the_sink_when_asked(clean_pg, kafka) -> None:
    from confluent_kafka import Consumer, TopicPartition

    topic = topic_name()
    kafka.create_topic(topic, 2)
    kafka.produce(topic, _events(1, 40))
    run(from_kafka(topic, fields=FIELDS, commit_offsets=True), "r1")
    state = json.loads(clean_pg.query("dst", "select state::text from dpone.state")[0][0])["offsets"]
    consumer = Consumer({"bootstrap.servers": kafka.bootstrap, "group.id": "dpone.kfk.msgs"})
    committed = consumer.committed([TopicPartition(topic, p) for p in (0, 1)], timeout=30)
    consumer.close()
    assert {str(tp.partition): tp.offset for tp in committed} == state


def _order_message_class():
    """A protobuf message class built at run time (no generated code in the repository)."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, timestamp_pb2

    F = descriptor_pb2.FieldDescriptorProto
    proto = descriptor_pb2.FileDescriptorProto(name="orders.proto", package="shop", syntax="proto3")
    proto.dependency.append("google/protobuf/timestamp.proto")
    msg = proto.message_type.add(name="Order")
    for number, (name, type_, label, type_name) in enumerate(
        [
            ("id", F.TYPE_INT64, F.LABEL_OPTIONAL, None),
            ("status", F.TYPE_ENUM, F.LABEL_OPTIONAL, ".shop.Status"),
            ("amount_cents", F.TYPE_UINT64, F.LABEL_OPTIONAL, None),
            ("at", F.TYPE_MESSAGE, F.LABEL_OPTIONAL, ".google.protobuf.Timestamp"),
            ("tags", F.TYPE_STRING, F.LABEL_REPEATED, None),
            ("paid", F.TYPE_BOOL, F.LABEL_OPTIONAL, None),
        ],
        start=1,
    ):
        field = msg.field.add(name=name, number=number, type=type_, label=label)
        if type_name:
            field.type_name = type_name
    enum = proto.enum_type.add(name="Status")
    enum.value.add(name="NEW", number=0)
    enum.value.add(name="PAID", number=1)
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(timestamp_pb2.DESCRIPTOR.serialized_pb)
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("shop.Order"))


def test_protobuf_values_through_the_schema_registry(clean_pg, kafka) -> None:
    import datetime as dt

    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.protobuf import ProtobufSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    pg = clean_pg
    topic = topic_name()
    kafka.create_topic(topic, 2)
    Order = _order_message_class()
    serialize = ProtobufSerializer(
        Order, SchemaRegistryClient({"url": kafka.registry.url}), {"use.deprecated.format": False}
    )
    ctx = SerializationContext(topic, MessageField.VALUE)
    messages = []
    for i in range(1, 31):
        order = Order(id=i, status=i % 2, amount_cents=2**63 + i, tags=["a", str(i)], paid=i % 3 == 0)
        order.at.FromDatetime(dt.datetime(2026, 3, 1, 12, 0, i, tzinfo=dt.timezone.utc))
        messages.append((str(i).encode(), serialize(order, ctx)))
    kafka.produce(topic, messages)
    report = run(from_kafka(topic, value_format="protobuf"), "r1")
    assert report.rows == 30
    rows = pg.query(
        "dst",
        "select id, status, amount_cents::text, at, tags, paid from raw.msgs where id in (1, 3) order by id",
    )
    at1 = dt.datetime(2026, 3, 1, 12, 0, 1, tzinfo=dt.timezone.utc)
    assert rows[0] == (1, "PAID", str(2**63 + 1), at1, ["a", "1"], False)
    assert rows[1][5] is True
    types = dict(
        pg.query(
            "dst", "select column_name, data_type from information_schema.columns where table_name = 'msgs'"
        )
    )
    assert types["amount_cents"] == "numeric" and types["at"] == "timestamp with time zone"


def test_an_open_transaction_stops_the_read_at_the_last_stable_offset(clean_pg, kafka) -> None:
    from confluent_kafka import Producer

    topic = topic_name()
    kafka.create_topic(topic, 1)
    kafka.produce(topic, _events(1, 10))
    pending = Producer({"bootstrap.servers": kafka.bootstrap, "transactional.id": f"open-{topic}"})
    pending.init_transactions(30)
    pending.begin_transaction()
    key, value = _events(11, 11)[0]
    pending.produce(topic, key=key, value=value)
    assert pending.flush(30) == 0  # in the log, not committed: the high watermark is past it
    m = from_kafka(topic, fields=FIELDS)
    first = run(m, "r1")  # stops after the idle limit instead of waiting for the open transaction
    assert first.rows == 10
    stored = json.loads(clean_pg.query("dst", "select state::text from dpone.state")[0][0])["offsets"]
    assert stored == {"0": 10}  # where the committed data ends, not the high watermark
    pending.commit_transaction(30)
    assert run(m, "r2").rows == 1
    assert clean_pg.query("dst", "select count(*), count(distinct id) from raw.msgs") == [(11, 11)]


def test_messages_removed_by_retention_are_reported(clean_pg, kafka) -> None:
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import AdminClient

    topic = topic_name()
    kafka.create_topic(topic, 1)
    kafka.produce(topic, _events(1, 10))
    m = from_kafka(topic, fields=FIELDS)
    run(m, "r1")
    kafka.produce(topic, _events(11, 20))
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap})
    for future in admin.delete_records([TopicPartition(topic, 0, 15)]).values():
        future.result(30)  # retention took 10..14 before this load read them
    report = run(m, "r2")
    assert report.source["window"]["lost_to_retention"] == {"0": 5}
    assert report.rows == 5


def test_lost_state_over_a_topic_with_messages_fails_instead_of_publishing_twice(clean_pg, kafka) -> None:
    from airflow_provider_dpone.contracts.errors import StateMissingError

    pg = clean_pg
    pg.execute("src", ORDERS)
    topic = topic_name()
    kafka.create_topic(topic, 2)
    m = appending(topic)
    run(m, "r1")
    pg.execute("dst", "delete from dpone.state")
    with pytest.raises(StateMissingError, match="already holds rows"):
        run(m, "r2")
    assert len(kafka.consume_all(topic)) == 500


def test_a_first_append_killed_before_its_commit_is_retried(clean_pg, kafka) -> None:
    """An aborted transaction takes offsets but leaves no message: the lost-state guard reads
    the topic as a consumer would and lets the retry publish."""
    pg = clean_pg
    pg.execute("src", ORDERS)
    topic = topic_name()
    kafka.create_topic(topic, 2)
    m = appending(topic)
    assert run_killed(m, "r1", "mid_finalize") == -signal.SIGKILL
    assert len(kafka.consume_all(topic, committed_only=False)) == 500
    assert run(m, "r1").status == "success"
    assert len(kafka.consume_all(topic)) == 500


def test_stored_state_with_a_missing_topic_fails(clean_pg, kafka) -> None:
    from airflow_provider_dpone.contracts.errors import TargetStateMismatchError

    pg = clean_pg
    pg.execute("src", ORDERS)
    topic = topic_name()
    kafka.create_topic(topic, 1)
    run(appending(topic), "r1")
    pg.execute("src", "insert into orders values (501, 1, 'x', timestamptz '2026-02-01', null, null)")
    with pytest.raises(TargetStateMismatchError, match="does not exist"):
        run(appending(topic_name()), "r2")  # the sink now points at a topic that is not there


def appending(topic: str):
    return manifest(
        {
            "connector": "postgres",
            "conn_id": "src",
            "table": "orders",
            "incremental": {"mode": "cursor", "cursor": "at"},
        },
        {"connector": "kafka", "conn_id": "kafka", "topic": topic, "strategy": "incremental_append"},
    )


def test_from_target_is_refused_for_a_topic() -> None:
    with pytest.raises(ManifestError, match="cannot; use 'fail'"):
        manifest(
            {
                "connector": "postgres",
                "conn_id": "src",
                "table": "orders",
                "incremental": {"mode": "cursor", "cursor": "at", "on_state_missing": "from_target"},
            },
            {"connector": "kafka", "conn_id": "kafka", "topic": "t", "strategy": "incremental_append"},
        )
