"""Shared fixtures. Integration tests use a real PostgreSQL (see demo/postgres_server.py).

Every test is marked ``unit`` unless it marks itself ``integration`` (or uses a service fixture).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest_plugins = ("tests.bigquery_fixtures",)  # the BigQuery emulator and clean_bq
ROOT = Path(__file__).resolve().parents[1]
_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="dpone-airflow-"))
os.environ.setdefault("AIRFLOW_HOME", str(_AIRFLOW_HOME))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(ROOT / "dags"))
os.environ.setdefault("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{_AIRFLOW_HOME / 'airflow.db'}")
os.environ.setdefault("DPONE_REPORT_DIR", str(_AIRFLOW_HOME / "reports"))


_TIERS = ("integration", "integration_live", "nightly")
_SERVICES = {
    "pg",
    "clean_pg",
    "ch",
    "clean_ch",
    "kafka",
    "airflow_db",
    "clean_mssql",
}  # fixtures that need a service


@pytest.hookimpl(tryfirst=True)  # before -m deselects
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test gets a tier: its own marker, else ``integration`` when it uses a service
    fixture, else ``unit`` (so ``-m unit`` runs with no service at all)."""
    for item in items:
        if any(item.get_closest_marker(m) for m in _TIERS):
            continue
        uses_service = _SERVICES & set(getattr(item, "fixturenames", ()))
        item.add_marker(pytest.mark.integration if uses_service else pytest.mark.unit)


class PgEnv:
    """A source and a sink database on one real server, with Airflow connections for both."""

    def __init__(self, admin: str, origin: str) -> None:
        from airflow_provider_dpone.demo.postgres_server import airflow_conn_uri, recreate_database

        self.origin = origin
        self.admin = admin
        suffix = uuid.uuid4().hex[:6]
        self.src_db, self.dst_db = f"dpone_t_src_{suffix}", f"dpone_t_dst_{suffix}"
        self.src = recreate_database(admin, self.src_db)
        self.dst = recreate_database(admin, self.dst_db)
        os.environ["AIRFLOW_CONN_SRC"] = airflow_conn_uri(self.src)
        os.environ["AIRFLOW_CONN_DST"] = airflow_conn_uri(self.dst)

    def connect(self, which: str = "src"):
        import psycopg

        return psycopg.connect(self.src if which == "src" else self.dst, autocommit=True)

    def query(self, which: str, statement: str, params: tuple = ()) -> list[tuple]:
        with self.connect(which) as conn:
            cur = conn.execute(statement, params or None)
            return cur.fetchall() if cur.description else []

    def execute(self, which: str, statement: str, params: tuple = ()) -> None:
        with self.connect(which) as conn:
            conn.execute(statement, params or None)

    def drop(self) -> None:
        import psycopg

        with psycopg.connect(self.admin, autocommit=True) as conn:
            for db in (self.src_db, self.dst_db):
                conn.execute(f'drop database if exists "{db}" with (force)')


@pytest.fixture(scope="session")
def pg() -> Iterator[PgEnv]:
    from airflow_provider_dpone.demo.postgres_server import resolve_postgres_uri

    admin, origin = resolve_postgres_uri(ROOT / ".dpone" / "pgdata-tests")
    env = PgEnv(admin, origin)
    yield env
    env.drop()


@pytest.fixture
def clean_pg(pg: PgEnv) -> PgEnv:
    """Empty public/raw/staging/state schemas in both databases."""
    for which in ("src", "dst"):
        pg.execute(which, "drop schema if exists raw, dpone_staging, dpone, stg, meta cascade")
        pg.execute(which, "drop schema public cascade; create schema public")
    return pg


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """An initialised Airflow metadata database (SQLite) for this test session."""
    airflow = str(Path(sys.executable).with_name("airflow"))
    subprocess.run([airflow, "db", "migrate"], check=True, capture_output=True, env=os.environ.copy())
    return _AIRFLOW_HOME


class ChEnv:
    """The ClickHouse engine (chDB, in this process) with an Airflow connection ``ch``."""

    def __init__(self, path: Path) -> None:
        import json

        import clickhouse_connect

        self.dsn = f"chdb://{path}"
        os.environ["AIRFLOW_CONN_CH"] = json.dumps(
            {"conn_type": "dpone_clickhouse", "extra": {"dsn": self.dsn}}
        )
        self.client = clickhouse_connect.get_client(dsn=self.dsn, tz_mode="schema")

    def query(self, statement: str, params: dict | None = None) -> list[tuple]:
        return list(self.client.query(statement, parameters=params or {}).result_rows)

    def command(self, statement: str) -> None:
        self.client.command(statement)


@pytest.fixture(scope="session")
def ch(tmp_path_factory: pytest.TempPathFactory) -> ChEnv:
    """chDB allows one data directory per process: every test shares this one."""
    return ChEnv(tmp_path_factory.mktemp("chdb"))


@pytest.fixture
def clean_ch(ch: ChEnv) -> ChEnv:
    for db in ("raw", "src", "dpone_staging"):
        ch.command(f"drop database if exists {db} sync")
    ch.command("create database src")
    return ch


