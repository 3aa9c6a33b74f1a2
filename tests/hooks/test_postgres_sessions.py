"""PostgreSQL hook housekeeping against the real server: kept connections, kept staging, and
how timeouts are classified for Airflow retries."""

from __future__ import annotations

import time

import psycopg
import pytest

from airflow_provider_dpone.contracts.errors import TerminalError, TransientError
from airflow_provider_dpone.contracts.manifest import parse_manifest
from airflow_provider_dpone.contracts.quality import QualityGateError
from airflow_provider_dpone.hooks.postgres import DponePostgresHook
from airflow_provider_dpone.hooks.postgres_errors import classify
from airflow_provider_dpone.runtime.protocols import LoadContext
from tests.helpers import run_first_load as run

pytestmark = pytest.mark.integration


def manifest(quality: list | None = None, **sink):
    load = {
        "name": "items",
        "source": {"connector": "postgres", "conn_id": "src", "table": "items"},
        "sink": {"connector": "postgres", "conn_id": "dst", "table": "raw.items", **sink},
        "quality": quality or [],
    }
    return parse_manifest(
        {"pipeline": "house", "state": {"backend": "table", "conn_id": "dst"}, "loads": [load]}
    )


def test_a_kept_connection_the_server_ended_is_replaced_even_after_a_short_pause(clean_pg) -> None:
    hook = DponePostgresHook("dst")
    with hook.session() as first:
        first.execute("set idle_session_timeout = '100ms'")  # the server ends idle sessions
    time.sleep(0.5)
    with hook.session() as fresh:  # well under IDLE_REUSE_SECONDS, but the old one is gone
        assert fresh is not first and fresh.execute("select 1").fetchone() == (1,)
    hook.release()


def test_a_healthy_kept_connection_is_still_reused(clean_pg) -> None:
    hook = DponePostgresHook("dst")
    with hook.session() as first:
        pass
    with hook.session() as second:
        assert second is first
    hook.release()


def test_staging_kept_from_failed_runs_is_capped_per_load(clean_pg) -> None:
    pg = clean_pg
    pg.execute("src", "create table items (id int primary key); insert into items values (1), (2)")
    failing = manifest([{"check": "row_count", "min": 10}], staging={"max_kept": 2})
    for n in range(5):
        with pytest.raises(QualityGateError):
            run(failing, f"r{n}")  # each failed run keeps its staging (keep: on_failure)
    tables = pg.query("dst", "select count(*) from pg_tables where schemaname = 'dpone_staging'")[0][0]
    assert tables == 3  # the newest 2 other runs' and the last run's own
    hook = DponePostgresHook("dst")
    kept = hook.kept_staging(LoadContext("house", failing.loads[0], "r9"))
    assert [(k.run_id, k.failed) for k in kept] == [("r4", True), ("r3", True), ("r2", True)]
    hook.release()


def test_the_cap_leaves_staging_of_runs_that_have_not_failed(clean_pg) -> None:
    """Staging without the failed mark belongs to a run still going (or killed): only its age
    (stale_after) may drop it, never the cap, so a live run's batch is not swept from under it."""
    pg = clean_pg
    pg.execute("src", "create table items (id int primary key); insert into items values (1), (2)")
    m = manifest(staging={"max_kept": 0})
    hook = DponePostgresHook("dst")
    for n in range(3):  # three live (or killed) runs' staging
        live = LoadContext("house", m.loads[0], f"live{n}")
        with hook.session() as conn:
            hook._create_staging(conn, live, hook.staging_table(live), _schema(), logged=False)
    assert hook.sweep_stale_staging(LoadContext("house", m.loads[0], "now")) == []
    assert len(hook.kept_staging(LoadContext("house", m.loads[0], "now"))) == 3
    hook.release()


def _schema():
    from airflow_provider_dpone.contracts.table import CanonicalType, Column, TableSchema

    return TableSchema((Column("id", CanonicalType.INT32),))


def test_statement_timeout_is_terminal_and_lock_timeout_is_retried(clean_pg) -> None:
    with psycopg.connect(clean_pg.dst) as conn:
        conn.execute("set statement_timeout = 50")
        with pytest.raises(psycopg.errors.QueryCanceled) as cancelled:
            conn.execute("select pg_sleep(2)")
    error = classify(cancelled.value, "finalize into raw.items")
    assert isinstance(error, TerminalError) and not error.retryable
    assert "statement_timeout" in str(error) and "a retry would time out again" in str(error)

    clean_pg.execute("dst", "create table held (id int)")
    with psycopg.connect(clean_pg.dst) as holder, psycopg.connect(clean_pg.dst) as waiter:
        holder.execute("lock table held in access exclusive mode")
        waiter.execute("set lock_timeout = 50")
        with pytest.raises(psycopg.errors.LockNotAvailable) as timed_out:
            waiter.execute("select * from held")
    error = classify(timed_out.value, "finalize into raw.items")
    assert isinstance(error, TransientError) and error.retryable and "lock_timeout" in str(error)


def test_a_finalize_that_waits_past_lock_timeout_fails_as_retryable(clean_pg) -> None:
    pg = clean_pg
    pg.execute("src", "create table items (id int primary key); insert into items values (1), (2)")
    m = manifest(strategy="incremental_merge", unique_key=["id"])
    run(m, "r1")
    pg.execute("src", "insert into items values (3)")
    database = pg.dst_db
    pg.execute("dst", f"alter database \"{database}\" set lock_timeout = '200ms'")
    try:
        with psycopg.connect(pg.dst) as holder:
            holder.execute("lock table raw.items in access exclusive mode")  # e.g. a DBA's long ALTER
            with pytest.raises(TransientError, match="lock_timeout") as err:
                run(m, "r2")
            assert err.value.retryable
        assert pg.query("dst", "select count(*) from raw.items")[0][0] == 2
    finally:
        pg.execute("dst", f'alter database "{database}" reset lock_timeout')


def test_the_sweep_skips_a_stale_staging_table_that_is_locked(clean_pg) -> None:
    """A failed run's staging over ``max_kept`` that someone still reads is left for a later
    run; the sweep never waits for it, and the load is not failed by it."""
    from airflow_provider_dpone.contracts.table import CanonicalType, Column, TableSchema

    m = manifest(staging={"max_kept": 0})
    hook = DponePostgresHook("dst")
    failed = LoadContext("house", m.loads[0], "old")
    staging = hook.staging_table(failed)
    with hook.session() as conn:
        schema = TableSchema((Column("id", CanonicalType.INT32),))
        hook._create_staging(conn, failed, staging, schema, logged=False)
    hook._mark_failed(failed)
    reader = clean_pg.connect("dst")
    reader.autocommit = False
    reader.execute(f"lock table {staging.sql} in access share mode")
    try:
        assert hook.sweep_stale_staging(LoadContext("house", m.loads[0], "now")) == []
    finally:
        reader.rollback()
        reader.close()
    assert hook.sweep_stale_staging(LoadContext("house", m.loads[0], "later")) == [str(staging)]
    hook.release()
