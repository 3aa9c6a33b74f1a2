"""One contract for every SQL sink: each strategy and option a sink declares in
``contracts/connectors.py`` behaves the same on every sink (what the target holds after a
first load and a changed rerun, the counts finalize reports, the reconciliation deletes and
their mass-delete guard, duplicate and NULL keys, the replace-range and empty-source guards),
and each one it does not declare is refused by ``dpone validate``, naming the field.

The source is the real PostgreSQL; sinks are the real PostgreSQL and the ClickHouse engine
(chDB). A new sink joins with one ``SinkUnderTest`` in ``SINKS`` and the fixture it names
(docs/contributing.md, "A new database"). What only PostgreSQL can show (declarative
partitions, its advisory lock, its plan text) is in ``test_postgres_strategies.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest

from airflow_provider_dpone.contracts.connectors import CONNECTORS
from airflow_provider_dpone.contracts.errors import (
    DuplicateKeyError,
    EmptySourceError,
    ManifestError,
    MassDeleteError,
    StagingMismatchError,
)
from airflow_provider_dpone.contracts.manifest import Manifest, parse_manifest
from airflow_provider_dpone.contracts.strategies import Strategy
from tests.helpers import run_first_load as run

pytestmark = pytest.mark.integration


@dataclass(frozen=True, eq=False)
class SinkUnderTest:
    """How the contract reaches one SQL sink. What the sink must do (run or refuse) comes from
    its declaration in ``CONNECTORS[connector]``; these fields only say how to look at it."""

    connector: str  # its name in contracts/connectors.py
    conn_id: str  # the Airflow connection its fixture sets up
    fixture: str  # the pytest fixture that provides the emptied service (its env)
    query: Callable[[Any, str], list[tuple]]  # (env, SQL) -> rows, on the sink's database
    day_text: str  # SQL rendering the date column ``{}`` as 'YYYY-MM-DD'
    staging_tables: str  # SQL counting the tables left in the staging schema or database
    null_key_error: str  # how the sink refuses a NULL unique_key (a regex of its error)
    # finalize's "method" in each situation the contract names (see ``Sink.method``)
    methods: Mapping[str, str] = field(default_factory=dict)
    # the finalize counts this sink reports with the contract's meaning, per strategy
    # (rows_inserted: rows new to the target, rows_updated, rows_deleted, ...)
    counts: Mapping[Strategy, frozenset[str]] = field(default_factory=dict)


_PG_COUNTS = {
    Strategy.INCREMENTAL_MERGE: frozenset({"rows_inserted", "rows_updated", "rows_deleted"}),
    Strategy.SNAPSHOT_DIFF: frozenset({"rows_inserted", "rows_updated", "rows_deleted", "rows_unchanged"}),
    Strategy.SCD2: frozenset({"rows_inserted", "rows_closed_changed", "rows_closed_deleted"}),
    Strategy.REPLACE: frozenset({"rows_inserted", "rows_deleted"}),
    Strategy.PARTITION_REPLACE: frozenset({"rows_inserted", "rows_deleted"}),
}

SINKS = [
    SinkUnderTest(
        connector="postgres",
        conn_id="dst",
        fixture="clean_pg",
        query=lambda env, statement: env.query("dst", statement),
        day_text="{}::text",
        staging_tables="select count(*) from pg_tables where schemaname = 'dpone_staging'",
        null_key_error=r"1 staged row\(s\) have NULL in unique_key \['id'\]",  # NullKeyError
        methods={
            "first_load": "insert",  # a keyed strategy into a target this run created
            "snapshot_diff": "diff",
            "replace": "delete_insert",
            "partition_replace": "scoped_delete_insert",  # a target without declarative partitions
        },
        counts=_PG_COUNTS,
    ),
    SinkUnderTest(  # live only: skipped with the reason unless DPONE_MSSQL_URI names a SQL Server
        connector="mssql",
        conn_id="mssql_dst",
        fixture="clean_mssql",
        query=lambda env, statement: env.query(statement),
        day_text="convert(varchar(10), {}, 23)",
        staging_tables="select count(*) from sys.tables t join sys.schemas s on s.schema_id = t.schema_id "
        "where s.name = 'dpone_staging' and t.name <> 'dpone_journal'",
        null_key_error=r"1 staged row\(s\) have NULL in unique_key \['id'\]",  # NullKeyError
        methods={
            "first_load": "insert",
            "snapshot_diff": "diff",
            "replace": "delete_insert",
            "partition_replace": "scoped_delete_insert",  # a target without a partition scheme
        },
        counts=_PG_COUNTS,
    ),
    SinkUnderTest(
        connector="clickhouse",
        conn_id="ch",
        fixture="clean_ch",
        query=lambda env, statement: env.query(statement),
        day_text="toString({})",
        staging_tables="select count() from system.tables where database = 'dpone_staging'",
        # the engine itself refuses it while staging: the key column is not Nullable
        null_key_error=r"Unexpected NULL value of not Nullable type Int64",
        methods={"first_load": "rename", "partition_replace": "replace_partition"},
        # rows_inserted is the staged batch: the rows new to the target only where nothing is
        # updated in place (a merge's rows_inserted counts its updates too)
        counts={Strategy.PARTITION_REPLACE: frozenset({"rows_inserted"})},
    ),
    SinkUnderTest(  # bqemulator (BigQuery's REST API over DuckDB), started by the tests
        connector="bigquery",
        conn_id="bq",
        fixture="clean_bq",
        query=lambda env, statement: env.query(statement),
        day_text="cast({} as string)",
        staging_tables="select count(*) from dpone_staging.INFORMATION_SCHEMA.TABLES "
        "where table_name <> 'dpone_journal'",
        null_key_error=r"1 staged row\(s\) have NULL in unique_key \['id'\]",  # NullKeyError
        methods={
            "first_load": "merge",
            "snapshot_diff": "merge",
            "replace": "delete_insert",
            "partition_replace": "scoped_delete_insert",  # the emulator has no partition decorators
        },
        counts={
            Strategy.INCREMENTAL_MERGE: frozenset({"rows_inserted", "rows_updated"}),
            Strategy.REPLACE: frozenset({"rows_inserted", "rows_deleted"}),
        },
    ),
]


class Sink:
    """A ``SinkUnderTest`` with its running service."""

    def __init__(self, spec: SinkUnderTest, env: Any) -> None:
        self.spec, self.env = spec, env
        self.connector, self.conn_id = spec.connector, spec.conn_id

    def query(self, statement: str) -> list[tuple]:
        return [tuple(r) for r in self.spec.query(self.env, statement)]

    def rows(self, table: str = "raw.items", where: str = "true") -> list[tuple]:
        """The target's rows as (id, name, amount, day), normalised across databases."""
        day = self.spec.day_text.format("day")
        where = "1 = 1" if where == "true" and self.connector == "mssql" else where
        found = self.query(f"select id, name, amount, {day} from {table} where {where} order by id")
        return [_normal(r) for r in found]

    def staging_left(self) -> int:
        return int(self.query(self.spec.staging_tables)[0][0])

    def method(self, situation: str) -> str:
        assert situation in self.spec.methods, (
            f"SinkUnderTest('{self.connector}').methods names no finalize method for '{situation}'"
        )
        return self.spec.methods[situation]

    def check_counts(self, result: dict, strategy: Strategy, **expected: int) -> None:
        """Every expected count the sink reports with the contract's meaning (``counts``)."""
        reported = self.spec.counts.get(strategy, frozenset())
        got = {key: result[key] for key in expected if key in reported}
        assert got == {key: n for key, n in expected.items() if key in reported}, result


