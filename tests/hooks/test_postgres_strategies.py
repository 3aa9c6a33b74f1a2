"""Strategy behaviour only PostgreSQL can show, against the real server.

Everything a SQL sink shares (each strategy's result, counts, reconciliation, the key and
range guards) is the contract in ``test_sink_contract.py``, run on every sink. These stay
here because they test PostgreSQL itself, not the strategy: the swap of declarative
partitions (``ATTACH``/``DETACH PARTITION`` and their bounds), the finalize lock (a
PostgreSQL advisory lock, seen in ``pg_stat_activity``), and the exact PostgreSQL SQL that
``dpone plan`` prints for a windowed replace.
"""

from __future__ import annotations

import pytest

from airflow_provider_dpone.contracts.errors import StagingMismatchError
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


def test_plan_of_a_windowed_replace_shows_the_window_and_the_exact_delete(clean_pg) -> None:
    pg = clean_pg
    pg.execute("src", ACCOUNTS)
    run(manifest({"strategy": "full_refresh"}), "r0")
    window = {"column": "day", "start": "2026-02-01", "end": "2026-03-01"}
    windowed = manifest({"strategy": "replace", "replace": {"window": window}})
    # dpone plan shows the window the source reads and the exact delete the sink runs.
    load = windowed.loads[0]
    parts = assemble(load, windowed.state)
    extract_plan, schema = parts.source.plan_extract(effective_source(load), None)
    assert extract_plan["params"] == ["2026-02-01", "2026-03-01"]
    statements = parts.sink.plan_load(LoadContext("strat", load, "plan"), schema)["statements"]
    assert 'delete from "raw"."accounts" where "day" >= %s::date and "day" < %s::date' in statements


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


def test_an_incremental_query_source_reconciles_through_its_full_key_set(clean_pg) -> None:
    """The key set of a query source is read in full (no cursor predicate on a query that
    selects only the keys): rows deleted at the source are deleted from the target."""
    pg = clean_pg
    pg.execute("src", ACCOUNTS)
    query = {"table": None, "query": "select * from accounts where balance >= 0"}
    cursor = {"incremental": {"mode": "cursor", "cursor": "updated_at"}}
    m = manifest(
        {"strategy": "incremental_merge", "unique_key": ["id"]},
        {**query, **cursor},
        reconciliation={"deletes": "hard", "max_delete_fraction": 0.5},
    )
    run(m, "r1")
    pg.execute(
        "src",
        "delete from accounts where id in (3, 4); update accounts set name = 'x', updated_at = now() where id = 9",
    )
    result = run(m, "r2")
    assert result.status == "success", result.error
    finalize = result.sink["finalize"]
    assert (finalize["rows_updated"], finalize["rows_deleted"]) == (1, 2)
    assert digest(pg, "dst", "raw.accounts") == digest(pg, "src", "accounts")
