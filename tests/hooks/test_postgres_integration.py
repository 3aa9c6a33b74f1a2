"""PostgreSQL source and sink against the real server: every strategy and incremental mode."""

from __future__ import annotations

import threading
import time

import pytest

from airflow_provider_dpone.contracts.errors import DuplicateKeyError
from airflow_provider_dpone.contracts.manifest import parse_manifest
from airflow_provider_dpone.operators.wiring import assemble
from airflow_provider_dpone.runtime.engine import run_load
from tests.helpers import run_first_load as run

pytestmark = pytest.mark.integration

ORDERS = """
create table orders (id bigint primary key, amount numeric(12,2) not null, note text,
                     updated_at timestamptz not null default now());
insert into orders select g, g * 1.5, 'n' || g, now() - interval '1 hour' + g * interval '1 second'
from generate_series(1, 2000) g;
"""


def manifest(load: dict, state: dict | None = None):
    return parse_manifest(
        {
            "pipeline": "t",
            "state": state or {"backend": "table", "conn_id": "dst"},
            "defaults": {
                "source": {"connector": "postgres", "conn_id": "src"},
                "sink": {"connector": "postgres", "conn_id": "dst"},
            },
            "loads": [{"name": "l", **load}],
        }
    )


def checksum(pg, which: str, table: str) -> tuple:
    return pg.query(which, f"select count(*), coalesce(sum(hashtext(t::text)), 0) from {table} t")[0]


def test_full_refresh_swaps_then_keeps_target_shape(clean_pg) -> None:
    pg = clean_pg
    pg.execute("src", ORDERS)
    # the second run drops a quarter of the rows: allowed explicitly (the default limit is 5%)
    m = manifest(
        {
            "source": {"table": "orders"},
            "sink": {"table": "raw.orders"},
            "reconciliation": {"max_delete_fraction": 0.3},
        }
    )
    r1 = run(m)
    assert r1.sink["finalize"]["method"] == "swap" and r1.fast_path == "postgres_binary"
    assert checksum(pg, "dst", "raw.orders") == checksum(pg, "src", "orders")
    cols = pg.query(
        "dst",
        "select column_name, data_type, is_nullable from information_schema.columns "
        "where table_schema='raw' and table_name='orders' order by ordinal_position",
    )
    assert cols == [
        ("id", "bigint", "NO"),
        ("amount", "numeric", "NO"),
        ("note", "text", "YES"),
        ("updated_at", "timestamp with time zone", "NO"),
    ]
    assert pg.query("dst", "select conname from pg_constraint where conrelid = 'raw.orders'::regclass") == [
        ("orders_pkey",)
    ]
    pg.execute("src", "delete from orders where id > 1500; update orders set note = 'x' where id < 10")
    r2 = run(m, "r2")
    assert r2.sink["finalize"]["method"] == "swap"
    assert checksum(pg, "dst", "raw.orders") == checksum(pg, "src", "orders")
    # A dependent view forces truncate + insert; the view keeps working.
    pg.execute("dst", "create view raw.v as select id from raw.orders")
    r3 = run(m, "r3")
    assert r3.sink["finalize"]["method"] == "truncate_insert"
    assert pg.query("dst", "select count(*) from raw.v") == [(1500,)]
    assert pg.query("dst", "select count(*) from pg_tables where schemaname = 'dpone_staging'") == [(0,)]


def test_full_refresh_is_atomic_for_concurrent_readers(clean_pg) -> None:
    pg = clean_pg
    pg.execute("src", ORDERS)
    m = manifest({"source": {"table": "orders"}, "sink": {"table": "raw.orders"}})
    run(m)
    seen: list[int] = []
    stop = threading.Event()

    def reader() -> None:
        with pg.connect("dst") as conn:
            while not stop.is_set():
                seen.append(conn.execute("select count(*) from raw.orders").fetchone()[0])

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(4):
            run(m, f"again{i}")
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join()
    assert seen and set(seen) == {2000}


