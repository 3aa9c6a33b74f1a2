"""Airflow DAG file: the demo shop pipeline composed in Python with typed specs
(airflow-provider-dpone). The YAML twin is ``manifests/demo_orders.yaml``; docs/python-api.md
explains each part.

- ``customers``: a full refresh, atomic (readers never see an empty table);
- ``orders``: rows whose ``updated_at`` moved, re-reading 10 minutes back, merged by ``id``;
- ``snapshot``: one mapped task instance per table that ``shop_tables`` lists at run time;
- ``summary``: a TaskFlow task reading the ``orders`` run report from XCom.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG, task

from airflow_provider_dpone.operators.staged_load import StagedLoadOperator
from airflow_provider_dpone.specs import Cursor, PostgresSink, PostgresSource, TableState

SHOP, DWH = "dpone_demo_shop", "dpone_demo_dwh"
STATE = TableState(DWH, table="dpone.state")

with DAG(
    dag_id="demo_orders_python",
    description="The demo shop into the warehouse, composed in Python",
    schedule=None,
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
    catchup=False,
    max_active_runs=1,
    tags=["dpone", "demo"],
    default_args={"retries": 1, "retry_delay": dt.timedelta(seconds=10)},
):
    customers = StagedLoadOperator(
        task_id="customers",
        source=PostgresSource(SHOP, table="public.customers"),
        sink=PostgresSink(DWH, "py.customers", strategy="full_refresh"),
        state=STATE,
    )
    orders = StagedLoadOperator(
        task_id="orders",
        source=PostgresSource(SHOP, table="public.orders", incremental=Cursor("updated_at", lookback="10m")),
        sink=PostgresSink(DWH, "py.orders", strategy="incremental_merge", unique_key=["id"]),
        state=STATE,
        quality=[{"check": "not_null", "columns": ["id", "customer_id"]}],
    )

    @task
    def shop_tables() -> list[dict]:
        """The tables to snapshot, decided when the DAG runs (one mapped load each)."""
        return [
            {
                "source": PostgresSource(SHOP, table=f"public.{name}"),
                "sink": PostgresSink(DWH, f"py_snapshot.{name}", strategy="full_refresh"),
            }
            for name in ("customers", "orders")
        ]

    snapshot = StagedLoadOperator.partial(task_id="snapshot", state=STATE).expand_kwargs(shop_tables())

    @task
    def summary(report: dict) -> str:
        """What the orders load did, from its run report in XCom."""
        line = f"orders: {report['rows']} rows, status {report['status']}"
        print(line)
        return line

    customers >> orders
    summary(orders.output)
