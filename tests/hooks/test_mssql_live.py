"""SQL Server as a source, as a state host and on its routes, against a real server: runs when
``DPONE_MSSQL_URI`` names one (docs/mssql.md: docker-compose's SQL Server 2022), and skips with
that reason otherwise. The sink's strategies are in the shared contract (test_sink_contract.py).
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_provider_dpone.contracts.manifest import parse_manifest
from airflow_provider_dpone.runtime.failpoints import POINTS
from tests.helpers import run_first_load as run
from tests.helpers import run_killed

pytestmark = pytest.mark.integration

ITEMS = """
create table src.items (id bigint not null primary key, name nvarchar(100) not null, amount decimal(12,2) null,
                        day date not null, updated_at datetime2(3) not null, version rowversion);
with n as (select top (400) row_number() over (order by (select null)) as g from sys.all_columns)
insert into src.items (id, name, amount, day, updated_at)
select g, concat(N'item ', g), g * 1.25, dateadd(day, g % 10, '2026-01-01'), dateadd(minute, g, '2026-01-01')
from n;
"""


def manifest(source: dict[str, Any], sink: dict[str, Any], state: dict[str, Any] | None = None) -> Any:
    body = {
        "name": "items",
        "source": {"connector": "mssql", "conn_id": "mssql_dst", "table": "src.items", **source},
        "sink": {"table": "raw.items", **sink},
    }
    return parse_manifest(
        {"pipeline": "live", "state": state or {"backend": "table", "conn_id": "dst"}, "loads": [body]}
    )


PG_SINK = {"connector": "postgres", "conn_id": "dst"}
MSSQL_SINK = {"connector": "mssql", "conn_id": "mssql_dst"}


def test_a_full_extract_lands_in_postgres(clean_pg: Any, clean_mssql: Any) -> None:
    clean_mssql.execute(ITEMS)
    report = run(manifest({}, {**PG_SINK, "strategy": "full_refresh"}))
    assert report.status == "success" and report.rows == 400
    assert clean_pg.query("dst", "select count(*), sum(amount) from raw.items") == [(400, 100250.00)]


def test_a_cursor_extract_with_lookback_merges_only_new_rows(clean_pg: Any, clean_mssql: Any) -> None:
    clean_mssql.execute(ITEMS)
    m = manifest({"incremental": {"mode": "cursor", "cursor": "updated_at", "lookback": "5m"}, "columns": ["id", "name", "amount", "day", "updated_at"]},
                 {**PG_SINK, "strategy": "incremental_merge", "unique_key": ["id"]})  # fmt: skip
    assert run(m, "r1").rows == 400
    clean_mssql.execute("update src.items set name = N'changed', updated_at = '2026-06-01' where id = 7")
    second = run(m, "r2")
    assert second.rows == 1 and second.sink["finalize"]["rows_updated"] == 1
    assert clean_pg.query("dst", "select name from raw.items where id = 7") == [("changed",)]


def test_a_chunked_backfill_reads_the_range_in_chunks(clean_pg: Any, clean_mssql: Any) -> None:
    clean_mssql.execute(ITEMS)
    m = manifest({"incremental": {"mode": "cursor", "cursor": "id", "chunk": 100}, "columns": ["id", "name"]},
                 {**PG_SINK, "strategy": "incremental_append"})  # fmt: skip
    report = run(m)
    assert report.status == "success"
    assert clean_pg.query("dst", "select count(*) from raw.items") == [(400,)]


def test_a_window_reads_only_its_range(clean_pg: Any, clean_mssql: Any) -> None:
    clean_mssql.execute(ITEMS)
    window = {"column": "day", "start": "2026-01-02", "end": "2026-01-04"}
    m = manifest({"window": window, "columns": ["id", "name", "day"]},
                 {**PG_SINK, "strategy": "replace", "replace": {"window": window}})  # fmt: skip
    assert run(m).rows == 80


def test_a_partitioned_load_reads_every_row_once(clean_pg: Any, clean_mssql: Any, tmp_path: Any) -> None:
    from airflow_provider_dpone.operators.wiring import assemble
    from airflow_provider_dpone.runtime.partitioned import run_partitioned

    clean_mssql.execute(ITEMS)
    sink = {**PG_SINK, "strategy": "incremental_merge", "unique_key": ["id"],
            "staging": {"files": {"uri": tmp_path.as_uri()}}}  # fmt: skip
    m = manifest(
        {"incremental": {"mode": "cursor", "cursor": "updated_at"}, "columns": ["id", "name", "updated_at"]},
        sink,
    )
    load = m.loads[0].model_copy(update={"parallel": parse_parallel(4)})
    report = run_partitioned("live", load, assemble(load, m.state), "r1")
    assert report.status == "success" and report.rows == 400
    assert report.source["window"]["partitions"] == 4
    assert clean_pg.query("dst", "select count(*), count(distinct id) from raw.items") == [(400, 400)]


def parse_parallel(n: int) -> Any:
    from airflow_provider_dpone.contracts.partitions import ParallelSpec

    return ParallelSpec(partitions=n, by="id")


def test_state_on_sql_server_commits_with_the_data(clean_mssql: Any) -> None:
    clean_mssql.execute(ITEMS)
    m = manifest({"incremental": {"mode": "cursor", "cursor": "id"}, "columns": ["id", "name"]},
                 {**MSSQL_SINK, "strategy": "incremental_append"}, state={"backend": "table", "connector": "mssql", "conn_id": "mssql_dst"})  # fmt: skip
    run(m, "r1")
    clean_mssql.execute(
        "insert into src.items (id, name, day, updated_at) values (401, N'x', '2026-02-01', '2026-02-01')"
    )
    assert run_killed(m, "r2", "mid_finalize") == -signal.SIGKILL
    assert clean_mssql.query("select count(*) from raw.items") == [(400,)]  # rolled back with the state
    run(m, "r2")
    assert clean_mssql.query("select count(*) from raw.items") == [(401,)]
    assert clean_mssql.query("select object_id(N'dpone_staging.dpone_journal')") == [(None,)]


def test_lost_state_is_rederived_from_a_sql_server_target(clean_pg: Any, clean_mssql: Any) -> None:
    clean_mssql.execute(ITEMS)
    m = manifest({"incremental": {"mode": "cursor", "cursor": "id", "on_state_missing": "from_target"}, "columns": ["id", "name"]},
                 {**MSSQL_SINK, "strategy": "incremental_append"})  # fmt: skip
    run(m, "r1")
    clean_pg.execute("dst", "delete from dpone.state")
    clean_mssql.execute(
        "insert into src.items (id, name, day, updated_at) values (401, N'x', '2026-02-01', '2026-02-01')"
    )
    report = run(m, "r2")
    assert report.rows == 1 and clean_mssql.query("select count(*) from raw.items") == [(401,)]


TRACKED = "alter database current set change_tracking = on (change_retention = 2 days, auto_cleanup = on)"


def test_change_tracking_into_sql_server_applies_deletes(clean_mssql: Any) -> None:
    clean_mssql.execute(ITEMS)
    if not clean_mssql.query(
        "select count(*) from sys.change_tracking_databases where database_id = db_id()"
    )[0][0]:
        clean_mssql.execute(TRACKED)
    clean_mssql.execute("alter table src.items enable change_tracking")
    m = manifest({"incremental": {"mode": "change_tracking"}, "columns": ["id", "name", "amount"]},
                 {**MSSQL_SINK, "strategy": "cdc_apply", "unique_key": ["id"]}, state={"backend": "table", "connector": "mssql", "conn_id": "mssql_dst"})  # fmt: skip
    assert run(m, "r1").rows == 400  # the first read is a snapshot
    clean_mssql.execute(
        "update src.items set name = N'changed' where id = 7; delete from src.items where id = 8"
    )
    report = run(m, "r2")
    done = report.sink["finalize"]
    assert (done["rows_updated"], done["rows_deleted"]) == (1, 1)
    assert clean_mssql.query("select name from raw.items where id = 7") == [("changed",)]
    assert clean_mssql.query("select count(*) from raw.items") == [(399,)]


def test_cdc_into_postgres_applies_net_changes(clean_pg: Any, clean_mssql: Any) -> None:
    clean_mssql.execute(ITEMS)
    clean_mssql.execute(
        "exec sys.sp_cdc_enable_table @source_schema = N'src', @source_name = N'items', @role_name = null, "
        "@supports_net_changes = 1, @captured_column_list = N'id, name, amount'"
    )
    m = manifest({"incremental": {"mode": "cdc"}}, {**PG_SINK, "strategy": "cdc_apply", "unique_key": ["id"]})
    assert run(m, "r1").rows == 400
    clean_mssql.execute(
        "delete from src.items where id = 9; insert into src.items (id, name, day, updated_at) values (500, N'n', '2026-02-01', '2026-02-01')"
    )
    for _ in range(60):  # the capture job (SQL Server Agent) reads the log every few seconds
        if run(m, "r2").rows:
            break
        time.sleep(1)
    assert clean_pg.query("dst", "select count(*), max(id) from raw.items") == [(400, 500)]


def test_sql_server_into_clickhouse(clean_ch: Any, clean_mssql: Any) -> None:
    clean_mssql.execute(ITEMS)
    m = manifest(
        {"columns": ["id", "name", "amount", "day"]},
        {"connector": "clickhouse", "conn_id": "ch", "strategy": "full_refresh"},
    )
    assert run(m).rows == 400
    assert clean_ch.query("select count() from raw.items") == [(400,)]


def test_sql_server_into_bigquery(clean_bq: Any, clean_mssql: Any) -> None:
    clean_mssql.execute(ITEMS)
    m = manifest(
        {"columns": ["id", "name", "amount", "day", "updated_at"]},
        {"connector": "bigquery", "conn_id": "bq", "strategy": "incremental_merge", "unique_key": ["id"]},
    )
    assert run(m).rows == 400
    assert clean_bq.query("select count(*), sum(amount) from raw.items") == [(400, 100250)]


def test_kafka_into_sql_server(clean_pg: Any, clean_mssql: Any, kafka: Any) -> None:
    from tests.hooks.test_kafka import FIELDS, _events, from_kafka, topic_name

    topic = topic_name()
    kafka.create_topic(topic, 2)
    kafka.produce(topic, _events(1, 120))
    sink = {**MSSQL_SINK, "table": "raw.msgs", "strategy": "incremental_merge", "unique_key": ["id"]}
    m = from_kafka(topic, sink, fields=FIELDS)
    assert run(m, "r1").rows == 120
    kafka.produce(topic, _events(7, 7) + _events(121, 130))
    assert run(m, "r2").rows == 11
    assert clean_mssql.query("select count(*), max(id) from raw.msgs") == [(130, 130)]


@pytest.fixture
def rest_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The fake REST API of test_rest.py, as its connection ``api``."""
    from tests.fake_api import FakeApi
    from tests.hooks.test_rest import TOKEN, records

    server = FakeApi(records(53))
    conn = {"conn_type": "http", "host": server.url, "password": TOKEN, "extra": {"auth": "bearer"}}
    monkeypatch.setenv("AIRFLOW_CONN_API", json.dumps(conn))
    yield server
    server.close()


