"""Schema evolution on the real PostgreSQL: safe changes applied, breaking ones refused untouched."""

from __future__ import annotations

import pytest

from airflow_provider_dpone.contracts.errors import SchemaMismatchError
from airflow_provider_dpone.contracts.manifest import parse_manifest
from airflow_provider_dpone.operators.wiring import assemble
from airflow_provider_dpone.runtime.protocols import LoadContext
from tests.helpers import run_first_load as run

pytestmark = pytest.mark.integration

ITEMS = """
create table items (id bigint primary key, qty int not null, name varchar(20) not null,
                    price numeric(12,2), updated_at timestamptz not null default now());
insert into items select g, g, 'item' || g, g * 1.25, now() - interval '1 hour' + g * interval '1 second'
from generate_series(1, 50) g;
"""


def manifest(sink: dict, evolution: dict | None = None, incremental: bool = True):
    source: dict = {"table": "items"}
    if incremental:
        source["incremental"] = {"mode": "cursor", "cursor": "updated_at"}
    load = {"name": "items", "source": source, "sink": {"table": "raw.items", **sink}}
    if evolution:
        load["schema_evolution"] = evolution
    return parse_manifest(
        {
            "pipeline": "evo",
            "state": {"backend": "table", "conn_id": "dst"},
            "defaults": {
                "source": {"connector": "postgres", "conn_id": "src"},
                "sink": {"connector": "postgres", "conn_id": "dst"},
            },
            "loads": [load],
        }
    )


MERGE = {"strategy": "incremental_merge", "unique_key": ["id"]}


def columns(pg, table: str = "items", schema: str = "raw") -> list[tuple]:
    return pg.query(
        "dst",
        "select column_name, format_type(a.atttypid, a.atttypmod), c.is_nullable "
        "from information_schema.columns c join pg_attribute a "
        "on a.attrelid = (c.table_schema || '.' || c.table_name)::regclass and a.attname = c.column_name "
        "where c.table_schema = %s and c.table_name = %s order by c.ordinal_position",
        (schema, table),
    )


def state(pg):
    rows = pg.query("dst", "select state->>'value' from dpone.state where pipeline = 'evo'")
    return rows[0][0] if rows else None


def test_safe_changes_are_applied_in_the_finalize_transaction(clean_pg) -> None:
    pg = clean_pg
    pg.execute("src", ITEMS)
    m = manifest(MERGE)
    run(m, "r1")
    pg.execute(
        "src",
        "alter table items alter column qty type bigint, alter column name type varchar(100), "
        "alter column name drop not null, add column color text; "
        "update items set qty = 5000000000, name = repeat('n', 80), color = 'red', updated_at = now() "
        "where id <= 3",
    )
    # What dpone plan shows: the DDL of the safe changes, rendered without touching the target.
    load = m.loads[0]
    parts = assemble(load, m.state)
    _, source_schema = parts.source.plan_extract(load.source, None)
    ctx = LoadContext("evo", load, "plan")
    planned = parts.sink.plan_load(ctx, source_schema, schema_plan=parts.sink.schema_plan(ctx, source_schema))
    ddl = [s for s in planned["statements"] if s.startswith("alter table")]
    assert 'alter table "raw"."items" alter column "qty" type bigint using "qty"::bigint' in ddl
    assert 'alter table "raw"."items" add column "color" text' in ddl
    assert columns(pg)[1] == ("qty", "integer", "NO")  # planning changed nothing
    r2 = run(m, "r2")
    kinds = sorted((c["column"], c["kind"]) for c in r2.schema["changes"])
    assert kinds == [
        ("color", "add_column"),
        ("name", "relax_not_null"),
        ("name", "widen"),
        ("qty", "widen"),
    ]
    assert r2.schema["applied"] and r2.rows == 3
    assert columns(pg) == [
        ("id", "bigint", "NO"),
        ("qty", "bigint", "NO"),
        ("name", "character varying(100)", "YES"),
        ("price", "numeric(12,2)", "YES"),
        ("updated_at", "timestamp with time zone", "NO"),
        ("color", "text", "YES"),
    ]
    assert pg.query("dst", "select qty, length(name), color from raw.items where id = 1") == [
        (5000000000, 80, "red")
    ]
    assert "schema: " in r2.to_table()
    # The next run finds nothing to change.
    assert run(m, "r3").schema["changes"] == []


