"""Benchmark: PostgreSQL -> Parquet files on S3 (moto's server) with dpone vs a bare pyarrow pipe.

    .venv/bin/python benchmarks/object_storage.py --rows 1000000 [--repeat 3]

In one run, ``--repeat`` trials each, interleaved, medians reported:

- pipe: ``COPY (select ...) TO STDOUT (FORMAT csv)`` read whole, parsed by ``pyarrow.csv`` with
  the columns' types, written by ``pyarrow.parquet`` and uploaded with boto3: the physical
  limit of the path (it holds the whole table in memory; dpone may not).
- dpone: ``sink.staging.files``'s step (``runtime.file_staging.stage_files``: Parquet files of
  ``--rows-per-file`` rows with their SHA-256, then ``manifest.json``) on the PostgreSQL
  source's CSV COPY (what the engine asks for) and on its Python row stream (what a schema CSV
  cannot carry gets), each in a child process so its peak RSS is its own. The timed part is the staging; importing
  Airflow's S3 hook is the worker's start-up, reported as ``process_setup_seconds``.

Target (issue 18): dpone >= 0.8x the pipe's rows/s, memory bounded by one file's rows. Then,
in the same run, the partitioned load at ``--partitions`` (default 1,2,4) ranges beside the
unpartitioned staged load (``benchmarks/partitioned.py``, PostgreSQL -> S3 -> PostgreSQL).
Prints the tables and writes JSON to benchmarks/results/object_storage.json.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

EVENTS = """
drop table if exists events;
create table events (id bigint primary key, kind int not null, name text not null,
  amount numeric(12,2) not null, flag boolean not null, created_at timestamptz not null, note text);
insert into events select g, g % 17, 'event-' || g, (g % 65536) / 100.0, g % 2 = 0,
  timestamptz '2026-01-01 00:00+00' + g * interval '1 second', case when g % 4 = 0 then null else 'n' || g end