def test_rest_into_sql_server(clean_pg: Any, clean_mssql: Any, rest_api: Any) -> None:
    from tests.hooks.test_rest import PAGINATIONS, source
    from tests.hooks.test_rest import manifest as rest_manifest

    sink = {**MSSQL_SINK, "table": "raw.items", "strategy": "incremental_merge", "unique_key": ["id"]}
    m = rest_manifest(source(*PAGINATIONS["page"]), sink)
    assert run(m, "r1").rows == 53
    assert clean_mssql.query("select count(*), count(distinct id) from raw.items") == [(53, 53)]


@pytest.mark.parametrize("point", POINTS)
@pytest.mark.parametrize(
    "strategy", ["full_refresh", "incremental_append", "incremental_merge", "snapshot_diff", "scd2"]
)
def test_sigkill_at_every_phase_into_sql_server_converges(
    clean_pg: Any, clean_mssql: Any, strategy: str, point: str
) -> None:
    """The crash matrix of tests/runtime/test_crash_safety.py with SQL Server as the sink."""
    from tests.runtime.test_crash_safety import CASES as CRASH
    from tests.runtime.test_crash_safety import ITEMS as PG_ITEMS
    from tests.runtime.test_crash_safety import manifest_body

    clean_pg.execute("src", PG_ITEMS)
    body = manifest_body(strategy)
    body["loads"][0]["sink"].update(MSSQL_SINK)
    m = parse_manifest(body)
    run(m, "r1")
    clean_pg.execute("src", CRASH[strategy][3])
    assert run_killed(m, "r2", point) == -signal.SIGKILL, f"the worker did not reach failpoint {point}"
    assert run(m, "r2").status == "success"
    current = " where is_current = 1" if strategy == "scd2" else ""
    expected = clean_pg.query("src", "select count(*), sum(id), sum(length(name)) from items")
    found = clean_mssql.query(f"select count(*), sum(id), sum(len(name)) from raw.items{current}")
    assert [tuple(int(v) for v in r) for r in found] == [tuple(int(v) for v in r) for r in expected]
    assert clean_mssql.query(f"select count(*) - count(distinct id) from raw.items{current}") == [(0,)]