def test_cursor_incremental_merge_with_lookback(clean_pg) -> None:
    pg = clean_pg
    pg.execute("src", ORDERS)
    m = manifest(
        {
            "source": {
                "table": "orders",
                "incremental": {"mode": "cursor", "cursor": "updated_at", "lookback": "1s"},
            },
            "sink": {"table": "raw.orders", "strategy": "incremental_merge", "unique_key": ["id"]},
        }
    )
    r1 = run(m)
    assert r1.rows == 2000 and r1.state_committed == "with_data"
    # The target was created by this run: a plain insert, and pages keep room for HOT updates.
    assert r1.sink["finalize"]["method"] == "insert" and r1.sink["finalize"]["rows_inserted"] == 2000
    assert pg.query("dst", "select reloptions from pg_class where oid = 'raw.orders'::regclass") == [
        (["fillfactor=90"],)
    ]
    pg.execute("src", "update orders set note = 'changed', updated_at = now() where id % 100 = 0")
    pg.execute("src", "insert into orders values (5000, 1, 'new', now())")
    r2 = run(m, "r2")
    # 20 changed + 1 new + the rows within the 1 s lookback below the old watermark
    assert 21 <= r2.rows <= 23, r2.source["window"]
    assert r2.sink["finalize"]["rows_updated"] == r2.rows - 1 and r2.sink["finalize"]["rows_inserted"] == 1
    assert checksum(pg, "dst", "raw.orders") == checksum(pg, "src", "orders")
    assert r2.state_before["value"] < r2.state_after["value"]
    r3 = run(m, "r3")  # nothing new: only the lookback window is re-read, merged idempotently
    assert r3.rows <= 21  # the rows stamped within 1 s of the watermark, not the table
    # Every re-read row matched the target's primary key: the insert pass is skipped.
    assert r3.sink["finalize"]["method"] == "update"
    assert r3.sink["finalize"]["rows_updated"] == r3.rows and r3.sink["finalize"]["rows_inserted"] == 0
    assert checksum(pg, "dst", "raw.orders") == checksum(pg, "src", "orders")


def test_merge_into_target_without_unique_index_always_runs_the_insert_pass(clean_pg) -> None:
    """Without a unique index on the keys an all-matched UPDATE proves nothing: insert the rest."""
    pg = clean_pg
    pg.execute("src", "create table kv (k int primary key, v text); insert into kv values (1,'a'),(2,'b')")
    # The user's own target: no key constraint, and key 1 is there twice.
    pg.execute("dst", "create schema raw; create table raw.kv (k int, v text)")
    pg.execute("dst", "insert into raw.kv values (1, 'old'), (1, 'old')")
    m = manifest(
        {
            "source": {"table": "kv"},
            "sink": {"table": "raw.kv", "strategy": "incremental_merge", "unique_key": ["k"]},
        }
    )
    r = run(m)
    # Two target rows matched key 1, so the update count equals the staged count (2) even though
    # key 2 matched nothing; the insert pass must still run and add it.
    assert r.sink["finalize"]["method"] == "update_insert"
    assert r.sink["finalize"]["rows_updated"] == 2 and r.sink["finalize"]["rows_inserted"] == 1
    assert pg.query("dst", "select k, v from raw.kv order by k, v") == [(1, "a"), (1, "a"), (2, "b")]


def test_cursor_upper_bound_fixed_at_extract_start(clean_pg) -> None:
    """A row committed while the extract streams is not in this run, and not lost."""
    pg = clean_pg
    pg.execute("src", ORDERS)
    m = manifest(
        {
            "source": {"table": "orders", "incremental": {"mode": "cursor", "cursor": "id"}},
            "sink": {"table": "raw.orders", "strategy": "incremental_append"},
        }
    )
    load = m.loads[0]
    parts = assemble(load, m.state)
    extract = parts.source.extract(load.source, None, accepted_formats=parts.sink.accepted_formats)
    pg.execute("src", "insert into orders values (9000, 1, 'late', now())")  # commits mid-extract
    from airflow_provider_dpone.runtime.protocols import LoadContext

    ctx = LoadContext("t", load, "r1")
    staged = parts.sink.stage(ctx, extract)
    parts.sink.finalize(ctx, staged, [])
    parts.sink.cleanup(ctx, staged, True)
    parts.state.commit("t", "l", extract.state_candidate, "r1")
    assert extract.state_candidate.value == "2000"
    assert pg.query("dst", "select count(*), max(id) from raw.orders") == [(2000, 2000)]
    r2 = run(m, "r2")
    assert r2.rows == 1
    assert pg.query("dst", "select count(*), max(id) from raw.orders") == [(2001, 9000)]


def test_xmin_incremental_append(clean_pg) -> None:
    pg = clean_pg
    pg.execute("src", ORDERS)
    m = manifest(
        {
            "source": {"table": "orders", "incremental": {"mode": "xmin"}},
            "sink": {"table": "raw.orders", "strategy": "incremental_merge", "unique_key": ["id"]},
        },
        state={"backend": "table", "conn_id": "src", "table": "meta.state"},
    )
    r1 = run(m)
    assert r1.rows == 2000 and r1.state_after["kind"] == "xmin" and r1.state_committed == "after_data"
    pg.execute("src", "update orders set note = 'x' where id <= 5")
    r2 = run(m, "r2")
    # Any transaction open elsewhere on the server holds the snapshot xmin back, so xmin mode
    # may re-read more than the 5 changed rows (never fewer); check the filter exactly.
    low = r1.state_after["xmin"] % (1 << 32)
    expected = pg.query("src", "select count(*) from orders where xmin::text::bigint >= %s", (low,))[0][0]
    assert r2.rows == expected >= 5
    assert checksum(pg, "dst", "raw.orders") == checksum(pg, "src", "orders")
    assert pg.query("src", "select state->>'kind' from meta.state where pipeline='t' and load='l'") == [
        ("xmin",)
    ]


