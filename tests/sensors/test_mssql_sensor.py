"""DponeMsSqlSensor on the driver fake (no SQL Server here): what it asks, inside a transaction it
rolls back, and when it is satisfied; the watermark is the one a load stored in a real state table."""

from __future__ import annotations

from typing import Any

import mssql_python
import pytest
from airflow.sdk.exceptions import AirflowFailException

from airflow_provider_dpone.contracts.errors import BadInputError
from airflow_provider_dpone.contracts.manifest import StateSpec
from airflow_provider_dpone.contracts.state import CursorState
from airflow_provider_dpone.hooks import mssql_session
from airflow_provider_dpone.sensors.mssql import DponeMsSqlSensor
from airflow_provider_dpone.sql import mssql_catalog as catalog
from airflow_provider_dpone.state import build_state_backend
from tests.mssql_fake import FakeServer

SECRET = "s3cret-pw"
COLUMNS = [("id", "bigint", 8, 19, 0, False, None, False, False), ("at", "datetime2", 8, 27, 7, False, None, False, False)]  # fmt: skip


TRANCOUNT = [(1,)]  # what "select @@trancount" answers inside the sensor's transaction


def in_transaction(answer: Any) -> Any:
    return lambda sql, params: (TRANCOUNT, ["n"]) if sql == "select @@trancount" else answer(sql, params)


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> FakeServer:
    fake = FakeServer()
    monkeypatch.setattr(mssql_session.mssql_python, "connect", fake.connect)
    monkeypatch.setenv("AIRFLOW_CONN_MSSQL_T", f"mssql://loader:{SECRET}@sql.example.com:1433/shop")
    return fake


def sensor(**kw: Any) -> DponeMsSqlSensor:
    return DponeMsSqlSensor(task_id="wait", conn_id="mssql_t", **kw)


@pytest.mark.unit
def test_a_query_answering_true_inside_a_rolled_back_transaction(server: FakeServer) -> None:
    answer = [(0,)]
    server.answer = in_transaction(
        lambda sql, params: (answer, ["ready"]) if sql.startswith("select count") else None
    )
    s = sensor(sql="select count(*) from dbo.batches where day = ?", parameters=["2026-11-30"])
    assert s.poke({}) is False
    answer[:] = [(3,)]
    assert s.poke({}) is True
    sql = server.sql()
    assert sql[:4] == [
        "begin transaction",
        "select count(*) from dbo.batches where day = ?",
        "select @@trancount",
        "if @@trancount > 0 rollback transaction",
    ]
    assert server.statements[1][1] == ("2026-11-30",)


@pytest.mark.unit
def test_bad_arguments_and_a_refused_check_fail_without_a_retry(server: FakeServer) -> None:
    with pytest.raises(BadInputError, match="not both"):
        sensor(sql="select 1", table="dbo.t")
    with pytest.raises(BadInputError, match=r"missing \['column', 'load'\]"):
        sensor(table="dbo.t")
    server.fail_on = "dbo.nope"
    server.error = mssql_python.ProgrammingError(
        "Syntax error or access violation", f"Invalid object name 'dbo.nope'. PWD={SECRET}"
    )
    with pytest.raises(AirflowFailException, match="Invalid object name") as failed:
        sensor(sql="select 1 from dbo.nope").poke({})
    assert SECRET not in str(failed.value)


@pytest.mark.integration
def test_rows_past_the_watermark_a_load_stored(server: FakeServer, clean_pg: Any) -> None:
    newer = [(1,)]

    def answer(sql: str, params: tuple[Any, ...]) -> Any:
        if sql == catalog.INTROSPECT_COLUMNS:
            return COLUMNS, ["name"]
        if sql.startswith("select top (1) 1 from [dbo].[events]"):
            return newer, ["x"]
        return None

    server.answer = in_transaction(answer)
    state = {"backend": "table", "conn_id": "dst"}
    s = sensor(table="dbo.events", column="at", load="events", pipeline="shop", state=state)
    assert s.poke({}) is True
    assert "select top (1) 1 from [dbo].[events]" in server.sql()  # nothing stored: any row
    build_state_backend(StateSpec(**state)).commit(
        "shop", "events", CursorState("at", "2026-11-30T00:00:00", "timestamp"), "r1"
    )
    newer[:] = []
    assert s.poke({}) is False
    query, params = next(
        (s, p) for s, p in reversed(server.statements) if s.startswith("select top (1) 1 from [dbo]")
    )
    assert query == "select top (1) 1 from [dbo].[events] where [at] > cast(? as datetime2(7))"
    assert params == ("2026-11-30T00:00:00",)
    other = sensor(table="dbo.events", column="id", load="events", pipeline="shop", state=state)
    with pytest.raises(AirflowFailException, match="is a cursor on 'at', not on the sensor's column 'id'"):
        other.poke({})


@pytest.mark.unit
def test_a_query_that_ends_the_transaction_fails(server: FakeServer) -> None:
    server.answer = lambda sql, params: ([(0,)], ["n"]) if sql == "select @@trancount" else ([(1,)], ["x"])
    with pytest.raises(AirflowFailException, match="ended its transaction"):
        sensor(sql="select 1").poke({})
