"""The BigQuery sink against bqemulator (BigQuery's REST API over DuckDB) and an on-disk GCS
emulator, both started here (tests/bigquery_fixtures.py): the routes into it (PostgreSQL through
GCS files, ClickHouse, Kafka, REST; SQL Server's is in its live suite), the state table in
BigQuery committed with the data, a SIGKILL at every phase, the state re-derived from the target,
schema evolution, quality gates and the plan. The strategies themselves are the shared contract
(test_sink_contract.py). What the emulator cannot show (partition decorators, isolation, DML
statistics, BIGNUMERIC) is in the live profile below, which skips without DPONE_BIGQUERY_PROJECT.
"""

from __future__ import annotations

import json
import os
import signal
import uuid
from decimal import Decimal
from typing import Any

import pytest

from airflow_provider_dpone.contracts.manifest import parse_manifest
from airflow_provider_dpone.contracts.quality import QualityGateError
from airflow_provider_dpone.runtime.failpoints import POINTS
from tests.helpers import run_first_load as run
from tests.helpers import run_killed
from tests.hooks.test_mssql_live import rest_api  # noqa: F401  (the fake REST API, as a fixture)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
BQ_SINK = {"connector": "bigquery", "conn_id": "bq"}
ITEMS = """
create table items (id bigint primary key, name text not null, amount numeric(12,2), day date not null,
                    at timestamptz not null, doc jsonb, tags text[]);
insert into items select g, 'item ' || g, g * 1.25, date '2026-01-01' + (g % 10),
                         timestamptz '2026-01-01 00:00+00' + g * interval '1 minute', jsonb_build_object('g', g),
                         array['t' || g]
from generate_series(1, 300) g;
"""
SUMS = "select count(*), sum(id), sum(amount), min(day), max(`at`)"


def manifest(
    sink: dict[str, Any],
    source: dict[str, Any] | None = None,
    state: dict[str, Any] | None = None,
    **more: Any,
) -> Any:
    body = {
        "name": "items",
        "source": {"connector": "postgres", "conn_id": "src", "table": "items", **(source or {})},
        "sink": {**BQ_SINK, "table": "raw.items", **sink},
        **more,
    }
    state = state or {"backend": "table", "conn_id": "dst"}
    return parse_manifest({"pipeline": "bq", "state": state, "loads": [body]})


def same_sums(pg: Any, bq: Any, table: str = "raw.items") -> None:
    (n, ids, amount, day, at), = bq.query(f"{SUMS} from {table}")  # fmt: skip
    ((pn, pids, pamount, pday, pat),) = pg.query("src", f"{SUMS.replace('`', '')} from items")
    assert (n, ids, amount, day, at) == (pn, pids, pamount, pday, pat)


def test_postgres_into_bigquery_through_gcs_files(clean_pg: Any, clean_bq: Any, monkeypatch: Any) -> None:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    clean_pg.execute("src", ITEMS)
    bucket = f"dpone-{uuid.uuid4().hex[:8]}"
    storage.Client(project=clean_bq.target.project, credentials=AnonymousCredentials()).create_bucket(bucket)
    conn = {
        "conn_type": "google_cloud_platform",
        "extra": {"is_anonymous": True, "project": clean_bq.target.project},
    }
    monkeypatch.setenv("AIRFLOW_CONN_STAGING_GCS", json.dumps(conn))
    files = {"uri": f"gs://{bucket}/dpone", "conn_id": "staging_gcs", "rows_per_file": 100}
    report = run(manifest({"strategy": "full_refresh", "staging": {"files": files}}))
    assert report.status == "success" and report.rows == 300 and report.sink["files"]["files"] == 3
    same_sums(clean_pg, clean_bq)
    rows = clean_bq.query("select to_json_string(doc), tags[offset(0)] from raw.items where id = 7")
    assert rows == [('{"g":7}', "t7")]


def test_clickhouse_into_bigquery(clean_ch: Any, clean_bq: Any) -> None:
    clean_ch.command("create database if not exists src")
    clean_ch.command(
        "create table src.events (id UInt64, kind String, at DateTime64(6, 'UTC')) engine MergeTree order by id"
    )
    clean_ch.command(
        "insert into src.events select number, concat('k', toString(number % 3)), "
        "toDateTime64('2026-01-01 00:00:00', 6, 'UTC') + toIntervalSecond(number) from numbers(1, 250)"
    )
    body = {"name": "events", "source": {"connector": "clickhouse", "conn_id": "ch", "table": "src.events"},
            "sink": {**BQ_SINK, "table": "raw.events", "strategy": "full_refresh"}}  # fmt: skip
    m = parse_manifest({"pipeline": "bq", "state": BQ_STATE, "loads": [body]})  # no PostgreSQL needed
    assert run(m).rows == 250
    assert clean_bq.query("select count(*), sum(id) from raw.events") == [(250, 31375)]


