"""Benchmark: the ClickHouse sink against a raw clickhouse-connect insert, and PG -> ClickHouse.

    .venv/bin/python benchmarks/clickhouse.py --rows 1000000

1. Sink insert throughput. The same Arrow data (a mixed-type ``events`` table) is inserted,
   in one run and alternately, by a raw ``client.insert_arrow`` into a MergeTree table and by
   the dpone sink's ``stage`` (schema plan, staging table created from the target, the Arrow
   batches inserted, the staged rows counted). Best of ``--repeat`` each. Target (issue 4):
   the sink reaches at least 0.8x the raw insert's rows/s.
2. PostgreSQL -> ClickHouse, a full load of ``--rows`` rows of the same ``events`` table as
   benchmarks/pg_to_pg.py, in a child process (its own chDB data directory) so its peak RSS is
   its own. Target: peak RSS under 400 MB.

The ClickHouse engine is chDB, in process (the `dev` extra installs it). Prints a table and writes
JSON to benchmarks/results/clickhouse.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def arrow_events(rows: int):
    """The events table of pg_to_pg.py as Arrow record batches, built with NumPy-backed arrays."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    ids = pa.array(np.arange(1, rows + 1, dtype=np.int64))
    base = np.datetime64("2026-01-01T00:00:00", "us")
    stamps = pa.array(base + np.arange(rows, dtype=np.int64) * 1_000_000, pa.timestamp("us", tz="UTC"))
    name = pc.binary_join_element_wise("event-", pc.cast(ids, pa.string()), "")
    payload = pc.binary_join_element_wise(
        '{"user": "u', pc.cast(pc.divide(ids, 10), pa.string()), '", "props": {"k": "' + "x" * 120 + '"}}', ""
    )
    note = pc.if_else(pc.equal(pc.bit_wise_and(ids, 3), 0), pa.scalar(None, pa.string()), name)
    table = pa.table(
        {
            "id": ids,
            "kind": pa.array((np.arange(rows) % 17).astype(np.int32)),
            "name": name,
            "payload": payload,
            "amount": pc.cast(
                pc.divide(pc.cast(pc.bit_wise_and(ids, 65535), pa.float64()), 100.0), pa.decimal128(12, 2)
            ),
            "flag": pc.equal(pc.bit_wise_and(ids, 1), 0),
            "created_at": stamps,
            "updated_at": stamps,
            "note": note,
        }
    )
    return table