@pytest.fixture(params=SINKS, ids=[s.connector for s in SINKS])
def sink(request: pytest.FixtureRequest, clean_pg: Any) -> Sink:
    """Each sink of ``SINKS``, emptied; the source database (``clean_pg``) too."""
    spec: SinkUnderTest = request.param
    return Sink(spec, request.getfixturevalue(spec.fixture))


def _normal(row: tuple) -> tuple:
    ident, name, amount, day = row
    return int(ident), str(name), None if amount is None else Decimal(str(amount)).normalize(), str(day)


def source_rows(pg: Any, table: str = "items", where: str = "true") -> list[tuple]:
    found = pg.query("src", f"select id, name, amount, day::text from {table} where {where} order by id")
    return [_normal(r) for r in found]


def load_data(sink: Sink, spec: dict, source: dict | None = None, table: str = "items", **load) -> dict:
    """A one-load manifest (as data) from the PostgreSQL ``table`` into ``raw.<table>`` of ``sink``."""
    body = {
        "name": table,
        "source": {"connector": "postgres", "conn_id": "src", "table": table, **(source or {})},
        "sink": {"connector": sink.connector, "conn_id": sink.conn_id, "table": f"raw.{table}", **spec},
        **load,
    }
    # the state lives in the PostgreSQL sink database, which can host it, for every sink
    return {"pipeline": "contract", "state": {"backend": "table", "conn_id": "dst"}, "loads": [body]}


