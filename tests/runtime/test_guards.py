"""Paths that used to report success on wrong data, against the real PostgreSQL.

Each test fails on the code before the guard: the load succeeded and the target was wrong.
"""

from __future__ import annotations

import threading

import psycopg
import pytest

from airflow_provider_dpone.contracts.errors import (
    EmptySourceError,
    MassDeleteError,
    NullKeyError,
    SchemaMismatchError,
    StateMissingError,
    TargetStateMismatchError,
)
from airflow_provider_dpone.contracts.manifest import parse_manifest
from airflow_provider_dpone.hooks.postgres import DponePostgresHook
from tests.helpers import run_first_load as run

pytestmark = pytest.mark.integration

ORDERS = """
create table orders (id bigint primary key, amount numeric(12,2), note text,
                     updated_at timestamptz not null);
insert into orders select g, g + 0.25, 'n' || g, timestamptz '2026-01-01' + g * interval '1 minute'
from generate_series(1, 1000) g;
"""


def manifest(sink: dict, source: dict | None = None, state: dict | None = None, **load):
    body = {
        "name": "orders",
        "source": {"connector": "postgres", "conn_id": "src", "table": "orders", **(source or {})},
        "sink": {"connector": "postgres", "conn_id": "dst", "table": "raw.orders", **sink},
        **load,
    }
    return parse_manifest(
        {"pipeline": "guards", "state": state or {"backend": "table", "conn_id": "dst"}, "loads": [body]}
    )


UNKEYED = ORDERS.replace("bigint primary key", "bigint")  # an append target without a key
CURSOR = {"incremental": {"mode": "cursor", "cursor": "updated_at"}}
MERGE = {"strategy": "incremental_merge", "unique_key": ["id"]}
APPEND = {"strategy": "incremental_append"}


def count(pg, which: str = "dst", table: str = "raw.orders") -> int:
    return pg.query(which, f"select count(*) from {table}")[0][0]


def appended_then_state_lost(pg) -> None:
    """1,000 rows appended into an unkeyed target, the state deleted, 10 new source rows."""
    pg.execute("src", UNKEYED)
    run(manifest(APPEND, CURSOR), "r1")
    pg.execute("dst", "delete from dpone.state")
    change_some(pg)


def change_some(pg, first: int = 1001, n: int = 10) -> None:
    pg.execute(
        "src",
        f"insert into orders select g, g, 'new', timestamptz '2026-03-01' + g * interval '1 second' "
        f"from generate_series({first}, {first + n - 1}) g",
    )


# --- 3. target and state must agree -------------------------------------------------------


def test_a_dropped_target_with_stored_state_fails_instead_of_loading_the_delta(clean_pg) -> None:
    pg = clean_pg
    pg.execute("src", ORDERS)
    m = manifest(MERGE, CURSOR)
    run(m, "r1")
    pg.execute("dst", "drop table raw.orders")
    change_some(pg)
    with pytest.raises(TargetStateMismatchError) as err:
        run(m, "r2")
    assert "raw.orders" in str(err.value) and "dpone state reset" in str(err.value)
    assert "on_target_missing: full_extract" in str(err.value)
    assert pg.query("dst", "select to_regclass('raw.orders')")[0][0] is None  # nothing created
    again = manifest(MERGE, {"incremental": {**CURSOR["incremental"], "on_target_missing": "full_extract"}})
    report = run(again, "r3")
    assert report.status == "success" and count(pg) == 1010
    assert any("reading the source in full" in w for w in report.warnings)


