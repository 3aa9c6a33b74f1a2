"""The SQL Server hook's own code, on the driver contract (``tests/mssql_fake.py``): no SQL
Server can run here, so these show what reaches the driver: the connection string, the staging
statements and the bulk copy, the finalize's one transaction (state inside, rollback on a failed
guard), the extract's window and batches, error classification and redaction. The same code
runs against a real SQL Server in the live suite (``DPONE_MSSQL_URI``, docs/mssql.md)."""

from __future__ import annotations

import datetime as dt
import inspect
import json
from typing import Any

import mssql_python
import pytest

from airflow_provider_dpone.contracts.artifacts import InMemoryRows, StreamingBatches
from airflow_provider_dpone.contracts.errors import BadInputError, DuplicateKeyError, TransientError
from airflow_provider_dpone.contracts.manifest import parse_manifest
from airflow_provider_dpone.contracts.redaction import Redactor
from airflow_provider_dpone.contracts.sources import source_spec
from airflow_provider_dpone.contracts.state import CursorState
from airflow_provider_dpone.contracts.table import CanonicalType, Column, TableSchema
from airflow_provider_dpone.hooks import mssql_session
from airflow_provider_dpone.hooks.connection import ConnectionRecord
from airflow_provider_dpone.hooks.mssql_connector import MsSqlEngine
from airflow_provider_dpone.runtime.protocols import LoadContext, StagedData
from airflow_provider_dpone.sql import mssql_catalog as catalog
from tests.mssql_fake import FakeCursor, FakeServer

pytestmark = pytest.mark.unit

URI = "mssql://loader:s3cr%3Bet@sql.example.com:1433/shop?encrypt=yes&trust_server_certificate=no"
SECRET = "s3cr;et"
# INTROSPECT_COLUMNS rows of raw.items: name, type, max_length, precision, scale, nullable,
# collation, has a default, is a CLR type
ITEMS = [
    ("id", "bigint", 8, 19, 0, False, None, False, False),
    ("name", "nvarchar", 200, 0, 0, True, "Latin1_General_CI_AS", False, False),
    ("updated_at", "datetime2", 8, 27, 7, False, None, False, False),
]


def load(sink: dict[str, Any] | None = None, **source: Any) -> Any:
    body = {
        "name": "items",
        "source": {"connector": "mssql", "conn_id": "mssql_t", "table": "raw.items", **source},
        "sink": {"connector": "mssql", "conn_id": "mssql_t", "table": "raw.items",
                 **(sink or {"strategy": "incremental_merge", "unique_key": ["id"]})},
    }  # fmt: skip
    return parse_manifest({"pipeline": "p", "loads": [body]}).loads[0]


class Catalog:
    """Answers catalog reads from a set of existing tables; guards see no bad rows."""

    def __init__(self, tables: dict[str, list[tuple[Any, ...]]], rows: list[tuple[Any, ...]] = ()) -> None:
        self.tables, self.rows, self.duplicates = tables, list(rows), []

    def __call__(self, sql: str, params: tuple[Any, ...]) -> Any:
        name = params[0] if params else None
        if sql == catalog.TABLE_EXISTS:
            return [(1 if name in self.tables else 0,)], ["exists"]
        if sql == catalog.INTROSPECT_COLUMNS:
            return self.tables.get(name, []), ["name"]
        if sql == catalog.INTROSPECT_PRIMARY_KEY:
            return ([("id",)] if name in self.tables else []), ["name"]
        if sql == catalog.INTROSPECT_UNIQUE_KEYS:
            return ([(1, "id")] if name in self.tables else []), ["index_id", "name"]
        if "datediff_big" in sql or "now_epoch" in sql:
            return [(1_800_000_000.0,)], ["epoch"]
        if sql.startswith("select convert(varchar(33), max("):
            return [("2026-03-01T00:00:00",)], ["mx"]
        if "having count_big(*) > 1" in sql:
            return self.duplicates, ["id", "n"]
        if "dpone_json_sample" in sql:
            return [(0, None)], ["dpone_nulls", "dpone_json_sample"]
        if sql.startswith("select top (5)") or "from sys.tables" in sql:
            return [], ["x"]
        if sql.startswith("select count_big(*)") or sql.startswith("select (select count_big"):
            return [(0, 0, 0)], ["n", "m", "o"]
        if sql.startswith("select [id], [name]"):
            return self.rows, ["id", "name", "updated_at"]
        return 1 if sql.startswith(("update", "insert", "delete")) else None


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> FakeServer:
    fake = FakeServer()
    monkeypatch.setattr(mssql_session.mssql_python, "connect", fake.connect)
    monkeypatch.setenv("AIRFLOW_CONN_MSSQL_T", URI)
    return fake