def undeclared(connector: str, data: dict) -> list[str]:
    """The fields of ``data`` asking for what ``connector`` does not declare it supports."""
    info = CONNECTORS[connector]
    load = data["loads"][0]
    spec, incremental = load["sink"], load["source"].get("incremental")
    deletes = load.get("reconciliation", {}).get("deletes", "none")
    fields = []
    if Strategy(spec["strategy"]) not in info.sink_strategies:
        fields.append("sink.strategy")
    if spec.get("unique_key") and spec.get("on_duplicate_keys", "fail") not in info.duplicate_keys:
        fields.append("sink.on_duplicate_keys")
    if deletes != "none" and (deletes not in info.deletes or (incremental and not info.key_set)):
        fields.append("reconciliation.deletes")
    return fields


def runnable(sink: Sink, data: dict) -> Manifest | None:
    """The manifest, when ``sink`` declares all that ``data`` asks; otherwise assert that
    ``dpone validate`` refuses it at each undeclared field, naming the connector, and None."""
    fields = undeclared(sink.connector, data)
    if not fields:
        return parse_manifest(data)
    with pytest.raises(ManifestError) as err:
        parse_manifest(data)
    refused = [issue.field for issue in err.value.issues]
    for wanted in fields:
        assert any(f.startswith(wanted) for f in refused), f"{wanted} not refused: {err.value}"
    assert f"connector '{sink.connector}'" in str(err.value)
    return None


# --- every declared strategy converges over a first load and a changed rerun -----------------

ITEMS = """
create table items (id bigint primary key, name text not null, amount numeric(12,2),
                    day date not null, updated_at timestamptz not null);
insert into items select g, 'item ' || g, g * 1.25, date '2026-01-01' + (g % 10),
                         timestamptz '2026-01-01 00:00+00' + g * interval '1 minute'
from generate_series(1, 400) g;
"""
LATER = "timestamptz '2026-06-01 00:00+00'"

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


@pytest.mark.parametrize("strategy", list(CASES), ids=[s.value for s in CASES])
def test_every_declared_strategy_converges(sink: Sink, strategy: Strategy, clean_pg: Any) -> None:
    pg = clean_pg
    sink_keys, source_keys, change, held = CASES[strategy]
    first_source = {k: v for k, v in source_keys.items() if k != "window"}  # the first run loads all
    first = runnable(sink, load_data(sink, {"strategy": strategy.value, **sink_keys}, first_source))
    if first is None:
        return  # refused by validation, as the sink does not declare it
    pg.execute("src", ITEMS)
    assert run(first, "r1").status == "success"
    assert sink.rows() == source_rows(pg)
    pg.execute("src", change)
    later = parse_manifest(load_data(sink, {"strategy": strategy.value, **sink_keys}, source_keys))
    assert run(later, "r2").status == "success"
    expected = source_rows(pg) if held == "true" else _merged(sink.rows(), source_rows(pg, where=held), held)
    assert sink.rows() == expected
    assert run(later, "r3").status == "success"  # idempotent
    assert sink.rows() == expected


