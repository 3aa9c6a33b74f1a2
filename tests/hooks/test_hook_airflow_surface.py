"""test_connection() and the DbApiHook surface on real services, through Airflow's own classes."""

from __future__ import annotations

import json
import socket

import pytest

from tests.fake_api import TOKEN, FakeApi

pytestmark = pytest.mark.integration


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _set_conn(monkeypatch: pytest.MonkeyPatch, conn_id: str, **fields: object) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(fields))


def _airflow_hook(conn_id: str):
    from airflow.sdk import BaseHook

    return BaseHook.get_connection(conn_id).get_hook()


# --- PostgreSQL ------------------------------------------------------------------------------


@pytest.fixture
def dpone_pg(pg, monkeypatch: pytest.MonkeyPatch) -> dict:
    """A ``dpone_postgres`` connection ``dpg`` to the source database."""
    from psycopg.conninfo import conninfo_to_dict

    p = conninfo_to_dict(pg.src)
    fields = {
        "conn_type": "dpone_postgres",
        "host": p.get("host", "127.0.0.1"),
        "port": int(p.get("port", 5432)),
        "login": p.get("user", "postgres"),
        "password": p.get("password"),
        "schema": p["dbname"],
        "extra": {"sslmode": None},  # a form field left empty
    }
    _set_conn(monkeypatch, "dpg", **fields)
    return fields


def test_postgres_test_connection_and_records(dpone_pg) -> None:
    from airflow_provider_dpone.hooks.postgres import DponePostgresHook

    hook = _airflow_hook("dpg")
    assert isinstance(hook, DponePostgresHook)
    assert hook.test_connection() == (True, "select 1 returned (1,)")
    assert hook.get_records("select g from generate_series(1, %s) g", (3,)) == [(1,), (2,), (3,)]
    assert hook.get_first("select 'a', 2") == ("a", 2)
    # what the API server's Test button calls (the core model, the core ProvidersManager)
    from airflow.models.connection import Connection

    assert Connection(conn_id="dpg", conn_type="dpone_postgres").test_connection() == (
        True,
        "select 1 returned (1,)",
    )


def test_postgres_refused_login_fails_without_the_credentials(dpone_pg, monkeypatch) -> None:
    secret = "Wrong-Pg-Secret-4417"  # the test server trusts local users: a role it does not know
    _set_conn(monkeypatch, "dpg_bad", **{**dpone_pg, "login": "dpone_nobody", "password": secret})
    ok, message = _airflow_hook("dpg_bad").test_connection()
    assert not ok and "OperationalError" in message
    assert secret not in message and "dpone_nobody" not in message


def test_sql_operator_and_sensor_on_dpone_postgres(dpone_pg) -> None:
    from airflow.providers.common.sql.hooks.sql import DbApiHook
    from airflow.providers.common.sql.operators.sql import SQLExecuteQueryOperator
    from airflow.providers.common.sql.sensors.sql import SqlSensor

    from airflow_provider_dpone.hooks.postgres import DponePostgresHook

    sensor = SqlSensor(task_id="wait", conn_id="dpg", sql="select count(*) from pg_class")
    assert isinstance(sensor._get_hook(), DponePostgresHook) and isinstance(sensor._get_hook(), DbApiHook)
    assert sensor.poke({}) is True
    op = SQLExecuteQueryOperator(task_id="q", conn_id="dpg", sql="select 41 + 1")
    assert op.execute({}) == [(42,)]


# --- ClickHouse ------------------------------------------------------------------------------


def test_clickhouse_test_connection_and_records(clean_ch) -> None:
    from airflow_provider_dpone.hooks.clickhouse import DponeClickHouseHook

    hook = _airflow_hook("ch")
    assert isinstance(hook, DponeClickHouseHook)
    assert hook.test_connection() == (True, "select 1 returned (1,)")
    hook.run(
        [
            "create table src.t (id Int32, name Nullable(String)) engine = MergeTree order by id",
            "insert into src.t values (1, 'a'), (2, NULL), (3, 'c')",
        ]
    )
    assert hook.get_records("select id, name from src.t where id > %(low)s order by id", {"low": 1}) == [
        (2, None),
        (3, "c"),
    ]
    assert hook.get_first("select count() from src.t") == (3,)
    assert hook.get_records("select id from src.t where id > 10") == []
    assert [d[:2] for d in hook.last_description] == [("id", "Int32")]
    assert hook.get_first("select id from src.t where id > 10") is None


