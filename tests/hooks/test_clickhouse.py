"""ClickHouse as sink and source, against the real engine (chDB in process) and PostgreSQL."""

from __future__ import annotations

import pytest

from airflow_provider_dpone.contracts.errors import (
    BadInputError,
    DuplicateKeyError,
    SchemaMismatchError,
)
from airflow_provider_dpone.contracts.manifest import parse_manifest
from airflow_provider_dpone.contracts.quality import QualityGateError
from tests.helpers import run_first_load as run

pytestmark = pytest.mark.integration

ORDERS = """
create table orders (id bigint primary key, customer text not null, note text, paid bool,
                     amount numeric(12,2), total numeric, placed date not null,
                     updated_at timestamptz not null, ref uuid, doc jsonb);
insert into orders select g, 'c' || (g % 10), case when g % 7 = 0 then null else e'tab\\there ' || g end,
       g % 2 = 0, g * 1.25, g / 3.0, date '2026-01-01' + (g % 60),
       timestamptz '2026-03-01 00:00+00' + g * interval '1 minute', md5(g::text)::uuid,
       jsonb_build_object('g', g, 's', e'line\\nbreak')
from generate_series(1, 3000) g;
"""
COLS = "id, customer, note, paid, amount, placed, updated_at, ref, doc"


def manifest(sink: dict, source: dict | None = None, connectors=("postgres", "clickhouse"), **load):
    src_conn = "src" if connectors[0] == "postgres" else "ch"
    dst_conn = "dst" if connectors[1] == "postgres" else "ch"
    body = {
        "name": "orders",
        "source": {"connector": connectors[0], "conn_id": src_conn, "table": "orders", **(source or {})},
        "sink": {"connector": connectors[1], "conn_id": dst_conn, "table": "raw.orders", **sink},
        **load,
    }
    # ClickHouse cannot hold state transactionally: the state table lives in PostgreSQL.
    return parse_manifest(
        {"pipeline": "ch", "state": {"backend": "table", "conn_id": "dst"}, "loads": [body]}
    )


def pg_rows(pg, where: str = "true") -> list[tuple]:
    rows = pg.query(
        "src",
        f"select id, customer, note, paid, amount, placed, updated_at, ref::text, doc::text "
        f"from orders where {where} order by id",
    )
    return [tuple(r) for r in rows]


def ch_rows(ch, where: str = "1") -> list[tuple]:
    rows = ch.query(
        f"select id, customer, note, paid, amount, placed, updated_at, toString(ref), doc "
        f"from raw.orders where {where} order by id"
    )
    out = []
    for r in rows:
        doc = r[8]
        # PostgreSQL prints jsonb canonically; compare the parsed documents
        out.append((*r[:8], _canonical_json(doc)))
    return out


def _canonical_json(text: str | None) -> str | None:
    import json

    return None if text is None else json.dumps(json.loads(text), sort_keys=True)


def same(pg, ch, where_pg: str = "true", where_ch: str = "1") -> bool:
    expected = [(*r[:8], _canonical_json(r[8])) for r in pg_rows(pg, where_pg)]
    return ch_rows(ch, where_ch) == expected


def test_full_refresh_through_tsv_then_an_atomic_exchange(clean_pg, clean_ch) -> None:
    pg, ch = clean_pg, clean_ch
    pg.execute("src", ORDERS)
    m = manifest({"strategy": "full_refresh"})
    first = run(m, "r1")
    assert first.fast_path == "tsv"  # PostgreSQL text COPY parsed by ClickHouse, no Python decoding
    assert first.sink["finalize"]["method"] == "rename" and same(pg, ch)
    created = ch.query("show create table raw.orders")[0][0]
    assert "`id` Int64" in created and "`note` Nullable(String)" in created and "ORDER BY (id)" in created
    assert "`total` Nullable(Decimal(38, 10))" in created  # an unbounded numeric
    assert "dpone_staging" not in created  # the staging label did not follow the table
    ch.command("alter table raw.orders modify comment 'orders, loaded by dpone'")
    pg.execute(
        "src", "update orders set customer = 'changed' where id <= 10; delete from orders where id > 2990"
    )
    second = run(m, "r2")
    assert second.sink["finalize"]["method"] == "exchange" and same(pg, ch)
    assert ch.query("select comment from system.tables where database = 'raw' and name = 'orders'") == [
        ("orders, loaded by dpone",)
    ]
    assert ch.query("select count() from system.tables where database = 'dpone_staging'") == [(0,)]


