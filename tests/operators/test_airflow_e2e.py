"""The provider under real Airflow: ``airflow dags test``, ``airflow tasks test`` and a retry."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from airflow_provider_dpone.demo.__main__ import latest_reports

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]

MANIFEST = {
    "pipeline": "e2e_orders",
    "retries": 1,
    "retry_delay": "0s",
    "state": {"backend": "table", "conn_id": "dst", "table": "dpone.state"},
    "defaults": {
        "source": {"connector": "postgres", "conn_id": "src"},
        "sink": {"connector": "postgres", "conn_id": "dst"},
    },
    "loads": [
        {"name": "customers", "source": {"table": "customers"}, "sink": {"table": "raw.customers"}},
        {
            "name": "orders",
            "depends_on": ["customers"],
            "source": {"table": "orders", "incremental": {"mode": "cursor", "cursor": "id"}},
            "sink": {"table": "raw.orders", "strategy": "incremental_merge", "unique_key": ["id"]},
        },
    ],
}


@pytest.fixture
def airflow_env(clean_pg, airflow_db, tmp_path: Path) -> dict[str, str]:
    clean_pg.execute("src", "create table customers (id int primary key, name text)")
    clean_pg.execute("src", "insert into customers select g, 'c' || g from generate_series(1, 50) g")
    clean_pg.execute(
        "src", "create table orders (id bigint primary key, customer_id int, amount numeric(10,2))"
    )
    clean_pg.execute("src", "insert into orders select g, g % 50, g from generate_series(1, 1000) g")
    (tmp_path / "e2e.yaml").write_text(yaml.safe_dump(MANIFEST))
    return {**os.environ, "DPONE_MANIFESTS_DIR": str(tmp_path)}


def airflow(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    exe = str(Path(sys.executable).with_name("airflow"))
    return subprocess.run([exe, *args], env=env, capture_output=True, text=True, timeout=300)


def test_dags_test_full_then_incremental(airflow_env, clean_pg) -> None:
    pg = clean_pg
    first = airflow(airflow_env, "dags", "test", "e2e_orders", "2026-01-01")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    reports = {
        r["load"]: r for r in latest_reports(airflow_env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"], "e2e_orders")
    }
    assert reports["orders"]["rows"] == 1000 and reports["customers"]["rows"] == 50
    assert reports["orders"]["state_after"]["value"] == "1000"
    pg.execute("src", "insert into orders select g, 1, 1 from generate_series(1001, 1010) g")
    second = airflow(airflow_env, "dags", "test", "e2e_orders", "2026-01-02")
    assert second.returncode == 0, second.stdout[-3000:]
    reports = {
        r["load"]: r for r in latest_reports(airflow_env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"], "e2e_orders")
    }
    assert reports["orders"]["rows"] == 10 and reports["orders"]["state_before"]["value"] == "1000"
    assert pg.query("dst", "select count(*) from raw.orders") == [(1010,)]


def test_tasks_test_runs_one_load(airflow_env, clean_pg) -> None:
    result = airflow(airflow_env, "tasks", "test", "e2e_orders", "customers", "2026-01-01")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "dpone e2e_orders.customers [success]" in result.stdout + result.stderr
    assert clean_pg.query("dst", "select count(*) from raw.customers") == [(50,)]
    assert clean_pg.query("dst", "select to_regclass('raw.orders')") == [(None,)]


def _fail_next_writes(pg, times: int) -> None:
    """Make the next ``times`` finalize transactions into raw.orders fail (sequences survive rollback)."""
    pg.execute(
        "dst",
        f"""
        drop trigger if exists fail_n on raw.orders;
        drop sequence if exists raw.fail_n;
        create sequence raw.fail_n;
        create or replace function raw.fail_n() returns trigger language plpgsql as $$
        begin if nextval('raw.fail_n') <= {int(times)} then raise exception 'injected failure'; end if;
        return new; end $$;
        create trigger fail_n before insert or update on raw.orders for each statement execute function raw.fail_n();
    """,
    )


def _state(pg) -> dict:
    return json.loads(pg.query("dst", "select state::text from dpone.state where load = 'orders'")[0][0])


def test_injected_failure_then_airflow_retry_converges(airflow_env, clean_pg) -> None:
    """Try 1 dies inside finalize and goes up_for_retry with state and target untouched;
    the retry (the next ``airflow tasks test`` of the same task) converges to the source."""
    pg = clean_pg
    ok = airflow(airflow_env, "tasks", "test", "e2e_orders", "orders", "2026-01-01")
    assert ok.returncode == 0, ok.stdout[-3000:]
    before = (_state(pg), pg.query("dst", "select count(*), sum(amount) from raw.orders"))
    _fail_next_writes(pg, 1)
    pg.execute("src", "insert into orders values (2000, 1, 5)")
    first = airflow(airflow_env, "tasks", "test", "e2e_orders", "orders", "2026-01-02")
    out = first.stdout + first.stderr
    assert "injected failure" in out and "up_for_retry" in out.lower(), out[-3000:]
    assert (_state(pg), pg.query("dst", "select count(*), sum(amount) from raw.orders")) == before
    retry = airflow(airflow_env, "tasks", "test", "e2e_orders", "orders", "2026-01-02")
    assert retry.returncode == 0, retry.stdout[-3000:]
    assert pg.query("dst", "select count(*), max(id) from raw.orders") == [(1001, 2000)]
    assert _state(pg)["value"] == "2000"
