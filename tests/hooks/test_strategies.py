"""Every keyed and scoped strategy, and reconciliation, against the real PostgreSQL."""

from __future__ import annotations

import pytest

from airflow_provider_dpone.contracts.errors import MassDeleteError, StagingMismatchError
from airflow_provider_dpone.contracts.manifest import parse_manifest
from airflow_provider_dpone.operators.wiring import assemble
from airflow_provider_dpone.runtime.engine import effective_source
from airflow_provider_dpone.runtime.protocols import LoadContext
from tests.helpers import run_first_load as run

pytestmark = pytest.mark.integration

ACCOUNTS = """
create table accounts (id bigint primary key, name text not null, balance numeric(12,2),
                       day date not null, updated_at timestamptz not null);
insert into accounts select g, 'acct' || g, g * 10, date '2026-01-01' + (g % 90),
                            now() - interval '1 day' + g * interval '1 second'
from generate_series(1, 100) g;
"""
COLS = "id, name, balance, day"


def manifest(sink: dict, source: dict | None = None, **load):
    body = {
        "name": "accounts",
        "source": {"connector": "postgres", "conn_id": "src", "table": "accounts", **(source or {})},
        "sink": {"connector": "postgres", "conn_id": "dst", "table": "raw.accounts", **sink},
        **load,
    }
    return parse_manifest(
        {"pipeline": "strat", "state": {"backend": "table", "conn_id": "dst"}, "loads": [body]}
    )


def digest(pg, which: str, table: str, where: str = "true") -> tuple:
    return pg.query(
        which,
        f"select count(*), md5(coalesce(string_agg(row({COLS})::text, '|' order by id), '')) "
        f"from {table} where {where}",
    )[0]


def state(pg) -> list:
    return pg.query("dst", "select state::text from dpone.state where pipeline = 'strat'")


DIFF = {"strategy": "snapshot_diff", "unique_key": ["id"]}


def test_snapshot_diff_converges_updates_inserts_and_deletes(clean_pg) -> None:
    pg = clean_pg
    pg.execute("src", ACCOUNTS)
    m = manifest(DIFF, reconciliation={"deletes": "hard", "max_delete_fraction": 0.1})
    first = run(m, "r1")
    assert first.sink["finalize"]["method"] == "insert"
    pg.execute(
        "src",
        "update accounts set balance = balance + 1 where id in (1, 2, 3); "
        "delete from accounts where id in (4, 5); "
        "insert into accounts values (101, 'new', 1, '2026-02-01', now())",
    )
    result = run(m, "r2").sink["finalize"]
    assert result["method"] == "diff"
    assert (result["rows_updated"], result["rows_inserted"], result["rows_deleted"]) == (3, 1, 2)
    assert result["rows_unchanged"] == 95
    assert digest(pg, "dst", "raw.accounts") == digest(pg, "src", "accounts")
    again = run(m, "r3").sink["finalize"]  # nothing changed: nothing is written
    assert (again["rows_updated"], again["rows_inserted"], again["rows_deleted"]) == (0, 0, 0)


def test_soft_deletes_mark_rows_and_returning_rows_are_revived(clean_pg) -> None:
    pg = clean_pg
    pg.execute("src", ACCOUNTS)
    m = manifest(DIFF, reconciliation={"deletes": "soft", "max_delete_fraction": 0.1})
    run(m, "r1")
    pg.execute(
        "src",
        "create table gone as select * from accounts where id in (7, 8); delete from accounts where id in (7, 8)",
    )
    assert run(m, "r2").sink["finalize"]["rows_deleted"] == 2
    marked = pg.query("dst", "select id from raw.accounts where _dpone_deleted_at is not null order by id")
    assert marked == [(7,), (8,)]
    assert pg.query("dst", "select count(*) from raw.accounts") == [(100,)]
    pg.execute("src", "insert into accounts select * from gone where id = 7")
    run(m, "r3")
    assert pg.query("dst", "select id from raw.accounts where _dpone_deleted_at is not null") == [(8,)]
    live = "_dpone_deleted_at is null"
    assert digest(pg, "dst", "raw.accounts", live) == digest(pg, "src", "accounts")