def bench_insert(rows: int, repeat: int, batch_rows: int) -> dict:
    import clickhouse_connect
    import pyarrow as pa

    from airflow_provider_dpone.contracts.artifacts import ArrowBatches, ExtractResult
    from airflow_provider_dpone.contracts.manifest import parse_manifest
    from airflow_provider_dpone.contracts.table import CanonicalType as T
    from airflow_provider_dpone.contracts.table import Column, TableSchema
    from airflow_provider_dpone.hooks.clickhouse import DponeClickHouseHook
    from airflow_provider_dpone.runtime.protocols import LoadContext

    data = arrow_events(rows)
    path = tempfile.mkdtemp(prefix="dpone-bench-chdb-")
    os.environ["AIRFLOW_CONN_BENCH_CH"] = json.dumps(
        {"conn_type": "dpone_clickhouse", "extra": {"dsn": f"chdb://{path}"}}
    )
    client = clickhouse_connect.get_client(dsn=f"chdb://{path}")
    schema = TableSchema(
        (
            Column("id", T.INT64, False),
            Column("kind", T.INT32, False),
            Column("name", T.STRING, False),
            Column("payload", T.JSON, False),
            Column("amount", T.DECIMAL, False, precision=12, scale=2),
            Column("flag", T.BOOLEAN, False),
            Column("created_at", T.TIMESTAMPTZ, False),
            Column("updated_at", T.TIMESTAMPTZ, False),
            Column("note", T.STRING, True),
        ),
        ("id",),
    )
    from airflow_provider_dpone.sql.clickhouse import CLICKHOUSE as dialect

    client.command("create database if not exists raw")
    target = dialect.table("raw", "events")
    client.command(dialect.create_table(target, dialect.as_stored(schema), order_by=["id"]))
    m = parse_manifest(
        {
            "pipeline": "bench",
            "loads": [
                {
                    "name": "events",
                    "source": {"connector": "clickhouse", "conn_id": "bench_ch", "table": "raw.events"},
                    "sink": {
                        "connector": "clickhouse",
                        "conn_id": "bench_ch",
                        "table": "raw.events",
                        "strategy": "incremental_append",
                    },
                }
            ],
        }
    )
    hook = DponeClickHouseHook(conn_id="bench_ch")
    batches = data.to_batches(max_chunksize=batch_rows)
    raw_times, sink_times = [], []
    for i in range(repeat):
        client.command("drop table if exists raw.events_raw")
        client.command(dialect.create_table_as(dialect.table("raw", "events_raw"), target))
        start = time.perf_counter()
        client.insert_arrow("raw.events_raw", data)
        raw_times.append(time.perf_counter() - start)
        client.command("truncate table raw.events_raw")
        start = time.perf_counter()  # the same batches the sink gets, in a plain loop
        for batch in batches:
            client.insert_arrow("raw.events_raw", pa.Table.from_batches([batch]))
        raw_times.append(time.perf_counter() - start)
        ctx = LoadContext("bench", m.loads[0], f"bench-{i}")
        start = time.perf_counter()
        staged = hook.stage(ctx, ExtractResult(ArrowBatches(iter(batches)), schema))
        sink_times.append(time.perf_counter() - start)
        assert staged.rows == rows, staged
        hook.cleanup(ctx, staged, True)
    raw_count = client.query("select count() from raw.events_raw").result_rows[0][0]
    return {
        "rows": rows,
        "arrow_bytes": data.nbytes,
        "batch_rows": batch_rows,
        "raw_insert_seconds": min(raw_times),
        "sink_stage_seconds": min(sink_times),
        "raw_rows_per_s": rows / min(raw_times),
        "sink_rows_per_s": rows / min(sink_times),
        "sink_vs_raw": min(raw_times) / min(sink_times),
        "raw_count_equal": raw_count == rows,
        "all_raw_seconds": raw_times,
        "all_sink_seconds": sink_times,
    }