def _merged(target: list[tuple], replaced: list[tuple], held: str) -> list[tuple]:
    """A partition rewrite: the target outside the rewritten day, the source inside it."""
    day = held.split("'")[1]
    return sorted([r for r in target if r[3] != day] + replaced)


# --- keyed strategies and reconciliation ----------------------------------------------------

ACCOUNTS = """
create table accounts (id bigint primary key, name text not null, amount numeric(12,2),
                       day date not null, updated_at timestamptz not null);
insert into accounts select g, 'acct' || g, g * 10, date '2026-01-01' + (g % 90),
                            now() - interval '1 day' + g * interval '1 second'
from generate_series(1, 100) g;
"""
DIFF = {"strategy": "snapshot_diff", "unique_key": ["id"]}
MERGE = {"strategy": "incremental_merge", "unique_key": ["id"]}
ACCOUNTS_CURSOR = {"incremental": {"mode": "cursor", "cursor": "updated_at"}}


def accounts(sink: Sink, spec: dict, source: dict | None = None, **load) -> dict:
    return load_data(sink, spec, source, table="accounts", **load)


def test_snapshot_diff_converges_updates_inserts_and_deletes(sink: Sink, clean_pg: Any) -> None:
    pg = clean_pg
    m = runnable(sink, accounts(sink, DIFF, reconciliation={"deletes": "hard", "max_delete_fraction": 0.1}))
    if m is None:
        return
    pg.execute("src", ACCOUNTS)
    first = run(m, "r1")
    assert first.sink["finalize"]["method"] == sink.method("first_load")
    pg.execute(
        "src",
        "update accounts set amount = amount + 1 where id in (1, 2, 3); "
        "delete from accounts where id in (4, 5); "
        "insert into accounts values (101, 'new', 1, '2026-02-01', now())",
    )
    result = run(m, "r2").sink["finalize"]
    assert result["method"] == sink.method("snapshot_diff")
    counts = {"rows_updated": 3, "rows_inserted": 1, "rows_deleted": 2, "rows_unchanged": 95}
    sink.check_counts(result, Strategy.SNAPSHOT_DIFF, **counts)
    assert sink.rows("raw.accounts") == source_rows(pg, "accounts")
    again = run(m, "r3").sink["finalize"]  # nothing changed: nothing is written
    sink.check_counts(again, Strategy.SNAPSHOT_DIFF, rows_updated=0, rows_inserted=0, rows_deleted=0)
    assert sink.rows("raw.accounts") == source_rows(pg, "accounts")


def test_soft_deletes_mark_rows_and_returning_rows_are_revived(sink: Sink, clean_pg: Any) -> None:
    pg = clean_pg
    m = runnable(sink, accounts(sink, DIFF, reconciliation={"deletes": "soft", "max_delete_fraction": 0.1}))
    if m is None:
        return
    pg.execute("src", ACCOUNTS)
    run(m, "r1")
    pg.execute(
        "src",
        "create table gone as select * from accounts where id in (7, 8); delete from accounts where id in (7, 8)",
    )
    sink.check_counts(run(m, "r2").sink["finalize"], Strategy.SNAPSHOT_DIFF, rows_deleted=2)
    marked = sink.query("select id from raw.accounts where _dpone_deleted_at is not null order by id")
    assert marked == [(7,), (8,)]
    assert len(sink.rows("raw.accounts")) == 100  # marked, not deleted
    pg.execute("src", "insert into accounts select * from gone where id = 7")
    run(m, "r3")
    assert sink.query("select id from raw.accounts where _dpone_deleted_at is not null") == [(8,)]
    live = "_dpone_deleted_at is null"
    assert sink.rows("raw.accounts", live) == source_rows(pg, "accounts")


