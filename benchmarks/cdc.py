"""Benchmark: PostgreSQL CDC (logical decoding into ``cdc_apply``) against a cursor incremental
merge and a full reload of the same table, after the same 1% change, in one run.

    .venv/bin/python benchmarks/cdc.py --rows 10000000 [--changed 0.01]

The table is loaded three times (a full refresh, a cursor ``incremental_merge`` on
``updated_at``, and ``cdc``, whose first run reads the slot's snapshot). Then ``--changed`` of
the rows change, spread over the table: four fifths updated (``updated_at`` moves), one fifth
deleted. Each load runs once more, timed, after a CHECKPOINT. Beside them, the floor of reading
the change batch: the server decoding the slot's changes (``pg_logical_slot_peek_binary_changes``,
counted on the server, nothing sent). Each target is compared with the source afterwards (the
cursor merge cannot see deletes: its extra rows are reported). Peak RSS is this process's.
Prints a table and writes JSON to benchmarks/results/cdc.json.
"""

from __future__ import annotations

import argparse
import json
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

EVENTS = """
create table events (id bigint primary key, kind int not null, name text not null,
  amount numeric(12,2) not null, flag boolean not null, updated_at timestamptz not null, note text);
insert into events select g, g % 17, 'event-' || g, (g % 65536) / 100.0, g % 2 = 0,
  timestamptz '2026-01-01 00:00+00' + g * interval '1 second', case when g % 4 = 0 then null else 'n' || g end
from generate_series(1, ROWS) g;
create index events_updated_at on events (updated_at);
analyze events;
"""
LOADS = {
    "full_reload": {"sink": {"table": "raw.events_full"}, "source": {}, "reconciliation": {"max_delete_fraction": 1}},
    "cursor_merge": {
        "sink": {"table": "raw.events_cursor", "strategy": "incremental_merge", "unique_key": ["id"]},
        "source": {"incremental": {"mode": "cursor", "cursor": "updated_at"}},
    },
    "cdc": {
        "sink": {"table": "raw.events_cdc", "strategy": "cdc_apply", "unique_key": ["id"]},
        "source": {"incremental": {"mode": "cdc"}},
    },
}  # fmt: skip


def manifest(name: str) -> Any:
    from airflow_provider_dpone.contracts.manifest import parse_manifest

    spec = LOADS[name]
    load = {
        "name": name,
        "source": {"connector": "postgres", "conn_id": "bench_src", "table": "events", **spec["source"]},
        "sink": {"connector": "postgres", "conn_id": "bench_dst", **spec["sink"]},
        **({"reconciliation": spec["reconciliation"]} if "reconciliation" in spec else {}),
    }
    return parse_manifest(
        {"pipeline": "bench", "state": {"backend": "table", "conn_id": "bench_dst"}, "loads": [load]}
    )


def run(name: str, run_id: str) -> tuple[float, Any]:
    from airflow_provider_dpone.operators.wiring import assemble
    from airflow_provider_dpone.runtime.engine import run_load

    m = manifest(name)
    started = time.perf_counter()
    report = run_load(m.pipeline, m.loads[0], assemble(m.loads[0], m.state, standalone=True), run_id)
    return time.perf_counter() - started, report


def one(dsn: str, sql: str, params: tuple = ()) -> Any:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(sql, params or None).fetchone()
        return row[0] if row else None


def peek_floor(src: str) -> tuple[float, int]:
    """The server decoding the slot's pending changes, counted where they are decoded."""
    slot = one(src, "select slot_name from pg_replication_slots where database = current_database()")
    publication = one(src, "select pubname from pg_publication limit 1")
    started = time.perf_counter()
    count = one(
        src,
        "select count(*) from pg_logical_slot_peek_binary_changes(%s, pg_current_wal_lsn(), null, "
        "'proto_version', '1', 'publication_names', %s)",
        (slot, publication),
    )
    return time.perf_counter() - started, int(count)


def checkpoint(*dsns: str) -> None:
    for dsn in dsns:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("checkpoint")