def test_breaking_changes_fail_before_anything_is_touched(clean_pg) -> None:
    pg = clean_pg
    pg.execute("src", ITEMS)
    m = manifest(MERGE)
    run(m, "r1")
    before_state = state(pg)
    pg.execute(
        "src",
        "alter table items drop column price, alter column qty type text; update items set updated_at = now()",
    )
    with pytest.raises(SchemaMismatchError) as err:
        run(m, "r2")
    message = str(err.value)
    # a nullable target column the source stopped sending is tolerated (reported as a warning)
    assert "'price'" not in message
    assert "'qty': source type string is incompatible with the target's int32" in message
    assert columns(pg)[1] == ("qty", "integer", "NO") and len(columns(pg)) == 5
    assert state(pg) == before_state
    # It failed before staging: no staging table was created, and the source snapshot was
    # closed (no idle transaction left holding locks on the source).
    assert pg.query("dst", "select count(*) from pg_tables where schemaname = 'dpone_staging'") == [(0,)]
    idle = pg.query(
        "dst",
        "select count(*) from pg_stat_activity where datname = %s and state like 'idle in transaction%%'",
        (pg.src_db,),
    )
    assert idle == [(0,)]


def test_fail_mode_refuses_a_safe_change(clean_pg) -> None:
    pg = clean_pg
    pg.execute("src", ITEMS)
    m = manifest(MERGE, {"mode": "fail"})
    run(m, "r1")
    pg.execute("src", "alter table items add column color text")
    with pytest.raises(SchemaMismatchError, match=r"mode is fail.*'color': add string"):
        run(m, "r2")
    assert [c[0] for c in columns(pg)] == ["id", "qty", "name", "price", "updated_at"]


def test_plan_only_reports_and_leaves_target_and_state(clean_pg) -> None:
    pg = clean_pg
    pg.execute("src", ITEMS)
    m = manifest(MERGE, {"mode": "plan_only"})
    run(m, "r1")  # nothing to change: it loads
    before_state = state(pg)
    pg.execute("src", "alter table items add column color text; update items set updated_at = now()")
    r2 = run(m, "r2")
    assert r2.status == "plan_only" and r2.state_committed == "no"
    assert [c["kind"] for c in r2.schema["changes"]] == ["add_column"]
    assert [c[0] for c in columns(pg)] == ["id", "qty", "name", "price", "updated_at"]
    assert state(pg) == before_state


def test_new_column_routes_a_changed_type_into_its_own_column(clean_pg) -> None:
    pg = clean_pg
    pg.execute("src", ITEMS)
    m = manifest(MERGE, {"on_type_change": "new_column"})
    run(m, "r1")
    pg.execute(
        "src",
        "alter table items alter column price type text using price::text; "
        "update items set price = 'about ' || price, updated_at = now() where id <= 2",
    )
    r2 = run(m, "r2")
    assert r2.schema["column_map"] == {"price": "price__string"}
    assert pg.query("dst", "select price, price__string from raw.items where id in (1, 3) order by id") == [
        (pytest.approx(1.25), "about 1.25"),
        (pytest.approx(3.75), None),
    ]
    r3 = run(m, "r3")  # the routed column exists now: no change
    assert r3.schema["changes"] == []


def test_full_refresh_into_a_table_with_a_view_alters_then_reloads(clean_pg) -> None:
    pg = clean_pg
    pg.execute("src", ITEMS)
    m = manifest({}, incremental=False)
    assert run(m, "r1").sink["finalize"]["method"] == "swap"
    pg.execute("dst", "create view raw.items_v as select id, qty from raw.items")
    pg.execute("src", "alter table items add column color text default 'blue'")
    r2 = run(m, "r2")
    assert r2.sink["finalize"]["method"] == "truncate_insert"
    assert r2.sink["finalize"]["schema_changes"] == ["column 'color': add string (nullable)"]
    assert pg.query("dst", "select count(*), min(color) from raw.items") == [(50, "blue")]
    assert pg.query("dst", "select count(*) from raw.items_v") == [(50,)]
