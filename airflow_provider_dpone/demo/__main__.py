"""``python -m airflow_provider_dpone.demo``: the demo pipeline under Airflow, twice.

1. Find PostgreSQL (DPONE_POSTGRES_URI, else 127.0.0.1:5432, else embedded pgserver).
2. Create the ``dpone_demo_shop`` and ``dpone_demo_dwh`` databases and generate the shop.
3. ``airflow dags test demo_orders``: the first run loads everything.
4. Change 1% of the orders and add new ones, then run again: only the changes move.
5. Print each run report (from XCom) and check the warehouse equals the shop, and the
   command that opens the same pipeline in the Airflow UI.

``--ui`` (``bash scripts/demo.sh --ui``): the same PostgreSQL, databases (kept from the last
run, else created), connections and Airflow home, served by ``airflow standalone``; prints the
URL and the login and stops Airflow on Ctrl-C (see ``demo/ui.py``).

``DPONE_DEMO_AIRFLOW_HOME`` (default ``.airflow``) and ``DPONE_DEMO_DB_PREFIX`` (default
``dpone_demo``: databases ``dpone_demo_shop`` and ``dpone_demo_dwh``) move the demo elsewhere.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import psycopg

from .postgres_server import airflow_conn_uri, database_uri, recreate_database, resolve_postgres_uri
from .shop import change_orders, create_shop

ROOT = Path(__file__).resolve().parents[2]
DAG_ID = "demo_orders"
UI_DAG_IDS = [DAG_ID, "demo_orders_python"]  # the YAML pipeline and its Python twin (dags/)
UI_COMMAND = "bash scripts/demo.sh --ui"


def ui_command() -> str:
    """``bash scripts/demo.sh --ui``, with the variables that moved this demo run."""
    moved = [
        f"{name}={shlex.quote(os.environ[name])}"
        for name in ("DPONE_DEMO_AIRFLOW_HOME", "DPONE_DEMO_DB_PREFIX")  # never a URI: it may hold a password
        if os.environ.get(name)
    ]
    return " ".join([*moved, UI_COMMAND])


def database_names_for(prefix: str) -> tuple[str, str]:
    return f"{prefix}_shop", f"{prefix}_dwh"


def database_names() -> tuple[str, str]:
    """The shop and the warehouse database (``DPONE_DEMO_DB_PREFIX``, default ``dpone_demo``)."""
    return database_names_for(os.environ.get("DPONE_DEMO_DB_PREFIX") or "dpone_demo")


def demo_env(shop: str, dwh: str) -> dict[str, str]:
    """The environment every Airflow command of the demo runs in: its own AIRFLOW_HOME and
    SQLite metadata database, this repository's dags/, and the two connections."""
    home = Path(os.environ.get("DPONE_DEMO_AIRFLOW_HOME") or ROOT / ".airflow").resolve()
    home.mkdir(parents=True, exist_ok=True)
    return {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW_CONN_DPONE_DEMO_SHOP": airflow_conn_uri(shop),
        "AIRFLOW_CONN_DPONE_DEMO_DWH": airflow_conn_uri(dwh),
    }


def fresh_databases(admin: str) -> tuple[str, str]:
    """Drop and create the shop and the warehouse; generate the shop."""
    shop_db, dwh_db = database_names()
    shop = recreate_database(admin, shop_db)
    dwh = recreate_database(admin, dwh_db)
    create_shop(shop)
    return shop, dwh


def existing_databases(admin: str) -> tuple[str, str] | None:
    """The shop and the warehouse of an earlier demo run, when both are there."""
    shop, dwh = (database_uri(admin, name) for name in database_names())
    try:
        with psycopg.connect(shop, connect_timeout=5) as s, psycopg.connect(dwh, connect_timeout=5):
            row = s.execute("select to_regclass('public.orders') is not null").fetchone()
    except psycopg.OperationalError:  # no such database
        return None
    return (shop, dwh) if row and row[0] else None


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
    values = [json.loads(v) if isinstance(v, str) else v for (v,) in rows]
    # a partitioned load's plan and extract tasks return their ranges and files, not reports
    return [v for v in values if isinstance(v, dict) and "load" in v and "status" in v]


def _print_report(report: dict) -> None:
    phases = ", ".join(f"{p['name']} {p['seconds']:.2f}s" for p in report["phases"])
    fin = report["sink"].get("finalize", {})
    print(
        f"  {report['load']:<10} {report['status']:<8} rows staged {report['rows']:>7,}  "
        f"method {fin.get('method')}  inserted {fin.get('rows_inserted')}  updated {fin.get('rows_updated')}"
    )
    print(f"  {'':<10} fast path {report['fast_path']}; {phases}")
    print(f"  {'':<10} state {json.dumps(report['state_before'])} -> {json.dumps(report['state_after'])}")


def _ui(host: str, port: int) -> int:
    from .ui import check_port_free, serve

    check_port_free(host, port)
    admin, origin = resolve_postgres_uri(ROOT / ".dpone" / "pgdata")
    print(f"PostgreSQL: {origin}")
    found = existing_databases(admin)
    if found:
        print("Using the shop and warehouse of the last demo run (bash scripts/demo.sh recreates them)")
        shop, dwh = found
    else:
        print("Creating the demo shop and an empty warehouse ...")
        shop, dwh = fresh_databases(admin)
    return serve(demo_env(shop, dwh), host=host, port=port, dag_ids=UI_DAG_IDS)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    from .ui import DEFAULT_HOST, DEFAULT_PORT

    parser = argparse.ArgumentParser(
        prog="bash scripts/demo.sh",
        description="The demo pipeline under Airflow: run it twice (full, then incremental), "
        "or with --ui serve it in the Airflow UI.",
    )
    parser.add_argument(
        "--ui",
        action="store_true",
        help="start Airflow (airflow standalone) with the demo pipeline, print the URL and the login; "
        "Ctrl-C stops it",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("AIRFLOW__API__PORT") or DEFAULT_PORT),
        help="the UI's port with --ui (default: AIRFLOW__API__PORT, else %(default)s)",
    )
    parser.add_argument(
        "--host",
        default=os.environ.get("AIRFLOW__API__HOST") or DEFAULT_HOST,
        help="the address the UI listens on with --ui (default: %(default)s; 0.0.0.0 for other machines)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    if args.ui:
        return _ui(args.host, args.port)
    admin, origin = resolve_postgres_uri(ROOT / ".dpone" / "pgdata")
    print(f"PostgreSQL: {origin}")
    shop, dwh = fresh_databases(admin)
    env = demo_env(shop, dwh)
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
    print()
    print("Open the same pipeline, with these two runs, in the Airflow UI (Ctrl-C stops it):")
    print(f"  {ui_command()}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