def peak_rss_mb() -> float:
    """This process's own peak RSS (VmHWM). ru_maxrss would carry the parent's peak across
    fork and exec, and the parent holds the chDB engine of the insert benchmark."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_pg_to_ch(rows: int) -> None:
    """Run the PG -> ClickHouse full load in this process; print timing and peak RSS."""
    started = time.perf_counter()
    from airflow_provider_dpone.contracts.manifest import parse_manifest
    from airflow_provider_dpone.operators.wiring import assemble
    from airflow_provider_dpone.runtime.engine import run_load

    m = parse_manifest(
        {
            "pipeline": "bench",
            "loads": [
                {
                    "name": "events",
                    "source": {"connector": "postgres", "conn_id": "bench_src", "table": "events"},
                    "sink": {
                        "connector": "clickhouse",
                        "conn_id": "bench_ch",
                        "table": "raw.events",
                        "strategy": "full_refresh",
                    },
                }
            ],
        }
    )
    parts = assemble(m.loads[0], m.state)
    setup = time.perf_counter() - started
    start = time.perf_counter()
    report = run_load("bench", m.loads[0], parts, f"bench-{time.time_ns()}")
    seconds = time.perf_counter() - start
    count = parts.sink.query("select count() from raw.events")[0][0]
    print(
        json.dumps(
            {
                "seconds": seconds,
                "process_setup_seconds": setup,
                "rows": report.rows,
                "target_rows": int(count),
                "bytes": report.find_phase("stage").bytes,
                "fast_path": report.fast_path,
                "method": report.sink["finalize"].get("method"),
                "phases": {p.name: p.seconds for p in report.phases},
                "peak_rss_mb": peak_rss_mb(),
            }
        )
    )


def bench_pg_to_ch(rows: int, over_http: bool) -> dict:
    import psycopg
    from pg_to_pg import EVENTS

    from airflow_provider_dpone.demo.postgres_server import (
        airflow_conn_uri,
        recreate_database,
        resolve_postgres_uri,
    )

    admin, origin = resolve_postgres_uri(ROOT / ".dpone" / "pgdata-bench")
    src = recreate_database(admin, "dpone_bench_ch_src")
    with psycopg.connect(src, autocommit=True) as conn:
        conn.execute(EVENTS.replace("ROWS", str(int(rows))))
    path = tempfile.mkdtemp(prefix="dpone-bench-pg2ch-")
    server = None
    if over_http:  # the engine in its own process, as a ClickHouse server would be
        server = subprocess.Popen(
            [sys.executable, "-m", "tests.clickhouse_http", path], cwd=ROOT, stdout=subprocess.PIPE, text=True
        )
        assert server.stdout is not None
        port = int(server.stdout.readline())
        conn_spec = {
            "conn_type": "dpone_clickhouse",
            "host": "127.0.0.1",
            "port": port,
            "extra": {"compress": False},
        }
    else:
        conn_spec = {"conn_type": "dpone_clickhouse", "extra": {"dsn": f"chdb://{path}"}}
    env = {
        **os.environ,
        "AIRFLOW_CONN_BENCH_SRC": airflow_conn_uri(src),
        "AIRFLOW_CONN_BENCH_CH": json.dumps(conn_spec),
        "AIRFLOW_HOME": os.environ.get("AIRFLOW_HOME", str(ROOT / ".airflow")),
    }
    try:
        out = subprocess.run(
            [sys.executable, __file__, "--child-pg-to-ch", str(rows)],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
    finally:
        if server is not None:
            server.kill()
            server.wait()
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result.update(
        postgres=origin, engine="chDB behind HTTP, another process" if over_http else "chDB in the worker"
    )
    return result


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch-rows", type=int, default=65_536)
    parser.add_argument("--child-pg-to-ch", type=int)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "clickhouse.json"))
    args = parser.parse_args()
    if args.child_pg_to_ch:
        child_pg_to_ch(args.child_pg_to_ch)
        return 0
    insert = bench_insert(args.rows, args.repeat, args.batch_rows)
    pg = bench_pg_to_ch(args.rows, over_http=True)
    pg_local = bench_pg_to_ch(args.rows, over_http=False)
    result = {
        "measured_at": dt.datetime.now(dt.timezone.utc).isoformat(),
        "insert": insert,
        "pg_to_clickhouse_http": pg,
        "pg_to_clickhouse_in_process": pg_local,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2, default=str))
    print(f"\n{'benchmark':<36} {'rows':>10} {'seconds':>8} {'rows/s':>11} {'vs raw':>7} {'peak RSS MB':>11}")
    raw_line = (
        f"{'raw clickhouse-connect insert_arrow':<36} {args.rows:>10,} {insert['raw_insert_seconds']:>8.2f}"
    )
    print(f"{raw_line} {insert['raw_rows_per_s']:>11,.0f} {'1.00x':>7}")
    print(
        f"{'dpone ClickHouse sink (stage)':<36} {args.rows:>10,} {insert['sink_stage_seconds']:>8.2f} "
        f"{insert['sink_rows_per_s']:>11,.0f} {insert['sink_vs_raw']:>6.2f}x"
    )
    for label, r in (("PG -> CH over HTTP", pg), ("PG -> CH, chDB in the worker", pg_local)):
        print(
            f"{label + ' (' + r['fast_path'] + ')':<36} {r['rows']:>10,} {r['seconds']:>8.2f} "
            f"{r['rows'] / r['seconds']:>11,.0f} {'':>7} {r['peak_rss_mb']:>11.0f}"
        )
    equal = pg["target_rows"] == pg["rows"] and pg_local["target_rows"] == pg_local["rows"]
    print(f"target rows equal: {equal}; the in-process RSS includes the ClickHouse engine itself")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
