"""Benchmark: PostgreSQL -> PostgreSQL with dpone vs the raw ``psql \\copy | psql \\copy`` pipe.

    .venv/bin/python benchmarks/pg_to_pg.py --rows 1000000 5000000

For each size, in one run: the raw binary COPY pipe, a dpone full load (full_refresh), a dpone
incremental run (incremental_merge on a cursor) after 1% of the rows changed (every 100th id,
so spread over the whole table), and the hand-written floor of that incremental step (psql COPY
of the changed rows into a temp table, then UPDATE ... FROM). Each timed step starts after a
CHECKPOINT; between the initial and the incremental run the target is vacuumed, as autovacuum
would have done between two scheduled runs.

dpone runs in a child process so its peak RSS is measured alone. The timed part is the load
itself (``run_load``); importing Airflow and the hooks is the worker's start-up cost, reported
as ``process_setup_seconds`` in the JSON. Prints a table, writes JSON to
benchmarks/results/pg_to_pg.json. Targets (issue 2): full >= 0.8x pipe throughput,
incremental <= 5% of the full load's time, peak RSS < 300 MB at 5M rows.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

CHILD_STARTED = time.perf_counter()
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from airflow_provider_dpone.demo.postgres_server import (  # noqa: E402
    airflow_conn_uri,
    recreate_database,
    resolve_postgres_uri,
)

EVENTS = """
create table events (
  id bigint primary key, kind int not null, name text not null, payload jsonb not null,
  amount numeric(12,2) not null, flag boolean not null, created_at timestamptz not null,
  updated_at timestamptz not null, note text
);
insert into events
select g, g % 17, 'event-' || g,
       jsonb_build_object('user', 'u' || (g % 100000), 'tags', jsonb_build_array('a', 'bb', 'ccc'),
                          'props', jsonb_build_object('k', repeat('x', 120), 'n', g)),
       (g % 100000) / 100.0, g % 2 = 0, now() - interval '90 days' + g * interval '1 second',
       now() - interval '90 days' + g * interval '1 second', case when g % 5 = 0 then null else 'n' || g end
from generate_series(1, ROWS) g;
create index events_updated_at on events (updated_at);
analyze events;
"""

LOAD = {
    "source": {"connector": "postgres", "conn_id": "bench_src"},
    "sink": {"connector": "postgres", "conn_id": "bench_dst"},
}


def child(kind: str) -> None:
    """Run one dpone load in this process and print its timing and peak RSS as JSON."""
    from airflow_provider_dpone.contracts.manifest import parse_manifest
    from airflow_provider_dpone.runtime.assemble import assemble
    from airflow_provider_dpone.runtime.engine import run_load

    if kind == "full":
        load = {"name": "events_full", "source": {"table": "events"}, "sink": {"table": "raw.events"}}
    else:
        load = {
            "name": "events_inc",
            "source": {"table": "events", "incremental": {"mode": "cursor", "cursor": "updated_at"}},
            "sink": {"table": "raw.events_inc", "strategy": "incremental_merge", "unique_key": ["id"]},
        }
    m = parse_manifest(
        {
            "pipeline": "bench",
            "state": {"backend": "table", "conn_id": "bench_dst"},
            "defaults": LOAD,
            "loads": [load],
        }
    )
    spec = m.loads[0]
    # Importing Airflow and the hooks is the worker's start-up cost, paid once per process (an
    # Airflow task runner has done it before the operator runs); it is reported, not timed.
    parts = assemble(spec, m.state)
    setup = time.perf_counter() - CHILD_STARTED
    start = time.perf_counter()
    report = run_load(m.pipeline, spec, parts, run_id=f"bench-{time.time_ns()}")
    seconds = time.perf_counter() - start
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "seconds": seconds,
                "process_setup_seconds": setup,
                "rows": report.rows,
                "bytes": report.find_phase("stage").bytes,
                "fast_path": report.fast_path,
                "method": report.sink["finalize"].get("method"),
                "peak_rss_mb": rss_mb,
                "phases": {p.name: p.seconds for p in report.phases},
                "finalize": report.sink["finalize"],
            }
        )
    )


def run_child(kind: str, env: dict[str, str]) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind], env=env, check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def timed_pipe(src: str, copy_out: str, dst: str, into_args: list[str]) -> float:
    """Seconds for ``psql -c <copy_out>`` on the source piped into ``psql <into_args>`` on the sink."""
    start = time.perf_counter()
    out = subprocess.Popen(["psql", "-X", "-q", "-d", src, "-c", copy_out], stdout=subprocess.PIPE)
    into = subprocess.run(
        ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", dst, *into_args],
        stdin=out.stdout,
        capture_output=True,
    )
    out.wait()
    seconds = time.perf_counter() - start
    if out.returncode or into.returncode:
        raise SystemExit(f"psql pipe failed: {into.stderr.decode()}")
    return seconds


def raw_pipe(src: str, dst: str) -> float:
    with psycopg.connect(dst, autocommit=True) as conn:
        conn.execute("drop table if exists pipe_events")
        conn.execute("create table pipe_events (like events_shape including all)")
    return timed_pipe(
        src,
        r"\copy events to stdout (format binary)",
        dst,
        ["-c", r"\copy pipe_events from stdin (format binary)"],
    )


def checkpoint(dsn: str) -> None:
    """Start each timed step with no dirty pages left over from the previous one."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("checkpoint")


