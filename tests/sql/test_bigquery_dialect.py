"""The BigQuery dialect, rendered: quoting of project.dataset.table paths, literals a script
carries inline, the type mapping both ways (a target dpone creates reads back as no schema
change), DDL for targets and staging, catalog reads, state and journal tables and the quality
fragments; every statement parsed by sqlglot's bigquery dialect. Pure: no server."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from airflow_provider_dpone.contracts.errors import BadInputError, UnsupportedError
from airflow_provider_dpone.contracts.table import CanonicalType as T
from airflow_provider_dpone.contracts.table import Column, TableSchema
from airflow_provider_dpone.schema.planner import ChangeKind, SchemaChange, plan_schema
from airflow_provider_dpone.sql.bigquery import BIGQUERY as d
from airflow_provider_dpone.sql.bigquery import Relation
from airflow_provider_dpone.sql.bigquery_catalog import Partitioning, schema_from_api
from airflow_provider_dpone.sql.bigquery_types import (
    column_from_field,
    from_staging,
    literal,
    native_type,
    quote_string,
    staging_type,
    stored,
)

from .bigquery_sql import check_bigquery

pytestmark = pytest.mark.unit

TARGET = d.parse_table("my-proj.raw.items")
STAGING = d.table("my-proj.dpone_staging", "items__abc")


# --- names -----------------------------------------------------------------------------------------


def test_identifiers_are_backtick_quoted_and_escaped():
    assert d.quote_ident("id") == "`id`"
    assert d.quote_ident("a`b\\c") == "`a\\`b\\\\c`"
    assert d.quote_ident("select") == "`select`"  # reserved words are fine quoted
    for bad in ("", "a\nb", "a\x00"):
        with pytest.raises(BadInputError):
            d.quote_ident(bad)


@pytest.mark.parametrize(
    ("ref", "schema", "name", "sql"),
    [
        ("my-proj.raw.items", "my-proj.raw", "items", "`my-proj`.`raw`.`items`"),
        ("raw.items", "raw", "items", "`raw`.`items`"),
        ("example.com:proj.raw.items", "example.com:proj.raw", "items", "`example.com:proj`.`raw`.`items`"),
        ("`my-proj.raw.items`", "my-proj.raw", "items", "`my-proj`.`raw`.`items`"),
    ],
)
def test_table_paths(ref, schema, name, sql):
    table = d.parse_table(ref)
    assert (table.schema, table.name, table.sql) == (schema, name, sql)
    assert str(table) == f"{schema}.{name}"
    check_bigquery(f"select * from {table.sql}")


def test_a_table_needs_a_dataset():
    with pytest.raises(BadInputError, match="dataset"):
        d.parse_table("items")
    assert d.parse_table("items", default_schema="raw").sql == "`raw`.`items`"
    assert d.table("raw", "items").sibling("other").sql == "`raw`.`other`"


# --- literals and inlined parameters ---------------------------------------------------------------


def test_string_literals_escape_what_googlesql_needs():
    assert quote_string("it's") == "'it\\'s'"
    assert quote_string("a\\b") == "'a\\\\b'"
    assert quote_string("line\nnext\ttab\r") == "'line\\nnext\\ttab\\r'"
    assert quote_string("bell\x07") == "'bell\\u0007'"
    assert quote_string('{"a": "ü"}') == '\'{"a": "ü"}\''
    check_bigquery(f"select {quote_string(chr(39) + chr(10) + chr(92))}")


@pytest.mark.parametrize(
    ("value", "sql"),
    [
        (None, "null"),
        (True, "true"),
        (42, "42"),
        (1.5, "1.5"),
        (float("nan"), "cast('nan' as float64)"),
        (Decimal("12.50"), "numeric '12.50'"),
        (Decimal("1." + "1" * 20), "bignumeric '1." + "1" * 20 + "'"),
        (dt.date(2026, 1, 31), "date '2026-01-31'"),
        (dt.datetime(2026, 1, 31, 12, 30), "datetime '2026-01-31 12:30:00'"),
        (
            dt.datetime(2026, 1, 31, 14, 30, tzinfo=dt.timezone(dt.timedelta(hours=2))),
            "timestamp '2026-01-31 12:30:00+00'",
        ),
        (dt.time(1, 2, 3), "time '01:02:03'"),
        (b"\x00\xff", "from_base64('AP8=')"),
        ("x'y", "'x\\'y'"),
    ],
)
def test_typed_literals(value, sql):
    assert literal(value) == sql
    check_bigquery(f"select {sql}")


def test_inline_replaces_placeholders_outside_quotes_and_comments():
    sql = "select '?', `a?b`, \"?\" from t where x = ? -- ?\n and y = ? /* ? */"
    out = d.inline(sql, ("it's", dt.date(2026, 1, 1)))
    assert out == (
        "select '?', `a?b`, \"?\" from t where x = 'it\\'s' -- ?\n and y = date '2026-01-01' /* ? */"
    )
    with pytest.raises(ValueError, match="fewer"):
        d.inline("select ?, ?", (1,))
    with pytest.raises(ValueError, match="more"):
        d.inline("select ?", (1, 2))
    with pytest.raises(ValueError, match="positional"):
        d.inline("select @a", {"a": 1})


def test_script_is_one_transaction_with_the_state_inlined():
    state = (d.upsert_state(d.table("dpone", "state")), ("p", "items", '{"v": 1}', "run-1"))
    script = d.script(["delete from `raw`.`t` where true"], [state])
    assert script.startswith("begin transaction;\n") and script.endswith("\ncommit transaction;")
    assert "'{\"v\": 1}' as state" in script and "?" not in script
    assert check_bigquery(script) == ["Transaction", "Delete", "Merge", "Commit"]


# --- types -----------------------------------------------------------------------------------------

COLUMNS = [
    (Column("b", T.BOOLEAN), "BOOL", "BOOL"),
    (Column("i16", T.INT16), "INT64", "INT64"),
    (Column("i32", T.INT32), "INT64", "INT64"),
    (Column("i64", T.INT64), "INT64", "INT64"),
    (Column("f32", T.FLOAT32), "FLOAT64", "FLOAT64"),
    (Column("f64", T.FLOAT64), "FLOAT64", "FLOAT64"),
    (Column("n", T.DECIMAL, precision=12, scale=2), "NUMERIC(12, 2)", "NUMERIC"),
    (Column("n29", T.DECIMAL, precision=38, scale=9), "NUMERIC(38, 9)", "NUMERIC"),
    (Column("n10", T.DECIMAL, precision=38, scale=10), "BIGNUMERIC(38, 10)", "BIGNUMERIC"),
    (Column("big", T.DECIMAL, precision=60, scale=30), "BIGNUMERIC(60, 30)", "STRING"),
    (Column("any", T.DECIMAL), "BIGNUMERIC", "STRING"),
    (Column("s", T.STRING, length=40), "STRING", "STRING"),
    (Column("bin", T.BINARY), "BYTES", "BYTES"),
    (Column("d", T.DATE), "DATE", "DATE"),
    (Column("t", T.TIME), "TIME", "STRING"),
    (Column("ts", T.TIMESTAMP), "DATETIME", "DATETIME"),
    (Column("tz", T.TIMESTAMPTZ), "TIMESTAMP", "TIMESTAMP"),
    (Column("iv", T.INTERVAL), "STRING", "STRING"),
    (Column("u", T.UUID), "STRING", "STRING"),
    (Column("j", T.JSON), "JSON", "STRING"),
    (Column("a", T.ARRAY, element=T.INT32), "ARRAY<INT64>", "ARRAY<INT64>"),
    (Column("aj", T.ARRAY, element=T.JSON), "ARRAY<JSON>", "ARRAY<STRING>"),
    (Column("x", T.UNKNOWN), "STRING", "STRING"),
]


@pytest.mark.parametrize(("column", "target", "staged"), COLUMNS, ids=[c.name for c, _, _ in COLUMNS])
def test_target_and_staging_types(column, target, staged):
    assert native_type(column) == target
    assert staging_type(column) == staged
    cast = from_staging(column, "`c`")
    if staged == target.partition("(")[0]:
        assert cast == "`c`"
    check_bigquery(f"select {cast} from `d`.`s`")


def test_casts_from_staging():
    assert from_staging(Column("t", T.TIME), "x") == "cast(x as TIME)"
    assert from_staging(Column("j", T.JSON), "x") == "parse_json(x)"
    assert from_staging(Column("n", T.DECIMAL), "x") == "cast(x as BIGNUMERIC)"
    assert from_staging(Column("aj", T.ARRAY, element=T.JSON), "x") == (
        "array(select parse_json(e) from unnest(x) as e with offset as o order by o)"
    )


def test_decimals_wider_than_bignumeric_are_refused():
    with pytest.raises(UnsupportedError, match=r"'n'.*decimal\(80,40\)"):
        native_type(Column("n", T.DECIMAL, precision=80, scale=40))


@pytest.mark.parametrize(("column", "target", "staged"), COLUMNS, ids=[c.name for c, _, _ in COLUMNS])
def test_a_created_target_reads_back_as_no_schema_change(column, target, staged):
    """The table dpone creates, read back from tables.get, compares with the source (as
    ``stored``) without any change: no DDL on the next run, no narrow/incompatible failure."""
    repeated = target.startswith("ARRAY<")
    ftype = target[6:-1] if repeated else target
    head, _, args = ftype.partition("(")
    precision, scale = (int(x) for x in args.rstrip(")").split(",")) if args else (None, None)
    back = column_from_field(
        column.name, head, "REPEATED" if repeated else "NULLABLE", precision=precision, scale=scale
    )
    assert back.native_type == target
    plan = plan_schema(
        TableSchema((stored(column),)), TableSchema((back,)), mode="safe", on_type_change="fail"
    )
    assert not plan.changes, [c.describe() for c in plan.changes]


def test_tables_get_schema_with_legacy_names_modes_and_records():
    fields = [
        {"name": "id", "type": "INTEGER", "mode": "REQUIRED"},
        {"name": "amount", "type": "NUMERIC", "precision": "12", "scale": "2"},
        {"name": "plain", "type": "NUMERIC"},
        {"name": "code", "type": "STRING", "maxLength": "8"},
        {"name": "ok", "type": "BOOLEAN"},
        {"name": "f", "type": "FLOAT"},
        {"name": "at", "type": "TIMESTAMP"},
        {"name": "tags", "type": "STRING", "mode": "REPEATED"},
        {"name": "geo", "type": "GEOGRAPHY"},
        {
            "name": "rec",
            "type": "RECORD",
            "fields": [{"name": "x", "type": "INT64"}, {"name": "y", "type": "STRING", "mode": "REPEATED"}],
        },
    ]
    schema = schema_from_api(fields, ("id",))
    got = {
        c.name: (c.type, c.nullable, c.precision, c.scale, c.length, c.native_type) for c in schema.columns
    }
    assert got["id"] == (T.INT64, False, None, None, None, "INT64")
    assert got["amount"] == (T.DECIMAL, True, 12, 2, None, "NUMERIC(12, 2)")
    assert got["plain"] == (T.DECIMAL, True, 38, 9, None, "NUMERIC")
    assert got["code"] == (T.STRING, True, None, None, 8, "STRING(8)")
    assert got["ok"][0] is T.BOOLEAN and got["f"][0] is T.FLOAT64 and got["at"][0] is T.TIMESTAMPTZ
    assert got["tags"][0] is T.ARRAY and schema.column("tags").element is T.STRING
    assert got["geo"] == (T.UNKNOWN, True, None, None, None, "GEOGRAPHY")
    assert got["rec"][5] == "STRUCT<x INT64, y ARRAY<STRING>>"
    assert schema.primary_key == ("id",)


def test_partitioning_from_tables_get():
    assert Partitioning.from_api({"timePartitioning": {"type": "DAY", "field": "day"}}) == Partitioning(
        "DAY", "day"
    )
    assert Partitioning.from_api({"timePartitioning": {"type": "DAY"}}) == Partitioning("DAY", None)
    ranged = {"rangePartitioning": {"field": "k", "range": {"start": "0", "end": "100", "interval": "10"}}}
    assert Partitioning.from_api(ranged) == Partitioning("RANGE", "k", 0, 100, 10)
    assert Partitioning.from_api({}) is None


# --- DDL -------------------------------------------------------------------------------------------

SCHEMA = TableSchema(
    (
        Column("id", T.INT64, nullable=False),
        Column("amount", T.DECIMAL, precision=12, scale=2, nullable=False),
        Column("tags", T.ARRAY, element=T.STRING, nullable=False),
        Column("t", T.TIME),
        Column("day", T.DATE),
    ),
    ("id",),
)


def test_create_target_table():
    ddl = d.create_table(TARGET, SCHEMA, primary_key=("id",), partition_by="`day`", cluster_by=["id"])
    assert ddl == (
        "create table `my-proj`.`raw`.`items` (`id` INT64 not null, `amount` NUMERIC(12, 2) not null, "
        "`tags` ARRAY<STRING>, `t` TIME, `day` DATE) partition by `day` cluster by `id`"
    )
    declared = d.create_table(TARGET, SCHEMA, primary_key=("id",), if_not_exists=True, key_constraint=True)
    assert declared.startswith("create table if not exists") and "primary key (`id`) not enforced" in declared
    for sql in (ddl, declared):
        check_bigquery(sql)


def test_create_staging_table_is_all_nullable_in_staged_types_and_expires():
    ddl = d.create_staging_table(STAGING, SCHEMA, '{"dpone_staging": "p.items"}', expiration_days=3)
    assert "not null" not in ddl
    assert "`amount` NUMERIC, `tags` ARRAY<STRING>, `t` STRING, `day` DATE" in ddl
    assert 'description = \'{"dpone_staging": "p.items"}\'' in ddl
    assert "labels = [('dpone', 'staging')]" in ddl and "interval 3 day" in ddl
    check_bigquery(ddl)
    assert d.staging_load_schema(SCHEMA) == [
        {"name": "id", "type": "INT64", "mode": "NULLABLE"},
        {"name": "amount", "type": "NUMERIC", "mode": "NULLABLE"},
        {"name": "tags", "type": "STRING", "mode": "REPEATED"},
        {"name": "t", "type": "STRING", "mode": "NULLABLE"},
        {"name": "day", "type": "DATE", "mode": "NULLABLE"},
    ]


def test_schema_changes_one_alter_each():
    added = Column("note", T.STRING)
    wide = Column("amount", T.DECIMAL, precision=20, scale=2)
    assert d.schema_change_ddl(TARGET, SchemaChange(ChangeKind.ADD_COLUMN, "note", added, result=added)) == [
        "alter table `my-proj`.`raw`.`items` add column if not exists `note` STRING"
    ]
    assert d.schema_change_ddl(TARGET, SchemaChange(ChangeKind.WIDEN, "amount", wide, result=wide)) == [
        "alter table `my-proj`.`raw`.`items` alter column `amount` set data type NUMERIC(20, 2)"
    ]
    assert d.schema_change_ddl(TARGET, SchemaChange(ChangeKind.RELAX_NOT_NULL, "id")) == [
        "alter table `my-proj`.`raw`.`items` alter column `id` drop not null"
    ]
    with pytest.raises(ValueError):
        d.schema_change_ddl(TARGET, SchemaChange(ChangeKind.DROP, "gone"))
    for kind, col in ((ChangeKind.ADD_COLUMN, added), (ChangeKind.WIDEN, wide)):
        check_bigquery(d.schema_change_ddl(TARGET, SchemaChange(kind, col.name, col, result=col))[0])


def test_what_bigquery_has_no_form_of():
    for call in (
        d.advisory_lock,
        lambda: d.lock_table(TARGET),
        lambda: d.analyze(TARGET),
        lambda: d.replace_partition(TARGET, TARGET, TARGET, "", ""),
    ):
        with pytest.raises(UnsupportedError):
            call()
    assert d.swap_in(STAGING, TARGET, None) == [
        "create table `my-proj`.`raw`.`items` copy `my-proj`.`dpone_staging`.`items__abc`"
    ]


# --- catalog, state, journal, quality: every statement parses ----------------------------------------


def test_catalog_reads():
    query, params = d.table_exists(TARGET)
    assert query == "select count(*) > 0 from `my-proj`.`raw`.INFORMATION_SCHEMA.TABLES where table_name = ?"
    assert params == ("items",)
    query, params = d.staging_tables("my-proj.dpone_staging")
    assert "json_value(option_value, '$')" in query and params == ('{"dpone_staging"',)
    assert d.table_comment(STAGING)[1] == ("items__abc",)
    assert d.set_comment(STAGING, "x'y") == (
        "alter table `my-proj`.`dpone_staging`.`items__abc` set options (description = 'x\\'y')"
    )
    for sql in (
        query,
        d.table_exists(TARGET)[0],
        d.columns_query(TARGET)[0],
        d.table_comment(STAGING)[0],
        d.set_comment(STAGING, "x"),
        d.now_epoch(),
        d.create_schema("my-proj.raw"),
    ):
        check_bigquery(sql)


def test_state_and_journal_statements_parse_and_take_positional_parameters():
    state, journal = d.table("dpone", "state"), d.table("dpone_staging", "dpone_journal")
    expected = {
        d.select_state(state): 2,
        d.list_state(state): 1,
        d.upsert_state(state): 4,
        d.delete_state(state): 2,
        d.upsert_journal(journal): 5,
        d.select_pending_journal(journal): 2,
        d.acknowledge_journal(journal): 3,
    }
    for sql, n in expected.items():
        check_bigquery(sql)
        assert d.inline(sql, ["v"] * n).count("'v'") == n
    for sql in d.create_state_table(state) + d.create_journal_table(journal):
        check_bigquery(sql)


def test_quality_fragments():
    not_null, failing = d.quality_not_null(STAGING, ["id", "t"])
    assert not_null.startswith(
        "select countif(`id` is null or `t` is null), countif(`id` is null), countif(`t` is null)"
    )
    unique, dup = d.quality_unique(STAGING, ["id"])
    accepted, bad, params = d.quality_accepted_values(STAGING, Column("code", T.INT64), [1, "a"])
    assert params == (["1", "a"],)
    for sql in (
        not_null,
        unique,
        accepted,
        d.sample_keys(STAGING, ["id"], failing),
        d.sample_keys(STAGING, ["id"], dup),
        d.sample_keys(STAGING, ["id"], bad),
        d.quality_freshness(STAGING, "day"),
        d.null_keys(STAGING, ["id", "day"]),
        d.duplicate_keys(STAGING, ["id", "day"]),
        d.keep_last_per_key(STAGING, ["id"]),
        d.count_rows(STAGING),
        d.drop_table(STAGING),
        d.render_check_sql("select count(*) from {staging} where amount < 0", STAGING, TARGET),
    ):
        check_bigquery(sql)


def test_typed_staging_casts_only_when_needed():
    plain = TableSchema((Column("id", T.INT64), Column("day", T.DATE)))
    assert d.typed_staging(STAGING, plain) is STAGING
    typed = d.typed_staging(STAGING, SCHEMA)
    assert isinstance(typed, Relation) and str(typed) == str(STAGING)
    assert typed.sql == (
        "(select `id`, `amount`, `tags`, cast(`t` as TIME) as `t`, `day` "
        "from `my-proj`.`dpone_staging`.`items__abc`)"
    )
    check_bigquery(d.insert_select(TARGET, typed, SCHEMA.names))


def test_partition_ids_and_decorators():
    day, at, k = Column("day", T.DATE), Column("at", T.TIMESTAMPTZ), Column("k", T.INT64)
    assert (
        d.partition_id(day, Partitioning("DAY", "day"))
        == "coalesce(format_date('%Y%m%d', `day`), '__NULL__')"
    )
    assert d.partition_id(at, Partitioning("HOUR", "at")) == (
        "coalesce(format_timestamp('%Y%m%d%H', `at`, 'UTC'), '__NULL__')"
    )
    ranged = d.partition_id(k, Partitioning("RANGE", "k", 0, 100, 10))
    assert "div(`k` - 0, 10) * 10" in ranged and "'__UNPARTITIONED__'" in ranged
    for col, spec in (
        (day, Partitioning("MONTH", "day")),
        (at, Partitioning("DAY", "at")),
        (k, Partitioning("RANGE", "k", 0, 100, 10)),
    ):
        check_bigquery(d.partition_ids(STAGING, col, spec))
    assert d.decorated(TARGET, "20260131") == "my-proj.raw.items$20260131"
    assert d.decorated(TARGET, "__NULL__") == "my-proj.raw.items$__NULL__"
    with pytest.raises(ValueError):
        d.decorated(TARGET, "2026-01-31; drop")