def test_append_and_query_source(clean_pg) -> None:
    pg = clean_pg
    pg.execute("src", ORDERS)
    m = manifest(
        {
            "source": {
                "query": "select id, note, updated_at from orders where id <= 10",
                "incremental": {"mode": "cursor", "cursor": "id"},
            },
            "sink": {"table": "raw.notes", "strategy": "incremental_append"},
        }
    )
    assert run(m).rows == 10
    pg.execute("src", "delete from orders where id = 1; insert into orders values (0, 1, 'zero', now())")
    assert run(m, "r2").rows == 0  # cursor id did not move past 10
    assert pg.query("dst", "select count(*) from raw.notes") == [(10,)]


def test_merge_rejects_duplicate_keys_by_default_and_keep_last(clean_pg) -> None:
    pg = clean_pg
    pg.execute("src", "create table ev (k int, v text); insert into ev values (1,'a'),(1,'b'),(2,'c')")
    load = {
        "source": {"query": "select k, v from ev order by v"},
        "sink": {"table": "raw.ev", "strategy": "incremental_merge", "unique_key": ["k"]},
    }
    with pytest.raises(DuplicateKeyError, match=r"\{'k': 1\} x2"):
        run(manifest(load))
    assert pg.query("dst", "select to_regclass('raw.ev')") == [(None,)]
    load["sink"]["on_duplicate_keys"] = "keep_last"
    run(manifest(load), "r2")
    assert pg.query("dst", "select k, v from raw.ev order by k") == [(1, "b"), (2, "c")]


def test_target_missing_source_column_gets_it_added(clean_pg) -> None:
    """A target the user created without some source columns: the planner adds them (nullable)."""
    pg = clean_pg
    pg.execute("src", ORDERS)
    pg.execute("dst", "create schema raw; create table raw.orders (id bigint primary key, amount numeric)")
    pg.execute("dst", "insert into raw.orders values (1, 1)")
    m = manifest(
        {
            "source": {"table": "orders"},
            "sink": {"table": "raw.orders", "strategy": "incremental_merge", "unique_key": ["id"]},
        }
    )
    r = run(m)
    assert sorted(c["column"] for c in r.schema["changes"]) == ["note", "updated_at"]
    assert pg.query("dst", "select count(*), count(note) from raw.orders") == [(2000, 2000)]


AWKWARD = r"""
create type mood as enum ('happy', 'sad');
create table awkward (
  id int primary key,
  n numeric(38,10), f double precision, r real,
  t text not null, vc varchar(10), b bytea, u uuid, j json, jb jsonb,
  arr int[], tarr text[], iv interval, ts timestamptz, d date, m mood, marr mood[]
);
insert into awkward values
 (1, 1234567890123456789012345678.0123456789, 'NaN', 'Infinity', e'tab\there\nnew line \\ back', 'x',
  '\x00ff'::bytea, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"a": [1, 2]}', '{"b": "ü"}',
  '{1,NULL,3}', '{"a,b","c\"d"}', '1 year 2 mons 3 days 04:05:06', '2026-03-29 01:30:00+03', '2026-01-01',
  'happy', '{happy,sad}'),
 (2, 'NaN', '-Infinity', '-Infinity', '', NULL, NULL, NULL, NULL, NULL,
  '{}', NULL, NULL, NULL, NULL, NULL, NULL),
 (3, NULL, NULL, NULL, 'üñíçødé 日本語 🎉', '', '\x'::bytea, NULL, 'null', '[]',
  NULL, '{""}', '-1 day', 'infinity', '-infinity', 'sad', '{}');
"""


