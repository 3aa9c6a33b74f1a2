"""Every registered hook is built the way Airflow builds it, and its form renders in the UI."""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import entry_points
from typing import Any

import pytest

from airflow_provider_dpone.get_provider_info import get_provider_info

CONNECTION_TYPES = get_provider_info()["connection-types"]
TYPES = [entry["connection-type"] for entry in CONNECTION_TYPES]
# fields the Airflow 3 form relabels or hints; the Extra JSON box takes neither
_STANDARD = {"host", "schema", "port", "login", "password", "description"}


def _hook_class(connection_type: str) -> Any:
    entry = next(e for e in CONNECTION_TYPES if e["connection-type"] == connection_type)
    module, _, name = entry["hook-class-name"].rpartition(".")
    return getattr(import_module(module), name)


@pytest.mark.parametrize("connection_type", TYPES)
def test_connection_get_hook_builds_the_hook_with_its_id(connection_type: str) -> None:
    from airflow.sdk import Connection

    cls = _hook_class(connection_type)
    hook = Connection(conn_id=f"id_{connection_type}", conn_type=connection_type).get_hook()
    assert type(hook) is cls and cls.conn_type == connection_type
    assert getattr(hook, cls.conn_name_attr) == f"id_{connection_type}"
    assert hook.dpone_conn_id == f"id_{connection_type}"
    assert callable(hook.test_connection)


@pytest.mark.parametrize("connection_type", TYPES)
def test_the_id_is_accepted_by_name_by_position_and_as_conn_id(connection_type: str) -> None:
    cls = _hook_class(connection_type)
    for hook in (cls(**{cls.conn_name_attr: "x"}), cls("x"), cls(conn_id="x")):
        assert getattr(hook, cls.conn_name_attr) == "x" == hook.dpone_conn_id
    assert cls().dpone_conn_id == cls.default_conn_name
    with pytest.raises(TypeError, match="connection id twice"):
        cls(**{cls.conn_name_attr: "x", "conn_id": "y"})


def test_saas_hooks_default_to_the_api_name() -> None:
    from airflow_provider_dpone.apis.cbr import CbrHook

    assert CbrHook.default_conn_name == "cbr" == CbrHook().http_conn_id


@pytest.mark.parametrize(
    "connection_type", [t for t in TYPES if t not in ("dpone_postgres", "dpone_mssql", "dpone_clickhouse")]
)
def test_unknown_keyword_arguments_are_refused(connection_type: str) -> None:
    with pytest.raises(TypeError):
        _hook_class(connection_type)("x", bogus=1)


def test_sql_hooks_pass_keyword_arguments_to_dbapihook() -> None:
    from airflow.providers.common.sql.hooks.sql import DbApiHook

    from airflow_provider_dpone.hooks.clickhouse import DponeClickHouseHook
    from airflow_provider_dpone.hooks.postgres import DponePostgresHook

    pg = DponePostgresHook("x", log_sql=False, options="-c statement_timeout=5s")
    assert isinstance(pg, DbApiHook) and pg.log_sql is False and pg.options == "-c statement_timeout=5s"
    ch = DponeClickHouseHook("x", log_sql=False)
    assert isinstance(ch, DbApiHook) and ch.log_sql is False and ch.get_conn_id() == "x"


def test_no_connection_type_of_an_official_provider_is_registered() -> None:
    theirs: set[str] = set()
    for ep in entry_points(group="apache_airflow_provider"):
        info = ep.load()()
        if info["package-name"] != "airflow-provider-dpone":
            theirs |= {e["connection-type"] for e in info.get("connection-types", [])}
    assert {"postgres", "kafka", "http"} <= theirs
    assert not theirs & set(TYPES)


def test_every_hook_class_and_form_agree() -> None:
    for entry in CONNECTION_TYPES:
        cls = _hook_class(entry["connection-type"])
        assert entry["hook-name"] == cls.hook_name
        behaviour = entry.get("ui-field-behaviour", {})
        shown = set(behaviour.get("relabeling", {})) | set(behaviour.get("placeholders", {}))
        assert shown <= _STANDARD, f"{entry['connection-type']}: the UI ignores {shown - _STANDARD}"
        for name, field in entry.get("conn-fields", {}).items():
            assert field["label"] and "null" in field["schema"]["type"], name


def test_forms_render_in_the_airflow_ui() -> None:
    """What the UI's connection form is built from (the API's hook metadata)."""
    from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService

    meta = {m.connection_type: m for m in HookMetaService.hook_meta_data()}
    for entry in CONNECTION_TYPES:
        form = meta[entry["connection-type"]]
        assert form.hook_name == entry["hook-name"]  # the type list shows a name, not the type
        assert form.standard_fields is not None
    kafka = meta["dpone_kafka"]
    assert kafka.standard_fields.host.hidden and kafka.extra_fields
    servers = kafka.extra_fields["bootstrap.servers"]
    assert servers["schema"]["title"] == "Bootstrap servers" and "host:port" in servers["description"]
    assert kafka.extra_fields["sasl.password"]["schema"]["format"] == "password"
    assert meta["dpone_clickhouse"].standard_fields.url_schema.title == "Database"
    assert meta["dpone_mindbox"].standard_fields.password.title == "Secret key"
    assert meta["dpone_cbr"].standard_fields.password.hidden


def test_clickhouse_statements_are_sorted_into_queries_and_commands() -> None:
    from airflow_provider_dpone.hooks.clickhouse_dbapi import returns_rows

    for query in (
        "select 1",
        " -- note\nWITH a AS (SELECT 1) SELECT * FROM a",
        "/* x */ show tables",
        "(select 1)",
    ):
        assert returns_rows(query), query
    for command in (
        "create table t (a Int8) engine=Memory",
        "insert into t values (1)",
        "optimize table t",
        "",
    ):
        assert not returns_rows(command), command