def test_arrays_take_the_arrow_path(clean_pg, clean_ch) -> None:
    pg, ch = clean_pg, clean_ch
    pg.execute(
        "src",
        "create table orders (id bigint primary key, tags text[], scores int[], blob bytea); "
        "insert into orders values (1, '{a,\"b c\"}', '{1,NULL}', '\\x0001ff'), (2, '{}', null, null)",
    )
    report = run(manifest({"strategy": "full_refresh"}))
    assert report.fast_path == "streaming_batches"  # arrays and bytea are not TSV-safe: rows -> Arrow
    rows = ch.query("select id, tags, scores, lower(hex(blob)), isNull(blob) from raw.orders order by id")
    assert rows == [(1, ["a", "b c"], [1, None], "0001ff", 0), (2, [], [], None, 1)]


def test_incremental_merge_deletes_and_inserts_by_key(clean_pg, clean_ch) -> None:
    pg, ch = clean_pg, clean_ch
    pg.execute("src", ORDERS)
    m = manifest(
        {"strategy": "incremental_merge", "unique_key": ["id"]},
        {"incremental": {"mode": "cursor", "cursor": "updated_at"}},
    )
    run(m, "r1")
    pg.execute(
        "src",
        "update orders set customer = 'moved', updated_at = updated_at + interval '10 days' where id % 100 = 0; "
        "insert into orders select g, 'new', null, true, 1, 1, '2026-02-01', timestamptz '2026-04-01 00:00+00', null, null "
        "from generate_series(3001, 3050) g",
    )
    report = run(m, "r2")
    assert report.rows == 80 and report.sink["finalize"]["method"] == "delete_insert"
    assert same(pg, ch)
    assert ch.query("select count(), uniqExact(id) from raw.orders") == [(3050, 3050)]
    again = run(m, "r3")  # nothing new past the watermark
    assert again.rows == 0 and same(pg, ch)


def test_merge_into_a_replacing_merge_tree_only_appends(clean_pg, clean_ch) -> None:
    pg, ch = clean_pg, clean_ch
    pg.execute(
        "src",
        "create table orders (id bigint primary key, v int not null); insert into orders values (1, 1), (2, 2)",
    )
    ch.command("create database raw")
    ch.command("create table raw.orders (id Int64, v Int32) engine = ReplacingMergeTree order by id")
    m = manifest({"strategy": "incremental_merge", "unique_key": ["id"]})
    run(m, "r1")
    pg.execute("src", "update orders set v = 20 where id = 2")
    assert run(m, "r2").sink["finalize"]["method"] == "replacing_merge_tree"
    assert ch.query("select id, v from raw.orders final order by id") == [(1, 1), (2, 20)]


def test_incremental_append_by_cursor(clean_pg, clean_ch) -> None:
    pg, ch = clean_pg, clean_ch
    pg.execute("src", ORDERS)
    m = manifest({"strategy": "incremental_append"}, {"incremental": {"mode": "cursor", "cursor": "id"}})
    run(m, "r1")
    pg.execute(
        "src",
        "insert into orders select g, 'x', null, null, null, null, '2026-01-01', now(), null, null "
        "from generate_series(3001, 3010) g",
    )
    report = run(m, "r2")
    assert report.rows == 10 and report.sink["finalize"]["method"] == "attach_partitions"
    assert same(pg, ch)
    assert pg.query("dst", "select state->>'value' from dpone.state") == [("3010",)]


