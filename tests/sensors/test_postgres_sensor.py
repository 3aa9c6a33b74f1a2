"""DponePostgresSensor and PostgresConditionTrigger: the poke logic alone, then against the real
PostgreSQL (watermarks stored by a real load, queries, the trigger firing under asyncio)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from datetime import timedelta

import pytest
from airflow.sdk.exceptions import AirflowFailException, TaskDeferred

from airflow_provider_dpone.contracts.errors import BadInputError, TransientError
from airflow_provider_dpone.contracts.manifest import StateSpec
from airflow_provider_dpone.contracts.state import CursorState, XminState
from airflow_provider_dpone.sensors.postgres import DponePostgresSensor
from airflow_provider_dpone.specs import Cursor, PostgresSink, PostgresSource, TableState, VariableState
from airflow_provider_dpone.state import build_state_backend
from airflow_provider_dpone.triggers.postgres import (
    PostgresConditionTrigger,
    first_cell,
    libpq_params,
    newer_rows_probe,
)

CLASSPATH = "airflow_provider_dpone.triggers.postgres.PostgresConditionTrigger"
STATE = TableState("dst")


def watermark_sensor(**kw) -> DponePostgresSensor:
    args = {
        "task_id": "wait",
        "conn_id": "src",
        "table": "public.events",
        "column": "at",
        "pipeline": "shop",
        "load": "events",
        "state": STATE,
        **kw,
    }
    return DponePostgresSensor(**args)


# --- the poke logic, no database ------------------------------------------------------------


def test_the_arguments_pick_one_mode() -> None:
    assert set(DponePostgresSensor.template_fields) == {
        "sql",
        "parameters",
        "table",
        "column",
        "pipeline",
        "load",
        "state",
    }
    DponePostgresSensor(task_id="q", sql="select true")
    watermark_sensor()
    with pytest.raises(BadInputError, match=r"not both; got sql and \['table'\]"):
        DponePostgresSensor(task_id="q", sql="select true", table="t")
    with pytest.raises(BadInputError, match=r"missing \['column', 'load'\]"):
        DponePostgresSensor(task_id="q", table="t")
    with pytest.raises(BadInputError, match="parameters go with sql"):
        watermark_sensor(parameters=[1])


def test_the_probe_quotes_identifiers_and_binds_the_watermark_as_the_columns_type() -> None:
    catalog = [("id", "bigint"), ('at"; drop table x; --', "timestamp(3) with time zone")]
    statement, params = newer_rows_probe('raw.ev"ents', 'at"; drop table x; --', catalog, "2026-01-01")
    assert statement == (
        'select exists (select from "raw"."ev""ents" where "at""; drop table x; --" > '
        "%s::timestamp(3) with time zone)"
    )
    assert params == ("2026-01-01",)
    hostile = "0) or (1=1"  # a watermark travels as a parameter only
    assert hostile not in newer_rows_probe("events", "id", catalog, hostile)[0]
    assert newer_rows_probe("events", "id", catalog, None) == (
        'select exists (select from "public"."events")',
        (),
    )
    with pytest.raises(BadInputError, match=r"table public\.events does not exist"):
        newer_rows_probe("events", "id", [], "1")
    with pytest.raises(BadInputError, match=r"column 'nope' not in public\.events; it has \['id', "):
        newer_rows_probe("events", "nope", catalog, "1")


def test_the_first_cell_of_the_first_row_decides() -> None:
    assert first_cell(True, (True, "x")) and first_cell(True, (3,)) and first_cell(True, ("yes",))
    for row in [None, (None,), (False,), (0,), ("",)]:
        assert first_cell(True, row) is False
    with pytest.raises(BadInputError, match="returned no column"):
        first_cell(False, None)


def test_the_trigger_serializes_the_conn_id_never_the_connection(monkeypatch) -> None:
    secret = "pw" + uuid.uuid4().hex
    monkeypatch.setenv("AIRFLOW_CONN_PGSECRET", f"postgres://someone:{secret}@db.example.com:5432/shop")
    sensor = DponePostgresSensor(
        task_id="q", conn_id="pgsecret", sql="select %s > 1", parameters=(2,), poke_interval=15
    )
    classpath, kwargs = sensor.trigger().serialize()
    assert classpath == CLASSPATH
    assert kwargs == {
        "conn_id": "pgsecret",
        "sql": "select %s > 1",
        "parameters": [2],
        "table": None,
        "column": None,
        "watermark": None,
        "poll_interval": 15.0,
    }
    assert secret not in repr(kwargs) and "someone" not in repr(kwargs)
    assert PostgresConditionTrigger(**kwargs).serialize() == (
        classpath,
        kwargs,
    )  # as the triggerer rebuilds it
    # the triggerer resolves the connection itself, with what PostgresHook.get_conn would pass
    monkeypatch.setenv(
        "AIRFLOW_CONN_PGSECRET",
        f"postgres://someone:{secret}@db.example.com:6432/shop?sslmode=require&cursor=dictcursor",
    )
    params, _ = PostgresConditionTrigger(**kwargs).connect_params()
    assert params == {
        "host": "db.example.com",
        "port": 6432,
        "user": "someone",
        "password": secret,
        "dbname": "shop",
        "sslmode": "require",
    }


def test_libpq_params_take_the_hook_options(monkeypatch) -> None:
    from airflow_provider_dpone.hooks.postgres import DponePostgresHook

    conn = {
        "conn_type": "postgres",
        "host": "h",
        "schema": "db",
        "extra": {"application_name": "dpone", "iam": False},
    }
    monkeypatch.setenv("AIRFLOW_CONN_PGOPTS", json.dumps(conn))
    hook = DponePostgresHook(conn_id="pgopts", options="-c statement_timeout=5s")
    assert libpq_params(hook) == {
        "host": "h",
        "port": None,
        "user": None,
        "password": None,
        "dbname": "db",
        "options": "-c statement_timeout=5s",
        "application_name": "dpone",
    }


class _Backend:
    def __init__(self, record):
        self.record = record

    def get(self, pipeline, load):
        assert (pipeline, load) == ("shop", "events")
        return self.record

    def where(self, pipeline, load):
        return f"state of {pipeline}.{load}"


def test_the_watermark_is_the_loads_cursor_state(monkeypatch) -> None:
    import airflow_provider_dpone.state as state_module

    def use(record):
        monkeypatch.setattr(state_module, "build_state_backend", lambda spec: _Backend(record))

    sensor = watermark_sensor()
    use(None)
    trigger = sensor.trigger()
    assert (trigger.mode, trigger.table, trigger.column, trigger.watermark) == (
        "watermark",
        "public.events",
        "at",
        None,
    )
    use(CursorState("at", "2026-01-01 00:00:00+00", "timestamptz"))
    assert sensor.trigger().watermark == "2026-01-01 00:00:00+00"
    use(CursorState("id", "5", "int64"))
    with pytest.raises(BadInputError, match=r"a cursor on 'id', not on the sensor's column 'at'"):
        sensor.trigger()
    use(XminState(7))
    with pytest.raises(BadInputError, match="holds xmin state; this sensor waits past a cursor state"):
        sensor.trigger()
    with pytest.raises(BadInputError, match=r"state: .*backend 'table' needs 'conn_id'"):
        watermark_sensor(state={"backend": "table"}).trigger()


def test_bad_input_fails_the_task_without_retry_and_a_lost_connection_retries(monkeypatch) -> None:
    sensor = DponePostgresSensor(task_id="q", sql="select true")

    def fail(error):
        def check(self):
            raise error

        monkeypatch.setattr(PostgresConditionTrigger, "check", check)

    fail(BadInputError("table public.events does not exist"))
    with pytest.raises(AirflowFailException, match=r"\[DPONE100\] table public\.events does not exist"):
        sensor.poke({})
    fail(TransientError("cannot connect to 'src'"))
    with pytest.raises(TransientError):
        sensor.poke({})
    monkeypatch.setattr(PostgresConditionTrigger, "check", lambda self: True)
    assert sensor.poke({}) is True


def test_deferrable_checks_once_then_defers_and_resumes(monkeypatch) -> None:
    monkeypatch.setattr(PostgresConditionTrigger, "check", lambda self: False)
    sensor = DponePostgresSensor(
        task_id="q", conn_id="src", sql="select true", deferrable=True, poke_interval=5, timeout=600
    )
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({})
    assert isinstance(deferred.value.trigger, PostgresConditionTrigger)
    assert deferred.value.method_name == "execute_complete"
    assert deferred.value.timeout == timedelta(seconds=600)
    assert deferred.value.trigger.poll_interval == 5.0
    monkeypatch.setattr(PostgresConditionTrigger, "check", lambda self: True)
    assert sensor.execute({})["status"] == "success"  # already true: no deferral
    event = {"status": "success", "mode": "query", "conn_id": "src", "sql": "select true"}
    assert sensor.execute_complete({}, event) == event
    with pytest.raises(AirflowFailException, match=r"\[DPONE100\] .*relation"):
        sensor.execute_complete(
            {}, {"status": "error", "code": "DPONE100", "message": "relation x", "retryable": False}
        )
    with pytest.raises(TransientError, match="cannot connect"):
        sensor.execute_complete({}, {"status": "error", "message": "cannot connect", "retryable": True})
    with pytest.raises(AirflowFailException, match="without success"):
        sensor.execute_complete({}, None)


def test_the_provider_lists_the_sensor_and_the_trigger() -> None:
    import importlib

    from airflow_provider_dpone.get_provider_info import get_provider_info

    info = get_provider_info()
    listed = {
        kind: {m for entry in info[kind] for m in entry["python-modules"]} for kind in ("sensors", "triggers")
    }
    assert "airflow_provider_dpone.sensors.postgres" in listed["sensors"]
    assert "airflow_provider_dpone.triggers.postgres" in listed["triggers"]
    for module in listed["sensors"] | listed["triggers"]:
        importlib.import_module(module)


def test_importing_the_sensor_pulls_no_driver() -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, airflow_provider_dpone.sensors.postgres;"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('psycopg', 'psycopg2')))",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    assert out == "[]"


# --- against the real PostgreSQL --------------------------------------------------------------


def run_load(run_id: str) -> dict:
    from airflow_provider_dpone.operators.staged_load import StagedLoadOperator

    op = StagedLoadOperator(
        task_id="events",
        pipeline="shop",
        source=PostgresSource("src", table="events", incremental=Cursor("at")),
        sink=PostgresSink("dst", "raw.events", strategy="incremental_append"),
        state=STATE,
    )
    return op.execute({"run_id": run_id})


def test_watermark_mode_waits_past_what_a_real_load_stored(clean_pg) -> None:
    pg = clean_pg
    pg.execute("src", "create table events (id int, at timestamptz not null)")
    sensor = watermark_sensor()
    assert sensor.poke({}) is False  # no state, no row
    pg.execute(
        "src", "insert into events values (1, '2026-01-01 10:00:00+00'), (2, '2026-01-01 09:00:00+00')"
    )
    assert sensor.poke({}) is True  # no state yet: any row is new
    assert run_load("r1")["rows"] == 2
    stored = build_state_backend(StateSpec.model_validate(STATE)).get("shop", "events")
    assert isinstance(stored, CursorState) and stored.cursor == "at"
    assert sensor.poke({}) is False  # the load read everything
    pg.execute("src", "insert into events values (3, '2026-01-01 10:00:00+00')")
    assert sensor.poke({}) is False  # at the watermark is not past it
    # past it as a timestamp though not as text ('09:30-01' is 10:30 UTC)
    pg.execute("src", "insert into events values (4, '2026-01-01 09:30:00-01')")
    assert sensor.poke({}) is True
    run_load("r2")
    assert sensor.poke({}) is False  # the state is read at every poke


def test_watermark_mode_with_a_variable_state_and_odd_names(clean_pg, airflow_db) -> None:
    pg = clean_pg
    pg.execute("src", 'create schema "Odd"; create table "Odd"."Ev ents" ("a""b" bigint)')
    pg.execute("src", """insert into "Odd"."Ev ents" values (9), (10)""")
    backend = build_state_backend(StateSpec.model_validate(VariableState()))
    backend.commit("shop", "odd", CursorState('a"b', "10", "int64"), "r1")
    sensor = DponePostgresSensor(
        task_id="w",
        conn_id="src",
        table="Odd.Ev ents",
        column='a"b',
        pipeline="shop",
        load="odd",
        state=VariableState(),
    )
    assert sensor.poke({}) is False  # 9 and 10 are not past 10 (as numbers: '9' > '10' as text)
    pg.execute("src", """insert into "Odd"."Ev ents" values (11)""")
    assert sensor.poke({}) is True
    backend.reset("shop", "odd")


def test_watermark_mode_fails_loudly(clean_pg) -> None:
    pg = clean_pg
    with pytest.raises(AirflowFailException, match=r"table public\.events does not exist"):
        watermark_sensor().poke({})
    pg.execute("src", "create table events (id int, at timestamptz)")
    with pytest.raises(
        AirflowFailException, match=r"column 'nope' not in public\.events; it has \['id', 'at'\]"
    ):
        watermark_sensor(column="nope").poke({})
    build_state_backend(StateSpec.model_validate(STATE)).commit("shop", "events", XminState(1), "r1")
    with pytest.raises(AirflowFailException, match="holds xmin state"):
        watermark_sensor().poke({})
    build_state_backend(StateSpec.model_validate(STATE)).commit(
        "shop", "events", CursorState("at", "not a time", "timestamptz"), "r2"
    )
    with pytest.raises(AirflowFailException, match=r"(?i)invalid input syntax for type timestamp"):
        watermark_sensor().poke({})


def test_query_mode_is_templated_and_read_only(clean_pg) -> None:
    pg = clean_pg
    pg.execute("src", "create table orders (id int, day date)")
    sensor = DponePostgresSensor(
        task_id="q",
        conn_id="src",
        sql="select count(*) >= %(n)s from orders where day = %(day)s::date",
        parameters={"n": 2, "day": "{{ ds }}"},
    )
    sensor.render_template_fields({"ds": "2026-03-01"})
    assert sensor.parameters == {"n": 2, "day": "2026-03-01"}
    pg.execute("src", "insert into orders values (1, '2026-03-01'), (2, '2026-02-28')")
    assert sensor.poke({}) is False
    pg.execute("src", "insert into orders values (3, '2026-03-01')")
    assert sensor.poke({}) is True
    assert DponePostgresSensor(task_id="n", conn_id="src", sql="select true where false").poke({}) is False
    assert DponePostgresSensor(task_id="n", conn_id="src", sql="select null::bool").poke({}) is False
    with pytest.raises(AirflowFailException, match=r'relation "nope" does not exist'):
        DponePostgresSensor(task_id="e", conn_id="src", sql="select count(*) from nope").poke({})
    with pytest.raises(AirflowFailException, match=r"(?i)syntax error"):
        DponePostgresSensor(task_id="e", conn_id="src", sql="selec 1").poke({})
    with pytest.raises(AirflowFailException, match="returned no column"):
        DponePostgresSensor(task_id="e", conn_id="src", sql="select from orders").poke({})
    writer = DponePostgresSensor(task_id="e", conn_id="src", sql="delete from orders returning true")
    with pytest.raises(AirflowFailException, match="read-only transaction"):
        writer.poke({})
    assert pg.query("src", "select count(*) from orders") == [(3,)]


def _first_event(trigger: PostgresConditionTrigger, timeout: float = 30) -> asyncio.Task:
    async def first():
        return await trigger.run().__anext__()

    return asyncio.ensure_future(asyncio.wait_for(first(), timeout))


def test_the_deferred_sensor_fires_when_a_row_arrives(clean_pg) -> None:
    pg = clean_pg
    pg.execute("src", "create table events (id int, at timestamptz)")
    pg.execute("src", "insert into events values (1, '2026-01-01 00:00:00+00')")
    build_state_backend(StateSpec.model_validate(STATE)).commit(
        "shop", "events", CursorState("at", "2026-01-01 00:00:00+00", "timestamptz"), "r1"
    )
    sensor = watermark_sensor(deferrable=True, poke_interval=0.2)
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({})  # nothing past the watermark: hand over to the triggerer
    classpath, kwargs = deferred.value.trigger.serialize()
    assert classpath == CLASSPATH and kwargs["watermark"] == "2026-01-01 00:00:00+00"

    async def scenario():
        waiting = _first_event(PostgresConditionTrigger(**kwargs))
        await asyncio.sleep(1.0)  # several polls, none true
        assert not waiting.done()
        await asyncio.to_thread(pg.execute, "src", "insert into events values (2, '2026-01-01 00:00:01+00')")
        return await waiting

    event = asyncio.run(scenario())
    assert event.payload == {
        "status": "success",
        "mode": "watermark",
        "conn_id": "src",
        "table": "public.events",
        "column": "at",
        "watermark": "2026-01-01 00:00:00+00",
    }
    assert sensor.execute_complete({}, event.payload) == event.payload


def test_the_query_trigger_fires_and_reports_errors(clean_pg) -> None:
    pg = clean_pg
    pg.execute("src", "create table flags (ready bool)")
    trigger = PostgresConditionTrigger(
        conn_id="src", sql="select ready from flags where ready = %s", parameters=[True], poll_interval=0.1
    )

    async def scenario():
        waiting = _first_event(trigger)
        await asyncio.sleep(0.5)
        assert not waiting.done()
        await asyncio.to_thread(pg.execute, "src", "insert into flags values (false), (true)")
        return await waiting

    assert asyncio.run(scenario()).payload["status"] == "success"
    missing = PostgresConditionTrigger(conn_id="src", table="gone", column="at", poll_interval=0.1)
    event = asyncio.run(_wait(missing)).payload
    assert event["status"] == "error" and event["retryable"] is False
    assert event["message"] == "table public.gone does not exist (or the connection's role cannot see it)"
    bad = PostgresConditionTrigger(conn_id="src", sql="selec 1", poll_interval=0.1)
    event = asyncio.run(_wait(bad)).payload
    assert event["status"] == "error" and event["retryable"] is False and event["code"] == "DPONE100"
    assert "SyntaxError" in event["message"] and "the sensor's sql" in event["message"]
    with pytest.raises(AirflowFailException, match="SyntaxError"):
        DponePostgresSensor(task_id="e", conn_id="src", sql="selec 1").execute_complete({}, event)


async def _wait(trigger: PostgresConditionTrigger):
    return await _first_event(trigger)


def test_connection_errors_never_show_the_credentials(clean_pg, monkeypatch, caplog) -> None:
    from psycopg.conninfo import conninfo_to_dict

    token = "tok" + uuid.uuid4().hex[:16]
    p = conninfo_to_dict(clean_pg.src)
    host = p.get("host", "127.0.0.1")
    where = f"?host={host}" if host.startswith("/") else ""
    at = "" if host.startswith("/") else f"{host}:{p.get('port', 5432)}"
    monkeypatch.setenv("AIRFLOW_CONN_GHOST", f"postgres://{token}:{token}pw@{at}/{p['dbname']}{where}")
    trigger = PostgresConditionTrigger(conn_id="ghost", sql="select true", poll_interval=0.1)
    event = asyncio.run(_wait(trigger)).payload
    assert event["status"] == "error" and event["retryable"] is True  # a refused connection: retried
    assert "cannot connect to 'ghost'" in event["message"] and token not in event["message"]
    sensor = DponePostgresSensor(task_id="g", conn_id="ghost", sql="select true")
    with pytest.raises(TransientError) as raised:
        sensor.poke({})
    assert token not in str(raised.value)
    assert token not in caplog.text


DAG_FILE = """
import datetime as dt