def raw_incremental(src: str, dst: str, since: str) -> float:
    """The hand-written floor of the incremental step: pipe the changed rows (binary COPY) into a
    temp table and UPDATE the pipe's copy of the table from it, in one transaction."""
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "merge.sql"
        script.write_text(
            "begin;\n"
            "create temp table changed (like events_shape) on commit drop;\n"
            "\\copy changed from pstdin (format binary)\n"
            "update pipe_events t set kind = c.kind, name = c.name, payload = c.payload, "
            "amount = c.amount, flag = c.flag, created_at = c.created_at, "
            "updated_at = c.updated_at, note = c.note from changed c where t.id = c.id;\n"
            "commit;\n"
        )
        select = f"select * from events where updated_at > '{since}'"
        return timed_pipe(src, rf"\copy ({select}) to stdout (format binary)", dst, ["-f", str(script)])


def bench(admin: str, rows: int, env: dict[str, str]) -> dict:
    src, dst = recreate_database(admin, "dpone_bench_src"), recreate_database(admin, "dpone_bench_dst")
    env = {
        **env,
        "AIRFLOW_CONN_BENCH_SRC": airflow_conn_uri(src),
        "AIRFLOW_CONN_BENCH_DST": airflow_conn_uri(dst),
    }
    print(f"[{rows:,} rows] generating events ...", flush=True)
    with psycopg.connect(src, autocommit=True) as conn:
        conn.execute(EVENTS.replace("ROWS", str(int(rows))))
        size = conn.execute("select pg_total_relation_size('events')").fetchone()[0]
    with psycopg.connect(dst, autocommit=True) as conn:  # same DDL as the source, for the pipe
        conn.execute(EVENTS.split(";")[0].replace("create table events", "create table events_shape"))
    print(f"[{rows:,} rows] raw psql binary COPY pipe ...", flush=True)
    checkpoint(dst)
    pipe = raw_pipe(src, dst)
    print(f"[{rows:,} rows] dpone full load ...", flush=True)
    checkpoint(dst)
    full = run_child("full", env)
    print(f"[{rows:,} rows] dpone incremental: initial load, then 1% changed ...", flush=True)
    initial = run_child("incremental", env)
    with psycopg.connect(dst, autocommit=True) as conn:
        # Between two scheduled runs autovacuum has processed the freshly loaded tables.
        conn.execute("vacuum analyze raw.events_inc")
        conn.execute("vacuum analyze pipe_events")
    with psycopg.connect(src, autocommit=True) as conn:
        since = conn.execute("select max(updated_at)::text from events").fetchone()[0]
        changed = conn.execute(
            "update events set amount = amount + 1, updated_at = now() where id % 100 = 0"
        ).rowcount
    checkpoint(dst)
    inc = run_child("incremental", env)
    print(
        f"[{rows:,} rows] hand-written incremental floor (COPY changed rows | UPDATE ... FROM) ...",
        flush=True,
    )
    checkpoint(dst)
    floor = raw_incremental(src, dst, since)
    with psycopg.connect(src) as s, psycopg.connect(dst) as d:
        q = "select count(*), sum(hashtext(t::text)) from {} t"
        equal = s.execute(q.format("events")).fetchone() == d.execute(q.format("raw.events_inc")).fetchone()
        equal_full = (
            s.execute(q.format("events")).fetchone()[0]
            == d.execute("select count(*) from raw.events").fetchone()[0]
        )
    return {
        "rows": rows,
        "source_table_bytes": size,
        "changed_rows": changed,
        "pipe_seconds": pipe,
        "pipe_rows_per_s": rows / pipe,
        "full": full,
        "full_rows_per_s": rows / full["seconds"],
        "full_vs_pipe": pipe / full["seconds"],
        "incremental_initial": initial,
        "incremental": inc,
        "incremental_fraction_of_full": inc["seconds"] / full["seconds"],
        "raw_incremental_seconds": floor,
        "raw_incremental_fraction_of_pipe": floor / pipe,
        "incremental_target_equals_source": equal,
        "full_row_count_equal": equal_full,
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 5_000_000])
    parser.add_argument("--child", choices=["full", "incremental"])
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "pg_to_pg.json"))
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return 0
    admin, origin = resolve_postgres_uri(ROOT / ".dpone" / "pgdata-bench")
    env = {**os.environ, "AIRFLOW_HOME": os.environ.get("AIRFLOW_HOME", str(ROOT / ".airflow"))}
    results = []
    for n in args.rows:  # JSON is rewritten after each size, so a long run keeps what it measured
        results.append(bench(admin, n, env))
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"postgres": origin, "results": results}, indent=2, default=str))
    header = (
        f"{'rows':>10} {'pipe s':>7} {'full s':>7} {'full/pipe':>9} {'incr s':>7} {'incr/full':>9} "
        f"{'raw incr s':>10} {'raw/pipe':>8} {'peak RSS MB':>11} {'equal':>6}"
    )
    print(f"\nPostgreSQL: {origin}\n{header}")
    for r in results:
        rss = max(
            r["full"]["peak_rss_mb"], r["incremental"]["peak_rss_mb"], r["incremental_initial"]["peak_rss_mb"]
        )
        print(
            f"{r['rows']:>10,} {r['pipe_seconds']:>7.2f} {r['full']['seconds']:>7.2f} {r['full_vs_pipe']:>8.2f}x "
            f"{r['incremental']['seconds']:>7.2f} {r['incremental_fraction_of_full']:>9.1%} "
            f"{r['raw_incremental_seconds']:>10.2f} {r['raw_incremental_fraction_of_pipe']:>8.1%} {rss:>11.0f} "
            f"{r['incremental_target_equals_source'] and r['full_row_count_equal']!s:>6}"
        )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"postgres": origin, "results": results}, indent=2, default=str))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