def test_mass_delete_guard_fails_before_any_change(sink: Sink, clean_pg: Any) -> None:
    pg = clean_pg
    m = runnable(sink, accounts(sink, DIFF, reconciliation={"deletes": "hard", "max_delete_fraction": 0.2}))
    if m is None:
        return
    pg.execute("src", ACCOUNTS)
    run(m, "r1")
    before = sink.rows("raw.accounts")
    pg.execute("src", "delete from accounts where id > 50; update accounts set name = 'changed' where id = 1")
    with pytest.raises(MassDeleteError, match=r"would delete 50 of 100 rows of raw.accounts \(50.0%\)"):
        run(m, "r2")
    assert sink.rows("raw.accounts") == before  # the update of id 1 was rolled back too


def test_incremental_merge_reconciles_through_a_staged_key_set(sink: Sink, clean_pg: Any) -> None:
    pg = clean_pg
    m = runnable(sink, accounts(sink, MERGE, ACCOUNTS_CURSOR, reconciliation={"deletes": "hard"}))
    if m is None:
        return
    pg.execute("src", ACCOUNTS)
    run(m, "r1")
    pg.execute(
        "src",
        "delete from accounts where id in (10, 11); update accounts set name = 'x', updated_at = now() where id = 12",
    )
    report = run(m, "r2")
    key_set = report.find_phase("key_set")
    assert key_set is not None and key_set.rows == 98
    sink.check_counts(report.sink["finalize"], Strategy.INCREMENTAL_MERGE, rows_updated=1, rows_deleted=2)
    assert sink.rows("raw.accounts") == source_rows(pg, "accounts")
    assert sink.staging_left() == 0


def test_scd2_keeps_history_and_closes_deleted_keys(sink: Sink, clean_pg: Any) -> None:
    pg = clean_pg
    m = runnable(
        sink, accounts(sink, {"strategy": "scd2", "unique_key": ["id"]}, reconciliation={"deletes": "soft"})
    )
    if m is None:
        return
    pg.execute("src", ACCOUNTS)
    run(m, "r1")
    assert len(sink.rows("raw.accounts")) == 100 and len(sink.rows("raw.accounts", "is_current")) == 100
    pg.execute("src", "update accounts set amount = -1 where id in (1, 2); delete from accounts where id = 3")
    result = run(m, "r2").sink["finalize"]
    closed = {"rows_closed_changed": 2, "rows_inserted": 2, "rows_closed_deleted": 1}
    sink.check_counts(result, Strategy.SCD2, **closed)
    history = sink.query(
        "select id, amount, is_current, valid_to is null from raw.accounts where id in (1, 3) "
        "order by id, valid_from"
    )
    assert [(int(r[0]), float(r[1]), bool(r[2]), bool(r[3])) for r in history] == [
        (1, 10.0, False, False),
        (1, -1.0, True, True),
        (3, 30.0, False, False),
    ]
    again = run(m, "r3").sink["finalize"]  # a rerun (e.g. after a crash before the state commit)
    sink.check_counts(again, Strategy.SCD2, rows_closed_changed=0, rows_inserted=0, rows_closed_deleted=0)
    one_current = sink.query(
        "select count(*) from (select id from raw.accounts where is_current group by id having count(*) > 1) d"
    )
    assert [tuple(int(v) for v in r) for r in one_current] == [(0,)]
    assert sink.rows("raw.accounts", "is_current") == source_rows(pg, "accounts")


FEBRUARY = "day >= '2026-02-01' and day < '2026-03-01'"


