"""Schema evolution on the ClickHouse and BigQuery sinks, from PostgreSQL: a safe change applied,
a changed type routed into its own column (``on_type_change: new_column``) with every value in
the right column, ``fail`` and ``plan_only`` leaving target and state as they were. The
PostgreSQL sink has the same cases in ``test_schema_evolution.py``."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from airflow_provider_dpone.contracts.errors import SchemaMismatchError
from airflow_provider_dpone.contracts.manifest import parse_manifest
from tests.helpers import run_first_load as run

pytestmark = pytest.mark.integration

ITEMS = """
create table items (id bigint primary key, qty int not null, price numeric(12,2),
                    updated_at timestamptz not null default now());
insert into items select g, g, g * 1.25, now() - interval '1 hour' + g * interval '1 second'
from generate_series(1, 20) g;
"""
SINKS = {
    "clickhouse": {"connector": "clickhouse", "conn_id": "ch"},
    "bigquery": {"connector": "bigquery", "conn_id": "bq"},
}


def manifest(sink: str, evolution: dict | None = None):
    load: dict[str, Any] = {
        "name": "items",
        "source": {
            "connector": "postgres",
            "conn_id": "src",
            "table": "items",
            "incremental": {"mode": "cursor", "cursor": "updated_at"},
        },
        "sink": {**SINKS[sink], "table": "raw.items", "strategy": "incremental_merge", "unique_key": ["id"]},
    }
    if evolution:
        load["schema_evolution"] = evolution
    return parse_manifest(
        {"pipeline": "evo", "state": {"backend": "table", "conn_id": "dst"}, "loads": [load]}
    )


@pytest.fixture(params=["clickhouse", "bigquery"])
def target(request, clean_pg) -> tuple[str, Any]:
    """(sink name, a query function on it)."""
    if request.param == "clickhouse":
        ch = request.getfixturevalue("clean_ch")
        return "clickhouse", lambda sql: [tuple(r) for r in ch.query(sql)]
    bq = request.getfixturevalue("clean_bq")
    return "bigquery", lambda sql: [tuple(r) for r in bq.query(sql)]


def _nothing_to_change(sink: str, report: Any) -> None:
    """The run after a change finds none. bqemulator keeps a table's schema as created (an ALTER
    in a script changes its data only), so there the change is planned again and applies as a
    no-op (``add column if not exists``): the run must still succeed."""
    if sink == "bigquery":
        print("bqemulator: the table's schema is not updated by ALTER; checking the re-run succeeds")
        assert report.status == "success" and all(c["safe"] for c in report.schema["changes"])
        return
    assert report.schema["changes"] == []


def _state(pg) -> str | None:
    rows = pg.query("dst", "select state->>'value' from dpone.state where pipeline = 'evo'")
    return rows[0][0] if rows else None


def test_an_added_column_is_applied_and_filled(clean_pg, target) -> None:
    sink, query = target
    clean_pg.execute("src", ITEMS)
    m = manifest(sink)
    run(m, "r1")
    clean_pg.execute("src", "alter table items add column color text; "
                     "update items set color = 'red', updated_at = now() where id <= 2")  # fmt: skip
    r2 = run(m, "r2")
    assert [(c["column"], c["kind"]) for c in r2.schema["changes"]] == [("color", "add_column")]
    assert query("select id, qty, color from raw.items where id in (1, 3) order by id") == [
        (1, 1, "red"),
        (3, 3, None),
    ]
    _nothing_to_change(sink, run(m, "r3"))


def test_a_changed_type_goes_into_its_own_column_and_every_value_stays_in_its_column(
    clean_pg, target
) -> None:
    sink, query = target
    clean_pg.execute("src", ITEMS)
    m = manifest(sink, {"on_type_change": "new_column"})
    run(m, "r1")
    clean_pg.execute(
        "src",
        "alter table items alter column price type text using price::text; "
        "update items set price = 'about ' || price, qty = qty + 100, updated_at = now() where id <= 2",
    )
    r2 = run(m, "r2")
    assert r2.schema["column_map"] == {"price": "price__string"}
    rows = query("select id, qty, price, price__string from raw.items where id in (1, 2, 3) order by id")
    # A merged row keeps its old price on BigQuery (MERGE sets the batch's columns); ClickHouse
    # replaces the whole row, so a column the batch no longer has is NULL there (clickhouse.md).
    old = (None, None) if sink == "clickhouse" else (Decimal("1.25"), Decimal("2.50"))
    assert rows == [
        (1, 101, old[0], "about 1.25"),
        (2, 102, old[1], "about 2.50"),
        (3, 3, Decimal("3.75"), None),
    ]
    _nothing_to_change(sink, run(m, "r3"))


def test_fail_and_plan_only_leave_target_and_state(clean_pg, target) -> None:
    sink, query = target
    clean_pg.execute("src", ITEMS)
    run(manifest(sink), "r1")
    before, count = _state(clean_pg), query("select count(*) from raw.items")
    clean_pg.execute("src", "alter table items add column color text; update items set updated_at = now()")
    with pytest.raises(SchemaMismatchError, match=r"mode is fail.*'color': add string"):
        run(manifest(sink, {"mode": "fail"}), "r2")
    planned = run(manifest(sink, {"mode": "plan_only"}), "r3")
    assert planned.status == "plan_only" and planned.state_committed == "no"
    assert [c["kind"] for c in planned.schema["changes"]] == ["add_column"]
    assert _state(clean_pg) == before and query("select count(*) from raw.items") == count
    with pytest.raises(Exception, match="color"):  # the column was never added
        query("select color from raw.items")
