"""An ``incremental_append`` with ``sink.unique_key`` skips the keys its target holds, so the rows
a lookback (or xmin's overlap) re-reads are never added twice; on PostgreSQL and ClickHouse, into
a target with no key of its own (a query source gives it none)."""

from __future__ import annotations

import pytest

from airflow_provider_dpone.contracts.errors import DuplicateKeyError
from airflow_provider_dpone.contracts.manifest import parse_manifest
from tests.helpers import run_first_load as run

pytestmark = pytest.mark.integration

EVENTS = """
create table events (id bigint primary key, note text not null, updated_at timestamptz not null);
insert into events select g, 'n' || g, timestamptz '2026-03-01 00:00+00' + g * interval '1 minute'
from generate_series(1, 500) g;
"""
# a query: the target the sink creates has no primary key, so only unique_key can skip re-reads
QUERY = "select id, note, updated_at from events"
CURSOR = {"mode": "cursor", "cursor": "updated_at", "lookback": "1h"}


def manifest(sink: dict, source: dict):
    return parse_manifest(
        {
            "pipeline": "ak",
            "state": {"backend": "table", "conn_id": "dst"},
            "loads": [
                {
                    "name": "events",
                    "source": {"connector": "postgres", "conn_id": "src", **source},
                    "sink": {"table": "raw.events", "strategy": "incremental_append", **sink},
                }
            ],
        }
    )


def _grow(pg, first: int, last: int) -> None:
    pg.execute(
        "src",
        f"insert into events select g, 'n' || g, timestamptz '2026-03-01 00:00+00' + g * interval '1 minute' "
        f"from generate_series({first}, {last}) g",
    )


def test_postgres_append_by_unique_key_never_loads_a_reread_row_twice(clean_pg) -> None:
    pg = clean_pg
    pg.execute("src", EVENTS)
    # a target of the user's with no key or index: only unique_key can skip the re-read rows
    pg.execute(
        "dst", "create schema raw; create table raw.events (id bigint, note text, updated_at timestamptz)"
    )
    m = manifest(
        {"connector": "postgres", "conn_id": "dst", "unique_key": ["id"]},
        {"query": QUERY, "incremental": CURSOR},
    )
    first = run(m)
    assert first.status == "success" and first.rows == 500
    _grow(pg, 501, 530)
    second = run(m, "r2")
    fin = second.sink["finalize"]
    assert second.rows == 90  # the 60 rows of the hour before the watermark, and the 30 new ones
    assert (fin["method"], fin["rows_inserted"], fin["rows_already_loaded"]) == ("insert_new_keys", 30, 60)
    assert pg.query("dst", "select count(*), count(distinct id), max(id) from raw.events") == [
        (530, 530, 530)
    ]
    assert "60 skipped: key already in the target" in second.to_table()
    third = run(m, "r3")  # nothing new: the lookback re-reads the last hour, all of it skipped
    assert (third.sink["finalize"]["rows_inserted"], third.sink["finalize"]["rows_already_loaded"]) == (0, 60)
    assert pg.query("dst", "select count(*) from raw.events") == [(530,)]


def test_postgres_keyed_append_refuses_a_batch_with_a_key_twice(clean_pg) -> None:
    pg = clean_pg
    pg.execute("src", EVENTS)
    m = manifest(
        {"connector": "postgres", "conn_id": "dst", "unique_key": ["id"]},
        {"query": QUERY + " union all select id, 'again', updated_at from events where id = 7"},
    )
    with pytest.raises(DuplicateKeyError, match="occur more than once in this batch"):
        run(m)
    assert pg.query("dst", "select count(*) from pg_tables where tablename = 'events'") == [(0,)]


def test_postgres_xmin_append_with_a_key_skips_the_overlap(clean_pg) -> None:
    pg = clean_pg
    pg.execute("src", EVENTS)
    m = manifest(
        {"connector": "postgres", "conn_id": "dst", "unique_key": ["id"]},
        {"table": "events", "incremental": {"mode": "xmin"}},
    )
    run(m)
    primary = (
        "select a.attname from pg_index i join pg_attribute a on a.attrelid = i.indrelid "
        "and a.attnum = any(i.indkey) where i.indrelid = 'raw.events'::regclass and i.indisprimary"
    )
    assert pg.query("dst", primary) == [("id",)]  # the target dpone makes is keyed by unique_key
    # A transaction open across the next run's snapshot holds its xmin back, so the run after
    # re-reads the rows committed meanwhile: xmin's overlap, skipped by the key.
    with pg.connect("src") as open_txn:
        open_txn.execute("begin")
        open_txn.execute("select txid_current()")  # an xid, held until this block ends
        _grow(pg, 501, 510)
        second = run(m, "r2")
    # (a transaction open elsewhere on the server can only widen what a run re-reads)
    assert second.rows >= 10 and second.sink["finalize"]["rows_inserted"] == 10
    third = run(m, "r3")
    assert third.rows >= 10, "the open transaction did not hold the snapshot's xmin back"
    fin = third.sink["finalize"]
    assert (fin["rows_inserted"], fin["rows_already_loaded"]) == (0, third.rows)
    assert pg.query("dst", "select count(*), count(distinct id) from raw.events") == [(510, 510)]


def test_clickhouse_append_by_unique_key_never_loads_a_reread_row_twice(clean_pg, clean_ch) -> None:
    pg, ch = clean_pg, clean_ch
    pg.execute("src", EVENTS)
    m = manifest(
        {"connector": "clickhouse", "conn_id": "ch", "unique_key": ["id"]},
        {"query": QUERY, "incremental": CURSOR},
    )
    assert run(m).rows == 500
    _grow(pg, 501, 530)
    second = run(m, "r2")
    fin = second.sink["finalize"]
    assert second.rows == 90
    assert (fin["method"], fin["rows_inserted"], fin["rows_already_loaded"]) == ("attach_new_keys", 30, 60)
    assert ch.query("select count(), uniqExact(id), max(id) from raw.events") == [(530, 530, 530)]
    third = run(m, "r3")
    assert (third.sink["finalize"]["rows_inserted"], third.sink["finalize"]["rows_already_loaded"]) == (0, 60)
    assert ch.query("select count() from raw.events") == [(530,)]


def test_a_keyed_append_that_skips_rows_it_did_not_re_read_says_so(clean_pg) -> None:
    """No lookback, yet a row with a key the target holds: the source repeats keys across runs,
    and the report warns that the row was not appended (never a silent skip)."""
    pg = clean_pg
    pg.execute("src", EVENTS)
    m = manifest(
        {"connector": "postgres", "conn_id": "dst", "unique_key": ["id"]},
        {
            "query": "select id + 0 as id, note, updated_at from events",
            "incremental": {**CURSOR, "lookback": 0},
        },
    )
    run(m)
    pg.execute(
        "src", "update events set id = id + 10000, updated_at = updated_at + interval '1 day' where id = 3"
    )
    pg.execute("src", "insert into events values (3, 'again', timestamptz '2026-03-05 00:00+00')")
    second = run(m, "r2")
    assert (second.sink["finalize"]["rows_inserted"], second.sink["finalize"]["rows_already_loaded"]) == (
        1,
        1,
    )
    [warning] = second.warnings
    assert warning.startswith(
        "1 staged row(s) were not appended: the target already holds their sink.unique_key"
    )
    assert "warning: 1 staged row(s) were not appended" in second.to_table()