def test_partition_replace_swaps_only_the_staged_partitions(clean_pg, clean_ch) -> None:
    pg, ch = clean_pg, clean_ch
    pg.execute("src", ORDERS)
    sink = {"strategy": "partition_replace", "partition_by": ["placed"]}
    run(manifest(sink), "r1")
    assert ch.query("select partition_key from system.tables where database = 'raw' and name = 'orders'") == [
        ("(placed)",)
    ]
    day = "placed = '2026-01-05'"
    pg.execute("src", f"update orders set customer = 'redo' where {day}; delete from orders where id = 4")
    one_day = manifest(sink, {"window": {"column": "placed", "start": "2026-01-05", "end": "2026-01-06"}})
    result = run(one_day, "r2").sink["finalize"]
    assert result["method"] == "replace_partition" and len(result["partitions_replaced"]) == 1
    assert same(pg, ch)  # id 4 (that day) is gone, every other day untouched


def test_null_and_duplicate_keys_fail_before_the_target_changes(clean_pg, clean_ch) -> None:
    pg, ch = clean_pg, clean_ch
    pg.execute("src", "create table orders (id bigint, v int); insert into orders values (1, 1), (2, 2)")
    m = manifest({"strategy": "incremental_merge", "unique_key": ["id"]})
    run(m, "r1")
    before = ch.query("select * from raw.orders order by id")
    pg.execute("src", "insert into orders values (2, 3), (2, 4)")
    with pytest.raises(DuplicateKeyError, match=r"1 key\(s\) of unique_key \['id'\].*\(2,\)"):
        run(m, "r2")
    pg.execute("src", "delete from orders where v in (3, 4); insert into orders values (null, 5)")
    with pytest.raises(Exception, match=r"(?i)null"):  # refused by the non-Nullable key column
        run(m, "r3")
    assert ch.query("select * from raw.orders order by id") == before


def test_safe_schema_changes_are_applied_and_breaking_ones_refused(clean_pg, clean_ch) -> None:
    pg, ch = clean_pg, clean_ch
    pg.execute(
        "src", "create table orders (id bigint primary key, n int not null); insert into orders values (1, 1)"
    )
    m = manifest({"strategy": "incremental_merge", "unique_key": ["id"]})
    run(m, "r1")
    pg.execute(
        "src",
        "alter table orders alter column n type bigint, alter column n drop not null, add column label text; "
        "insert into orders values (2, 5000000000, 'big')",
    )
    report = run(m, "r2")
    changes = {c["kind"] for c in report.schema["changes"]}
    assert changes == {"widen", "relax_not_null", "add_column"}
    types = dict(
        ch.query("select name, type from system.columns where database = 'raw' and table = 'orders'")
    )
    assert types == {"id": "Int64", "n": "Nullable(Int64)", "label": "Nullable(String)"}
    assert ch.query("select id, n, label from raw.orders order by id") == [
        (1, 1, None),
        (2, 5000000000, "big"),
    ]
    pg.execute("src", "alter table orders alter column n type text")
    with pytest.raises(SchemaMismatchError, match="column 'n'"):
        run(m, "r3")
    assert ch.query("select count() from raw.orders") == [(2,)]


def test_quality_gate_on_clickhouse_staging(clean_pg, clean_ch) -> None:
    pg, ch = clean_pg, clean_ch
    pg.execute("src", ORDERS)
    gates = [
        {"check": "not_null", "columns": ["note"]},
        {"check": "unique", "columns": ["id"]},
        {"check": "accepted_values", "column": "customer", "values": [f"c{i}" for i in range(10)]},
        {"check": "freshness", "column": "updated_at", "max_age": "3650d"},
    ]
    with pytest.raises(QualityGateError, match=r"not_null.*428 row"):
        run(manifest({"strategy": "full_refresh"}, quality=gates), "r1")
    assert ch.query("select count() from system.tables where database = 'raw'") == [(0,)]
    report = run(manifest({"strategy": "full_refresh"}, quality=gates[1:]), "r2")
    assert [q["passed"] for q in report.quality] == [True, True, True]