from generate_series(1, ROWS) g;
"""
KEY, SECRET = "AKIDBENCH", "bench-secret"


def pipe(pg: str, endpoint: str, bucket: str) -> float:
    import boto3
    import psycopg
    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    started = time.perf_counter()
    buffer = io.BytesIO()
    with (
        psycopg.connect(pg) as conn,
        conn.cursor().copy(
            "copy (select id, kind, name, amount, flag, created_at, note from events) to stdout (format csv)"
        ) as copy,
    ):
        for chunk in copy:
            buffer.write(chunk)
    types = {"id": pa.int64(), "kind": pa.int32(), "name": pa.string(), "amount": pa.decimal128(12, 2),
             "flag": pa.bool_(), "created_at": pa.timestamp("us", tz="UTC"), "note": pa.string()}  # fmt: skip
    table = pcsv.read_csv(
        io.BytesIO(buffer.getvalue()),
        read_options=pcsv.ReadOptions(column_names=list(types)),
        convert_options=pcsv.ConvertOptions(column_types=types, true_values=["t"], false_values=["f"]),
    )
    out = io.BytesIO()
    pq.write_table(table, out, compression="zstd")
    out.seek(0)
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=KEY,
        aws_secret_access_key=SECRET,
        region_name="us-east-1",
    )
    client.upload_fileobj(out, bucket, f"pipe/{uuid.uuid4().hex}.parquet")
    return time.perf_counter() - started


def child(rows_per_file: int, path: str) -> None:
    """The dpone side, alone in this process: extract + stage as files; prints seconds and peak RSS."""
    from airflow_provider_dpone.contracts.manifest import parse_manifest
    from airflow_provider_dpone.hooks.postgres_connector import PostgresEngine
    from airflow_provider_dpone.runtime.file_staging import stage_files
    from airflow_provider_dpone.runtime.protocols import LoadContext

    files = {
        "uri": f"s3://{os.environ['BENCH_BUCKET']}/dpone",
        "conn_id": "bench_s3",
        "rows_per_file": rows_per_file,
    }
    body = {"name": "events", "source": {"connector": "postgres", "conn_id": "bench_pg", "table": "public.events", "batch_size": 50_000},
            "sink": {"connector": "postgres", "conn_id": "bench_pg", "table": "raw.events", "staging": {"files": files}}}  # fmt: skip
    load = parse_manifest({"pipeline": "bench", "loads": [body]}).loads[0]
    setup = time.perf_counter()
    import airflow.providers.amazon.aws.hooks.s3  # noqa: F401  (a worker's start-up, as pg_to_pg.py reports it)

    setup = time.perf_counter() - setup
    started = time.perf_counter()
    from airflow_provider_dpone.contracts.artifacts import CSV

    accepted = (CSV,) if path == "csv" else ()  # the engine asks for CSV; a schema CSV cannot carry gets rows
    extract = PostgresEngine("bench_pg").extract(load.source, None, accepted_formats=accepted)
    result = stage_files(load.sink.staging.files, LoadContext("bench", load, uuid.uuid4().hex), extract)  # type: ignore[arg-type]
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "seconds": seconds,
                "peak_rss_mb": peak_mb,
                "files": len(result.artifact.manifest.files),
                "setup_seconds": setup,
            }
        )
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rows-per-file", type=int, default=1_000_000)  # the product default
    parser.add_argument("--partitions", default="1,2,4", help="'' to leave the partitioned load out")
    parser.add_argument("--child", choices=["csv", "rows"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.rows_per_file, args.child)
        return 0
    import boto3
    import psycopg

    from airflow_provider_dpone.demo.postgres_server import (
        airflow_conn_uri,
        recreate_database,
        resolve_postgres_uri,
    )

    admin, _ = resolve_postgres_uri(ROOT / ".dpone" / "pgdata-bench")
    pg = recreate_database(admin, "dpone_bench_objects")
    with psycopg.connect(pg, autocommit=True) as conn:
        conn.execute(EVENTS.replace("ROWS", str(int(args.rows))))
    from airflow_provider_dpone.demo.object_servers import moto_s3

    bucket = f"bench-{uuid.uuid4().hex[:8]}"
    with moto_s3() as endpoint:
        boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=KEY,
            aws_secret_access_key=SECRET,
            region_name="us-east-1",
        ).create_bucket(Bucket=bucket)
        extra = {"endpoint_url": endpoint, "region_name": "us-east-1"}
        env = {**os.environ, "AIRFLOW_CONN_BENCH_PG": airflow_conn_uri(pg), "BENCH_BUCKET": bucket,
               "AIRFLOW_CONN_BENCH_S3": json.dumps({"conn_type": "aws", "login": KEY, "password": SECRET, "extra": extra})}  # fmt: skip
        pipes: list[float] = []
        setups: list[float] = []
        seconds: dict[str, list[float]] = {"csv": [], "rows": []}
        rss: dict[str, list[float]] = {"csv": [], "rows": []}
        for _ in range(args.repeat):
            pipes.append(pipe(pg, endpoint, bucket))
            for path in ("csv", "rows"):
                out = subprocess.run([sys.executable, __file__, "--child", path, "--rows-per-file", str(args.rows_per_file)],
                                     env=env, check=True, capture_output=True, text=True)  # fmt: skip
                measured = json.loads(out.stdout.strip().splitlines()[-1])
                seconds[path].append(measured["seconds"])
                setups.append(measured["setup_seconds"])
                rss[path].append(measured["peak_rss_mb"])
    p = statistics.median(pipes)
    d = {k: statistics.median(v) for k, v in seconds.items()}
    result: dict[str, Any] = {
        "rows": args.rows,
        "rows_per_file": args.rows_per_file,
        "pipe_seconds": pipes,
        "dpone_seconds": seconds,
        "dpone_peak_rss_mb": rss,
        "ratio": {k: p / v for k, v in d.items()},
        "process_setup_seconds": setups,
    }
    print(f"{'path':<34} {'seconds':>8} {'rows/s':>12} {'ratio':>6} {'peak RSS MB':>12}")
    print(f"{'pipe (COPY csv -> pyarrow, whole)':<34} {p:>8.2f} {args.rows / p:>12,.0f} {1:>6.2f} {'-':>12}")
    for k, label in (("csv", "dpone (CSV COPY -> pyarrow files)"), ("rows", "dpone (Python rows -> files)")):
        print(f"{label:<34} {d[k]:>8.2f} {args.rows / d[k]:>12,.0f} {p / d[k]:>6.2f} {max(rss[k]):>12.0f}")
    if args.partitions:
        command = [sys.executable, str(ROOT / "benchmarks" / "partitioned.py"), "--rows", str(args.rows),
                   "--repeat", str(args.repeat), "--partitions", args.partitions]  # fmt: skip
        shown = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        print("\npartitioned load, PostgreSQL -> S3 -> PostgreSQL (benchmarks/partitioned.py):")
        print("\n".join(line for line in shown.splitlines() if not line.startswith("wrote ")))
        part = json.loads((ROOT / "benchmarks" / "results" / "partitioned.json").read_text())
        result["partitioned"] = part["medians"]
    out_path = ROOT / "benchmarks" / "results" / "object_storage.json"
    out_path.write_text(json.dumps(result, indent=2))
    print(f"wrote {out_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
