"""Connections read from ``AIRFLOW_CONN_<ID>`` without Airflow: the same fields Airflow reads,
Airflow asked whenever it may answer otherwise, credentials never shown."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from airflow_provider_dpone.contracts.errors import BadInputError
from airflow_provider_dpone.hooks import connection
from airflow_provider_dpone.hooks.connection import (
    ConnectionRecord,
    StandaloneConnection,
    custom_secrets_backend,
    env_connection,
    known_credentials,
    parse_connection,
    resolve_connection,
)

_FIELDS = ("conn_type", "description", "host", "schema", "login", "password", "port", "extra")

URIS = [
    "postgres://user:pass@host.example.com:5432/db",
    "postgresql://u:p%40ss%2Fword@H/Db?sslmode=require&application_name=x",
    "postgres://u@/db?host=%2Ftmp%2Fpg",
    "postgres://u:p@%2Fvar%2Frun%2Fpostgresql/db",
    "postgres://u:p@%2Fvar%2Frun%2Fpostgresql:5433/db",
    "http://https://api.example.com/v1",
    "dpone-rest://api.example.com?__extra__=%7B%22auth%22%3A+%22bearer%22%2C+%22n%22%3A+1%7D",
    "postgres://h:5432",
    "my-conn-type://Login:Pw@Host.Example.COM:1234/Sch%2Fema",
    "aws://",
    "postgres://u:p@h/db?a=&b=2&b=3",
    "postgres://:secret@h/db",
    "dpone_clickhouse://default@/?dsn=chdb%3A%2F%2F%2Ftmp%2Fch",
]

JSONS = [
    {"conn_type": "postgres", "host": "h", "port": "5432", "login": "u", "password": "p", "schema": "db"},
    {"conn_type": "postgresql", "host": "h", "extra": {"sslmode": None, "nested": {"a": [1, 2]}}},
    {"conn_type": "dpone-rest", "host": "https://x", "extra": '{"auth": "none"}', "description": "d"},
    {"conn_type": "http", "port": 0, "extra": {}},
    {"host": "only-a-host"},
]


def _airflow(conn_id: str, value: str):
    from airflow.sdk.definitions.connection import Connection

    value = value.strip()
    if value.startswith("{"):
        return Connection.from_json(value, conn_id=conn_id)
    return Connection.from_uri(value, conn_id=conn_id)


@pytest.mark.parametrize("value", URIS + [json.dumps(j) for j in JSONS])
def test_fields_are_the_ones_airflow_reads(value: str) -> None:
    ours, theirs = parse_connection("c1", value), _airflow("c1", value)
    assert {f: getattr(ours, f) for f in _FIELDS} == {f: getattr(theirs, f) for f in _FIELDS}
    assert ours.extra_dejson == theirs.extra_dejson and ours.conn_id == "c1"


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("a://b://c://TOKENd", "more than two"),
        ("http://user:TOKEN@https://h", "a host protocol"),
        ("postgres://u:TOKEN@h:notaport/db", "a bad port"),
        ('{"conn_type": "postgres", "password": "TOKEN"', "not valid JSON"),
        ('{"password": "TOKEN", "port": "x"}', "a bad port"),
        ('{"password": "TOKEN", "uri": "postgres://"}', "unknown field(s) ['uri']"),
    ],
)
def test_a_value_airflow_cannot_read_is_refused_without_showing_it(value: str, why: str) -> None:
    with pytest.raises(BadInputError) as err:
        parse_connection("c1", value)
    assert why in err.value.message and "AIRFLOW_CONN_C1" in err.value.message
    assert "TOKEN" not in str(err.value)


def test_the_record_never_shows_its_password_or_extras() -> None:
    record = parse_connection("c1", "postgres://u:TOKEN@h/db?sslpassword=TOKEN")
    assert "TOKEN" not in repr(record) and "TOKEN" not in str(record)
    bad = ConnectionRecord("c1", extra="{not json")
    assert bad.extra_dejson == {}


@pytest.fixture
def no_airflow_config(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """No secrets backend anywhere: an airflow.cfg without one, no AIRFLOW__SECRETS__* variable."""
    for name in connection._SECRETS_BACKEND_ENV:
        monkeypatch.delenv(name, raising=False)
    cfg = tmp_path / "airflow.cfg"
    cfg.write_text("[core]\nload_examples = False\n[secrets]\nbackend =\nbackend_kwargs =\n")
    monkeypatch.setenv("AIRFLOW_CONFIG", str(cfg))


def test_env_connection_reads_the_variable_as_airflow_does(no_airflow_config, monkeypatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_MY_DB", "  postgres://u:p@h:1/db  ")
    record = env_connection("my_db")
    assert record is not None and (record.host, record.port, record.schema) == ("h", 1, "db")
    for absent in ("", "   "):  # Airflow finds no connection in an empty variable
        monkeypatch.setenv("AIRFLOW_CONN_MY_DB", absent)
        assert env_connection("my_db") is None
    monkeypatch.delenv("AIRFLOW_CONN_MY_DB")
    assert env_connection("my_db") is None
    monkeypatch.setenv("AIRFLOW_CONN__TEAM___DB", "postgres://h/db")
    assert env_connection("_team___db") is None  # a team's connection: Airflow's to resolve


def test_a_configured_secrets_backend_is_asked_first(no_airflow_config, monkeypatch, tmp_path) -> None:
    """Airflow asks a configured secrets backend before the environment: then Airflow answers."""
    monkeypatch.setenv("AIRFLOW_CONN_MY_DB", "postgres://h/db")
    assert not custom_secrets_backend() and env_connection("my_db") is not None
    backend = "airflow.secrets.local_filesystem.LocalFilesystemBackend"
    monkeypatch.setenv("AIRFLOW__SECRETS__BACKEND", backend)
    assert custom_secrets_backend() and env_connection("my_db") is None
    monkeypatch.setenv("AIRFLOW__SECRETS__BACKEND", "")  # the variable wins over airflow.cfg, even empty
    cfg = tmp_path / "with_backend.cfg"
    cfg.write_text(f"[secrets]\nbackend = {backend}\n")
    monkeypatch.setenv("AIRFLOW_CONFIG", str(cfg))
    assert not custom_secrets_backend()
    monkeypatch.delenv("AIRFLOW__SECRETS__BACKEND")
    assert custom_secrets_backend() and env_connection("my_db") is None
    cfg.write_text("[secrets\nbroken")
    assert custom_secrets_backend()  # unreadable: Airflow decides


def test_without_the_variable_airflow_looks_the_connection_up(
    no_airflow_config, monkeypatch, tmp_path
) -> None:
    """No AIRFLOW_CONN_<ID>: the connection comes from Airflow's lookup (here a secrets backend)."""
    secrets = tmp_path / "connections.json"
    secrets.write_text(json.dumps({"from_backend": "postgres://backend_user:TOKEN-b@backend-host/db"}))
    monkeypatch.setenv("AIRFLOW__SECRETS__BACKEND", "airflow.secrets.local_filesystem.LocalFilesystemBackend")
    monkeypatch.setenv(
        "AIRFLOW__SECRETS__BACKEND_KWARGS", json.dumps({"connections_file_path": str(secrets)})
    )
    monkeypatch.delenv("AIRFLOW_CONN_FROM_BACKEND", raising=False)
    conn = resolve_connection("from_backend")
    assert not isinstance(conn, ConnectionRecord)  # Airflow's own Connection
    assert (conn.host, conn.login) == ("backend-host", "backend_user")
    assert known_credentials().redact("password TOKEN-b") == "password ***"