def test_a_target_dropped_during_the_load_fails_the_finalize(clean_pg, monkeypatch) -> None:
    pg = clean_pg
    pg.execute("src", ORDERS)
    m = manifest(APPEND, CURSOR)
    run(m, "r1")
    change_some(pg)
    real = DponePostgresHook.finalize

    def drop_first(self, ctx, staged, extra):
        pg.execute("dst", "drop table raw.orders")
        return real(self, ctx, staged, extra)

    monkeypatch.setattr(DponePostgresHook, "finalize", drop_first)
    with pytest.raises(TargetStateMismatchError, match="disappeared while this run was loading"):
        run(m, "r2")
    assert pg.query("dst", "select to_regclass('raw.orders')")[0][0] is None
    stored = pg.query("dst", "select state->>'value' from dpone.state where pipeline = 'guards'")
    assert stored[0][0].startswith("2026-01-01 16:40")  # still the first run's watermark


# --- 4. lost state is not "no state" ------------------------------------------------------


@pytest.mark.parametrize(
    "lose",
    ["delete from dpone.state", "drop table dpone.state", "update dpone.state set state = 'null'"],
)
def test_lost_state_over_a_filled_append_target_fails_instead_of_appending_twice(clean_pg, lose) -> None:
    pg = clean_pg
    pg.execute("src", UNKEYED)
    m = manifest(APPEND, CURSOR)
    run(m, "r1")
    assert count(pg) == 1000
    pg.execute("dst", lose)
    change_some(pg)
    with pytest.raises(StateMissingError) as err:
        run(m, "r2")
    text = str(err.value)
    assert "dpone.state (pipeline='guards', load='orders')" in text and "dpone state set" in text
    assert "on_state_missing: from_target" in text
    assert count(pg) == 1000


def test_lost_state_can_be_rederived_from_the_target(clean_pg) -> None:
    pg = clean_pg
    appended_then_state_lost(pg)
    m = manifest(APPEND, {"incremental": {**CURSOR["incremental"], "on_state_missing": "from_target"}})
    report = run(m, "r2")
    assert report.status == "success" and report.rows == 10
    assert count(pg) == 1010
    assert pg.query("dst", "select count(distinct id) from raw.orders")[0][0] == 1010
    assert any("read from the target" in w for w in report.warnings)


def test_lost_variable_state_names_the_variable(clean_pg, airflow_db) -> None:
    from airflow.models import Variable

    pg = clean_pg
    pg.execute("src", UNKEYED)
    m = manifest(APPEND, CURSOR, state={"backend": "variable"})
    run(m, "r1")
    Variable.delete("dpone.guards.orders")
    with pytest.raises(StateMissingError, match=r"Airflow Variable 'dpone\.guards\.orders'"):
        run(m, "r2")
    assert count(pg) == 1000


def test_a_merge_without_state_still_converges(clean_pg) -> None:
    """Keyed strategies converge on a full re-read: no guard needed, none gets in the way."""
    pg = clean_pg
    pg.execute("src", ORDERS)
    m = manifest(MERGE, CURSOR)
    run(m, "r1")
    pg.execute("dst", "delete from dpone.state")
    assert run(m, "r2").status == "success" and count(pg) == 1000


# --- 6. keys are never NULL ---------------------------------------------------------------


def test_null_keys_fail_a_merge_into_a_target_without_not_null(clean_pg) -> None:
    pg = clean_pg
    pg.execute("src", "create table orders (id bigint, amount numeric(12,2), updated_at timestamptz)")
    pg.execute("src", "insert into orders values (1, 1, now()), (null, 2, now()), (null, 3, now())")
    pg.execute(
        "dst",
        "create schema raw; create table raw.orders (id bigint, amount numeric(12,2), "
        "updated_at timestamptz)",
    )
    pg.execute("dst", "insert into raw.orders values (7, 7, now())")
    with pytest.raises(NullKeyError) as err:
        run(manifest(MERGE), "r1")
    assert "2 staged row(s) have NULL in unique_key ['id']" in str(err.value)
    assert pg.query("dst", "select id from raw.orders") == [(7,)]


# --- 9. a full refresh to empty is a choice -----------------------------------------------