def test_kafka_into_bigquery(clean_pg: Any, clean_bq: Any, kafka: Any) -> None:
    from tests.hooks.test_kafka import FIELDS, _events, from_kafka, topic_name

    topic = topic_name()
    kafka.create_topic(topic, 2)
    kafka.produce(topic, _events(1, 120))
    sink = {**BQ_SINK, "table": "raw.msgs", "strategy": "incremental_merge", "unique_key": ["id"]}
    m = from_kafka(topic, sink, fields=FIELDS)
    assert run(m, "r1").rows == 120
    kafka.produce(topic, _events(7, 7) + _events(121, 130))
    assert run(m, "r2").rows == 11
    assert clean_bq.query("select count(*), max(id) from raw.msgs") == [(130, 130)]


def test_rest_into_bigquery(clean_pg: Any, clean_bq: Any, rest_api: Any) -> None:  # noqa: F811
    from tests.hooks.test_rest import PAGINATIONS, source
    from tests.hooks.test_rest import manifest as rest_manifest

    sink = {**BQ_SINK, "table": "raw.items", "strategy": "incremental_merge", "unique_key": ["id"]}
    m = rest_manifest(source(*PAGINATIONS["page"]), sink)
    assert run(m, "r1").rows == 53
    assert clean_bq.query("select count(*), count(distinct id) from raw.items") == [(53, 53)]


BQ_STATE = {"backend": "table", "conn_id": "bq", "connector": "bigquery", "table": "dpone.state"}


def test_state_in_bigquery_commits_with_the_data(clean_pg: Any, clean_bq: Any) -> None:
    clean_pg.execute("src", ITEMS)
    m = manifest({"strategy": "incremental_append"}, {"incremental": {"mode": "cursor", "cursor": "id"}},
                 state=BQ_STATE)  # fmt: skip
    first = run(m, "r1")
    assert first.rows == 300 and first.state_committed == "with_data"
    clean_pg.execute("src", "insert into items values (301, 'x', 1, '2026-02-01', now(), null, null)")
    assert run_killed(m, "r2", "mid_finalize") == -signal.SIGKILL
    assert clean_bq.query("select count(*) from raw.items") == [(300,)]  # neither data nor state
    assert run(m, "r2").rows == 1
    assert clean_bq.query("select count(*), count(distinct id) from raw.items") == [(301, 301)]
    (state,) = clean_bq.query("select state from dpone.state where pipeline = 'bq' and `load` = 'items'")
    assert json.loads(state[0])["value"] == "301"


@pytest.mark.parametrize("point", POINTS)
@pytest.mark.parametrize("strategy", ["full_refresh", "incremental_merge"])
def test_sigkill_at_every_phase_into_bigquery_converges(
    clean_pg: Any, clean_bq: Any, strategy: str, point: str
) -> None:
    """The crash matrix of tests/runtime/test_crash_safety.py with BigQuery as the sink."""
    from tests.runtime.test_crash_safety import CASES as CRASH
    from tests.runtime.test_crash_safety import ITEMS as PG_ITEMS
    from tests.runtime.test_crash_safety import manifest_body

    clean_pg.execute("src", PG_ITEMS)
    body = manifest_body(strategy)
    body["loads"][0]["sink"].update(BQ_SINK)
    m = parse_manifest(body)
    run(m, "r1")
    clean_pg.execute("src", CRASH[strategy][3])
    assert run_killed(m, "r2", point) == -signal.SIGKILL, f"the worker did not reach failpoint {point}"
    assert run(m, "r2").status == "success"
    expected = clean_pg.query("src", "select count(*), sum(id), sum(length(name)) from items")
    found = clean_bq.query("select count(*), sum(id), sum(length(name)) from raw.items")
    assert [tuple(int(v) for v in r) for r in found] == [tuple(int(v) for v in r) for r in expected]
    assert clean_bq.query("select count(*) - count(distinct id) from raw.items") == [(0,)]


