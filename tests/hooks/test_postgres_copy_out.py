"""The PostgreSQL source's COPY reader (psycopg2 in the extract's snapshot) against the real server."""

from __future__ import annotations

import sys
import threading
import time

import pytest

from airflow_provider_dpone.contracts.errors import TransientError
from airflow_provider_dpone.hooks import postgres_copy_out
from airflow_provider_dpone.operators.wiring import assemble
from airflow_provider_dpone.runtime.engine import run_load
from airflow_provider_dpone.runtime.protocols import LoadContext
from tests.hooks.test_postgres_integration import ORDERS, checksum, manifest

pytestmark = pytest.mark.integration

FULL = {"source": {"table": "orders"}, "sink": {"table": "raw.orders"}}


def stage_with_a_late_row(pg, load_spec: dict):
    """Extract, commit a row on the source, then stream: what the sink staged, and the extract."""
    m = manifest(load_spec)
    load = m.loads[0]
    parts = assemble(load, m.state)
    extract = parts.source.extract(load.source, None, accepted_formats=parts.sink.accepted_formats)
    pg.execute("src", "insert into orders values (9000, 1, 'late', now() - interval '2 hours')")
    ctx = LoadContext("t", load, "r1")
    staged = parts.sink.stage(ctx, extract)
    parts.sink.cleanup(ctx, staged, True)
    return staged, extract


def test_the_reader_sees_exactly_the_extract_snapshot(clean_pg) -> None:
    """A row committed after the extract started is not read, although no window excludes it."""
    clean_pg.execute("src", ORDERS)
    staged, extract = stage_with_a_late_row(clean_pg, FULL)
    assert extract.details["copy_reader"] == "psycopg2"
    assert staged.rows == extract.stats.source_rows == 2000
    assert extract.report_details()["source_rows"] == 2000 and "source_rows" not in extract.details


def test_a_cursor_window_reads_no_row_committed_after_its_snapshot(clean_pg) -> None:
    """The late row's cursor value lies inside the window: only the shared snapshot keeps it
    out of this run (the next run's lookback is what picks such rows up)."""
    clean_pg.execute("src", ORDERS)
    spec = {
        "source": {"table": "orders", "incremental": {"mode": "cursor", "cursor": "updated_at"}},
        "sink": {"table": "raw.orders", "strategy": "incremental_append"},
    }
    staged, extract = stage_with_a_late_row(clean_pg, spec)
    assert extract.details["copy_reader"] == "psycopg2" and staged.rows == 2000


def test_without_psycopg2_the_stream_is_read_by_psycopg(clean_pg, monkeypatch) -> None:
    clean_pg.execute("src", ORDERS)
    monkeypatch.setitem(sys.modules, "psycopg2", None)  # import psycopg2 raises ImportError
    staged, extract = stage_with_a_late_row(clean_pg, FULL)
    assert extract.details["copy_reader"] == "psycopg" and staged.rows == 2000
    assert extract.stats.source_rows == 2000


def test_a_server_refusing_the_snapshot_export_falls_back_to_psycopg(clean_pg, monkeypatch) -> None:
    clean_pg.execute("src", ORDERS)
    monkeypatch.setattr(postgres_copy_out, "_EXPORT", "select pg_export_snapshot_that_is_missing()")
    m = manifest(
        {
            "source": {"table": "orders", "incremental": {"mode": "cursor", "cursor": "updated_at"}},
            "sink": {"table": "raw.orders", "strategy": "incremental_merge", "unique_key": ["id"]},
        }
    )
    load = m.loads[0]
    report = run_load(m.pipeline, load, assemble(load, m.state), "r1")
    assert report.status == "success" and report.rows == 2000
    assert checksum(clean_pg, "dst", "raw.orders") == checksum(clean_pg, "src", "orders")


def test_a_snapshot_the_reader_cannot_import_falls_back_to_psycopg(clean_pg, monkeypatch) -> None:
    """E.g. a proxy that sends the reader to another server, where the snapshot is unknown."""
    clean_pg.execute("src", ORDERS)
    export = postgres_copy_out.export_snapshot

    def unknown_snapshot(conn):
        export(conn)  # the extract's transaction starts as usual
        return "00000003-0000001B-1"

    monkeypatch.setattr("airflow_provider_dpone.hooks.postgres_source.export_snapshot", unknown_snapshot)
    staged, extract = stage_with_a_late_row(clean_pg, FULL)
    assert extract.details["copy_reader"] == "psycopg" and staged.rows == 2000
    assert extract.stats.source_rows == 2000


def copying_backends(pg) -> list:
    return pg.query(
        "src",
        "select pid from pg_stat_activity where datname = current_database() "
        "and query ilike 'copy (select%' and state <> 'idle'",
    )


def wide_stream(pg):
    """The COPY chunks of a 100 MB table's full extract, one chunk read."""
    pg.execute(
        "src",
        "create table wide as select g as id, repeat('x', 500) as pad from generate_series(1, 200000) g",
    )
    m = manifest({"source": {"table": "wide"}, "sink": {"table": "raw.wide"}})
    load = m.loads[0]
    parts = assemble(load, m.state)
    extract = parts.source.extract(load.source, None, accepted_formats=parts.sink.accepted_formats)
    chunks = extract.artifact.chunks
    assert len(next(chunks)) > 0
    assert extract.details["copy_reader"] == "psycopg2"
    return chunks


def test_closing_the_stream_early_stops_the_reader_and_ends_its_query(clean_pg) -> None:
    chunks = wide_stream(clean_pg)  # most of the 100 MB are still waiting on the server
    assert copying_backends(clean_pg)
    chunks.close()
    assert not [t for t in threading.enumerate() if t.name == "dpone-pushed"]
    deadline = time.monotonic() + 5
    while copying_backends(clean_pg) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not copying_backends(clean_pg)


def test_a_reader_cut_off_mid_stream_fails_the_try_as_transient(clean_pg) -> None:
    chunks = wide_stream(clean_pg)
    [(pid,)] = copying_backends(clean_pg)
    clean_pg.execute("src", "select pg_terminate_backend(%s)", (pid,))  # e.g. a failover
    with pytest.raises(TransientError, match="source COPY broke off"):
        for _ in chunks:
            pass
    chunks.close()


def test_the_reader_connects_with_the_extract_connections_settings(clean_pg) -> None:
    """A session setting given in the connection's options (here TimeZone) reaches the reader,
    so text COPY writes timestamps the same way either reader would."""
    import psycopg

    with psycopg.connect(clean_pg.src, options="-c TimeZone=Asia/Kathmandu") as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        snapshot = postgres_copy_out.export_snapshot(conn)
        reader = postgres_copy_out.snapshot_reader(conn, snapshot, str)
        try:
            cur = reader.cursor()
            cur.execute("show timezone")
            assert cur.fetchone() == ("Asia/Kathmandu",)
        finally:
            reader.close()