def test_the_fake_takes_the_installed_drivers_arguments() -> None:
    real = list(inspect.signature(mssql_python.cursor.Cursor.bulkcopy).parameters)
    assert list(inspect.signature(FakeCursor.bulkcopy).parameters) == real
    assert list(inspect.signature(mssql_python.connect).parameters)[:2] == ["connection_str", "autocommit"]
    assert "timeout" in inspect.signature(mssql_python.connect).parameters
    from tests.mssql_fake import FakeConnection

    for fake, real in (
        (FakeCursor, mssql_python.cursor.Cursor),
        (FakeConnection, mssql_python.connection.Connection),
    ):
        public = [n for n in vars(fake) if not n.startswith("_")]
        assert [n for n in public if not hasattr(real, n)] == [], (
            f"{fake.__name__} has what the driver has not"
        )


def test_the_connection_string_comes_from_the_official_connection_fields() -> None:
    conn = ConnectionRecord("c", "mssql", host="sql.example.com", schema="shop", login="loader",
                            password="pa;ss}", port=1433, extra=json.dumps({"encrypt": True, "trust_server_certificate": False,
                                                                           "driver": "ODBC Driver 18 for SQL Server"}))  # fmt: skip
    assert mssql_session.connection_string(conn) == (
        "Server=sql.example.com,1433;Database=shop;UID=loader;PWD={pa;ss}}};Encrypt=yes;TrustServerCertificate=no"
    )
    named = ConnectionRecord("c", "mssql", host="db01\\SALES", schema="dw")
    assert mssql_session.connection_string(named) == "Server=db01\\SALES;Database=dw"
    azure = ConnectionRecord("c", "mssql", host="x.database.windows.net", login="app-id", password="pw",
                             extra=json.dumps({"authentication": "ActiveDirectoryServicePrincipal"}))  # fmt: skip
    assert "Authentication=ActiveDirectoryServicePrincipal" in mssql_session.connection_string(azure)
    with pytest.raises(BadInputError, match=r"extra \['sslmode'\] is not a SQL Server connection option"):
        mssql_session.connection_string(
            ConnectionRecord("c", "mssql", host="h", extra='{"sslmode": "require"}')
        )
    with pytest.raises(
        BadInputError, match=r"extra \['bulk_batch_size'\] is not a SQL Server connection option"
    ):
        mssql_session.connection_string(
            ConnectionRecord("c", "mssql", host="h", extra='{"bulk_batch_size": 5}')
        )
    with pytest.raises(BadInputError, match="host is empty"):
        mssql_session.connection_string(ConnectionRecord("c", "mssql"))


def test_the_engine_opens_autocommit_connections_from_the_environment(server: FakeServer) -> None:
    engine = MsSqlEngine("mssql_t")
    with engine.session() as conn:
        conn.cursor().execute("select 1")
    opened = server.connections[0]
    assert opened["autocommit"] is True and opened["timeout"] == 30
    assert opened["connection_str"].startswith(
        "Server=sql.example.com,1433;Database=shop;UID=loader;PWD={s3cr;et}"
    )