def test_a_full_refresh_that_reads_nothing_does_not_empty_the_target(clean_pg) -> None:
    pg = clean_pg
    pg.execute("src", ORDERS)
    run(manifest({"strategy": "full_refresh"}), "r1")
    pg.execute("src", "delete from orders")
    with pytest.raises(EmptySourceError, match="allow_empty: true"):
        run(manifest({"strategy": "full_refresh"}), "r2")
    assert count(pg) == 1000
    report = run(manifest({"strategy": "full_refresh", "allow_empty": True}), "r3")
    assert report.status == "success" and count(pg) == 0


def test_a_full_refresh_shrinking_past_max_delete_fraction_fails(clean_pg) -> None:
    pg = clean_pg
    pg.execute("src", ORDERS)
    run(manifest({"strategy": "full_refresh"}), "r1")
    pg.execute("src", "delete from orders where id > 500")
    with pytest.raises(MassDeleteError, match="from 1,000 to 500 rows"):
        run(manifest({"strategy": "full_refresh"}), "r2")  # the default limit, 0.05
    assert count(pg) == 1000
    allowed = manifest({"strategy": "full_refresh"}, reconciliation={"max_delete_fraction": 0.6})
    assert run(allowed, "r3").status == "success"
    assert count(pg) == 500


def test_replace_of_a_window_that_became_empty_fails(clean_pg) -> None:
    pg = clean_pg
    pg.execute("src", ORDERS)
    window = {"column": "id", "start": "1", "end": "101"}
    sink = {"strategy": "replace", "replace": {"window": window}}
    run(manifest(sink), "r1")
    pg.execute("src", "delete from orders where id <= 100")
    with pytest.raises(EmptySourceError, match="would delete 100 rows"):
        run(manifest(sink), "r2")
    assert count(pg) == 100


# --- 7. the schema cannot change under a finalize -------------------------------------------


@pytest.mark.parametrize(
    "ddl",
    ["alter table raw.orders alter column amount type integer", "alter table raw.orders drop column note"],
)
def test_ddl_waits_for_the_finalize_that_planned_the_schema(clean_pg, monkeypatch, ddl) -> None:
    pg = clean_pg
    pg.execute("src", ORDERS)
    m = manifest(MERGE, CURSOR)
    run(m, "r1")
    pg.execute(
        "src",
        "update orders set amount = amount + 0.5, updated_at = updated_at + interval '1 day' where id <= 10",
    )
    real = DponePostgresHook._plan_schema
    blocked: list[BaseException] = []
    calls = {"n": 0}

    def plan_then_alter(self, cur, ctx, target, schema):
        plan = real(self, cur, ctx, target, schema)
        calls["n"] += 1
        if calls["n"] == 2:  # the re-plan inside finalize: a DBA's DDL arrives right after it

            def dba() -> None:
                with psycopg.connect(pg.dst, autocommit=True) as conn:
                    conn.execute("set lock_timeout = '500ms'")
                    try:
                        conn.execute(ddl)
                    except psycopg.errors.LockNotAvailable as exc:
                        blocked.append(exc)

            thread = threading.Thread(target=dba)
            thread.start()
            thread.join()
        return plan

    monkeypatch.setattr(DponePostgresHook, "_plan_schema", plan_then_alter)
    assert run(m, "r2").status == "success"
    assert blocked, "the DDL went through while finalize was writing with the old plan"
    assert pg.query("dst", "select amount::text, note from raw.orders where id = 1") == [("1.75", "n1")]


def test_a_column_dropped_from_an_incremental_target_is_readded_with_a_warning(clean_pg) -> None:
    pg = clean_pg
    pg.execute("src", ORDERS)
    run(manifest(MERGE, CURSOR), "r1")
    pg.execute("dst", "alter table raw.orders drop column note")
    change_some(pg)
    report = run(manifest(MERGE, CURSOR), "r2")
    assert report.status == "success"
    assert any("'note' is added" in w and "stay NULL" in w for w in report.warnings)
    assert "warning: column 'note' is added" in report.to_table()
    pg.execute("dst", "alter table raw.orders drop column note")
    change_some(pg, 2001)
    with pytest.raises(SchemaMismatchError, match="strict"):
        run(manifest(MERGE, CURSOR, schema_evolution={"mode": "strict"}), "r3")


