"""Benchmark: a partitioned PostgreSQL -> PostgreSQL load through S3 (moto's server) at 1, 2 and
4 partitions, beside the unpartitioned staged load, in one run.

    .venv/bin/python benchmarks/partitioned.py --rows 1000000 [--repeat 3] [--partitions 1,2,4]

Each partitioned trial runs the three steps as Airflow would: the plan in this process, one
child process per range at once (as mapped tasks on as many workers; each child's interpreter
and imports are its worker's start-up, reported apart), then the finalize here. The baseline is
``run_load`` of the same load without ``parallel`` (one task). Medians are reported, with each
step's seconds and the children's peak RSS. On a 2-core machine the database, the S3 server and
the workers share the cores: expect the shape, not a linear speed-up. Prints a table and writes
JSON to benchmarks/results/partitioned.json.
"""

from __future__ import annotations

import argparse
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


def manifest(bucket: str, partitions: int | None) -> Any:
    from airflow_provider_dpone.contracts.manifest import parse_manifest

    files = {"uri": f"s3://{bucket}/dpone", "conn_id": "bench_s3"}
    body: dict[str, Any] = {
        "name": "events",
        "source": {"connector": "postgres", "conn_id": "bench_src", "table": "public.events"},
        "sink": {"connector": "postgres", "conn_id": "bench_dst", "table": "raw.events",
                 "strategy": "full_refresh", "staging": {"files": files}},
    }  # fmt: skip
    if partitions:
        body["parallel"] = {"partitions": partitions, "by": "id"}
    state = {"backend": "table", "conn_id": "bench_dst"}  # no Airflow database needed
    return parse_manifest({"pipeline": "bench", "state": state, "loads": [body]})


def parts(m: Any) -> Any:
    from airflow_provider_dpone.operators.wiring import assemble

    return assemble(m.loads[0], m.state, standalone=True)


def child(task_json: str) -> None:
    """One range, alone in this process (a mapped task on its worker)."""
    setup = time.perf_counter()
    import airflow.providers.amazon.aws.hooks.s3  # noqa: F401  (the worker's start-up)

    from airflow_provider_dpone.contracts.partitions import PartitionTask
    from airflow_provider_dpone.runtime.partitioned import extract_partition

    setup = time.perf_counter() - setup
    task = PartitionTask.from_dict(json.loads(task_json))
    m = manifest(os.environ["BENCH_BUCKET"], task.range.count)
    started = time.perf_counter()
    result = extract_partition("bench", m.loads[0], parts(m), task, "bench")
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"result": result.to_dict(), "seconds": seconds, "setup": setup, "peak_rss_mb": peak}))