def test_mass_delete_guard_fails_before_any_change(clean_pg) -> None:
    pg = clean_pg
    pg.execute("src", ACCOUNTS)
    m = manifest(DIFF, reconciliation={"deletes": "hard", "max_delete_fraction": 0.2})
    run(m, "r1")
    before = digest(pg, "dst", "raw.accounts")
    pg.execute("src", "delete from accounts where id > 50; update accounts set name = 'changed' where id = 1")
    with pytest.raises(MassDeleteError, match=r"would delete 50 of 100 rows of raw.accounts \(50.0%\)"):
        run(m, "r2")
    assert digest(pg, "dst", "raw.accounts") == before  # the update of id 1 was rolled back too


def test_incremental_merge_reconciles_through_a_staged_key_set(clean_pg) -> None:
    pg = clean_pg
    pg.execute("src", ACCOUNTS)
    m = manifest(
        {"strategy": "incremental_merge", "unique_key": ["id"]},
        {"incremental": {"mode": "cursor", "cursor": "updated_at"}},
        reconciliation={"deletes": "hard"},
    )
    run(m, "r1")
    pg.execute(
        "src",
        "delete from accounts where id in (10, 11); update accounts set name = 'x', updated_at = now() where id = 12",
    )
    report = run(m, "r2")
    key_set = report.find_phase("key_set")
    assert key_set is not None and key_set.rows == 98
    result = report.sink["finalize"]
    assert (result["rows_updated"], result["rows_deleted"]) == (1, 2)
    assert digest(pg, "dst", "raw.accounts") == digest(pg, "src", "accounts")
    assert pg.query("dst", "select count(*) from pg_tables where schemaname = 'dpone_staging'") == [(0,)]


def test_scd2_keeps_history_and_closes_deleted_keys(clean_pg) -> None:
    pg = clean_pg
    pg.execute("src", ACCOUNTS)
    m = manifest({"strategy": "scd2", "unique_key": ["id"]}, reconciliation={"deletes": "soft"})
    run(m, "r1")
    assert pg.query("dst", "select count(*), count(*) filter (where is_current) from raw.accounts") == [
        (100, 100)
    ]
    pg.execute(
        "src", "update accounts set balance = -1 where id in (1, 2); delete from accounts where id = 3"
    )
    result = run(m, "r2").sink["finalize"]
    assert (result["rows_closed_changed"], result["rows_inserted"], result["rows_closed_deleted"]) == (
        2,
        2,
        1,
    )
    history = pg.query(
        "dst",
        "select id, balance, is_current, valid_to is null from raw.accounts where id in (1, 3) order by id, valid_from",
    )
    assert [(r[0], float(r[1]), r[2], r[3]) for r in history] == [
        (1, 10.0, False, False),
        (1, -1.0, True, True),
        (3, 30.0, False, False),
    ]
    again = run(m, "r3").sink["finalize"]  # a rerun (e.g. after a crash before the state commit)
    assert (again["rows_closed_changed"], again["rows_inserted"], again["rows_closed_deleted"]) == (0, 0, 0)
    one_current = pg.query(
        "dst",
        "select count(*) from (select id from raw.accounts where is_current group by id having count(*) > 1) d",
    )
    assert one_current == [(0,)]
    assert digest(pg, "dst", "raw.accounts", "is_current") == digest(pg, "src", "accounts")


