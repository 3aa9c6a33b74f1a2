"""Benchmark: a PostgreSQL ``incremental_append`` whose extract re-reads rows (a lookback), into
a target that holds ``--rows`` rows and has no key of its own (a query source gives it none):
keyed by ``sink.unique_key`` (the re-read keys are skipped), beside the floor of copying the
same batch out of the source (binary COPY, discarded), in one run.

    .venv/bin/python benchmarks/append_keys.py --rows 1000000 --new 100000 --reread 100000

Each run appends ``--new`` new rows and re-reads ``--reread`` rows already loaded; the keyed
append must insert exactly the new ones (the target's row count is checked). Until 2026-11-30 a
keyless target let the re-read rows in twice. Prints a table and writes JSON to
benchmarks/results/append_keys.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402

from airflow_provider_dpone.demo.postgres_server import (  # noqa: E402
    airflow_conn_uri,
    recreate_database,
    resolve_postgres_uri,
)

EVENTS = """
create table events (id bigint primary key, kind int not null, note text not null,
  updated_at timestamptz not null);
insert into events select g, g % 7, 'event-' || g, timestamptz '2026-01-01 00:00+00' + g * interval '1 second'
from generate_series(1, ROWS) g;
analyze events;
"""
QUERY = "select id, kind, note, updated_at from events"


def manifest(lookback_seconds: int) -> Any:
    from airflow_provider_dpone.contracts.manifest import parse_manifest

    load = {
        "name": "events",
        "source": {"connector": "postgres", "conn_id": "bench_src", "query": QUERY,
                   "incremental": {"mode": "cursor", "cursor": "updated_at", "lookback": lookback_seconds}},
        "sink": {"connector": "postgres", "conn_id": "bench_dst", "table": "raw.events",
                 "strategy": "incremental_append", "unique_key": ["id"]},
    }  # fmt: skip
    return parse_manifest(
        {"pipeline": "bench", "state": {"backend": "table", "conn_id": "bench_dst"}, "loads": [load]}
    )


def run(run_id: str, lookback_seconds: int) -> tuple[float, Any]:
    from airflow_provider_dpone.operators.wiring import assemble
    from airflow_provider_dpone.runtime.engine import run_load

    m = manifest(lookback_seconds)
    started = time.perf_counter()
    report = run_load(m.pipeline, m.loads[0], assemble(m.loads[0], m.state, standalone=True), run_id)
    return time.perf_counter() - started, report


def copy_floor(src: str, lower: int) -> float:
    """Copying the batch (the rows past ``lower``) out of the source, discarded."""
    started = time.perf_counter()
    with (
        psycopg.connect(src) as conn,
        conn.cursor() as cur,
        cur.copy(f"copy (select * from events where id > {int(lower)}) to stdout (format binary)") as copy,
    ):
        for _ in copy:
            pass
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows the target holds")
    parser.add_argument("--new", type=int, default=100_000, help="new rows each run appends")
    parser.add_argument("--reread", type=int, default=100_000, help="loaded rows the lookback reads again")
    args = parser.parse_args()
    admin, origin = resolve_postgres_uri(ROOT / ".dpone" / "pgdata-bench")
    suffix = uuid.uuid4().hex[:6]
    names = (f"dpone_bench_ak_src_{suffix}", f"dpone_bench_ak_dst_{suffix}")
    src, dst = (recreate_database(admin, n) for n in names)
    os.environ["AIRFLOW_CONN_BENCH_SRC"] = airflow_conn_uri(src)
    os.environ["AIRFLOW_CONN_BENCH_DST"] = airflow_conn_uri(dst)
    results: dict[str, Any] = {"rows": args.rows, "new": args.new, "reread": args.reread, "server": origin}
    try:
        with psycopg.connect(src, autocommit=True) as conn:
            conn.execute(EVENTS.replace("ROWS", str(args.rows)))
        seconds, _ = run("initial", args.reread)  # ids are one second apart: lookback = reread rows
        results["initial_seconds"] = round(seconds, 2)
        with psycopg.connect(src, autocommit=True) as conn:
            top = args.rows + args.new
            conn.execute(
                "insert into events select g, g % 7, 'event-' || g, "
                "timestamptz '2026-01-01 00:00+00' + g * interval '1 second' "
                f"from generate_series({args.rows + 1}, {top}) g"
            )
            conn.execute("checkpoint")
        results["floor_copy_seconds"] = round(copy_floor(src, args.rows - args.reread), 2)
        seconds, report = run("appended", args.reread)
        finalize = report.sink.get("finalize") or {}
        with psycopg.connect(dst) as conn:
            count, distinct = conn.execute(
                "select count(*), count(distinct id) from raw.events"
            ).fetchone() or (0, 0)
        if (count, distinct) != (top, top) or finalize.get("rows_inserted") != args.new:
            sys.exit(f"wrong result: {count} rows ({distinct} distinct) for {top}; finalize {finalize}")
        results["append_run"] = {
            "seconds": round(seconds, 2),
            "rows_read": report.rows,
            "finalize": finalize,
            "phases": {p.name: round(p.seconds, 2) for p in report.phases},
        }
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            for name in names:
                conn.execute(f'drop database if exists "{name}" with (force)')
    appended = results["append_run"]
    print(f"\ntarget {args.rows:,} rows; batch {args.new:,} new + {args.reread:,} re-read; {origin}")
    print(f"{'run':<38}{'seconds':>10}  detail")
    print(f"{'floor: binary COPY of the batch out':<38}{results['floor_copy_seconds']:>10.2f}")
    phases = " ".join(f"{k} {v}" for k, v in appended["phases"].items() if v >= 0.05)
    fin = appended["finalize"]
    detail = f"{phases}; {fin.get('rows_inserted'):,} inserted, {fin.get('rows_already_loaded'):,} skipped"
    print(f"{'keyed append (unique_key, not exists)':<38}{appended['seconds']:>10.2f}  {detail}")
    out = ROOT / "benchmarks" / "results" / "append_keys.json"
    out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