@pytest.mark.parametrize("path", ["fast_path", "row_path"])
def test_awkward_types_round_trip(clean_pg, path: str) -> None:
    pg = clean_pg
    pg.execute("src", AWKWARD)
    cols = "id, n::text, f::text, r::text, t, vc, b, u, j::text, jb, arr, tarr, iv::text, ts::text, d::text, m::text, marr::text[]"
    if path == "row_path":
        # Known row-path limits (docs/postgres.md): Python datetimes cannot hold +-infinity and
        # psycopg decodes intervals to timedelta (a month becomes 30 days).
        pg.execute("src", "update awkward set ts = null, d = null where id = 3")
        pg.execute("src", "update awkward set iv = '3 days 04:05:06' where id = 1")
    m = manifest({"source": {"table": "awkward"}, "sink": {"table": "raw.awkward"}})
    load = m.loads[0]
    parts = assemble(load, m.state)
    if path == "row_path":  # a sink that accepts no native export gets decoded row batches
        parts.sink.accepted_formats = ()
    report = run_load("t", load, parts, "r1")
    assert report.fast_path == ("postgres_text" if path == "fast_path" else "streaming_batches")
    src = pg.query("src", f"select {cols} from awkward order by id")
    dst = pg.query("dst", f"select {cols} from raw.awkward order by id")
    assert dst == src
    assert report.source["window"]["source_rows"] == len(src)  # counted once the stream drained
    assert pg.query(
        "dst", "select t = '' , vc is null, vc = '' from raw.awkward where id in (2, 3) order by id"
    ) == [(True, True, None), (False, False, True)]
    types = dict(
        pg.query(
            "dst",
            "select attname, format_type(atttypid, atttypmod) from pg_attribute "
            "where attrelid = 'raw.awkward'::regclass and attnum > 0",
        )
    )
    assert types["n"] == "numeric(38,10)" and types["m"] == "text" and types["marr"] == "text[]"
    assert types["jb"] == "jsonb" and types["vc"] == "character varying(10)"


def test_binary_fast_path_without_user_type_arrays(clean_pg) -> None:
    pg = clean_pg
    pg.execute("src", AWKWARD)
    pg.execute("src", "alter table awkward drop column marr")
    m = manifest({"source": {"table": "awkward"}, "sink": {"table": "raw.awkward"}})
    assert run(m).fast_path == "postgres_binary"
    assert checksum(pg, "dst", "raw.awkward") == checksum(pg, "src", "awkward")


def test_a_session_connection_is_reused_closed_on_error_and_released(clean_pg) -> None:
    from airflow_provider_dpone.hooks.postgres import DponePostgresHook

    hook = DponePostgresHook("dst")
    with hook.session() as first:
        first.execute("create table kept (id int)")
    with hook.session() as second:
        assert second is first  # kept open between units of work
        second.read_only = True
        assert second.execute("select count(*) from kept").fetchone() == (0,)  # committed
    with hook.session() as same:
        assert same is first and same.read_only is None  # a unit's settings do not leak
        same.execute("insert into kept values (0)")
        same.execute("delete from kept")
    with pytest.raises(RuntimeError), hook.session() as failed:
        failed.execute("insert into kept values (1)")
        raise RuntimeError("boom")
    assert failed.closed  # never reused in an unknown state
    with hook.session() as third:
        assert third is not failed
        assert third.execute("select count(*) from kept").fetchone() == (0,)  # rolled back
    hook.release()
    assert third.closed


def test_a_connection_idle_too_long_is_replaced(clean_pg, monkeypatch) -> None:
    from airflow_provider_dpone.hooks import postgres_session as postgres
    from airflow_provider_dpone.hooks.postgres import DponePostgresHook

    hook = DponePostgresHook("dst")
    with hook.session() as first:
        pid = first.info.backend_pid
    clean_pg.execute("dst", "select pg_terminate_backend(%s)", (pid,))  # e.g. a server idle timeout
    monkeypatch.setattr(postgres, "IDLE_REUSE_SECONDS", 0.0)
    with hook.session() as fresh:  # not the cut one: this unit works
        assert fresh is not first and fresh.execute("select 1").fetchone() == (1,)
    hook.release()


def test_a_load_opens_few_connections_and_keeps_none(clean_pg, monkeypatch) -> None:
    from airflow_provider_dpone.hooks.postgres import DponePostgresHook

    clean_pg.execute("src", ORDERS)
    opened: list = []
    connect = DponePostgresHook.connect

    def counting(self):
        conn = connect(self)
        opened.append(conn)
        return conn

    monkeypatch.setattr(DponePostgresHook, "connect", counting)
    import psycopg2

    reader_connect = psycopg2.connect

    def counting_reader(*args, **kwargs):
        conn = reader_connect(*args, **kwargs)
        opened.append(conn)
        return conn

    monkeypatch.setattr(psycopg2, "connect", counting_reader)
    m = manifest(
        {
            "source": {"table": "orders", "incremental": {"mode": "cursor", "cursor": "updated_at"}},
            "sink": {"table": "raw.orders", "strategy": "incremental_merge", "unique_key": ["id"]},
        }
    )
    load = m.loads[0]
    parts = assemble(load, m.state)
    run_load(m.pipeline, load, parts, "r1")
    clean_pg.execute("src", "update orders set amount = amount + 1, updated_at = now() where id % 100 = 0")
    opened.clear()
    assert run_load(m.pipeline, load, parts, "r2").rows == 20
    # source snapshot and its COPY reader, sink and state sessions: not one connection per step
    assert len(opened) <= 4, len(opened)
    assert all(conn.closed for conn in opened)  # nothing left open after the load
