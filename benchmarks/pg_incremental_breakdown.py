"""Where the time of an incremental PG -> PG merge goes, and whether WAL compression helps.

    .venv/bin/python benchmarks/pg_incremental_breakdown.py --rows 1000000

It builds the ``events`` table of ``pg_to_pg.py``, loads it once with ``incremental_merge``, then
changes 1% of the rows (every 100th id) and, after a VACUUM and a CHECKPOINT as in
``pg_to_pg.py``, times the incremental run in this process:

- every SQL statement dpone sends, and every connection it opens (psycopg calls, wall time);
- the merge UPDATE's statement, run by hand from a copy of the changed rows: its
  ``EXPLAIN (ANALYZE, BUFFERS, WAL)`` (full-page images and WAL bytes), and its time after a CHECKPOINT with ``wal_compression`` off, pglz, lz4 and
  zstd (needs a superuser; a mode the server was built without is reported as unsupported), and
  once more right after the last one, with no CHECKPOINT between (so no full-page images).

Prints a table and writes JSON to benchmarks/results/pg_incremental_breakdown.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import psycopg  # noqa: E402
import psycopg2  # noqa: E402
from pg_to_pg import EVENTS, LOAD, ROOT, checkpoint  # noqa: E402

from airflow_provider_dpone.demo.postgres_server import (  # noqa: E402
    airflow_conn_uri,
    recreate_database,
    resolve_postgres_uri,
)

MERGE = {
    "name": "events_inc",
    "source": {"table": "events", "incremental": {"mode": "cursor", "cursor": "updated_at"}},
    "sink": {"table": "raw.events_inc", "strategy": "incremental_merge", "unique_key": ["id"]},
}
COLUMNS = "kind, name, payload, amount, flag, created_at, updated_at, note"


def run_merge(run_id: str) -> tuple[float, list[tuple[float, str]]]:
    """One incremental run; its seconds and the (seconds, statement) of each psycopg call, and
    of each connection opened (psycopg, and psycopg2 for the source's COPY reader)."""
    from airflow_provider_dpone.contracts.manifest import parse_manifest
    from airflow_provider_dpone.operators.wiring import assemble
    from airflow_provider_dpone.runtime.engine import run_load

    m = parse_manifest(
        {
            "pipeline": "bench",
            "state": {"backend": "table", "conn_id": "bench_dst"},
            "defaults": LOAD,
            "loads": [MERGE],
        }
    )
    parts = assemble(m.loads[0], m.state)
    calls: list[tuple[float, str]] = []
    execute, connect, commit = psycopg.Cursor.execute, psycopg.Connection.connect, psycopg.Connection.commit

    def timed_execute(self, query, *args, **kwargs):
        started = time.perf_counter()
        try:
            return execute(self, query, *args, **kwargs)
        finally:
            text = query.as_string(self.connection) if hasattr(query, "as_string") else str(query)
            calls.append((time.perf_counter() - started, " ".join(text.split())[:70]))

    def timed_connect(cls, *args, **kwargs):
        started = time.perf_counter()
        conn = connect.__func__(cls, *args, **kwargs)
        calls.append((time.perf_counter() - started, "CONNECT"))
        return conn

    def timed_commit(self):
        started = time.perf_counter()
        commit(self)
        calls.append((time.perf_counter() - started, "COMMIT"))

    def timed_reader_connect(*args, **kwargs):
        started = time.perf_counter()
        conn = reader_connect(*args, **kwargs)
        calls.append((time.perf_counter() - started, "CONNECT"))
        return conn

    reader_connect = psycopg2.connect
    psycopg.Cursor.execute, psycopg.Connection.commit = timed_execute, timed_commit
    psycopg.Connection.connect = classmethod(timed_connect)
    psycopg2.connect = timed_reader_connect
    try:
        started = time.perf_counter()
        run_load(m.pipeline, m.loads[0], parts, run_id=run_id)
        return time.perf_counter() - started, calls
    finally:
        psycopg.Cursor.execute, psycopg.Connection.commit = execute, commit
        psycopg.Connection.connect = connect
        psycopg2.connect = reader_connect


MERGE_UPDATE = (
    "update raw.events_inc as t set "
    + ", ".join(f"{c} = s.{c}" for c in COLUMNS.split(", "))
    + " from public.changed s where t.id = s.id"
)


def merge_shaped_updates(dst: str) -> tuple[dict, dict[str, float | str]]:
    """The merge UPDATE's shape (every 100th row from a staged copy, joined on the key) run by
    hand: its ``EXPLAIN (ANALYZE, BUFFERS, WAL)`` after a CHECKPOINT (rolled back); its seconds
    after a CHECKPOINT per ``wal_compression`` mode; and its seconds once more right after the
    last, with no CHECKPOINT between, so without full-page images."""
    modes: dict[str, float | str] = {}
    with psycopg.connect(dst, autocommit=True) as conn:
        conn.execute("drop table if exists public.changed")
        conn.execute(
            "create unlogged table public.changed as select * from raw.events_inc where id % 100 = 0"
        )
        conn.execute("analyze public.changed")
        conn.execute("checkpoint")
        with conn.transaction(force_rollback=True):
            plan = conn.execute(f"explain (analyze, buffers, wal, format json) {MERGE_UPDATE}").fetchone()[0][
                0
            ]
        for mode in ("off", "pglz", "lz4", "zstd"):
            conn.execute("checkpoint")
            try:
                with conn.transaction():
                    conn.execute(f"set local wal_compression = {mode}")
                    started = time.perf_counter()
                    conn.execute(MERGE_UPDATE)
            except psycopg.Error as exc:
                modes[mode] = f"unsupported: {str(exc).splitlines()[0]}"
                continue
            modes[mode] = time.perf_counter() - started
        started = time.perf_counter()
        with conn.transaction():
            conn.execute(MERGE_UPDATE)
        modes["no_checkpoint_before"] = time.perf_counter() - started
        conn.execute("drop table public.changed")
    figures = {
        "execution_ms": plan["Execution Time"],
        "wal_fpi": plan["Plan"]["WAL FPI"],
        "wal_bytes": plan["Plan"]["WAL Bytes"],
    }
    return figures, modes


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    admin, origin = resolve_postgres_uri(ROOT / ".dpone" / "pgdata-bench")
    src = recreate_database(admin, "dpone_bench_src")
    dst = recreate_database(admin, "dpone_bench_dst")
    os.environ["AIRFLOW_CONN_BENCH_SRC"] = airflow_conn_uri(src)
    os.environ["AIRFLOW_CONN_BENCH_DST"] = airflow_conn_uri(dst)
    os.environ.setdefault("AIRFLOW_HOME", str(ROOT / ".airflow"))
    print(f"PostgreSQL: {origin}\n[{args.rows:,} rows] generating events, initial load ...", flush=True)
    with psycopg.connect(src, autocommit=True) as conn:
        conn.execute(EVENTS.replace("ROWS", str(args.rows)))
    run_merge("initial")
    with psycopg.connect(dst, autocommit=True) as conn:
        conn.execute("vacuum analyze raw.events_inc")
    with psycopg.connect(src, autocommit=True) as conn:
        changed = conn.execute(
            "update events set amount = amount + 1, updated_at = now() where id % 100 = 0"
        ).rowcount
    checkpoint(dst)
    print(f"[{args.rows:,} rows] incremental run after {changed:,} changed rows ...", flush=True)
    seconds, calls = run_merge("incremental")
    update = sum(s for s, q in calls if q.startswith('update "raw"."events_inc"'))
    connects = [s for s, q in calls if q == "CONNECT"]
    commits = sum(s for s, q in calls if q == "COMMIT")
    print(f"[{args.rows:,} rows] EXPLAIN of the merge UPDATE, wal_compression modes ...", flush=True)
    plan, modes = merge_shaped_updates(dst)
    result = {
        "rows": args.rows,
        "changed_rows": changed,
        "incremental_seconds": seconds,
        "merge_update_seconds": update,
        "commit_seconds": commits,
        "connections": len(connects),
        "connect_seconds": sum(connects),
        "slowest_calls": sorted(calls, reverse=True)[:10],
        "merge_update_plan": plan,
        "update_seconds_by_wal_compression": modes,
    }
    print(f"\nincremental run {seconds * 1000:.0f} ms for {changed:,} changed rows")
    print(f"{'part':<44} {'ms':>8}")
    print(f"{'merge UPDATE (statement)':<44} {update * 1000:>8.1f}")
    print(f"{'commits (all, incl. the finalize WAL flush)':<44} {commits * 1000:>8.1f}")
    print(f"{f'connections ({len(connects)})':<44} {sum(connects) * 1000:>8.1f}")
    print(f"{'everything else':<44} {(seconds - update - commits - sum(connects)) * 1000:>8.1f}")
    print(
        f"\nmerge UPDATE plan: {plan['execution_ms']:.0f} ms, {plan['wal_fpi']:,} full-page images, "
        f"{plan['wal_bytes'] / 2**20:.0f} MB WAL"
    )
    print(
        "UPDATE after a CHECKPOINT by wal_compression, then without a CHECKPOINT before: "
        + ", ".join(
            f"{k} {v * 1000:.0f} ms" if isinstance(v, float) else f"{k} {v}" for k, v in modes.items()
        )
    )
    out = HERE / "results" / "pg_incremental_breakdown.json"
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