def test_replace_rewrites_only_the_window(sink: Sink, clean_pg: Any) -> None:
    pg = clean_pg
    window = {"column": "day", "start": "2026-02-01", "end": "2026-03-01"}
    windowed = runnable(sink, accounts(sink, {"strategy": "replace", "replace": {"window": window}}))
    if windowed is None:
        return
    pg.execute("src", ACCOUNTS)
    run(parse_manifest(accounts(sink, {"strategy": "full_refresh"})), "r0")
    outside = f"not ({FEBRUARY})"
    untouched = sink.rows("raw.accounts", outside)
    pg.execute(
        "src",
        "update accounts set amount = 0; delete from accounts where id = 40; "  # 40 is in February
        "insert into accounts values (200, 'feb', 5, '2026-02-10', now())",
    )
    result = run(windowed, "r1").sink["finalize"]
    assert result["method"] == sink.method("replace")
    sink.check_counts(result, Strategy.REPLACE, rows_deleted=28, rows_inserted=28)  # 40 out, 200 in
    assert sink.rows("raw.accounts", FEBRUARY) == source_rows(pg, "accounts", FEBRUARY)
    assert sink.rows("raw.accounts", outside) == untouched  # amounts outside stay as they were
    # A source that reads more than the replaced range is refused before the target changes.
    before = sink.rows("raw.accounts")
    bad = parse_manifest(
        accounts(
            sink,
            {"strategy": "replace", "replace": {"where": FEBRUARY}},
            {"table": None, "query": "select * from accounts where day >= '2026-01-25'"},
        )
    )
    with pytest.raises(StagingMismatchError, match=r"staged row\(s\) fall outside sink\.replace"):
        run(bad, "r2")
    assert sink.rows("raw.accounts") == before


def test_partition_replace_with_a_scoped_delete(sink: Sink, clean_pg: Any) -> None:
    pg = clean_pg
    spec = {"strategy": "partition_replace", "partition_by": ["day"]}
    m = runnable(sink, accounts(sink, spec))
    if m is None:
        return
    pg.execute("src", ACCOUNTS)
    run(m, "r1")
    assert sink.rows("raw.accounts") == source_rows(pg, "accounts")
    other_days = sink.rows("raw.accounts", "day <> '2026-01-05'")
    pg.execute(
        "src", "update accounts set amount = 0 where day = '2026-01-05'; delete from accounts where id = 94"
    )
    one_day = {"table": None, "query": "select * from accounts where day = '2026-01-05'"}
    result = run(parse_manifest(accounts(sink, spec, one_day)), "r2").sink["finalize"]
    assert result["method"] == sink.method("partition_replace")
    # ids 4 and 94 were that day; 4 only is now
    sink.check_counts(result, Strategy.PARTITION_REPLACE, rows_deleted=2, rows_inserted=1)
    assert sink.rows("raw.accounts", "day <> '2026-01-05'") == other_days
    assert sink.rows("raw.accounts", "day = '2026-01-05'") == source_rows(
        pg, "accounts", "day = '2026-01-05'"
    )


# --- keys and guards ---------------------------------------------------------------------------

KEYED = """
create table keyed (id bigint, name text not null, amount numeric(12,2), day date not null);
insert into keyed values (1, 'a', 1, '2026-01-01'), (2, 'b', 2, '2026-01-02');
"""


def test_duplicate_keys_fail_before_the_target_changes(sink: Sink, clean_pg: Any) -> None:
    pg = clean_pg
    pg.execute("src", KEYED)
    m = parse_manifest(load_data(sink, MERGE, table="keyed"))  # on_duplicate_keys: fail, the default
    run(m, "r1")
    before = sink.rows("raw.keyed")
    pg.execute("src", "insert into keyed values (2, 'c', 3, '2026-01-02'), (2, 'd', 4, '2026-01-02')")
    with pytest.raises(DuplicateKeyError, match=r"\b2\b"):  # the key, in the message
        run(m, "r2")
    assert sink.rows("raw.keyed") == before


