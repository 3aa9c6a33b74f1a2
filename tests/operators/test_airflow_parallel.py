"""A partitioned load under real Airflow: the DAG factory's plan >> mapped extract >> finalize,
run by ``airflow dags test`` (every mapped range a task instance of its own)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from airflow_provider_dpone.demo.__main__ import latest_reports
from tests.operators.test_airflow_e2e import airflow

pytestmark = pytest.mark.integration


def parallel_manifest(staging: Path) -> dict:
    return {
        "pipeline": "par_orders",
        "retries": 1,
        "retry_delay": "0s",
        "state": {"backend": "table", "conn_id": "dst", "table": "dpone.state"},
        "loads": [
            {
                "name": "orders",
                "source": {"connector": "postgres", "conn_id": "src", "table": "orders",
                           "incremental": {"mode": "cursor", "cursor": "id"}},
                "sink": {"connector": "postgres", "conn_id": "dst", "table": "raw.orders",
                         "strategy": "incremental_merge", "unique_key": ["id"],
                         "staging": {"files": {"uri": staging.as_uri()}}},
                "parallel": {"partitions": 4, "by": "id"},
            }
        ],
    }  # fmt: skip


@pytest.fixture
def parallel_env(clean_pg, airflow_db, tmp_path: Path) -> dict[str, str]:
    clean_pg.execute("src", "create table orders (id bigint primary key, amount numeric(10,2))")
    clean_pg.execute("src", "insert into orders select g, g from generate_series(1, 4000) g")
    (tmp_path / "dags").mkdir()
    (tmp_path / "dags" / "par.yaml").write_text(yaml.safe_dump(parallel_manifest(tmp_path / "staging")))
    return {**os.environ, "DPONE_MANIFESTS_DIR": str(tmp_path / "dags")}


def test_dags_test_maps_one_task_per_range(parallel_env, clean_pg) -> None:
    result = airflow(parallel_env, "dags", "test", "par_orders", "2026-01-01")
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-4000:]
    for index in range(4):
        assert f"partition {index + 1} of 4" in out
    (report,) = [r for r in latest_reports(parallel_env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"], "par_orders")]
    assert report["rows"] == 4000 and report["state_after"]["value"] == "4000"
    assert clean_pg.query("dst", "select count(*), count(distinct id) from raw.orders") == [(4000, 4000)]