def test_errors_a_retry_resolves_are_transient_and_redacted() -> None:
    redactor = Redactor()
    redactor.add_secret(SECRET)
    deadlock = mssql_python.DatabaseError(
        "General error", "Transaction (Process ID 52) was deadlocked on lock resources"
    )
    link = mssql_python.OperationalError("Communication link failure", f"TCP reset; PWD={SECRET}")
    timeout = mssql_python.DatabaseError("General error", "Lock request time out period exceeded.")
    syntax = mssql_python.ProgrammingError("Syntax error or access violation", "Incorrect syntax near 'x'")
    for exc in (deadlock, link, timeout):
        found = mssql_session.classify(exc, "finalize", redactor)
        assert isinstance(found, TransientError) and SECRET not in str(found)
    assert mssql_session.classify(syntax, "finalize", redactor) is None


def test_staging_is_created_labelled_then_bulk_copied_batch_by_batch(server: FakeServer) -> None:
    server.answer = Catalog({})
    schema = TableSchema((
        Column("id", CanonicalType.INT64, nullable=False), Column("tags", CanonicalType.ARRAY),
        Column("doc", CanonicalType.JSON), Column("wait", CanonicalType.INTERVAL), Column("blob", CanonicalType.BINARY),
    ), ("id",))  # fmt: skip
    batches = [
        [(1, ["a"], {"k": 1}, dt.timedelta(minutes=5), memoryview(b"x"))],
        [(2, None, '{"k": 2}', None, None)],
    ]
    ctx = LoadContext("p", load(), "r1")
    from airflow_provider_dpone.contracts.artifacts import ExtractResult

    staged = MsSqlEngine("mssql_t").stage(ctx, ExtractResult(StreamingBatches(iter(batches)), schema, None))
    assert staged.rows == 2 and staged.staging.startswith("dpone_staging.items__")
    sql = server.sql()
    creates = [s for s in sql if s.startswith("create table")]
    assert len(creates) == 1 and "[dpone_load_seq] bigint identity(1,1)" in creates[0]
    assert any("sp_addextendedproperty" in s and '"dpone_staging": "p.items"' in s for s in sql)
    assert [b["rows"] for b in server.bulk] == [
        [(1, '["a"]', '{"k": 1}', "0:05:00", b"x")],
        [(2, None, '{"k": 2}', None, None)],
    ]
    first = server.bulk[0]
    assert (
        first["table"].startswith("[dpone_staging].[items__") and first["table_lock"] and first["keep_nulls"]
    )
    assert first["column_mappings"] == ["id", "tags", "doc", "wait", "blob"] and first["timeout"] == 0


def test_a_bulk_copy_that_acknowledges_fewer_rows_fails(server: FakeServer) -> None:
    server.answer, server.acknowledge = Catalog({}), lambda n: n - 1
    schema = TableSchema((Column("id", CanonicalType.INT64),))
    from airflow_provider_dpone.contracts.artifacts import ExtractResult

    with pytest.raises(BadInputError, match="acknowledged 1 of 2 rows"):
        MsSqlEngine("mssql_t").stage(
            LoadContext("p", load(), "r1"), ExtractResult(InMemoryRows([(1,), (2,)]), schema, None)
        )


def _staged(engine: MsSqlEngine, ctx: LoadContext) -> StagedData:
    schema = TableSchema(
        tuple(catalog.MsSqlCatalog.column_from_catalog(engine.sql_dialect, r) for r in ITEMS), ("id",)
    )
    return StagedData(str(engine.staging_table(ctx)), schema, rows=3, bytes=None, format="tds_bulk_copy")