def test_unsupported_strategies_and_modes_are_refused(clean_pg, clean_ch) -> None:
    from airflow_provider_dpone.contracts.errors import ManifestError

    with pytest.raises(ManifestError, match="scd2"):
        manifest({"strategy": "scd2", "unique_key": ["id"]})
    with pytest.raises(ManifestError, match="xmin"):
        manifest(
            {"strategy": "full_refresh"},
            {"incremental": {"mode": "xmin"}},
            connectors=("clickhouse", "postgres"),
        )


def test_keep_last_and_a_different_partition_key_are_refused_clearly(clean_pg, clean_ch) -> None:
    pg = clean_pg
    pg.execute("src", ORDERS)
    from airflow_provider_dpone.contracts.errors import ManifestError

    keep_last = {"strategy": "incremental_merge", "unique_key": ["id"], "on_duplicate_keys": "keep_last"}
    with pytest.raises(ManifestError, match="'keep_last' is not supported by connector 'clickhouse'"):
        manifest(keep_last)  # refused by dpone validate, before anything connects
    run(manifest({"strategy": "full_refresh"}), "r2")  # a target partitioned by nothing
    with pytest.raises(BadInputError, match=r"partitioned by \(nothing\), not \(placed\)"):
        run(manifest({"strategy": "partition_replace", "partition_by": ["placed"]}), "r3")


CH_ORDERS = """
create table src.orders (id Int64, customer LowCardinality(String), amount Nullable(Decimal(12, 2)),
  placed Date32, updated_at DateTime64(6, 'UTC'), ref UUID, tags Array(String), big UInt64, flag Bool)
engine = MergeTree order by id
"""


def test_clickhouse_to_postgres_full_and_incremental(clean_pg, clean_ch) -> None:
    pg, ch = clean_pg, clean_ch
    ch.command(CH_ORDERS)
    ch.command(
        "insert into src.orders select number, concat('c', toString(number % 5)), "
        "if(number % 9 = 0, NULL, toDecimal64(number, 2) / 4), toDate32('2026-01-01') + number % 30, "
        "toDateTime64('2026-03-01 00:00:00', 6, 'UTC') + toIntervalSecond(number), generateUUIDv4(), "
        "[toString(number), 'x'], 18446744073709551615 - number, number % 2 = 0 from numbers(1, 2500)"
    )
    m = parse_manifest(
        {
            "pipeline": "ch",
            "state": {"backend": "table", "conn_id": "dst"},
            "loads": [
                {
                    "name": "orders",
                    "source": {
                        "connector": "clickhouse",
                        "conn_id": "ch",
                        "table": "src.orders",
                        "batch_size": 1000,
                        "incremental": {"mode": "cursor", "cursor": "updated_at"},
                    },
                    "sink": {
                        "connector": "postgres",
                        "conn_id": "dst",
                        "table": "raw.orders",
                        "strategy": "incremental_merge",
                        "unique_key": ["id"],
                    },
                }
            ],
        }
    )
    first = run(m, "r1")
    assert first.rows == 2500 and first.fast_path == "streaming_batches"
    assert first.source["window"]["source_rows"] == 2500
    types = dict(
        pg.query(
            "dst",
            "select column_name, data_type from information_schema.columns where table_name = 'orders'",
        )
    )
    assert types["big"] == "numeric" and types["updated_at"] == "timestamp with time zone"
    assert types["tags"] == "ARRAY" and types["ref"] == "uuid" and types["flag"] == "boolean"

    def both(where_pg: str = "true") -> tuple[list, list]:
        got = pg.query(
            "dst",
            "select id, customer, amount, placed, updated_at, ref::text, tags, big::text, flag "
            f"from raw.orders where {where_pg} order by id",
        )
        want = ch.query(
            "select id, toString(customer), amount, placed, updated_at, toString(ref), tags, toString(big), flag "
            "from src.orders order by id"
        )
        return [tuple(r) for r in got], [tuple(r) for r in want]

    got, want = both()
    assert got == want
    ch.command(
        "alter table src.orders update customer = 'late', updated_at = updated_at + toIntervalDay(30) where id <= 5 settings mutations_sync = 1"
    )
    second = run(m, "r2")
    assert second.rows == 5 and pg.query(
        "dst", "select count(*) from raw.orders where customer = 'late'"
    ) == [(5,)]
    got, want = both()
    assert got == want
    stored = pg.query("dst", "select state->>'value' from dpone.state")[0][0]
    assert stored.startswith("2026-03-31 00:00:05")