MSSQL_SKIP = (
    "DPONE_MSSQL_URI is not set: no SQL Server can run on this machine (no image, no network); "
    "docs/mssql.md runs the live suite against docker-compose's SQL Server 2022"
)


class MsSqlEnv:
    """A real SQL Server from ``DPONE_MSSQL_URI`` (an Airflow ``mssql`` connection URI) as the
    Airflow connection ``mssql_dst``, read and written through the dpone engine's sessions."""

    def __init__(self, uri: str) -> None:
        os.environ["AIRFLOW_CONN_MSSQL_DST"] = uri
        from airflow_provider_dpone.hooks.mssql_connector import MsSqlEngine

        self.engine = MsSqlEngine("mssql_dst")

    def query(self, statement: str, params: tuple = ()) -> list[tuple]:
        from airflow_provider_dpone.hooks.dbapi import fetch

        with self.engine.session() as conn:
            return fetch(conn.cursor(), statement, params)

    def execute(self, statement: str, params: tuple = ()) -> None:
        from airflow_provider_dpone.hooks.dbapi import run

        with self.engine.session() as conn:
            run(conn.cursor(), statement, params)

    def reset(self) -> None:
        """Drop every table (and view) of the schemas the tests use."""
        for schema in ("raw", "src", "dpone_staging", "dpone"):
            for (name,) in self.query(
                "select quotename(s.name) + '.' + quotename(t.name) from sys.tables t "
                "join sys.schemas s on s.schema_id = t.schema_id where s.name = ?",
                (schema,),
            ):
                self.execute(f"drop table {name}")
            self.execute(f"if schema_id(N'{schema}') is null exec(N'create schema [{schema}]')")


@pytest.fixture
def clean_mssql() -> MsSqlEnv:
    uri = os.environ.get("DPONE_MSSQL_URI")
    if not uri:
        pytest.skip(MSSQL_SKIP)
    env = MsSqlEnv(uri)
    env.reset()
    return env


class KafkaEnv:
    """A real Kafka-protocol broker (noida-db, a child process) and a Schema Registry fake,
    with an Airflow connection ``kafka`` to both."""

    def __init__(self, data_dir: Path) -> None:
        import json
        import socket
        import time

        from tests.schema_registry_fake import SchemaRegistryFake

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        exe = str(Path(sys.executable).with_name("noida-db"))
        self.log = open(data_dir / "broker.log", "w")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [
                exe,
                "start",
                "--data-dir",
                str(data_dir / "data"),
                "--only",
                "kafka",
                "--kafka-port",
                str(self.port),
            ],
            stdout=self.log,
            start_new_session=True,  # its own process group: stop() ends the broker it spawns too
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                break
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"noida-db did not start: see {data_dir / 'broker.log'}") from None
                time.sleep(0.05)
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.registry = SchemaRegistryFake()
        extra = {"bootstrap.servers": self.bootstrap, "dpone.schema_registry": {"url": self.registry.url}}
        os.environ["AIRFLOW_CONN_KAFKA"] = json.dumps({"conn_type": "kafka", "extra": extra})

    def create_topic(self, name: str, partitions: int = 3) -> None:
        from confluent_kafka.admin import AdminClient, NewTopic

        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        for future in admin.create_topics(
            [NewTopic(name, num_partitions=partitions, replication_factor=1)]
        ).values():
            future.result(30)

    def produce(self, topic: str, messages: list[tuple[bytes | None, bytes | None]]) -> None:
        from confluent_kafka import Producer

        producer = Producer({"bootstrap.servers": self.bootstrap, "partitioner": "murmur2_random"})
        for key, value in messages:
            producer.produce(topic, key=key, value=value)
        assert producer.flush(30) == 0

    def consume_all(self, topic: str, committed_only: bool = True) -> list:
        """Every message of ``topic`` now, as (partition, offset, key, value)."""
        from confluent_kafka import Consumer, TopicPartition

        isolation = "read_committed" if committed_only else "read_uncommitted"
        consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": "tests",
                "isolation.level": isolation,
                "enable.partition.eof": True,
            }
        )
        try:
            parts = sorted(consumer.list_topics(topic, timeout=30).topics[topic].partitions)
            ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1] for p in parts}
            consumer.assign([TopicPartition(topic, p, 0) for p in parts])
            out, done = [], {p for p in parts if ends[p] == 0}
            import time

            deadline = time.monotonic() + 30
            while len(done) < len(parts) and time.monotonic() < deadline:
                for msg in consumer.consume(1000, timeout=0.5):
                    if msg.error():
                        done.add(msg.partition())
                        continue
                    out.append((msg.partition(), msg.offset(), msg.key(), msg.value()))
            return out
        finally:
            consumer.close()

    def stop(self) -> None:
        """End the broker: ``noida-db`` is a launcher, so the whole process group goes."""
        import signal

        self.registry.close()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        self.log.close()


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaEnv]:
    env = KafkaEnv(tmp_path_factory.mktemp("kafka"))
    yield env
    env.stop()