def test_a_merge_finalizes_in_one_transaction_with_the_state_row_inside(server: FakeServer) -> None:
    server.answer = Catalog({"[raw].[items]": ITEMS})
    engine, ctx = MsSqlEngine("mssql_t"), LoadContext("p", load(), "r1")
    state = [("update [dpone].[state] set [state] = ? where [pipeline] = ?", ('{"kind": "cursor"}', "p"))]
    result = engine.finalize(ctx, _staged(engine, ctx), state)
    sql = server.sql()
    begin = next(i for i, s in enumerate(sql) if s.startswith("set xact_abort on;"))
    order = [sql.index(next(s for s in sql if s.startswith(p))) for p in
             ("set xact_abort on;", "declare @dpone_lock", "update t set", "insert into [raw].[items]", "update [dpone].[state]", "commit transaction")]  # fmt: skip
    assert order == sorted(order) and order[0] == begin
    assert engine.sql_dialect.rollback_finalize() not in sql
    assert result["target"] == "raw.items" and result["rows_updated"] == 1 and result["rows_inserted"] == 1


def test_a_failed_guard_rolls_the_transaction_back(server: FakeServer) -> None:
    answer = Catalog({"[raw].[items]": ITEMS})
    answer.duplicates = [(7, 2)]
    server.answer = answer
    engine, ctx = MsSqlEngine("mssql_t"), LoadContext("p", load(), "r1")
    with pytest.raises(DuplicateKeyError):
        engine.finalize(ctx, _staged(engine, ctx), [("update [dpone].[state] set [state] = ?", ("{}",))])
    sql = server.sql()
    assert engine.sql_dialect.rollback_finalize() in sql
    assert not any(s.startswith(("commit", "update [dpone]", "update t set")) for s in sql)


def test_a_cursor_extract_fixes_its_upper_bound_then_streams_batches(server: FakeServer) -> None:
    rows = [(i, f"n{i}", dt.datetime(2026, 2, 1) + dt.timedelta(days=i)) for i in range(5)]
    server.answer = Catalog({"[raw].[items]": ITEMS}, rows)
    spec = source_spec({"connector": "mssql", "conn_id": "mssql_t", "table": "raw.items", "batch_size": 2,
                        "incremental": {"mode": "cursor", "cursor": "updated_at", "lookback": "1h"}})  # fmt: skip
    state = CursorState(cursor="updated_at", value="2026-01-01T00:00:00", value_type="timestamp")
    result = MsSqlEngine("mssql_t").extract(spec, state)
    batches = list(result.artifact.batches)
    assert [len(b) for b in batches] == [2, 2, 1] and batches[0][0] == rows[0]
    select, params = next((s, p) for s, p in server.statements if s.startswith("select [id], [name]"))
    assert select.startswith("select [id], [name], [updated_at] from [raw].[items] where [updated_at] > ")
    assert params == ("2026-01-01T00:00:00", 3600.0, "2026-03-01T00:00:00")
    assert result.state_candidate == CursorState("updated_at", "2026-03-01T00:00:00", value_type="timestamp")
    assert result.stats.source_rows == 5


def test_the_state_table_on_sql_server_speaks_tsql(server: FakeServer) -> None:
    from airflow_provider_dpone.state.table import TableStateBackend

    server.answer = Catalog({})
    backend = TableStateBackend("mssql_t", "dpone.state", connector="mssql", standalone=True)
    backend.commit("p", "items", CursorState(cursor="c", value="5"), "r1")
    sql = server.sql()
    assert any("create table [dpone].[state]" in s for s in sql)
    upsert, params = next((s, p) for s, p in reversed(server.statements) if "[dpone].[state]" in s and p)
    assert "[dpone].[state]" in upsert and params[:2] == ("p", "items")
    assert backend.colocated_statements(backend.hook, "p", "items", CursorState(cursor="c", value="6"), "r2")