def test_sql_operator_and_sensor_on_dpone_clickhouse(clean_ch) -> None:
    from airflow.providers.common.sql.hooks.sql import DbApiHook
    from airflow.providers.common.sql.operators.sql import SQLExecuteQueryOperator
    from airflow.providers.common.sql.sensors.sql import SqlSensor

    from airflow_provider_dpone.hooks.clickhouse import DponeClickHouseHook

    clean_ch.command("create table src.ready (id Int32) engine = MergeTree order by id")
    sensor = SqlSensor(task_id="wait", conn_id="ch", sql="select count() from src.ready")
    assert isinstance(sensor._get_hook(), DponeClickHouseHook) and isinstance(sensor._get_hook(), DbApiHook)
    assert sensor.poke({}) is False
    clean_ch.command("insert into src.ready values (1)")
    assert sensor.poke({}) is True
    # the operator hands the connection's extras (here the chDB dsn) to the hook as keywords
    op = SQLExecuteQueryOperator(task_id="q", conn_id="ch", sql="select 41 + 1 as answer")
    assert op.execute({}) == [(42,)]


def test_clickhouse_closed_port_fails_without_the_secret(monkeypatch) -> None:
    secret = "Ch-Secret-9871"
    _set_conn(
        monkeypatch,
        "ch_bad",
        conn_type="dpone_clickhouse",
        host="127.0.0.1",
        port=_closed_port(),
        login="dpone_user",
        password=secret,
    )
    ok, message = _airflow_hook("ch_bad").test_connection()
    assert not ok and "cannot connect to 'ch_bad'" in message and secret not in message


# --- Kafka -----------------------------------------------------------------------------------


def test_kafka_test_connection(kafka, monkeypatch) -> None:
    from airflow_provider_dpone.hooks.kafka import DponeKafkaHook

    # a form-made connection: fields left empty are stored as null
    extra = {
        "bootstrap.servers": kafka.bootstrap,
        "security.protocol": None,
        "dpone.schema_registry_url": None,
    }
    _set_conn(monkeypatch, "dkafka", conn_type="dpone_kafka", extra=extra)
    hook = _airflow_hook("dkafka")
    assert isinstance(hook, DponeKafkaHook) and hook.kafka_config_id == "dkafka"
    ok, message = hook.test_connection()
    assert ok and "1 broker(s)" in message
    # the kafka fixture's connection carries dpone's own keys: they never reach librdkafka
    assert DponeKafkaHook("kafka").test_connection()[0]


def test_kafka_closed_port_fails_without_the_secret(monkeypatch) -> None:
    secret = "Kafka-Secret-5521"
    extra = {
        "bootstrap.servers": f"127.0.0.1:{_closed_port()}",
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "PLAIN",
        "sasl.username": "dpone_user",
        "sasl.password": secret,
    }
    _set_conn(monkeypatch, "kafka_bad", conn_type="dpone_kafka", extra=extra)
    ok, message = _airflow_hook("kafka_bad").test_connection(timeout=2)
    assert not ok and "KafkaException" in message and secret not in message


# --- REST ------------------------------------------------------------------------------------


@pytest.fixture
def fake_api():
    server = FakeApi([])
    yield server
    server.close()


def test_rest_test_connection(fake_api, monkeypatch) -> None:
    _set_conn(
        monkeypatch,
        "rest",
        conn_type="dpone_rest",
        host=fake_api.url,
        password=TOKEN,
        extra={"auth": "bearer", "test_path": "/offset", "timeout": None},
    )
    ok, message = _airflow_hook("rest").test_connection()
    assert ok and message == f"GET {fake_api.url}/offset returned 200 OK"
    assert fake_api.log[-1]["headers"]["Authorization"] == f"Bearer {TOKEN}" and TOKEN not in message

    _set_conn(
        monkeypatch,
        "rest_root",
        conn_type="dpone_rest",
        host=fake_api.url,
        password=TOKEN,
        extra={"auth": "bearer"},
    )
    ok, message = _airflow_hook("rest_root").test_connection()
    assert not ok and "returned 404" in message  # the base URL itself: no route there


def test_rest_refused_credentials_fail_without_the_secret(fake_api, monkeypatch) -> None:
    secret = "Rest-Token-Secret-3390"
    _set_conn(
        monkeypatch,
        "rest_bad",
        conn_type="dpone_rest",
        host=fake_api.url,
        password=secret,
        extra={"auth": "api_key", "api_key_param": "api_key", "test_path": "offset"},
    )
    ok, message = _airflow_hook("rest_bad").test_connection()
    assert not ok and "returned 401" in message and "refused the credentials" in message
    assert secret not in message and fake_api.log[-1]["query"]["api_key"] == secret
