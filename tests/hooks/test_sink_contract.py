"""One contract for every SQL sink: each strategy a sink declares converges to the source over
a first load and a changed rerun. A new sink joins by adding a ``SinkUnderTest``.

The source is the real PostgreSQL; sinks are the real PostgreSQL and the ClickHouse engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest

from airflow_provider_dpone.contracts.connectors import CONNECTORS
from airflow_provider_dpone.contracts.manifest import parse_manifest
from airflow_provider_dpone.contracts.strategies import Strategy
from tests.helpers import run_first_load as run

pytestmark = pytest.mark.integration

ITEMS = """
create table items (id bigint primary key, name text not null, amount numeric(12,2),
                    day date not null, updated_at timestamptz not null);
insert into items select g, 'item ' || g, g * 1.25, date '2026-01-01' + (g % 10),
                         timestamptz '2026-01-01 00:00+00' + g * interval '1 minute'
from generate_series(1, 400) g;
"""
LATER = "timestamptz '2026-06-01 00:00+00'"


@dataclass(frozen=True)
class SinkUnderTest:
    connector: str
    conn_id: str
    fixture: str  # the pytest fixture that provides the service and its query function

    def rows(self, env: Any) -> list[tuple]:
        """The target's rows as (id, name, amount, day), normalised across databases."""
        if self.connector == "postgres":
            found = env.query("dst", "select id, name, amount, day::text from raw.items order by id")
        else:
            found = env.query("select id, name, amount, toString(day) from raw.items order by id")
        return [_normal(r) for r in found]


def _normal(row: tuple) -> tuple:
    ident, name, amount, day = row
    return int(ident), str(name), None if amount is None else Decimal(str(amount)).normalize(), str(day)


SINKS = [SinkUnderTest("postgres", "dst", "clean_pg"), SinkUnderTest("clickhouse", "ch", "clean_ch")]


def source_rows(pg: Any, where: str = "true") -> list[tuple]:
    found = pg.query("src", f"select id, name, amount, day::text from items where {where} order by id")
    return [_normal(r) for r in found]


# strategy -> (sink keys, source keys, change between the runs, rows of the source the target holds)
CURSOR = {"incremental": {"mode": "cursor", "cursor": "updated_at"}}
CHANGES = f"""
update items set name = 'changed', amount = amount + 1, updated_at = {LATER} where id % 50 = 0;
insert into items select g, 'new ' || g, g, date '2026-01-05', {LATER} from generate_series(401, 410) g;
"""
CASES: dict[Strategy, tuple[dict, dict, str, str]] = {
    Strategy.FULL_REFRESH: ({}, {}, CHANGES + "delete from items where id in (7, 8, 9);", "true"),
    Strategy.INCREMENTAL_APPEND: (
        {},
        CURSOR,
        f"insert into items select g, 'new', 1, date '2026-01-02', {LATER} from generate_series(401, 410) g",
        "true",
    ),
    Strategy.INCREMENTAL_MERGE: ({"unique_key": ["id"]}, CURSOR, CHANGES, "true"),
    Strategy.PARTITION_REPLACE: (
        {"partition_by": ["day"]},
        {"window": {"column": "day", "start": "2026-01-05", "end": "2026-01-06"}},
        "update items set name = 'redone' where day = '2026-01-05'; delete from items where id = 4",
        "day = '2026-01-05'",
    ),
}

PAIRS = [
    (sink, strategy)
    for sink in SINKS
    for strategy in CASES
    if strategy in CONNECTORS[sink.connector].sink_strategies
]


def manifest(sink: SinkUnderTest, strategy: Strategy, sink_keys: dict, source_keys: dict) -> Any:
    load = {
        "name": "items",
        "source": {"connector": "postgres", "conn_id": "src", "table": "items", **source_keys},
        "sink": {
            "connector": sink.connector,
            "conn_id": sink.conn_id,
            "table": "raw.items",
            "strategy": strategy.value,
            **sink_keys,
        },
    }
    return parse_manifest(
        {"pipeline": "contract", "state": {"backend": "table", "conn_id": "dst"}, "loads": [load]}
    )


@pytest.mark.parametrize(("sink", "strategy"), PAIRS, ids=[f"{s.connector}-{st.value}" for s, st in PAIRS])
def test_every_declared_strategy_converges(
    sink: SinkUnderTest, strategy: Strategy, clean_pg: Any, request: pytest.FixtureRequest
) -> None:
    env = request.getfixturevalue(sink.fixture)
    pg = clean_pg
    pg.execute("src", ITEMS)
    sink_keys, source_keys, change, held = CASES[strategy]
    first_source = {k: v for k, v in source_keys.items() if k != "window"}  # the first run loads all
    assert run(manifest(sink, strategy, sink_keys, first_source), "r1").status == "success"
    assert sink.rows(env) == source_rows(pg)
    pg.execute("src", change)
    second = run(manifest(sink, strategy, sink_keys, source_keys), "r2")
    assert second.status == "success"
    expected = source_rows(pg) if held == "true" else _merged(sink.rows(env), source_rows(pg, held), held)
    assert sink.rows(env) == expected
    assert run(manifest(sink, strategy, sink_keys, source_keys), "r3").status == "success"  # idempotent
    assert sink.rows(env) == expected


def _merged(target: list[tuple], replaced: list[tuple], held: str) -> list[tuple]:
    """A partition rewrite: the target outside the rewritten day, the source inside it."""
    day = held.split("'")[1]
    return sorted([r for r in target if r[3] != day] + replaced)


def test_the_suite_covers_every_sql_sink() -> None:
    sql_sinks = {n for n, info in CONNECTORS.items() if info.sink_strategies and info.objects == "table"}
    assert sql_sinks == {s.connector for s in SINKS}, "add a SinkUnderTest for every SQL sink"