def test_replace_rewrites_only_the_window(clean_pg) -> None:
    pg = clean_pg
    pg.execute("src", ACCOUNTS)
    run(manifest({"strategy": "full_refresh"}), "r0")
    outside = "not (day >= '2026-02-01' and day < '2026-03-01')"
    untouched = digest(pg, "dst", "raw.accounts", outside)
    pg.execute(
        "src",
        "update accounts set balance = 0; delete from accounts where id = 40; "  # 40 is in February
        "insert into accounts values (200, 'feb', 5, '2026-02-10', now())",
    )
    window = {"column": "day", "start": "2026-02-01", "end": "2026-03-01"}
    windowed = manifest({"strategy": "replace", "replace": {"window": window}})
    # dpone plan shows the window the source reads and the exact delete the sink runs.
    load = windowed.loads[0]
    parts = assemble(load, windowed.state)
    extract_plan, schema = parts.source.plan_extract(effective_source(load), None)
    assert extract_plan["params"] == ["2026-02-01", "2026-03-01"]
    statements = parts.sink.plan_load(LoadContext("strat", load, "plan"), schema)["statements"]
    assert 'delete from "raw"."accounts" where "day" >= %s::date and "day" < %s::date' in statements
    result = run(windowed, "r1").sink["finalize"]
    assert result["method"] == "delete_insert"
    feb = "day >= '2026-02-01' and day < '2026-03-01'"
    assert digest(pg, "dst", "raw.accounts", feb) == digest(pg, "src", "accounts", feb)
    assert digest(pg, "dst", "raw.accounts", outside) == untouched  # balances outside stay as they were
    # A source that reads more than the replaced range is refused before the target changes.
    before = digest(pg, "dst", "raw.accounts")
    bad = manifest(
        {"strategy": "replace", "replace": {"where": "day >= '2026-02-01' and day < '2026-03-01'"}},
        {"table": None, "query": "select * from accounts where day >= '2026-01-25'"},
    )
    with pytest.raises(StagingMismatchError, match=r"staged row\(s\) fall outside sink\.replace"):
        run(bad, "r2")
    assert digest(pg, "dst", "raw.accounts") == before


def test_partition_replace_with_a_scoped_delete(clean_pg) -> None:
    pg = clean_pg
    pg.execute("src", ACCOUNTS)
    sink = {"strategy": "partition_replace", "partition_by": ["day"]}
    run(manifest(sink), "r1")
    assert digest(pg, "dst", "raw.accounts") == digest(pg, "src", "accounts")
    other_days = digest(pg, "dst", "raw.accounts", "day <> '2026-01-05'")
    pg.execute(
        "src", "update accounts set balance = 0 where day = '2026-01-05'; delete from accounts where id = 94"
    )
    result = run(
        manifest(sink, {"table": None, "query": "select * from accounts where day = '2026-01-05'"}), "r2"
    ).sink["finalize"]
    assert result["method"] == "scoped_delete_insert"
    assert (result["rows_deleted"], result["rows_inserted"]) == (2, 1)  # ids 4 and 94 -> 4 only
    assert digest(pg, "dst", "raw.accounts", "day <> '2026-01-05'") == other_days
    assert digest(pg, "dst", "raw.accounts", "day = '2026-01-05'") == digest(
        pg, "src", "accounts", "day = '2026-01-05'"
    )