def test_a_standalone_hook_reads_its_connection_once_and_masks_it(no_airflow_config, monkeypatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_ONCE", "postgres://someone:TOKEN-once@h/db?api_key=TOKEN-key")
    hook = StandaloneConnection("once")
    first = hook.get_connection("once")
    monkeypatch.setenv("AIRFLOW_CONN_ONCE", "postgres://other@h/db")
    assert hook.get_connection("once") is first and hook.dpone_conn_id == "once"
    said = 'FATAL: role "someone" failed, password TOKEN-once, key TOKEN-key'
    for redactor in (hook.redactor(), known_credentials()):
        assert redactor.redact(said) == 'FATAL: role "***" failed, password ***, key ***'


def test_the_engine_skips_the_extras_the_official_hook_skips() -> None:
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    from airflow_provider_dpone.hooks.postgres_connector import IGNORED_EXTRAS

    assert set(PostgresHook.ignored_extra_options) == IGNORED_EXTRAS


def test_the_standalone_modules_import_no_airflow() -> None:
    code = (
        "import sys\n"
        "from airflow_provider_dpone.hooks.registry import hook_class\n"
        "from airflow_provider_dpone.operators.wiring import assemble\n"
        "from airflow_provider_dpone.cli.main import main\n"
        "engines = [hook_class(c, standalone=True).__name__ for c in ('postgres', 'clickhouse', 'kafka')]\n"
        "import airflow_provider_dpone.state.table, airflow_provider_dpone.state.variable\n"
        "print(*engines, sorted(m for m in sys.modules if m.split('.')[0] == 'airflow'))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.split() == ["PostgresEngine", "ClickHouseEngine", "KafkaEngine", "[]"]


def test_the_kafka_engine_builds_its_configuration_as_the_official_hook(
    no_airflow_config, monkeypatch
) -> None:
    from airflow.providers.apache.kafka.hooks.base import CALLBACK_CONFIG_KEYS, KafkaBaseHook

    from airflow_provider_dpone.hooks.kafka_connector import CALLBACK_KEYS, KafkaEngine

    assert tuple(CALLBACK_CONFIG_KEYS) == CALLBACK_KEYS
    extra = {
        "bootstrap.servers": "b1:9092,b2:9092",
        "security.protocol": "SASL_SSL",
        "sasl.password": "TOKEN",
    }
    monkeypatch.setenv("AIRFLOW_CONN_K", json.dumps({"conn_type": "kafka", "extra": extra}))
    assert KafkaEngine("k")._build_config() == KafkaBaseHook(kafka_config_id="k")._build_config() == extra
    monkeypatch.setenv("AIRFLOW_CONN_K", json.dumps({"conn_type": "kafka", "extra": {"group.id": "g"}}))
    with pytest.raises(ValueError, match=r"bootstrap\.servers"):
        KafkaEngine("k")._build_config()
    # A callback named by its dotted path is the official hook's to resolve (and to refuse).
    named = {"bootstrap.servers": "b:9092", "error_cb": "my_pkg.callbacks.on_error"}
    monkeypatch.setenv("AIRFLOW_CONN_K", json.dumps({"conn_type": "kafka", "extra": named}))
    with pytest.raises(ValueError, match="callback_allowlist"):
        KafkaEngine("k")._build_config()
