"""The live Kafka profile: the sink and the source against an operator-provided cluster.
``DPONE_LIVE_KAFKA_BOOTSTRAP`` names its brokers; ``DPONE_LIVE_KAFKA_SECURITY_PROTOCOL``,
``_SASL_MECHANISM``, ``_USERNAME``, ``_PASSWORD`` and ``_CA_LOCATION`` are optional
(docs/kafka.md). Without the bootstrap every test skips, naming it. Each test creates its own
topic (``dpone_live_<random>``, the cluster's default replication) and deletes it afterwards;
the PostgreSQL on either side is the local one the tests start (tests/conftest.py).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_provider_dpone.contracts.manifest import Manifest, parse_manifest
from tests.conftest import PgEnv
from tests.helpers import run_first_load as run

pytestmark = pytest.mark.integration_live

ENV = "DPONE_LIVE_KAFKA_BOOTSTRAP"
SKIP = (
    f"{ENV} is not set: the bootstrap servers of a Kafka cluster the test may create and delete "
    "topics in (docs/kafka.md#Live certification profile)"
)
CONN_ID = "kafka_live"
# optional variable -> librdkafka setting
OPTIONAL = {
    "DPONE_LIVE_KAFKA_SECURITY_PROTOCOL": "security.protocol",
    "DPONE_LIVE_KAFKA_SASL_MECHANISM": "sasl.mechanisms",
    "DPONE_LIVE_KAFKA_USERNAME": "sasl.username",
    "DPONE_LIVE_KAFKA_PASSWORD": "sasl.password",
    "DPONE_LIVE_KAFKA_CA_LOCATION": "ssl.ca.location",
}


def client_config() -> dict[str, Any]:
    """The librdkafka configuration the variables give (the connection's extras)."""
    config: dict[str, Any] = {"bootstrap.servers": os.environ[ENV]}
    config.update((key, os.environ[var]) for var, key in OPTIONAL.items() if os.environ.get(var))
    return config


@pytest.fixture
def live_topic(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A new topic of three partitions on the live cluster, deleted afterwards."""
    if not os.environ.get(ENV):
        pytest.skip(SKIP)
    from confluent_kafka.admin import AdminClient, NewTopic

    config = client_config()
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps({"conn_type": "kafka", "extra": config}))
    admin = AdminClient(config)
    topic = f"dpone_live_{uuid.uuid4().hex[:8]}"
    for future in admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=-1)]).values():
        future.result(60)
    try:
        yield topic
    finally:
        for future in admin.delete_topics([topic], operation_timeout=60).values():
            future.result(60)


ORDERS = """
create table orders (id bigint primary key, amount numeric(12,2) not null, note text,
                     at timestamptz not null, doc jsonb);
insert into orders select g, g * 1.5, 'n' || g, timestamptz '2026-01-01 00:00+00' + g * interval '1 s',
                          jsonb_build_object('g', g)
from generate_series(1, 500) g;
"""
FIELDS = {"id": "int64", "amount": "decimal(12,2)", "note": "string", "at": "timestamptz", "doc": "json"}


def manifest(pipeline: str, name: str, source: dict[str, Any], sink: dict[str, Any]) -> Manifest:
    return parse_manifest(
        {
            "pipeline": pipeline,
            "state": {"backend": "table", "conn_id": "dst"},
            "loads": [{"name": name, "source": source, "sink": sink}],
        }
    )


def to_topic(pipeline: str, topic: str) -> Manifest:
    """The changed rows of ``orders`` as keyed upserts, in one transaction per run."""
    return manifest(
        pipeline,
        "to_topic",
        {"connector": "postgres", "conn_id": "src", "table": "orders",
         "incremental": {"mode": "cursor", "cursor": "at"}},
        {"connector": "kafka", "conn_id": CONN_ID, "topic": topic, "strategy": "incremental_merge",
         "unique_key": ["id"]},
    )  # fmt: skip


def from_topic(pipeline: str, topic: str) -> Manifest:
    """The topic's new messages, to its high watermarks, merged by id into ``raw.orders``."""
    return manifest(
        pipeline,
        "from_topic",
        {"connector": "kafka", "conn_id": CONN_ID, "topic": topic, "fields": FIELDS,
         "incremental": {"mode": "offsets"}, "batch_size": 200},
        {"connector": "postgres", "conn_id": "dst", "table": "raw.orders", "strategy": "incremental_merge",
         "unique_key": ["id"]},
    )  # fmt: skip


def rows(pg: PgEnv, which: str, table: str) -> list[tuple[Any, ...]]:
    return pg.query(which, f"select id, amount::text, note, at, doc::jsonb::text from {table} order by id")


def offsets(pg: PgEnv, pipeline: str) -> dict[str, int]:
    state = pg.query(
        "dst", "select state::text from dpone.state where pipeline = %s and load = 'from_topic'", (pipeline,)
    )
    assert len(state) == 1 and json.loads(state[0][0])["kind"] == "offsets"
    return {p: int(o) for p, o in json.loads(state[0][0])["offsets"].items()}


def high_watermarks(topic: str) -> dict[str, int]:
    """Each partition's end offset now (past the data and the transaction markers)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({**client_config(), "group.id": f"{topic}.probe", "enable.auto.commit": False})
    try:
        parts = consumer.list_topics(topic, timeout=30).topics[topic].partitions
        return {
            str(p): consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1] for p in parts
        }
    finally:
        consumer.close()


def test_live_postgres_to_kafka_and_back_with_offsets_state(clean_pg: PgEnv, live_topic: str) -> None:
    pg, topic = clean_pg, live_topic
    pipeline = f"kafka_live_{uuid.uuid4().hex[:8]}"  # its own transactional.id on a shared cluster
    pg.execute("src", ORDERS)
    produced = run(to_topic(pipeline, topic), "r1")
    assert produced.rows == 500 and produced.sink["finalize"]["method"] == "transaction"
    consumed = run(from_topic(pipeline, topic), "r1")
    assert consumed.rows == 500 and consumed.state_committed in ("with_data", "after_data")
    assert offsets(pg, pipeline) == high_watermarks(topic) and len(offsets(pg, pipeline)) == 3
    assert rows(pg, "dst", "raw.orders") == rows(pg, "src", "orders")
    assert pg.query(
        "dst", "select count(*) from raw.orders where _key <> id::text or _topic <> %s", (topic,)
    ) == [(0,)]
    assert len({p for (p,) in pg.query("dst", "select distinct _partition from raw.orders")}) == 3  # by key

    pg.execute("src", "update orders set note = 'changed', at = at + interval '1 day' where id % 50 = 0")
    assert run(to_topic(pipeline, topic), "r2").rows == 10
    again = run(from_topic(pipeline, topic), "r2")  # only the ten new messages
    assert again.rows == 10 and offsets(pg, pipeline) == high_watermarks(topic)
    assert rows(pg, "dst", "raw.orders") == rows(pg, "src", "orders")

    settled, stored = rows(pg, "dst", "raw.orders"), offsets(pg, pipeline)
    assert run(to_topic(pipeline, topic), "r3").rows == 0  # nothing past the cursor: nothing published
    rerun = run(from_topic(pipeline, topic), "r3")
    assert rerun.status == "success" and rerun.rows == 0  # nothing new: nothing read
    assert rows(pg, "dst", "raw.orders") == settled and offsets(pg, pipeline) == stored == high_watermarks(
        topic
    )
