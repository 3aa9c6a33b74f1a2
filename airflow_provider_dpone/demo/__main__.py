"""``python -m airflow_provider_dpone.demo``: the demo pipeline under Airflow, twice.

1. Find PostgreSQL (DPONE_POSTGRES_URI, else 127.0.0.1:5432, else embedded pgserver).
2. Create the ``dpone_demo_shop`` and ``dpone_demo_dwh`` databases and generate the shop.
3. ``airflow dags test demo_orders``: the first run loads everything.
4. Change 1% of the orders and add new ones, then run again: only the changes move.
5. Print each run report (from XCom) and check the warehouse equals the shop.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg

from .postgres_server import airflow_conn_uri, recreate_database, resolve_postgres_uri
from .shop import change_orders, create_shop

ROOT = Path(__file__).resolve().parents[2]
DAG_ID = "demo_orders"


def _airflow(env: dict[str, str], *args: str) -> None:
    airflow = str(Path(sys.executable).with_name("airflow"))
    result = subprocess.run([airflow, *args], env=env, capture_output=True, text=True)
    if result.returncode != 0:
        sys.stdout.write(result.stdout[-4000:] + result.stderr[-4000:])
        raise SystemExit(f"airflow {' '.join(args)} failed with exit code {result.returncode}")


def latest_reports(sql_alchemy_conn: str, dag_id: str) -> list[dict]:
    """The run reports (XCom ``return_value``) of the newest run of ``dag_id``."""
    from sqlalchemy import create_engine, text

    engine = create_engine(sql_alchemy_conn)
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "select x.value from xcom x where x.dag_id = :d and x.key = 'return_value' and x.run_id = "
                "(select run_id from dag_run where dag_id = :d order by id desc limit 1) order by x.timestamp"
            ),
            {"d": dag_id},
        ).fetchall()
    engine.dispose()
    return [json.loads(v) if isinstance(v, str) else v for (v,) in rows]


def _print_report(report: dict) -> None:
    phases = ", ".join(f"{p['name']} {p['seconds']:.2f}s" for p in report["phases"])
    fin = report["sink"].get("finalize", {})
    print(
        f"  {report['load']:<10} {report['status']:<8} rows staged {report['rows']:>7,}  "
        f"method {fin.get('method')}  inserted {fin.get('rows_inserted')}  updated {fin.get('rows_updated')}"
    )
    print(f"  {'':<10} fast path {report['fast_path']}; {phases}")
    print(f"  {'':<10} state {json.dumps(report['state_before'])} -> {json.dumps(report['state_after'])}")


def main() -> int:
    admin, origin = resolve_postgres_uri(ROOT / ".dpone" / "pgdata")
    print(f"PostgreSQL: {origin}")
    shop = recreate_database(admin, "dpone_demo_shop")
    dwh = recreate_database(admin, "dpone_demo_dwh")
    create_shop(shop)
    home = ROOT / ".airflow"
    home.mkdir(exist_ok=True)
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW_CONN_DPONE_DEMO_SHOP": airflow_conn_uri(shop),
        "AIRFLOW_CONN_DPONE_DEMO_DWH": airflow_conn_uri(dwh),
    }
    print("Preparing the Airflow metadata database ...")
    _airflow(env, "db", "migrate")
    for n, date in enumerate(["2026-01-01", "2026-01-02"], start=1):
        if n == 2:
            updated, inserted = change_orders(shop)
            print(f"Changed the shop: {updated} orders updated, {inserted} inserted")
        print(f"Run {n}: airflow dags test {DAG_ID} {date}")
        _airflow(env, "dags", "test", DAG_ID, date)
        for report in latest_reports(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"], DAG_ID):
            _print_report(report)
    with psycopg.connect(shop) as s, psycopg.connect(dwh) as d:
        q = "select count(*), sum(hashtext(id::text || status || amount::text)) from {}"
        src, dst = s.execute(q.format("orders")).fetchone(), d.execute(q.format("raw.orders")).fetchone()
    assert src is not None and dst is not None  # an aggregate always answers one row
    same = src == dst
    print(f"Warehouse raw.orders {'equals' if same else 'DIFFERS FROM'} the shop: {dst[0]:,} rows")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