def test_postgres_into_sql_server_through_staged_files(
    clean_pg: Any, clean_mssql: Any, tmp_path: Any
) -> None:
    from tests.staging.test_staged_loads import ITEMS as PG_ITEMS
    from tests.staging.test_staged_loads import manifest as staged_manifest

    clean_pg.execute("src", PG_ITEMS)
    m = staged_manifest(
        {"uri": tmp_path.as_uri(), "rows_per_file": 1000}, {**MSSQL_SINK, "table": "raw.items"}
    )
    assert run(m, "r1").rows == 2500
    assert clean_mssql.query("select count(*), sum(id) from raw.items") == [(2500, 3126250)]


def test_postgres_cdc_into_sql_server(clean_pg: Any, clean_mssql: Any) -> None:
    """PostgreSQL logical decoding into SQL Server's cdc_apply: typed rows, each key's last change."""
    from tests.hooks.test_bigquery import drop_feeds

    pg = clean_pg
    if pg.query("src", "show wal_level")[0][0] != "logical":
        pytest.skip("the PostgreSQL server runs without wal_level=logical (bash scripts/pg_logical.sh)")
    pg.execute(
        "src",
        "create table items (id bigint primary key, name text not null, amount numeric(12,2), "
        "at timestamptz); insert into items select g, 'n' || g, g * 1.5, now() from generate_series(1, 200) g",
    )
    sink = {**MSSQL_SINK, "table": "raw.items", "strategy": "cdc_apply", "unique_key": ["id"]}
    body = {"name": "items", "sink": sink,
            "source": {"connector": "postgres", "conn_id": "src", "table": "items", "incremental": {"mode": "cdc"}}}  # fmt: skip
    m = parse_manifest({"pipeline": "ms", "state": {"backend": "table", "conn_id": "dst"}, "loads": [body]})
    try:
        assert run(m, "r1").rows == 200
        pg.execute(
            "src", "update items set amount = 1 where id <= 5; update items set amount = 2 where id <= 3"
        )
        pg.execute(
            "src", "delete from items where id between 10 and 14; update items set id = 900 where id = 20"
        )
        r2 = run(m, "r2")
        assert r2.status == "success", r2.error
        assert clean_mssql.query("select count(*), sum(amount) from raw.items") == pg.query(
            "src", "select count(*), sum(amount) from items"
        )
        assert clean_mssql.query("select amount from raw.items where id = 2") == [(2,)]
    finally:
        drop_feeds(pg)