def test_a_rowversion_cursor_stops_below_the_oldest_open_transaction(server: FakeServer) -> None:
    columns = [("id", "bigint", 8, 19, 0, False, None, False, False), ("ver", "timestamp", 8, 0, 0, False, None, False, False)]  # fmt: skip
    answer = Catalog({"[dbo].[t]": columns})
    server.answer = lambda sql, params: (
        ([("0x00000000000007D1",)], ["mx"]) if "max([ver])" in sql else answer(sql, params)
    )
    spec = source_spec({"connector": "mssql", "conn_id": "mssql_t", "table": "dbo.t", "incremental": {"mode": "cursor", "cursor": "ver"}})  # fmt: skip
    result = MsSqlEngine("mssql_t").extract(
        spec, CursorState("ver", "0x00000000000007D0", value_type="binary")
    )
    list(result.artifact.batches)
    bounds = next(s for s in server.sql() if "max([ver])" in s)
    # a transaction still open may commit a smaller rowversion: the watermark must not pass it
    assert bounds.endswith("where [ver] < min_active_rowversion()")
    select, params = next((s, p) for s, p in server.statements if s.startswith("select [id], [ver]"))
    assert "[ver] > convert(binary(8), ?, 1)" in select and params == (
        "0x00000000000007D0",
        "0x00000000000007D1",
    )
    assert result.state_candidate == CursorState("ver", "0x00000000000007D1", value_type="binary")


def test_the_airflow_hook_tests_its_connection_and_runs_sql(server: FakeServer) -> None:
    from airflow_provider_dpone.hooks.mssql import DponeMsSqlHook

    server.answer = lambda sql, params: ([(1,)], ["one"]) if sql == "select 1" else None
    hook = DponeMsSqlHook(mssql_conn_id="mssql_t")
    assert hook.test_connection() == (True, "select 1 returned (1,)")
    assert hook.get_first("select 1") == (1,)
    assert server.connections[-1]["connection_str"].startswith("Server=sql.example.com,1433;Database=shop")
    server.fail_on, server.error = (
        "select 1",
        mssql_python.OperationalError("Client unable to establish connection", f"login failed, PWD={SECRET}"),
    )
    ok, message = hook.test_connection()
    assert not ok and SECRET not in message and "login failed" in message


def test_a_partition_plan_measures_the_key_and_each_range_reads_the_plans_window(server: FakeServer) -> None:
    from airflow_provider_dpone.contracts.partitions import ParallelSpec, PartitionTask

    answer = Catalog({"[raw].[items]": ITEMS}, [(1, "a", dt.datetime(2026, 2, 1))])
    server.answer = lambda sql, params: (
        ([("1", "1000")], ["lo", "hi"]) if "min([id])" in sql else answer(sql, params)
    )
    spec = source_spec({"connector": "mssql", "conn_id": "mssql_t", "table": "raw.items",
                        "incremental": {"mode": "cursor", "cursor": "updated_at"}})  # fmt: skip
    engine = MsSqlEngine("mssql_t")
    plan = engine.plan_partitions(spec, None, ParallelSpec(partitions=4, by="id"))
    assert [r.describe() for r in plan.ranges][1:3] == ["id in [251, 501)", "id in [501, 751)"]
    assert plan.pinned and plan.cursor_upper == "2026-03-01T00:00:00"
    bounds = next(s for s in server.sql() if "min([id])" in s)
    assert (
        bounds
        == "select convert(nvarchar(max), min([id])), convert(nvarchar(max), max([id])) from [raw].[items]"
    )
    task = PartitionTask("p1", "2026-11-30T08:00:00+00:00", plan.ranges[1], "file:///x", None, None, None, {},
                         plan.cursor_upper, True)  # fmt: skip
    server.statements.clear()
    list(engine.extract(spec, None, partition=task).artifact.batches)
    select, params = next((s, p) for s, p in server.statements if s.startswith("select [id], [name]"))
    assert select.endswith(
        "where ([updated_at] <= cast(? as datetime2(7))) and ([id] >= cast(? as bigint) and [id] < cast(? as bigint))"
    )
    assert params == ("2026-03-01T00:00:00", "251", "501")  # the plan's bound: no max() measured again
    assert not any("max([updated_at])" in s for s in server.sql())
