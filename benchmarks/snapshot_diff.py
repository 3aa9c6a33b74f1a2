"""Benchmark: PostgreSQL ``snapshot_diff`` with hard deletes (the mass-delete guard counts the
target's keys missing from the snapshot before anything is deleted), after 1% of the rows
changed and 1% were deleted, beside the floor of reading the same table out (binary COPY to
nowhere) and the guard's count alone, in one run.

    .venv/bin/python benchmarks/snapshot_diff.py --rows 1000000
    .venv/bin/python benchmarks/snapshot_diff.py --rows 100000 --old-guard   # the former count too

Until 2026-11-30 the guard counted with ``count(*) filter (where not exists (...))``, which
PostgreSQL never plans as an anti-join: one scan of the staged key set per target row (184 s at
100,000 rows; hours at a million). It now counts with a scalar subquery planned as a hash anti
join. Prints a table and writes JSON to benchmarks/results/snapshot_diff.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
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

ITEMS = """
create table items (id bigint primary key, name text not null, amount numeric(12,2) not null,
  updated_at timestamptz not null);
insert into items select g, 'item-' || g, (g % 65536) / 100.0,
  timestamptz '2026-01-01 00:00+00' + g * interval '1 second' from generate_series(1, ROWS) g;
analyze items;
"""


def manifest() -> Any:
    from airflow_provider_dpone.contracts.manifest import parse_manifest

    load = {
        "name": "items",
        "source": {"connector": "postgres", "conn_id": "bench_src", "table": "items"},
        "sink": {"connector": "postgres", "conn_id": "bench_dst", "table": "raw.items",
                 "strategy": "snapshot_diff", "unique_key": ["id"]},
        "reconciliation": {"deletes": "hard", "max_delete_fraction": 0.05},
    }  # fmt: skip
    return parse_manifest(
        {"pipeline": "bench", "state": {"backend": "table", "conn_id": "bench_dst"}, "loads": [load]}
    )


def run(run_id: str) -> tuple[float, Any]:
    from airflow_provider_dpone.operators.wiring import assemble
    from airflow_provider_dpone.runtime.engine import run_load

    m = manifest()
    started = time.perf_counter()
    report = run_load(m.pipeline, m.loads[0], assemble(m.loads[0], m.state, standalone=True), run_id)
    return time.perf_counter() - started, report


def copy_out_floor(src: str) -> float:
    """Reading the whole table out as binary COPY, discarded: what any full snapshot pays."""
    started = time.perf_counter()
    with (
        psycopg.connect(src) as conn,
        conn.cursor() as cur,
        cur.copy("copy items to stdout (format binary)") as copy,
    ):
        for _ in copy:
            pass
    return time.perf_counter() - started


# The guard's count before 2026-11-30 (an aggregate FILTER holding NOT EXISTS), for --old-guard.
OLD_GUARD = (
    "select count(*) filter (where not exists (select 1 from pg_temp.keys as s where s.id = t.id)), "
    "count(*) from raw.items as t"
)


def guard_alone(dst: str, old: bool) -> dict[str, float]:
    """The guard's count as it runs now (and, with ``old``, as it ran before), against the
    target and a key set like the snapshot's; both must give the same counts."""
    from airflow_provider_dpone.sql.postgres import POSTGRES

    statements = {
        "guard": POSTGRES.count_missing_keys(
            POSTGRES.table("raw", "items"), POSTGRES.table("pg_temp", "keys"), ["id"]
        )
    }
    if old:
        statements["old_guard"] = OLD_GUARD
    timed: dict[str, float] = {}
    counts = set()
    with psycopg.connect(dst, autocommit=True) as conn:
        conn.execute("create temp table keys as select id from raw.items where id % 100 <> 0; analyze keys")
        for name, statement in statements.items():
            started = time.perf_counter()
            counts.add(conn.execute(statement).fetchone())
            timed[name] = time.perf_counter() - started
    if len(counts) != 1:
        sys.exit(f"the two guard counts differ: {counts}")
    return timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument(
        "--old-guard",
        action="store_true",
        help="also time the guard's former count (quadratic: keep --rows small)",
    )
    args = parser.parse_args()
    admin, origin = resolve_postgres_uri(ROOT / ".dpone" / "pgdata-bench")
    suffix = uuid.uuid4().hex[:6]
    names = (f"dpone_bench_sd_src_{suffix}", f"dpone_bench_sd_dst_{suffix}")
    src, dst = (recreate_database(admin, n) for n in names)
    os.environ["AIRFLOW_CONN_BENCH_SRC"] = airflow_conn_uri(src)
    os.environ["AIRFLOW_CONN_BENCH_DST"] = airflow_conn_uri(dst)
    results: dict[str, Any] = {"rows": args.rows, "server": origin}
    try:
        with psycopg.connect(src, autocommit=True) as conn:
            conn.execute(ITEMS.replace("ROWS", str(args.rows)))
        seconds, report = run("initial")
        results["initial_seconds"] = round(seconds, 2)
        with psycopg.connect(src, autocommit=True) as conn:
            conn.execute("update items set amount = amount + 1, updated_at = now() where id % 100 = 1")
            conn.execute("delete from items where id % 100 = 0")
            conn.execute("checkpoint")
        results["floor_copy_out_seconds"] = round(copy_out_floor(src), 2)
        guards = guard_alone(dst, args.old_guard)
        results["guard_alone_seconds"] = round(guards["guard"], 3)
        if "old_guard" in guards:
            results["old_guard_alone_seconds"] = round(guards["old_guard"], 3)
        seconds, report = run("changed")
        finalize = report.sink.get("finalize") or {}
        target = psycopg.connect(dst, autocommit=True).execute("select count(*) from raw.items").fetchone()
        results["changed_run"] = {
            "seconds": round(seconds, 2),
            "rows_read": report.rows,
            "finalize": finalize,
            "target_rows": target[0] if target else None,
            "phases": {p.name: round(p.seconds, 2) for p in report.phases},
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        }
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            for name in names:
                conn.execute(f'drop database if exists "{name}" with (force)')
    changed = results["changed_run"]
    print(f"\n{args.rows:,} rows; 1% changed, 1% deleted; {origin}")
    print(f"{'run':<34}{'seconds':>10}  detail")
    print(f"{'floor: binary COPY out of the table':<34}{results['floor_copy_out_seconds']:>10.2f}")
    print(f"{'guard count alone (anti join)':<34}{results['guard_alone_seconds']:>10.3f}")
    if "old_guard_alone_seconds" in results:
        print(f"{'former guard count (FILTER)':<34}{results['old_guard_alone_seconds']:>10.3f}")
    phases = " ".join(f"{k} {v}" for k, v in changed["phases"].items() if v >= 0.05)
    print(f"{'snapshot_diff, hard deletes':<34}{changed['seconds']:>10.2f}  {phases}; {changed['finalize']}")
    out = ROOT / "benchmarks" / "results" / "snapshot_diff.json"
    out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