def test_lost_state_is_rederived_from_a_bigquery_target(clean_pg: Any, clean_bq: Any) -> None:
    clean_pg.execute("src", ITEMS)
    inc = {"incremental": {"mode": "cursor", "cursor": "id", "on_state_missing": "from_target"}}
    m = manifest({"strategy": "incremental_append", "unique_key": ["id"]}, inc)  # the key re-reads skip by
    run(m, "r1")
    clean_pg.execute("dst", "delete from dpone.state")  # the state is lost; the target is not
    clean_pg.execute("src", "insert into items values (301, 'x', 1, '2026-02-01', now(), null, null)")
    second = run(m, "r2")
    assert second.rows == 1 and second.state_before is None
    assert clean_bq.query("select count(*), count(distinct id) from raw.items") == [(301, 301)]


def test_a_new_source_column_is_added_and_a_failed_gate_loads_nothing(clean_pg: Any, clean_bq: Any) -> None:
    clean_pg.execute("src", ITEMS)
    sink = {"strategy": "incremental_merge", "unique_key": ["id"]}
    run(manifest(sink, {"columns": ["id", "name", "amount"]}), "r1")
    grown = run(manifest(sink, {"columns": ["id", "name", "amount", "day"]}), "r2")
    assert grown.schema["changes"][0]["kind"] == "add_column"
    assert clean_bq.query("select count(*) from raw.items where day is not null") == [(300,)]
    clean_pg.execute("src", "update items set name = '' where id = 5")
    gate = [{"check": "sql", "sql": "select count(*) from {staging} where name = ''", "expect": 0}]
    with pytest.raises(QualityGateError):
        run(manifest(sink, {"columns": ["id", "name", "amount", "day"]}, quality=gate), "r3")
    assert clean_bq.query("select name from raw.items where id = 5") == [("item 5",)]


def test_dpone_plan_shows_the_jobs_it_would_run(clean_pg: Any, clean_bq: Any) -> None:
    from airflow_provider_dpone.operators.wiring import assemble
    from airflow_provider_dpone.runtime.planning import plan_load

    clean_pg.execute("src", ITEMS)
    m = manifest({"strategy": "incremental_merge", "unique_key": ["id"]})
    plan = plan_load("bq", m.loads[0], assemble(m.loads[0], m.state, standalone=True))
    text = "\n".join(plan["load_sql"]["statements"])
    assert "-- load job: the staged Parquet files appended to `dpone_staging`" in text
    assert "create table `raw`.`items`" in text and "begin transaction" in text
    assert clean_bq.query("select count(*) from dpone_staging.INFORMATION_SCHEMA.TABLES") == [(0,)]


LIVE = os.environ.get("DPONE_BIGQUERY_PROJECT")


@pytest.mark.integration_live
@pytest.mark.skipif(not LIVE, reason="DPONE_BIGQUERY_PROJECT is not set (docs/bigquery.md: the live profile)")
def test_live_merge_and_partition_replace_with_state_in_bigquery(clean_pg: Any) -> None:
    """Real BigQuery: NUMERIC(12,2), JSON and REQUIRED columns kept in the table's metadata (no
    schema change on the second run), TRUNCATE and the state committed in one transaction, and
    a scoped partition replace into a day-partitioned target."""
    from tests.bigquery_live import CONN_ID, live_dataset

    clean_pg.execute("src", ITEMS)
    with live_dataset() as dataset:
        state = {"backend": "table", "conn_id": CONN_ID, "connector": "bigquery", "table": f"{dataset}.state"}
        merge = {
            "table": f"{dataset}.items",
            "conn_id": CONN_ID,
            "strategy": "incremental_merge",
            "unique_key": ["id"],
        }
        inc = {"incremental": {"mode": "cursor", "cursor": "at"}}
        assert run(manifest(merge, inc, state=state), "r1").rows == 300
        clean_pg.execute("src", "update items set amount = 0, at = now() where id = 3")
        second = run(manifest(merge, inc, state=state), "r2")
        assert second.rows == 1 and second.schema["changes"] == [] and second.state_committed == "with_data"
        days = {
            "table": f"{dataset}.days",
            "conn_id": CONN_ID,
            "strategy": "partition_replace",
            "partition_by": ["day"],
        }
        run(manifest(days))
        window = {"window": {"column": "day", "start": "2026-01-03", "end": "2026-01-04"}}
        clean_pg.execute("src", "update items set name = 'redone' where day = '2026-01-03'")
        report = run(manifest(days, window))
        assert report.sink["finalize"]["method"] == "scoped_delete_insert"