def test_a_column_a_dba_added_to_the_target_is_tolerated_when_nullable(clean_pg) -> None:
    pg = clean_pg
    pg.execute("src", ORDERS)
    run(manifest(MERGE, CURSOR), "r1")
    pg.execute("dst", "alter table raw.orders add column audited boolean")
    pg.execute("dst", "alter table raw.orders add column source text not null default 'dpone'")
    change_some(pg)
    report = run(manifest(MERGE, CURSOR), "r2")
    assert report.status == "success" and count(pg) == 1010
    assert pg.query("dst", "select audited, source from raw.orders where id = 1005") == [(None, "dpone")]
    pg.execute("dst", "alter table raw.orders add column reviewer text not null default 'x'")
    pg.execute("dst", "alter table raw.orders alter column reviewer drop default")
    change_some(pg, 2001)
    with pytest.raises(SchemaMismatchError) as err:
        run(manifest(MERGE, CURSOR), "r3")
    assert "'reviewer'" in str(err.value) and "not in the source" in str(err.value)
    assert "no longer" not in str(err.value)


def test_state_recorded_for_another_cursor_fails_naming_key_value_and_fix(clean_pg) -> None:
    from airflow_provider_dpone.contracts.errors import StateError

    pg = clean_pg
    pg.execute("src", ORDERS)
    m = manifest(MERGE, CURSOR)
    run(m, "r1")
    pg.execute(
        "dst",
        "update dpone.state set state = jsonb_set(state, '{cursor}', '\"created_at\"') "
        "where pipeline = 'guards'",
    )
    with pytest.raises(StateError) as err:
        run(m, "r2")
    text = str(err.value)
    assert "dpone.state (pipeline='guards', load='orders')" in text
    assert "a cursor state on 'created_at' does not fit load 'orders', which uses cursor 'updated_at'" in text
    assert '"value": "2026-01-01 16:40:00+00"' in text and "dpone state reset PATH --load orders" in text


def test_an_emptied_target_with_cursor_state_fails_like_a_missing_one(clean_pg) -> None:
    pg = clean_pg
    pg.execute("src", ORDERS)
    m = manifest(APPEND, CURSOR)
    run(m, "r1")
    pg.execute("dst", "truncate raw.orders")  # or re-created empty by a migration elsewhere
    change_some(pg)
    with pytest.raises(TargetStateMismatchError, match="is empty"):
        run(m, "r2")
    assert count(pg) == 0


def test_initial_value_says_where_an_append_starts_over_a_filled_target(clean_pg) -> None:
    pg = clean_pg
    appended_then_state_lost(pg)
    start = {"incremental": {**CURSOR["incremental"], "initial_value": "2026-02-01T00:00:00Z"}}
    assert run(manifest(APPEND, start), "r2").rows == 10
    assert count(pg) == 1010


def test_a_full_extract_fallback_killed_before_its_state_commit_converges(clean_pg) -> None:
    """The journal records the state the backend holds, not the fallback's empty start: a crash
    between the data and the state commit is rolled forward, not loaded again."""
    from tests.helpers import run_killed

    pg = clean_pg
    pg.execute("src", UNKEYED)
    fallback = {"incremental": {**CURSOR["incremental"], "on_target_missing": "full_extract"}}
    m = manifest(APPEND, fallback, state={"backend": "table", "conn_id": "src"})  # state elsewhere
    run(m, "r1")
    pg.execute("dst", "drop table raw.orders")
    change_some(pg)
    assert run_killed(m, "r2", "after_finalize") == -9
    assert count(pg) == 1010  # the full extract committed; its state did not
    change_some(pg, 2001, 5)
    assert run(m, "r3").status == "success"
    assert count(pg) == 1015
    assert pg.query("dst", "select count(distinct id) from raw.orders")[0][0] == 1015