def test_partition_replace_swaps_declarative_partitions(clean_pg) -> None:
    pg = clean_pg
    pg.execute("src", ACCOUNTS)
    pg.execute(
        "dst",
        "create schema raw; create table raw.accounts (id bigint not null, name text not null, "
        "balance numeric(12,2), day date not null, updated_at timestamptz not null, primary key (id, day)) "
        "partition by range (day); "
        "create table raw.accounts_2026_01 partition of raw.accounts for values from ('2026-01-01') to ('2026-02-01'); "
        "create table raw.accounts_2026_02 partition of raw.accounts for values from ('2026-02-01') to ('2026-03-01'); "
        "create table raw.accounts_2026_03 partition of raw.accounts for values from ('2026-03-01') to ('2026-04-01')",
    )
    sink = {"strategy": "partition_replace", "partition_by": ["day"]}
    first = run(manifest(sink), "r1").sink["finalize"]
    assert first["method"] == "partition_swap" and len(first["partitions_replaced"]) == 3
    oids = dict(
        pg.query("dst", "select relname, oid::int from pg_class where relname like 'accounts_2026_%'")
    )
    pg.execute("src", "update accounts set name = 'feb' where day >= '2026-02-01' and day < '2026-03-01'")
    feb = manifest(sink, {"window": {"column": "day", "start": "2026-02-01", "end": "2026-03-01"}})
    result = run(feb, "r2").sink["finalize"]
    assert result["partitions_replaced"] == ["raw.accounts_2026_02"]
    after = dict(
        pg.query("dst", "select relname, oid::int from pg_class where relname like 'accounts_2026_%'")
    )
    assert (
        after["accounts_2026_01"] == oids["accounts_2026_01"]
        and after["accounts_2026_03"] == oids["accounts_2026_03"]
    )
    assert after["accounts_2026_02"] != oids["accounts_2026_02"]
    assert digest(pg, "dst", "raw.accounts") == digest(pg, "src", "accounts")
    bounds = pg.query(
        "dst", "select pg_get_expr(relpartbound, oid) from pg_class where relname = 'accounts_2026_02'"
    )
    assert bounds == [("FOR VALUES FROM ('2026-02-01') TO ('2026-03-01')",)]
    # A row with no partition to go to fails the load and leaves every partition as it was.
    pg.execute("src", "insert into accounts values (300, 'may', 1, '2026-05-02', now())")
    before = digest(pg, "dst", "raw.accounts")
    with pytest.raises(StagingMismatchError, match=r"1 staged row\(s\) fall in no partition"):
        run(manifest(sink), "r3")
    assert digest(pg, "dst", "raw.accounts") == before


def test_concurrent_runs_serialize_on_the_finalize_lock(clean_pg) -> None:
    import threading
    import time

    import psycopg
    from airflow_provider_dpone.sql.postgres import POSTGRES

    pg = clean_pg
    pg.execute("src", ACCOUNTS)
    m = manifest(
        {"strategy": "incremental_merge", "unique_key": ["id"]},
        {"incremental": {"mode": "cursor", "cursor": "updated_at"}},
    )
    run(m, "r1")
    pg.execute("src", "update accounts set balance = balance + 1, updated_at = now() where id <= 10")
    before = digest(pg, "dst", "raw.accounts")
    results: dict[str, object] = {}

    def load(run_id: str) -> None:
        try:
            results[run_id] = run(m, run_id).sink["finalize"]
        except Exception as exc:  # reported through the assertions below
            results[run_id] = exc

    # Another run holds the load's finalize lock: this run stages, then waits before any change.
    with psycopg.connect(pg.dst) as holder:
        holder.execute(POSTGRES.advisory_lock(), ("dpone:raw.accounts",))
        waiting = threading.Thread(target=load, args=("r2",))
        waiting.start()
        waited = []
        for _ in range(100):
            waited = pg.query(
                "dst",
                "select count(*) from pg_stat_activity where datname = current_database() "
                "and wait_event_type = 'Lock' and wait_event = 'advisory'",
            )
            if waited[0][0]:
                break
            time.sleep(0.1)
        assert waited == [(1,)] and waiting.is_alive()
        assert digest(pg, "dst", "raw.accounts") == before
        holder.rollback()
    waiting.join(60)
    assert results["r2"]["rows_updated"] == 10
    # Two runs of the same load at once: both apply in turn and converge, nothing twice.
    pg.execute("src", "update accounts set balance = balance + 1, updated_at = now() where id <= 5")
    pair = [threading.Thread(target=load, args=(r,)) for r in ("r3", "r4")]
    for t in pair:
        t.start()
    for t in pair:
        t.join(60)
    assert all(isinstance(results[r], dict) for r in ("r3", "r4")), results
    assert digest(pg, "dst", "raw.accounts") == digest(pg, "src", "accounts")
    # Both commits leave the state at the newest source change, whichever applied last.
    newest = pg.query("src", "select max(updated_at) from accounts")[0][0]
    stored = pg.query(
        "dst", "select (state->>'value')::timestamptz from dpone.state where pipeline = 'strat'"
    )
    assert stored == [(newest,)]