def test_clickhouse_source_to_clickhouse_sink_uses_arrow(clean_ch, airflow_db) -> None:  # state: Variables
    ch = clean_ch
    ch.command(CH_ORDERS)
    ch.command(
        "insert into src.orders select number, 'c', NULL, toDate32('2026-01-01'), now64(6), generateUUIDv4(), [], number, true "
        "from numbers(1, 100)"
    )
    m = parse_manifest(
        {
            "pipeline": "ch",
            "loads": [
                {
                    "name": "copy",
                    "source": {"connector": "clickhouse", "conn_id": "ch", "table": "src.orders"},
                    "sink": {
                        "connector": "clickhouse",
                        "conn_id": "ch",
                        "table": "raw.copy",
                        "strategy": "full_refresh",
                    },
                }
            ],
        }
    )
    report = run(m, "r1")
    assert report.fast_path == "arrow_batches" and report.rows == 100
    assert report.source["window"]["source_rows"] == 100
    types = dict(ch.query("select name, type from system.columns where database = 'raw' and table = 'copy'"))
    assert types["customer"] == "LowCardinality(String)" and types["big"] == "UInt64"  # native types kept
    assert ch.query("select sum(big), count() from raw.copy") == ch.query(
        "select sum(big), count() from src.orders"
    )


def test_stale_staging_of_other_runs_is_swept(clean_pg, clean_ch) -> None:
    import json as _json

    pg, ch = clean_pg, clean_ch
    pg.execute("src", "create table orders (id bigint primary key, v int); insert into orders values (1, 1)")
    ch.command("create database dpone_staging")
    old = _json.dumps({"dpone_staging": "ch.orders", "run_id": "killed", "created_epoch": 0})
    other = _json.dumps({"dpone_staging": "ch.other", "run_id": "killed", "created_epoch": 0})
    young = _json.dumps({"dpone_staging": "ch.orders", "run_id": "recent", "created_epoch": 4e9})
    for name, label in (("orders__old", old), ("other__old", other), ("orders__young", young)):
        ch.command(
            f"create table dpone_staging.{name} (id Int64) engine = MergeTree order by id comment '{label}'"
        )
    run(manifest({"strategy": "full_refresh"}), "r1")
    left = ch.query("select name from system.tables where database = 'dpone_staging' order by name")
    assert left == [("orders__young",), ("other__old",)]  # another load's, and one not stale yet, stay


def test_state_and_target_must_agree_on_clickhouse(clean_pg, clean_ch) -> None:
    from airflow_provider_dpone.contracts.errors import StateMissingError, TargetStateMismatchError

    pg, ch = clean_pg, clean_ch
    pg.execute("src", ORDERS)
    cursor = {"incremental": {"mode": "cursor", "cursor": "updated_at"}}
    m = manifest({"strategy": "incremental_append"}, cursor)
    run(m, "r1")
    ch.command("drop table raw.orders sync")
    with pytest.raises(TargetStateMismatchError, match="does not exist"):
        run(m, "r2")
    assert ch.query("select count() from system.tables where database = 'raw' and name = 'orders'") == [(0,)]
    pg.execute("dst", "delete from dpone.state")
    run(m, "r3")  # no state, no target: a first load
    pg.execute("dst", "delete from dpone.state")
    pg.execute(
        "src",
        "insert into orders select g, 'x', null, null, null, null, '2026-01-01', "
        "timestamptz '2027-01-01 00:00+00' + g * interval '1 s', null, null from generate_series(3001, 3010) g",
    )
    with pytest.raises(StateMissingError):
        run(m, "r4")
    rederive = {"incremental": {**cursor["incremental"], "on_state_missing": "from_target"}}
    report = run(manifest({"strategy": "incremental_append"}, rederive), "r5")
    assert report.rows == 10 and same(pg, ch)