def partitioned_trial(bucket: str, n: int, env: dict[str, str]) -> dict[str, Any]:
    from airflow_provider_dpone.contracts.partitions import PartitionResult
    from airflow_provider_dpone.runtime.partitioned import finalize_partitions, plan_partitions

    m = manifest(bucket, n)
    load, runtime = m.loads[0], parts(m)
    run_id = uuid.uuid4().hex[:8]
    started = time.perf_counter()
    tasks = plan_partitions("bench", load, runtime, run_id)
    planned = time.perf_counter()
    children = [
        subprocess.Popen(
            [sys.executable, __file__, "--child", json.dumps(t.to_dict())],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for t in tasks
    ]
    outs = []
    for process in children:
        out, _ = process.communicate()
        if process.returncode:
            raise SystemExit(f"a partition failed (exit {process.returncode})")
        outs.append(json.loads(out.strip().splitlines()[-1]))
    extracted = time.perf_counter()
    results = [PartitionResult.from_dict(o["result"]) for o in outs]
    report = finalize_partitions("bench", load, runtime, run_id, results)
    done = time.perf_counter()
    assert report.status == "success" and report.rows is not None
    return {
        "partitions": len(tasks),
        "rows": report.rows,
        "plan": planned - started,
        "extract_wall": extracted - planned,
        "extract_max_child": max(o["seconds"] for o in outs),
        "worker_setup_max": max(o["setup"] for o in outs),
        "finalize": done - extracted,
        "total": done - started,
        "child_peak_rss_mb": max(o["peak_rss_mb"] for o in outs),
    }


def unpartitioned_trial(bucket: str) -> dict[str, Any]:
    from airflow_provider_dpone.runtime.engine import run_load

    m = manifest(bucket, None)
    started = time.perf_counter()
    report = run_load("bench", m.loads[0], parts(m), uuid.uuid4().hex[:8])
    assert report.status == "success"
    return {"partitions": 0, "rows": report.rows, "total": time.perf_counter() - started}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--partitions", default="1,2,4")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return 0
    import boto3
    import psycopg

    from airflow_provider_dpone.demo.object_servers import moto_s3
    from airflow_provider_dpone.demo.postgres_server import (
        airflow_conn_uri,
        recreate_database,
        resolve_postgres_uri,
    )

    admin, _ = resolve_postgres_uri(ROOT / ".dpone" / "pgdata-bench")
    src = recreate_database(admin, "dpone_bench_part_src")
    dst = recreate_database(admin, "dpone_bench_part_dst")
    with psycopg.connect(src, autocommit=True) as conn:
        conn.execute(EVENTS.replace("ROWS", str(int(args.rows))))
    counts = [int(n) for n in args.partitions.split(",")]
    bucket = f"bench-{uuid.uuid4().hex[:8]}"
    with moto_s3() as endpoint:
        boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=KEY, aws_secret_access_key=SECRET,
                     region_name="us-east-1").create_bucket(Bucket=bucket)  # fmt: skip
        extra = {"endpoint_url": endpoint, "region_name": "us-east-1"}
        conns = {
            "AIRFLOW_CONN_BENCH_SRC": airflow_conn_uri(src),
            "AIRFLOW_CONN_BENCH_DST": airflow_conn_uri(dst),
            "AIRFLOW_CONN_BENCH_S3": json.dumps({"conn_type": "aws", "login": KEY, "password": SECRET, "extra": extra}),
        }  # fmt: skip
        os.environ.update(conns)
        env = {**os.environ, "BENCH_BUCKET": bucket}
        trials: dict[str, list[dict[str, Any]]] = {"unpartitioned": [], **{str(n): [] for n in counts}}
        for _ in range(args.repeat):  # interleaved, so drift hits every shape alike
            trials["unpartitioned"].append(unpartitioned_trial(bucket))
            for n in counts:
                trials[str(n)].append(partitioned_trial(bucket, n, env))
    medians = {k: {f: statistics.median(t[f] for t in v) for f in v[0]} for k, v in trials.items()}
    base = medians["unpartitioned"]["total"]
    print(f"{'shape':<16} {'plan':>6} {'extract':>8} {'(child)':>8} {'(setup)':>8} {'finalize':>8} "
          f"{'total':>7} {'rows/s':>10} {'vs one task':>11} {'child RSS MB':>12}")  # fmt: skip
    print(f"{'one task':<16} {'-':>6} {'-':>8} {'-':>8} {'-':>8} {'-':>8} {base:>7.2f} "
          f"{args.rows / base:>10,.0f} {1:>11.2f} {'-':>12}")  # fmt: skip
    for n in counts:
        m = medians[str(n)]
        print(f"{f'{n} partition(s)':<16} {m['plan']:>6.2f} {m['extract_wall']:>8.2f} {m['extract_max_child']:>8.2f} "
              f"{m['worker_setup_max']:>8.2f} {m['finalize']:>8.2f} {m['total']:>7.2f} {args.rows / m['total']:>10,.0f} "
              f"{base / m['total']:>11.2f} {m['child_peak_rss_mb']:>12.0f}")  # fmt: skip
    out_path = ROOT / "benchmarks" / "results" / "partitioned.json"
    out_path.write_text(json.dumps({"rows": args.rows, "cores": os.cpu_count(), "trials": trials,
                                    "medians": medians}, indent=2))  # fmt: skip
    print(f"wrote {out_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