from airflow.sdk import DAG

from airflow_provider_dpone.sensors.postgres import DponePostgresSensor

with DAG("pg_sensor_defers", schedule=None, start_date=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)):
    DponePostgresSensor(
        task_id="wait",
        conn_id="src",
        sql="select bool_or(ready) from flags where ready = %s",
        parameters=[True],
        deferrable=True,
        poke_interval=0.5,
        timeout=120,
    )
"""


def test_airflow_defers_to_the_trigger_and_resumes(clean_pg, airflow_db, tmp_path) -> None:
    """``airflow dags test``: the sensor defers, Airflow serializes the trigger and runs it, the
    row arrives while it polls, the task resumes in execute_complete."""
    import os
    from pathlib import Path

    pg = clean_pg
    pg.execute("src", "create table flags (ready bool)")
    (tmp_path / "pg_sensor_dag.py").write_text(DAG_FILE)
    env = {**os.environ, "AIRFLOW__CORE__DAGS_FOLDER": str(tmp_path)}
    exe = str(Path(sys.executable).with_name("airflow"))
    command = [exe, "dags", "test", "pg_sensor_defers", "2026-01-01"]
    lines, inserted = [], False
    with subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as run:
        assert run.stdout is not None
        for line in run.stdout:  # ends when the run does (the sensor times out after 120 s)
            lines.append(line)
            if not inserted and "not true yet; next check in 0.5s" in line:  # the trigger polls
                pg.execute("src", "insert into flags values (true)")
                inserted = True
    out = "".join(lines)
    assert run.returncode == 0 and inserted, out[-4000:]
    assert "Pausing task as DEFERRED" in out
    assert "condition met: {'status': 'success', 'mode': 'query'" in out