def test_quality_checks_compare_values_of_the_targets_types(clean_pg: Any, clean_bq: Any) -> None:
    clean_pg.execute("src", "create table nums (id bigint primary key, n numeric, t time)")
    clean_pg.execute("src", "insert into nums values (1, 9, '10:00'), (2, -1, '11:00'), (3, 10, '12:00')")
    body = {"name": "nums", "source": {"connector": "postgres", "conn_id": "src", "table": "nums"},
            "sink": {**BQ_SINK, "table": "raw.nums", "strategy": "full_refresh"},
            "quality": [{"check": "sql", "sql": "select count(*) from {staging} where n > 9.5", "expect": 1, "severity": "error"},
                        {"check": "sql", "sql": "select count(*) from {staging} where t > time '10:30:00'", "expect": 2}]}  # fmt: skip
    m = parse_manifest({"pipeline": "bq", "state": {"backend": "table", "conn_id": "dst"}, "loads": [body]})
    report = run(m)
    assert report.status == "success" and all(q["passed"] for q in report.quality), report.quality


def test_an_append_that_rereads_rows_adds_each_key_once(clean_pg: Any, clean_bq: Any) -> None:
    clean_pg.execute("src", ITEMS)
    inc = {"incremental": {"mode": "cursor", "cursor": "at", "lookback": "10m"}}
    m = manifest({"strategy": "incremental_append", "unique_key": ["id"]}, inc)  # the key re-reads skip by
    run(m, "r1")
    clean_pg.execute(
        "src", "insert into items values (301, 'x', 1, '2026-02-01', '2026-01-01 05:00+00', null, null)"
    )
    second = run(m, "r2")  # the lookback re-reads the last ten minutes of rows
    assert second.rows > 1 and second.sink["finalize"]["rows_inserted"] == 1
    assert clean_bq.query("select count(*), count(distinct id) from raw.items") == [(301, 301)]


def test_a_late_load_job_into_staging_stops_the_finalize(
    clean_pg: Any, clean_bq: Any, monkeypatch: Any
) -> None:
    from airflow_provider_dpone.contracts.errors import TransientError
    from airflow_provider_dpone.hooks.bigquery_connector import BigQueryConnector

    clean_pg.execute("src", ITEMS)
    stage = BigQueryConnector._stage_into

    def with_a_late_append(self: Any, ctx: Any, staging: Any, extract: Any) -> Any:
        staged = stage(self, ctx, staging, extract)
        self._write(f"insert into {staging.sql} (id, name) select id, name from {staging.sql} limit 3")
        return staged  # an earlier try's load job that finished after this try staged

    monkeypatch.setattr(BigQueryConnector, "_stage_into", with_a_late_append)
    with pytest.raises(TransientError, match="holds 303 rows where 300 were staged"):
        run(manifest({"strategy": "full_refresh"}))
    assert clean_bq.query(
        "select count(*) from raw.INFORMATION_SCHEMA.TABLES where table_name = 'items'"
    ) == [(0,)]


def test_rows_slipped_in_after_the_recount_fail_the_transaction(
    clean_pg: Any, clean_bq: Any, monkeypatch: Any
) -> None:
    from airflow_provider_dpone.contracts.errors import TerminalError
    from airflow_provider_dpone.hooks.bigquery_connector import BigQueryConnector

    clean_pg.execute("src", ITEMS)
    run(manifest({"strategy": "full_refresh"}), "r1")

    def late(self: Any, staging: Any, rows: int) -> None:  # the late job lands after the first count
        self._write(f"insert into {staging.sql} select * from {staging.sql} limit 2")

    monkeypatch.setattr(BigQueryConnector, "_check_staged", late)
    clean_pg.execute("src", "update items set name = 'new'")
    with pytest.raises(TerminalError, match="no longer holds the 300 rows staged"):
        run(manifest({"strategy": "full_refresh"}), "r2")
    assert clean_bq.query("select count(*), countif(name = 'new') from raw.items") == [(300, 0)]


@pytest.mark.unit
def test_datasets_are_created_in_the_connections_location() -> None:
    from airflow_provider_dpone.hooks.bigquery_client import BigQueryJobs
    from airflow_provider_dpone.sql.bigquery import BigQueryDialect

    jobs = BigQueryJobs(client=None, dialect=BigQueryDialect(), location="EU")
    assert jobs._located("create schema if not exists `raw`") == (
        "create schema if not exists `raw` options (location = 'EU')"
    )
    assert jobs._located("select 1") == "select 1"
    assert (
        BigQueryJobs(None, BigQueryDialect())._located("create schema if not exists `raw`").endswith("`raw`")
    )


