"""The example Python DAG (dags/dpone_python_example.py) under real Airflow: typed specs,
a TaskFlow task on the run report, a load mapped over tables listed at run time, then
``airflow tasks test`` of one load."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from airflow_provider_dpone.demo.shop import change_orders, create_shop
from tests.operators.test_airflow_e2e import airflow

pytestmark = pytest.mark.integration
DAG_ID = "demo_orders_python"
SAME = "select count(*), sum(hashtext(id::text || status || amount::text)) from {}"


@pytest.fixture
def shop_env(clean_pg, airflow_db, tmp_path: Path) -> dict[str, str]:
    for which in ("src", "dst"):
        clean_pg.execute(which, "drop schema if exists py, py_snapshot cascade")
    create_shop(clean_pg.src, customers=50, orders=2_000)
    return {
        **os.environ,
        "AIRFLOW_CONN_DPONE_DEMO_SHOP": os.environ["AIRFLOW_CONN_SRC"],
        "AIRFLOW_CONN_DPONE_DEMO_DWH": os.environ["AIRFLOW_CONN_DST"],
        "DPONE_MANIFESTS_DIR": str(tmp_path),  # the YAML demo stays out of this run
    }


def test_the_python_dag_runs_maps_and_reruns_one_load(shop_env, clean_pg) -> None:
    pg = clean_pg
    run = airflow(shop_env, "dags", "test", DAG_ID, "2026-01-01")
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-4000:]
    for table, rows in (("customers", 50), ("orders", 2_000)):
        assert pg.query("dst", f"select count(*) from py.{table}") == [(rows,)]
        assert pg.query("dst", f"select count(*) from py_snapshot.{table}") == [(rows,)]
    assert pg.query("dst", "select load from dpone.state where pipeline = %s", (DAG_ID,)) == [("orders",)]
    reports = Path(os.environ["DPONE_REPORT_DIR"]) / DAG_ID  # one folder per load name
    mapped = sorted(p.name for p in reports.iterdir() if p.name.startswith("snapshot"))
    assert mapped == [
        f"snapshot.dpone_demo_shop.public.{t}-dpone_demo_dwh.py_snapshot.{t}" for t in ("customers", "orders")
    ]
    assert "orders: 2000 rows, status success" in out  # the TaskFlow task read the report from XCom

    _updated, inserted = change_orders(pg.src, fraction=0.05, new_rows=30)
    again = airflow(shop_env, "tasks", "test", DAG_ID, "orders", "2026-01-02")
    out = again.stdout + again.stderr
    assert again.returncode == 0, out[-4000:]
    assert f"dpone {DAG_ID}.orders [success]" in out
    assert pg.query("src", SAME.format("orders")) == pg.query("dst", SAME.format("py.orders"))
    assert pg.query("dst", "select count(*) from py.orders") == [(2_000 + inserted,)]