def test_a_clickhouse_full_refresh_that_reads_nothing_keeps_the_target(clean_pg, clean_ch) -> None:
    from airflow_provider_dpone.contracts.errors import EmptySourceError

    pg, ch = clean_pg, clean_ch
    pg.execute("src", ORDERS)
    run(manifest({"strategy": "full_refresh"}), "r1")
    pg.execute("src", "delete from orders")
    with pytest.raises(EmptySourceError):
        run(manifest({"strategy": "full_refresh"}), "r2")
    assert ch.query("select count() from raw.orders") == [(3000,)]


def test_a_clickhouse_source_reads_only_its_window(clean_pg, clean_ch) -> None:
    pg, ch = clean_pg, clean_ch
    ch.command(CH_ORDERS)
    ch.command(
        "insert into src.orders select number, 'c', NULL, toDate32('2026-01-01') + number % 30, "
        "toDateTime64('2026-03-01 00:00:00', 6, 'UTC'), generateUUIDv4(), [], number, true "
        "from numbers(1, 300)"
    )
    window = {"column": "placed", "start": "2026-01-05", "end": "2026-01-07"}
    m = manifest(
        {"strategy": "full_refresh"}, {"table": "src.orders", "window": window}, ("clickhouse", "postgres")
    )
    assert run(m, "r1").rows == 20  # two of the thirty days, ten rows each
    days = pg.query("dst", "select distinct placed::text from raw.orders order by 1")
    assert days == [("2026-01-05",), ("2026-01-06",)]


def test_a_clickhouse_target_dropped_during_the_load_fails_the_finalize(
    clean_pg, clean_ch, monkeypatch
) -> None:
    from airflow_provider_dpone.contracts.errors import TargetStateMismatchError
    from airflow_provider_dpone.hooks.clickhouse import DponeClickHouseHook

    pg, ch = clean_pg, clean_ch
    pg.execute("src", ORDERS)
    m = manifest(
        {"strategy": "incremental_append"}, {"incremental": {"mode": "cursor", "cursor": "updated_at"}}
    )
    run(m, "r1")
    pg.execute("src", "update orders set updated_at = updated_at + interval '1 year' where id <= 5")
    real = DponeClickHouseHook.finalize

    def drop_first(self, ctx, staged, extra):
        ch.command("drop table raw.orders sync")
        return real(self, ctx, staged, extra)

    monkeypatch.setattr(DponeClickHouseHook, "finalize", drop_first)
    with pytest.raises(TargetStateMismatchError, match="disappeared while this run was loading"):
        run(m, "r2")
    assert ch.query("select count() from system.tables where database = 'raw' and name = 'orders'") == [(0,)]


def test_a_failed_clickhouse_run_keeps_its_staging_labelled_failed(clean_pg, clean_ch) -> None:
    from airflow_provider_dpone.hooks.clickhouse import DponeClickHouseHook
    from airflow_provider_dpone.runtime.protocols import LoadContext

    pg = clean_pg
    pg.execute("src", ORDERS)
    failing = manifest(
        {"strategy": "full_refresh", "staging": {"max_kept": 1}}, quality=[{"check": "row_count", "max": 1}]
    )
    for n in range(3):
        with pytest.raises(QualityGateError):
            run(failing, f"r{n}")
    kept = DponeClickHouseHook(conn_id="ch").kept_staging(LoadContext("ch", failing.loads[0], "next"))
    assert [(k.run_id, k.failed) for k in kept] == [("r2", True), ("r1", True)]  # r0 capped by max_kept