def test_keep_last_keeps_the_last_row_of_a_key(sink: Sink, clean_pg: Any) -> None:
    pg = clean_pg
    ordered = {"table": None, "query": "select * from keyed order by name"}
    m = runnable(sink, load_data(sink, {**MERGE, "on_duplicate_keys": "keep_last"}, ordered, table="keyed"))
    if m is None:
        return
    pg.execute(
        "src", KEYED + "insert into keyed values (2, 'd', 4, '2026-01-02'), (2, 'c', 3, '2026-01-02');"
    )
    run(m, "r1")
    assert [r[:2] for r in sink.rows("raw.keyed")] == [(1, "a"), (2, "d")]  # 'd' is last by name


def test_null_keys_fail_before_the_target_changes(sink: Sink, clean_pg: Any) -> None:
    pg = clean_pg
    pg.execute("src", KEYED)
    m = parse_manifest(load_data(sink, MERGE, table="keyed"))
    run(m, "r1")
    before = sink.rows("raw.keyed")
    pg.execute("src", "insert into keyed values (null, 'n', 5, '2026-01-03'), (3, 'c', 3, '2026-01-03')")
    with pytest.raises(Exception, match=sink.spec.null_key_error):
        run(m, "r2")
    assert sink.rows("raw.keyed") == before


def test_a_full_refresh_that_reads_nothing_keeps_the_target(sink: Sink, clean_pg: Any) -> None:
    pg = clean_pg
    pg.execute("src", ITEMS)
    run(parse_manifest(load_data(sink, {"strategy": "full_refresh"})), "r1")
    pg.execute("src", "delete from items")
    with pytest.raises(EmptySourceError, match="allow_empty: true"):
        run(parse_manifest(load_data(sink, {"strategy": "full_refresh"})), "r2")
    assert len(sink.rows()) == 400
    allowed = parse_manifest(load_data(sink, {"strategy": "full_refresh", "allow_empty": True}))
    assert run(allowed, "r3").status == "success"
    assert sink.rows() == []


def test_a_full_refresh_shrinking_past_max_delete_fraction_fails(sink: Sink, clean_pg: Any) -> None:
    pg = clean_pg
    pg.execute("src", ITEMS)
    run(parse_manifest(load_data(sink, {"strategy": "full_refresh"})), "r1")
    before = sink.rows()
    pg.execute("src", "delete from items where id > 200")
    with pytest.raises(MassDeleteError, match="from 400 to 200 rows"):
        run(parse_manifest(load_data(sink, {"strategy": "full_refresh"})), "r2")  # the default, 0.05
    assert sink.rows() == before
    allowed = load_data(sink, {"strategy": "full_refresh"}, reconciliation={"max_delete_fraction": 0.6})
    assert run(parse_manifest(allowed), "r3").status == "success"
    assert sink.rows() == source_rows(pg)


# --- the suite itself ------------------------------------------------------------------------


def test_the_suite_covers_every_sql_sink() -> None:
    sql_sinks = {n for n, info in CONNECTORS.items() if info.sink_strategies and info.objects == "table"}
    assert sql_sinks == {s.connector for s in SINKS}, "add a SinkUnderTest for every SQL sink"


def test_every_strategy_a_sql_sink_declares_has_a_contract_test() -> None:
    # cdc_apply needs a change feed, which the suite's PostgreSQL source has not: it is shown on
    # the PostgreSQL sink by test_mssql_feeds.py and on the SQL Server sink by test_mssql_live.py
    covered = set(CASES) | {Strategy.REPLACE, Strategy.SNAPSHOT_DIFF, Strategy.SCD2, Strategy.CDC_APPLY}
    declared = set().union(*(CONNECTORS[s.connector].sink_strategies for s in SINKS))
    assert declared <= covered, f"no contract test for {sorted(s.value for s in declared - covered)}"