def drop_feeds(pg: Any) -> None:
    """The source database's replication slots and publications (a database with a slot
    cannot be dropped)."""
    for (slot,) in pg.query(
        "src", "select slot_name from pg_replication_slots where database = current_database()"
    ):
        pg.execute("src", "select pg_drop_replication_slot(%s)", (slot,))
    for (publication,) in pg.query("src", "select pubname from pg_publication"):
        pg.execute("src", f'drop publication "{publication}"')


def test_postgres_cdc_into_bigquery_with_the_state_in_the_transaction(clean_pg: Any, clean_bq: Any) -> None:
    """PostgreSQL logical decoding into ``cdc_apply``: one MERGE of each key's last change in the
    script that commits the state; a re-snapshot deletes what the source lost."""
    pg = clean_pg
    if pg.query("src", "show wal_level")[0][0] != "logical":
        pytest.skip("the PostgreSQL server runs without wal_level=logical (bash scripts/pg_logical.sh)")
    pg.execute("src", ITEMS)
    m = manifest(
        {"strategy": "cdc_apply", "unique_key": ["id"]}, {"incremental": {"mode": "cdc"}}, state=BQ_STATE
    )
    try:
        r1 = run(m, "r1")
        assert r1.status == "success" and r1.state_committed == "with_data", r1.error
        assert r1.sink["finalize"]["rows_inserted"] == 300
        same_sums(pg, clean_bq)
        pg.execute(
            "src", "update items set amount = 9 where id <= 10; update items set amount = 10 where id <= 5"
        )
        pg.execute(
            "src", "delete from items where id between 20 and 24; update items set id = 900 where id = 30"
        )
        pg.execute("src", "insert into items values (800, 'x', 1, '2026-02-01', now(), null, null)")
        r2 = run(m, "r2")
        assert r2.status == "success", r2.error
        counts = {k: r2.sink["finalize"][k] for k in ("rows_deleted", "rows_updated", "rows_inserted")}
        assert counts == {"rows_deleted": 6, "rows_updated": 10, "rows_inserted": 2}
        same_sums(pg, clean_bq)
        assert clean_bq.query("select amount from raw.items where id = 3") == [(Decimal("10.00"),)]
        clean_bq.query("delete from dpone.state where true")  # a reset: the next run re-snapshots
        pg.execute("src", "delete from items where id in (40, 41)")
        r3 = run(m, "r3")
        assert r3.source["window"]["snapshot"] is True and r3.sink["finalize"]["rows_deleted"] == 2
        same_sums(pg, clean_bq)
    finally:
        drop_feeds(pg)


def test_postgres_cdc_soft_deletes_into_bigquery(clean_pg: Any, clean_bq: Any) -> None:
    pg = clean_pg
    if pg.query("src", "show wal_level")[0][0] != "logical":
        pytest.skip("the PostgreSQL server runs without wal_level=logical (bash scripts/pg_logical.sh)")
    pg.execute("src", ITEMS)
    m = manifest({"strategy": "cdc_apply", "unique_key": ["id"]}, {"incremental": {"mode": "cdc"}},
                 reconciliation={"deletes": "soft"})  # fmt: skip
    marked = "select id from raw.items where _dpone_deleted_at is not null order by id"
    try:
        run(m, "r1")
        pg.execute("src", "delete from items where id in (1, 2)")
        run(m, "r2")
        assert clean_bq.query(marked) == [(1,), (2,)]
        (stamp,) = clean_bq.query("select _dpone_deleted_at from raw.items where id = 1")
        pg.execute("src", "insert into items values (2, 'back', 1, '2026-02-01', now(), null, null)")
        pg.execute("src", "insert into items values (1, 'again', 1, '2026-02-01', now(), null, null)")
        pg.execute("src", "delete from items where id = 1")  # deleted again: its first stamp stays
        run(m, "r3")
        assert clean_bq.query(marked) == [(1,)]
        assert clean_bq.query("select _dpone_deleted_at from raw.items where id = 1") == [stamp]
        assert clean_bq.query("select name from raw.items where id = 2") == [("back",)]
    finally:
        drop_feeds(pg)
