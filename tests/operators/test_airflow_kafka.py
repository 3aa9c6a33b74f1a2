"""The Kafka routes under real Airflow, each with an injected failure and an Airflow retry:
PostgreSQL -> Kafka -> PostgreSQL and Kafka -> ClickHouse.

Airflow runs in its own processes; the broker is noida-db, ClickHouse is reached over HTTP.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from tests.clickhouse_http import ChdbHttpFront
from tests.operators.test_airflow_e2e import airflow

pytestmark = pytest.mark.integration


def pipeline(topic: str) -> dict:
    kafka = {"connector": "kafka", "conn_id": "kafka", "topic": topic}
    fields = {"id": "int64", "amount": "decimal(10,2)", "note": "string"}
    source = {**kafka, "incremental": {"mode": "offsets"}, "fields": fields}
    return {
        "pipeline": "kafka_routes",
        "retries": 1,
        "retry_delay": "0s",
        "state": {"backend": "table", "conn_id": "dst"},
        "loads": [
            {
                "name": "to_kafka",
                "source": {"connector": "postgres", "conn_id": "src", "table": "orders_feed"},
                "sink": {**kafka, "strategy": "incremental_merge", "unique_key": ["id"]},
            },
            {
                "name": "kafka_to_pg",
                "depends_on": ["to_kafka"],
                "source": source,
                "sink": {
                    "connector": "postgres",
                    "conn_id": "dst",
                    "table": "raw.events",
                    "strategy": "incremental_append",
                },
            },
            {
                "name": "kafka_to_ch",
                "depends_on": ["to_kafka"],
                "source": source,
                "sink": {
                    "connector": "clickhouse",
                    "conn_id": "chhttp",
                    "table": "raw.events",
                    "strategy": "incremental_merge",
                    "unique_key": ["id"],
                },
            },
        ],
    }


@pytest.fixture
def env(clean_pg, clean_ch, kafka, airflow_db, tmp_path: Path):
    topic = f"routes_{os.getpid()}_{tmp_path.name[-6:]}"
    kafka.create_topic(topic, 3)
    (tmp_path / "routes.yaml").write_text(yaml.safe_dump(pipeline(topic)))
    front = ChdbHttpFront(os.path.realpath(clean_ch.dsn[len("chdb://") :]))
    yield (
        {
            **os.environ,
            "DPONE_MANIFESTS_DIR": str(tmp_path),
            "AIRFLOW_CONN_CHHTTP": f"dpone-clickhouse://default@127.0.0.1:{front.port}/default?compress=false",
        },
        topic,
        front,
    )
    front.close()


def task(environ: dict, name: str, day: str):
    return airflow(environ, "tasks", "test", "kafka_routes", name, day)


def ok(result) -> None:
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def failed_for_retry(result, why: str) -> None:
    out = result.stdout + result.stderr
    assert why in out and "up_for_retry" in out.lower(), out[-3000:]


def test_kafka_routes_converge_after_a_failure_and_a_retry(env, clean_pg, clean_ch, kafka) -> None:
    environ, topic, front = env
    pg, ch = clean_pg, clean_ch
    pg.execute(
        "src",
        """
        create table orders (id bigint primary key, amount numeric(10,2) not null, note text);
        insert into orders select g, g, 'n' || g from generate_series(1, 1000) g;
        create sequence fail_n;
        create table fail_budget (times int);
        insert into fail_budget values (1);
        create function gate(i bigint) returns boolean language plpgsql as $$
        begin
          if i = 800 and nextval('fail_n') <= (select times from fail_budget) then
            raise exception 'injected failure mid-extract';
          end if;
          return true;
        end $$;
        create view orders_feed as select * from orders where gate(id);
        """,
    )
    # PostgreSQL -> Kafka: try 1 dies mid-extract, its transaction is aborted; the retry publishes once.
    failed_for_retry(task(environ, "to_kafka", "2026-01-01"), "injected failure mid-extract")
    assert kafka.consume_all(topic) == []
    ok(task(environ, "to_kafka", "2026-01-01"))
    messages = kafka.consume_all(topic)
    assert len(messages) == 1000 and len({k for _, _, k, _ in messages}) == 1000

    # Kafka -> PostgreSQL: try 1 fails in finalize (a trigger), offsets stay; the retry loads once.
    pg.execute(
        "dst",
        """
        create schema if not exists raw;
        create table raw.events (_topic text not null, _partition int not null, _offset bigint not null,
          _timestamp timestamptz, _key text, id bigint, amount numeric(10,2), note text);
        create sequence raw.fail_n;
        create function raw.fail_once() returns trigger language plpgsql as $$
        begin if nextval('raw.fail_n') <= 1 then raise exception 'injected failure in finalize'; end if;
        return new; end $$;
        create trigger fail_once before insert on raw.events for each statement execute function raw.fail_once();
        """,
    )
    failed_for_retry(task(environ, "kafka_to_pg", "2026-01-01"), "injected failure in finalize")
    assert pg.query("dst", "select count(*) from raw.events") == [(0,)]
    ok(task(environ, "kafka_to_pg", "2026-01-01"))
    assert pg.query("dst", "select count(*), count(distinct id), sum(amount)::text from raw.events") == [
        (1000, 1000, "500500.00")
    ]

    # Kafka -> ClickHouse: try 1's insert is refused by the server; the retry converges.
    front.fail_inserts = 1
    failed_for_retry(task(environ, "kafka_to_ch", "2026-01-01"), "injected failure in the insert")
    assert ch.query("select count() from system.tables where database = 'raw' and name = 'events'") == [(0,)]
    ok(task(environ, "kafka_to_ch", "2026-01-01"))
    assert ch.query("select count(), uniqExact(id), toString(sum(amount)) from raw.events") == [
        (1000, 1000, "500500")
    ]

    # Both consumers of the topic stored its ends (offsets count the aborted try's messages and
    # the transaction markers too, so they sum to more than the 1000 committed messages).
    from airflow_provider_dpone.hooks.kafka import DponeKafkaHook

    ends = {str(p): o for p, o in DponeKafkaHook(conn_id="kafka").high_watermarks(topic).items()}
    states = dict(
        pg.query("dst", "select load, state::text from dpone.state where pipeline = 'kafka_routes'")
    )
    for load in ("kafka_to_pg", "kafka_to_ch"):
        assert json.loads(states[load])["offsets"] == ends
