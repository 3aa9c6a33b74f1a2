"""Benchmark: PostgreSQL <-> SQL Server with dpone vs the raw bulk-copy pipe, in one run.

    DPONE_MSSQL_URI='mssql://sa:...@127.0.0.1:1433/dpone_test?trust_server_certificate=yes' \\
    .venv/bin/python benchmarks/mssql.py --rows 1000000 [--repeat 3]

Needs a SQL Server (docs/mssql.md: docker-compose's SQL Server 2022); without
``DPONE_MSSQL_URI`` it exits with that message (status 2). PostgreSQL is the local server (or
the embedded one), as for benchmarks/pg_to_pg.py.

For each direction, ``--repeat`` trials each, interleaved, medians reported:

- PG -> MSSQL. The pipe: PostgreSQL rows read in batches (server-side cursor) and sent by
  mssql-python's ``cursor.bulkcopy`` (the TDS bulk-load protocol) into a plain table, nothing
  else. dpone: a full_refresh load (staging, bulk copy, swap in one transaction).
- MSSQL -> PG. The pipe: SQL Server rows read with ``fetchmany`` and written by psycopg's
  COPY into a plain table. dpone: a full_refresh load into PostgreSQL.

Prints a table and writes JSON to benchmarks/results/mssql.json (ratio = pipe s / dpone s).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

NO_SERVER = (
    "benchmarks/mssql.py needs a SQL Server: set DPONE_MSSQL_URI to an Airflow mssql connection URI "
    "(docs/mssql.md starts docker-compose's SQL Server 2022 and gives the URI); none is configured here"
)
BATCH = 50_000
EVENTS_PG = """
drop table if exists events;
create table events (id bigint primary key, kind int not null, name text not null,
  amount numeric(12,2) not null, flag boolean not null, created_at timestamptz not null, note text);
insert into events select g, g % 17, 'event-' || g, (g % 65536) / 100.0, g % 2 = 0,
  timestamptz '2026-01-01 00:00+00' + g * interval '1 second', case when g % 4 = 0 then null else 'n' || g end
from generate_series(1, ROWS) g;
"""
PIPE_MSSQL = """
drop table if exists dbo.pipe_events;
create table dbo.pipe_events (id bigint not null primary key, kind int not null, name nvarchar(max) not null,
  amount decimal(12,2) not null, flag bit not null, created_at datetimeoffset(7) not null, note nvarchar(max) null)
"""
PIPE_PG = """
drop table if exists pipe_events;
create table pipe_events (id bigint primary key, kind int not null, name text not null,
  amount numeric(12,2) not null, flag boolean not null, created_at timestamptz not null, note text)
"""


def _mssql() -> Any:
    from airflow_provider_dpone.hooks.mssql_connector import MsSqlEngine

    return MsSqlEngine("bench_mssql")


def pipe_pg_to_mssql(pg: str) -> float:
    import psycopg

    from airflow_provider_dpone.hooks.dbapi import run

    engine = _mssql()
    with engine.session() as conn:
        for part in PIPE_MSSQL.split(";"):
            if part.strip():
                run(conn.cursor(), part)
    started = time.perf_counter()
    with psycopg.connect(pg) as src, src.cursor(name="pipe") as cur, engine.session() as dst:
        cur.execute("select id, kind, name, amount, flag, created_at, note from events")
        out = dst.cursor()
        while batch := cur.fetchmany(BATCH):
            out.bulkcopy(
                "dbo.pipe_events", batch, batch_size=len(batch), timeout=0, table_lock=True, keep_nulls=True
            )
    return time.perf_counter() - started


def pipe_mssql_to_pg(pg: str) -> float:
    import psycopg

    engine = _mssql()
    with psycopg.connect(pg, autocommit=True) as dst:
        dst.execute(PIPE_PG)
    started = time.perf_counter()
    with engine.session() as src, psycopg.connect(pg) as dst:
        cur = src.cursor()
        cur.execute("select id, kind, name, amount, flag, created_at, note from dbo.events")
        with dst.cursor().copy("copy pipe_events from stdin") as copy:
            while batch := cur.fetchmany(BATCH):
                for row in batch:
                    copy.write_row(tuple(row))
    return time.perf_counter() - started


def dpone_load(source: dict[str, Any], sink: dict[str, Any]) -> float:
    from airflow_provider_dpone.contracts.manifest import parse_manifest
    from airflow_provider_dpone.operators.wiring import assemble
    from airflow_provider_dpone.runtime.engine import run_load

    body = {
        "name": "events",
        "source": {**source, "batch_size": BATCH},
        "sink": {**sink, "strategy": "full_refresh"},
    }
    state = {"backend": "table", "conn_id": "bench_pg"}
    manifest = parse_manifest({"pipeline": "bench_mssql", "state": state, "loads": [body]})
    load = manifest.loads[0]
    started = time.perf_counter()
    report = run_load(
        manifest.pipeline, load, assemble(load, manifest.state, standalone=True), f"r{time.time_ns()}"
    )
    assert report.status == "success", report
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    uri = os.environ.get("DPONE_MSSQL_URI")
    if not uri:
        print(NO_SERVER, file=sys.stderr)
        return 2
    import psycopg

    from airflow_provider_dpone.demo.postgres_server import (
        airflow_conn_uri,
        recreate_database,
        resolve_postgres_uri,
    )

    os.environ["AIRFLOW_CONN_BENCH_MSSQL"] = uri
    admin, _ = resolve_postgres_uri(ROOT / ".dpone" / "pgdata-bench")
    pg = recreate_database(admin, "dpone_bench_mssql")
    os.environ["AIRFLOW_CONN_BENCH_PG"] = airflow_conn_uri(pg)
    with psycopg.connect(pg, autocommit=True) as conn:
        conn.execute(EVENTS_PG.replace("ROWS", str(int(args.rows))))
    pg_side = {"connector": "postgres", "conn_id": "bench_pg"}
    ms_side = {"connector": "mssql", "conn_id": "bench_mssql"}
    trials: dict[str, list[float]] = {
        k: [] for k in ("pipe_pg_to_mssql", "dpone_pg_to_mssql", "pipe_mssql_to_pg", "dpone_mssql_to_pg")
    }
    for _ in range(args.repeat):
        trials["pipe_pg_to_mssql"].append(pipe_pg_to_mssql(pg))
        trials["dpone_pg_to_mssql"].append(
            dpone_load({**pg_side, "table": "public.events"}, {**ms_side, "table": "dbo.events"})
        )
        trials["pipe_mssql_to_pg"].append(pipe_mssql_to_pg(pg))
        trials["dpone_mssql_to_pg"].append(
            dpone_load({**ms_side, "table": "dbo.events"}, {**pg_side, "table": "public.events_back"})
        )
    medians = {k: statistics.median(v) for k, v in trials.items()}
    rows = args.rows
    print(f"{'route':<14} {'pipe s':>8} {'dpone s':>8} {'rows/s dpone':>13} {'ratio':>6}")
    result: dict[str, Any] = {"rows": rows, "repeat": args.repeat, "trials": trials, "routes": {}}
    for route in ("pg_to_mssql", "mssql_to_pg"):
        pipe, dpone = medians[f"pipe_{route}"], medians[f"dpone_{route}"]
        result["routes"][route] = {"pipe_seconds": pipe, "dpone_seconds": dpone, "ratio": pipe / dpone}
        print(f"{route:<14} {pipe:>8.2f} {dpone:>8.2f} {rows / dpone:>13,.0f} {pipe / dpone:>6.2f}")
    out = ROOT / "benchmarks" / "results" / "mssql.json"
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