def main() -> None:
    import os

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--changed", type=float, default=0.01)
    args = parser.parse_args()
    admin, origin = resolve_postgres_uri(ROOT / ".dpone" / "pgdata-bench")
    if one(admin, "show wal_level") != "logical":
        sys.exit("the server needs wal_level = logical: bash scripts/pg_logical.sh")
    suffix = uuid.uuid4().hex[:6]
    src = recreate_database(admin, f"dpone_bench_cdc_src_{suffix}")
    dst = recreate_database(admin, f"dpone_bench_cdc_dst_{suffix}")
    os.environ["AIRFLOW_CONN_BENCH_SRC"] = airflow_conn_uri(src)
    os.environ["AIRFLOW_CONN_BENCH_DST"] = airflow_conn_uri(dst)
    results: dict[str, Any] = {"rows": args.rows, "changed": args.changed, "server": origin}
    try:
        started = time.perf_counter()
        with psycopg.connect(src, autocommit=True) as conn:
            conn.execute(EVENTS.replace("ROWS", str(args.rows)))
        results["build_seconds"] = round(time.perf_counter() - started, 1)
        for name in LOADS:  # the first runs: full, a cursor from nothing, the slot's snapshot
            seconds, report = run(name, "initial")
            results[f"initial_{name}"] = round(seconds, 2)
            print(f"initial {name}: {seconds:.2f} s ({report.rows:,} rows)", flush=True)
        step = round(1 / args.changed)
        with psycopg.connect(src, autocommit=True) as conn:
            conn.execute(
                f"update events set amount = amount + 1, updated_at = now() where id % {step} = 0 and id % {step * 5} <> 0"
            )
            conn.execute(f"delete from events where id % {step * 5} = 0")
        changed = args.rows // step
        results["changed_rows"] = changed
        checkpoint(src, dst)
        floor, messages = peek_floor(src)
        timed: dict[str, Any] = {"decode_floor": {"seconds": round(floor, 2), "messages": messages}}
        for name in ("cdc", "cursor_merge", "full_reload"):
            checkpoint(src, dst)
            seconds, report = run(name, "changed")
            table = LOADS[name]["sink"]["table"]
            target = one(dst, f"select count(*) from {table}")
            source = one(src, "select count(*) from events")
            timed[name] = {
                "seconds": round(seconds, 2),
                "rows_read": report.rows,
                "target_rows": target,
                "source_rows": source,
                "stale_rows": target - source,
                "finalize": report.sink.get("finalize"),
                "phases": {p.name: round(p.seconds, 2) for p in report.phases},
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            }
        results["changed_run"] = timed
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            for (slot,) in conn.execute(
                "select slot_name from pg_replication_slots where slot_name like 'dpone_bench%'"
            ):
                conn.execute("select pg_drop_replication_slot(%s)", (slot,))
        with psycopg.connect(admin, autocommit=True) as conn:
            for db in (f"dpone_bench_cdc_src_{suffix}", f"dpone_bench_cdc_dst_{suffix}"):
                conn.execute(f'drop database if exists "{db}" with (force)')
    print(
        f"\n{args.rows:,} rows, {changed:,} changed ({changed * 4 // 5:,} updated, {changed // 5:,} deleted); {origin}"
    )
    print(f"{'run':<14}{'seconds':>10}{'rows read':>12}{'vs cdc':>9}{'stale rows':>12}  phases (s)")
    cdc_seconds = timed["cdc"]["seconds"]
    print(f"{'decode floor':<14}{floor:>10.2f}{messages:>12,}{floor / cdc_seconds:>8.2f}x{'':>12}")
    for name in ("cdc", "cursor_merge", "full_reload"):
        t = timed[name]
        phases = " ".join(f"{k} {v}" for k, v in t["phases"].items() if v >= 0.05)
        ratio = t["seconds"] / cdc_seconds
        print(
            f"{name:<14}{t['seconds']:>10.2f}{t['rows_read']:>12,}{ratio:>8.2f}x{t['stale_rows']:>12,}  {phases}"
        )
    out = ROOT / "benchmarks" / "results" / "cdc.json"
    out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
