"""Benchmark: PostgreSQL -> PostgreSQL with dpone vs the raw ``psql \\copy | psql \\copy`` pipe.

    .venv/bin/python benchmarks/pg_to_pg.py --rows 1000000 5000000 [--repeat 4]

For each size, in one run and ``--repeat`` trials each (medians reported, every trial in the
JSON): the raw binary COPY pipe and a dpone full load (full_refresh), interleaved; then a dpone
incremental run (incremental_merge on a cursor) after 1% of the rows changed (every 100th id,
so spread over the whole table), and the floor of that incremental step measured next to it
on the same changed rows and the same target table (the two take turns going first, since the
second finds the target's pages cached): binary COPY of the changed rows into a temp table,
``UPDATE ... FROM``, commit, with nothing else (``floor_incremental``). Each timed
step starts after a CHECKPOINT; between the initial and the incremental runs the target is
vacuumed, as autovacuum would have done between two scheduled runs.

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
import statistics
import subprocess
import sys
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

COLUMNS = ["kind", "name", "payload", "amount", "flag", "created_at", "updated_at", "note"]
LOAD = {
    "source": {"connector": "postgres", "conn_id": "bench_src"},
    "sink": {"connector": "postgres", "conn_id": "bench_dst"},
}


def cpu_seconds(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def child(kind: str) -> None:
    """Run one dpone load in this process and print its timing and peak RSS as JSON."""
    from airflow_provider_dpone.contracts.manifest import parse_manifest
    from airflow_provider_dpone.operators.wiring import assemble
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
    start, cpu = time.perf_counter(), cpu_seconds(resource.RUSAGE_SELF)
    report = run_load(m.pipeline, spec, parts, run_id=f"bench-{time.time_ns()}")
    seconds, cpu = time.perf_counter() - start, cpu_seconds(resource.RUSAGE_SELF) - cpu
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "seconds": seconds,
                "cpu_seconds": cpu,
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


def timed_pipe(src: str, copy_out: str, dst: str, into_args: list[str]) -> tuple[float, float]:
    """Seconds for ``psql -c <copy_out>`` on the source piped into ``psql <into_args>`` on the sink,
    and the CPU seconds of the two psql processes."""
    start, cpu = time.perf_counter(), cpu_seconds(resource.RUSAGE_CHILDREN)
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
    return seconds, cpu_seconds(resource.RUSAGE_CHILDREN) - cpu


def raw_pipe(src: str, dst: str) -> tuple[float, float]:
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


def floor_incremental(src: str, dst: str, since: str) -> float:
    """The physical floor of the incremental step, in this process: one connection per side,
    binary COPY of the changed rows into a temp table, ANALYZE, ``UPDATE ... FROM``, commit. No
    catalog queries, no state, no staging table kept. It updates dpone's own target with the
    same rows dpone just wrote (values unchanged, every row version and page written again), so
    both pay for the same table layout, page for page."""
    sets = ", ".join(f"{c} = c.{c}" for c in COLUMNS)
    start = time.perf_counter()
    with psycopg.connect(src) as s, psycopg.connect(dst) as d:
        d.execute("create temp table changed (like events_shape) on commit drop")
        with (
            s.cursor().copy(
                "copy (select * from events where updated_at > %s) to stdout (format binary)", (since,)
            ) as out,
            d.cursor().copy("copy changed from stdin (format binary)") as into,
        ):
            for chunk in out:
                into.write(chunk)
        d.execute("analyze changed")
        d.execute(f"update raw.events_inc t set {sets} from changed c where t.id = c.id")
        d.commit()
    return time.perf_counter() - start


def median(values: list[float]) -> float:
    return statistics.median(values)


def bench(admin: str, rows: int, env: dict[str, str], repeat: int) -> dict:
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
    pipes, pipe_cpu, fulls = [], [], []
    for trial in range(1, repeat + 1):  # interleaved, so a slow spell of the machine hits both
        print(
            f"[{rows:,} rows] trial {trial}/{repeat}: raw psql binary COPY pipe, dpone full load", flush=True
        )
        checkpoint(dst)
        seconds, cpu = raw_pipe(src, dst)
        pipes.append(seconds)
        pipe_cpu.append(cpu)
        checkpoint(dst)
        fulls.append(run_child("full", env))
    print(f"[{rows:,} rows] dpone incremental: initial load ...", flush=True)
    initial = run_child("incremental", env)
    with psycopg.connect(dst, autocommit=True) as conn:
        # Between two scheduled runs autovacuum has processed the freshly loaded tables.
        conn.execute("vacuum analyze raw.events_inc")
    incs, floors, changed = [], [], 0
    for trial in range(1, repeat + 1):
        # The second of the two finds the target's pages in shared buffers: they take turns.
        dpone_first = trial % 2 == 1
        order = "dpone incremental, then floor" if dpone_first else "floor, then dpone incremental"
        print(f"[{rows:,} rows] trial {trial}/{repeat}: 1% changed, {order}", flush=True)
        with psycopg.connect(src, autocommit=True) as conn:
            since = conn.execute("select max(updated_at)::text from events").fetchone()[0]
            changed = conn.execute(
                "update events set amount = amount + 1, updated_at = now() where id % 100 = 0"
            ).rowcount
        for step in ("dpone", "floor") if dpone_first else ("floor", "dpone"):
            checkpoint(dst)
            if step == "dpone":
                incs.append(run_child("incremental", env))
            else:
                floors.append(floor_incremental(src, dst, since))
    with psycopg.connect(src) as s, psycopg.connect(dst) as d:
        q = "select count(*), sum(hashtext(t::text)) from {} t"
        equal = s.execute(q.format("events")).fetchone() == d.execute(q.format("raw.events_inc")).fetchone()
        equal_full = (
            s.execute("select count(*) from events").fetchone()[0]
            == d.execute("select count(*) from raw.events").fetchone()[0]
        )
    pipe = median(pipes)
    full = median([f["seconds"] for f in fulls])
    # Each pipe/full pair ran back to back, so their ratio is taken per pair, then the median.
    paired = [p / f["seconds"] for p, f in zip(pipes, fulls, strict=True)]
    inc = median([i["seconds"] for i in incs])
    floor = median(floors)
    return {
        "rows": rows,
        "repeat": repeat,
        "source_table_bytes": size,
        "changed_rows": changed,
        "pipe_seconds": pipe,
        "pipe_seconds_trials": pipes,
        "pipe_rows_per_s": rows / pipe,
        "pipe_psql_cpu_seconds_trials": pipe_cpu,
        "full_seconds": full,
        "full_trials": fulls,
        "full_rows_per_s": rows / full,
        "full_vs_pipe": median(paired),
        "full_vs_pipe_trials": paired,
        "incremental_initial": initial,
        "incremental_seconds": inc,
        "incremental_trials": incs,
        "incremental_fraction_of_full": inc / full,
        "floor_incremental_seconds": floor,
        "floor_incremental_trials": floors,
        "floor_incremental_fraction_of_full": floor / full,
        "peak_rss_mb": max(r["peak_rss_mb"] for r in [*fulls, *incs, initial]),
        "incremental_target_equals_source": equal,
        "full_row_count_equal": equal_full,
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 5_000_000])
    parser.add_argument("--repeat", type=int, default=4, help="trials per size; medians are reported")
    parser.add_argument("--child", choices=["full", "incremental"])
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "pg_to_pg.json"))
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return 0
    admin, origin = resolve_postgres_uri(ROOT / ".dpone" / "pgdata-bench")
    env = {**os.environ, "AIRFLOW_HOME": os.environ.get("AIRFLOW_HOME", str(ROOT / ".airflow"))}
    results = []
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for n in args.rows:  # JSON is rewritten after each size, so a long run keeps what it measured
        results.append(bench(admin, n, env, args.repeat))
        out.write_text(json.dumps({"postgres": origin, "results": results}, indent=2, default=str))
    header = (
        f"{'rows':>10} {'pipe s':>7} {'full s':>7} {'full/pipe':>9} {'incr s':>7} {'incr/full':>9} "
        f"{'floor s':>7} {'floor/full':>10} {'peak RSS MB':>11} {'equal':>6}"
    )
    print(
        f"\nPostgreSQL: {origin}; medians of {args.repeat} trials (full/pipe: of the paired trials)\n{header}"
    )
    for r in results:
        equal = r["incremental_target_equals_source"] and r["full_row_count_equal"]
        print(
            f"{r['rows']:>10,} {r['pipe_seconds']:>7.2f} {r['full_seconds']:>7.2f} {r['full_vs_pipe']:>8.2f}x "
            f"{r['incremental_seconds']:>7.3f} {r['incremental_fraction_of_full']:>9.1%} "
            f"{r['floor_incremental_seconds']:>7.3f} {r['floor_incremental_fraction_of_full']:>10.1%} "
            f"{r['peak_rss_mb']:>11.0f} {equal!s:>6}"
        )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
