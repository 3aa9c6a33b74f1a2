"""The SQL Server dialect, rendered without a server: quoting, the type map both ways (and the
types it refuses), DDL, bookkeeping statements, extract and quality SQL."""

from __future__ import annotations

import json
import re

import pytest

from airflow_provider_dpone.contracts.errors import BadInputError, UnsupportedError
from airflow_provider_dpone.contracts.table import CanonicalType, Column, TableSchema
from airflow_provider_dpone.schema.planner import ChangeKind, SchemaChange
from airflow_provider_dpone.sql.mssql import MSSQL as d
from airflow_provider_dpone.sql.mssql_extract import decode_json_columns
from airflow_provider_dpone.sql.mssql_types import canonical_from_native, key_type, text_of

pytestmark = pytest.mark.unit

C = CanonicalType


def params_in(sql: str) -> int:
    """The ``?`` markers outside string literals."""
    return re.sub(r"N?'(?:[^']|'')*'", "", sql).count("?")


# --- quoting -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "quoted"),
    [
        ("orders", "[orders]"),
        ("we]ird", "[we]]ird]"),
        ("]]", "[]]]]]"),
        ("a[b", "[a[b]"),
        ('x"; drop table t; --', '[x"; drop table t; --]'),
        ("Zoë 数据", "[Zoë 数据]"),
    ],
)
def test_quote_ident_brackets_and_doubles_the_closing_bracket(name: str, quoted: str) -> None:
    assert d.quote_ident(name) == quoted


@pytest.mark.parametrize("bad", ["", "a\x00b", "x" * 129])
def test_quote_ident_refuses_names_sql_server_cannot_hold(bad: str) -> None:
    with pytest.raises(BadInputError):
        d.quote_ident(bad)


def test_literals_are_unicode_and_doubled() -> None:
    assert d.quote_literal("it's") == "N'it''s'"
    assert d.quote_literal("'; exec xp_cmdshell 'x") == "N'''; exec xp_cmdshell ''x'"
    with pytest.raises(BadInputError):
        d.quote_literal("a\x00")


def test_table_refs_default_to_dbo_and_quote_each_part() -> None:
    assert d.parse_table("orders") == d.table("dbo", "orders")
    assert d.parse_table("raw.Orders; drop table x").sql == "[raw].[Orders; drop table x]"
    assert d.parse_table("raw.we]ird").sql == "[raw].[we]]ird]"
    assert str(d.parse_table("raw.orders")) == "raw.orders"


# --- types: SQL Server -> canonical ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("native", "expected"),
    [
        ("datetime2(3)", (C.TIMESTAMP, None, None, None)),
        ("datetime2(7)", (C.TIMESTAMP, None, None, None)),
        ("datetimeoffset(7)", (C.TIMESTAMPTZ, None, None, None)),
        ("datetime", (C.TIMESTAMP, None, None, None)),
        ("smalldatetime", (C.TIMESTAMP, None, None, None)),
        ("date", (C.DATE, None, None, None)),
        ("time(7)", (C.TIME, None, None, None)),
        ("decimal(38,4)", (C.DECIMAL, 38, 4, None)),
        ("numeric(10,2)", (C.DECIMAL, 10, 2, None)),
        ("numeric", (C.DECIMAL, 18, 0, None)),
        ("money", (C.DECIMAL, 19, 4, None)),
        ("smallmoney", (C.DECIMAL, 10, 4, None)),
        ("bit", (C.BOOLEAN, None, None, None)),
        ("tinyint", (C.INT16, None, None, None)),
        ("smallint", (C.INT16, None, None, None)),
        ("int", (C.INT32, None, None, None)),
        ("bigint", (C.INT64, None, None, None)),
        ("real", (C.FLOAT32, None, None, None)),
        ("float", (C.FLOAT64, None, None, None)),
        ("float(24)", (C.FLOAT32, None, None, None)),
        ("float(53)", (C.FLOAT64, None, None, None)),
        ("uniqueidentifier", (C.UUID, None, None, None)),
        ("nvarchar(max)", (C.STRING, None, None, None)),
        ("nvarchar(40) collate Latin1_General_CI_AS", (C.STRING, None, None, 40)),
        ("varchar(20) collate Latin1_General_100_CS_AS_SC_UTF8", (C.STRING, None, None, 20)),
        ("nchar(10)", (C.STRING, None, None, 10)),
        ("char(3)", (C.STRING, None, None, 3)),
        ("text", (C.STRING, None, None, None)),
        ("ntext", (C.STRING, None, None, None)),
        ("xml", (C.STRING, None, None, None)),
        ("varbinary(max)", (C.BINARY, None, None, None)),
        ("varbinary(16)", (C.BINARY, None, None, None)),
        ("binary(8)", (C.BINARY, None, None, None)),
        ("image", (C.BINARY, None, None, None)),
        ("rowversion", (C.BINARY, None, None, None)),
        ("timestamp", (C.BINARY, None, None, None)),
        ("json", (C.JSON, None, None, None)),
        ("DateTime2 (3)", (C.TIMESTAMP, None, None, None)),
        ("vector(3)", (C.UNKNOWN, None, None, None)),
    ],
)
def test_canonical_from_native(native: str, expected: tuple) -> None:
    assert canonical_from_native(native) == expected


def row(
    name: str, type_name: str, max_length: int = 0, precision: int = 0, scale: int = 0, **kw: object
) -> tuple:
    """One INTROSPECT_COLUMNS row."""
    return (
        name,
        type_name,
        max_length,
        precision,
        scale,
        kw.get("nullable", True),
        kw.get("collation"),
        False,
        kw.get("clr", False),
    )


def test_catalog_rows_become_columns_with_their_exact_native_type() -> None:
    name = d.column_from_catalog(
        row("name", "nvarchar", 80, collation="Latin1_General_CS_AS", nullable=False)
    )
    assert (name.type, name.length, name.nullable) == (C.STRING, 40, False)
    assert name.native_type == "nvarchar(40) collate Latin1_General_CS_AS" and name.dialect == "mssql"
    body = d.column_from_catalog(row("body", "varchar", -1, collation="SQL_Latin1_General_CP1_CI_AS"))
    assert (body.native_type, body.length) == ("varchar(max) collate SQL_Latin1_General_CP1_CI_AS", None)
    amount = d.column_from_catalog(row("amount", "decimal", 17, 38, 6))
    assert (amount.native_type, amount.precision, amount.scale) == ("decimal(38,6)", 38, 6)
    at = d.column_from_catalog(row("at", "datetimeoffset", 10, 34, 7))
    assert (at.native_type, at.type) == ("datetimeoffset(7)", C.TIMESTAMPTZ)
    ratio = d.column_from_catalog(row("ratio", "float", 4, 24))
    assert (ratio.native_type, ratio.type) == ("real", C.FLOAT32)
    version = d.column_from_catalog(row("rv", "timestamp", 8, nullable=False))
    assert (version.native_type, version.type) == ("timestamp", C.BINARY)
    blob = d.column_from_catalog(row("blob", "varbinary", -1))
    assert (blob.native_type, blob.type) == ("varbinary(max)", C.BINARY)


@pytest.mark.parametrize(
    ("type_name", "hint"),
    [("geometry", "STAsText"), ("geography", "STAsBinary"), ("hierarchyid", "ToString")],
)
def test_spatial_and_hierarchy_columns_are_refused_naming_the_column(type_name: str, hint: str) -> None:
    with pytest.raises(UnsupportedError, match=f"column 'shape_col' is {type_name}.*{hint}"):
        d.column_from_catalog(row("shape_col", type_name, -1, clr=True))


def test_sql_variant_and_clr_user_types_are_refused_naming_the_column() -> None:
    with pytest.raises(UnsupportedError, match="column 'anything' is sql_variant"):
        d.column_from_catalog(row("anything", "sql_variant", 8016))
    with pytest.raises(UnsupportedError, match="column 'money_t' is of the CLR type Currency"):
        d.column_from_catalog(row("money_t", "Currency", -1, clr=True))


# --- types: canonical -> SQL Server ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "native"),
    [
        (Column("a", C.BOOLEAN), "bit"),
        (Column("a", C.INT16), "smallint"),
        (Column("a", C.INT32), "int"),
        (Column("a", C.INT64), "bigint"),
        (Column("a", C.FLOAT32), "real"),
        (Column("a", C.FLOAT64), "float"),
        (Column("a", C.DECIMAL, precision=12, scale=2), "decimal(12,2)"),
        (Column("a", C.DECIMAL), "decimal(38,10)"),
        (Column("a", C.DECIMAL, precision=60, scale=4), "decimal(38,4)"),
        (Column("a", C.STRING, length=20), "nvarchar(20)"),
        (Column("a", C.STRING, length=5000), "nvarchar(max)"),
        (Column("a", C.STRING), "nvarchar(max)"),
        (Column("a", C.BINARY), "varbinary(max)"),
        (Column("a", C.DATE), "date"),
        (Column("a", C.TIME), "time(7)"),
        (Column("a", C.TIMESTAMP), "datetime2(7)"),
        (Column("a", C.TIMESTAMPTZ), "datetimeoffset(7)"),
        (Column("a", C.INTERVAL), "nvarchar(100)"),
        (Column("a", C.UUID), "uniqueidentifier"),
        (Column("a", C.JSON), "nvarchar(max)"),
        (Column("a", C.ARRAY, element=C.INT64), "nvarchar(max)"),
        (Column("a", C.UNKNOWN), "nvarchar(max)"),
    ],
)
def test_native_type_of_columns_from_other_databases(column: Column, native: str) -> None:
    assert d.native_type(column) == native


def mssql(native: str, c: CanonicalType = C.STRING, **kw: object) -> Column:
    return Column("c", c, native_type=native, dialect="mssql", **kw)  # type: ignore[arg-type]


def test_a_sql_server_column_keeps_its_type_and_collation_unless_a_table_cannot_store_it() -> None:
    assert (
        d.native_type(mssql("nvarchar(40) collate Latin1_General_CS_AS"))
        == "nvarchar(40) collate Latin1_General_CS_AS"
    )
    assert d.native_type(mssql("money", C.DECIMAL)) == "money"
    assert d.native_type(mssql("datetime", C.TIMESTAMP)) == "datetime"
    assert d.native_type(mssql("rowversion", C.BINARY)) == "binary(8)"  # a rowversion column is not writable
    assert d.native_type(mssql("timestamp", C.BINARY)) == "binary(8)"
    assert d.native_type(mssql("xml")) == "nvarchar(max)"  # xml cannot be compared
    assert (
        d.native_type(mssql("text collate Latin1_General_CI_AS"))
        == "varchar(max) collate Latin1_General_CI_AS"
    )
    assert d.native_type(mssql("image", C.BINARY)) == "varbinary(max)"
    with pytest.raises(UnsupportedError, match="column 'c' is geography"):
        d.native_type(mssql("geography", C.UNKNOWN))


def test_casts_drop_the_collation_and_key_columns_fit_an_index_key() -> None:
    assert d.cast_type(mssql("nvarchar(40) collate Latin1_General_CS_AS")) == "nvarchar(40)"
    assert d.cast_type(mssql("rowversion", C.BINARY)) == "binary(8)"
    assert key_type(Column("k", C.STRING)) == "nvarchar(450)"
    assert (
        key_type(mssql("varchar(max) collate Latin1_General_CI_AS"))
        == "varchar(900) collate Latin1_General_CI_AS"
    )
    assert key_type(Column("k", C.BINARY)) == "varbinary(900)"
    assert key_type(Column("k", C.INT64)) == "bigint"


def test_values_round_trip_through_text() -> None:
    assert text_of("x", "datetimeoffset(7)") == (
        "convert(varchar(33), convert(datetime2(7), switchoffset(x, '+00:00')), 126) + 'Z'"
    )
    assert text_of("x", "datetime2(3)") == "convert(varchar(33), x, 126)"
    assert text_of("x", "date") == "convert(varchar(10), x, 23)"
    assert text_of("x", "timestamp") == "convert(varchar(max), x, 1)"


# --- DDL -------------------------------------------------------------------------------------------

SCHEMA = TableSchema(
    (
        Column("id", C.INT64, nullable=False),
        Column(
            "code",
            C.STRING,
            nullable=False,
            native_type="varchar(10) collate Latin1_General_BIN2",
            dialect="mssql",
        ),
        Column("note", C.STRING),
    ),
    ("id",),
)


def test_create_table_states_nullability_and_names_the_key() -> None:
    ddl = d.create_table(d.table("raw", "t"), SCHEMA, primary_key=("id", "code"), fillfactor=90)
    assert ddl == (
        "create table [raw].[t] (\n"
        "  [id] bigint not null,\n"
        "  [code] varchar(10) collate Latin1_General_BIN2 not null,\n"
        "  [note] nvarchar(max) null,\n"
        "  constraint [t_pkey] primary key ([id], [code]) with (fillfactor = 90)\n)"
    )
    guarded = d.create_table(d.table("raw", "t"), SCHEMA, if_not_exists=True, unlogged=True)
    assert guarded.startswith("if object_id(N'[raw].[t]', N'U') is null\ncreate table [raw].[t] (")
    assert "[id] bigint null" in d.create_table(d.table("raw", "t"), SCHEMA, not_null=False)


def test_staging_numbers_rows_in_load_order_unless_it_may_become_the_target() -> None:
    staging = d.table("dpone_staging", "t__abc")
    numbered = d.create_staging_table(staging, SCHEMA, swapped_in=False)
    assert numbered.endswith("  [dpone_load_seq] bigint identity(1,1) not null\n)")
    assert "dpone_load_seq" not in d.create_staging_table(staging, SCHEMA, swapped_in=True)


def test_schema_changes_restate_the_full_type_collation_and_nullability() -> None:
    t = d.table("raw", "t")
    old = Column(
        "code",
        C.STRING,
        False,
        length=10,
        native_type="varchar(10) collate Latin1_General_BIN2",
        dialect="mssql",
    )
    wider = Column("code", C.STRING, False, length=40)
    widen = SchemaChange(ChangeKind.WIDEN, "code", source=wider, target=old, result=wider)
    assert d.schema_change_ddl(t, widen) == [
        "alter table [raw].[t] alter column [code] nvarchar(40) collate Latin1_General_BIN2 not null"
    ]
    relax = SchemaChange(ChangeKind.RELAX_NOT_NULL, "code", target=old)
    assert d.schema_change_ddl(t, relax) == [
        "alter table [raw].[t] alter column [code] varchar(10) collate Latin1_General_BIN2 null"
    ]
    big = SchemaChange(
        ChangeKind.WIDEN, "n", target=Column("n", C.INT32), result=Column("n", C.INT64, nullable=True)
    )
    assert d.schema_change_ddl(t, big) == ["alter table [raw].[t] alter column [n] bigint null"]
    add = SchemaChange(ChangeKind.ADD_COLUMN, "x]y", result=Column("x]y", C.DECIMAL, precision=9, scale=3))
    assert d.schema_change_ddl(t, add) == ["alter table [raw].[t] add [x]]y] decimal(9,3) null"]
    with pytest.raises(ValueError):
        d.schema_change_ddl(t, SchemaChange(ChangeKind.DROP, "x"))


def test_small_ddl_pieces() -> None:
    t = d.table("raw", "t")
    assert (
        d.create_schema("we'ird]") == "if schema_id(N'we''ird]') is null exec(N'create schema [we''ird]]]')"
    )
    assert d.add_column_if_missing(t, "valid_to", "datetimeoffset(7)") == (
        "if col_length(N'[raw].[t]', N'valid_to') is null alter table [raw].[t] add [valid_to] datetimeoffset(7) null"
    )
    assert (
        d.add_primary_key(t, ["id"], "t__x_pk")
        == "alter table [raw].[t] add constraint [t__x_pk] primary key ([id])"
    )
    assert d.drop_table(t) == "drop table if exists [raw].[t]"
    assert d.count_rows(t) == "select count_big(*) from [raw].[t]"


# --- staging labels: extended properties ----------------------------------------------------------


def test_staging_labels_live_in_ms_description() -> None:
    t = d.table("dpone_staging", "o'rders__abc")
    label = '{"dpone_staging": "p.orders", "run_id": "it\'s"}'
    sql = d.set_comment(t, label)
    assert sql.startswith("if exists (select 1 from sys.extended_properties where class = 1")
    assert "exec sys.sp_updateextendedproperty @name = N'MS_Description'" in sql
    assert "exec sys.sp_addextendedproperty @name = N'MS_Description'" in sql
    assert '@value = N\'{"dpone_staging": "p.orders", "run_id": "it\'\'s"}\'' in sql
    assert "@level0name = N'dpone_staging', @level1type = N'TABLE', @level1name = N'o''rders__abc'" in sql
    with pytest.raises(BadInputError):
        d.set_comment(t, "x" * 4000)
    query, params = d.staging_tables("dpone_staging")
    assert params == ("dpone_staging",) and "like N'{\"dpone[_]staging\"%'" in query
    query, params = d.table_comment(t)
    assert params == ("[dpone_staging].[o'rders__abc]",) and "N'MS_Description'" in query
    assert d.table_exists(t) == ("select case when object_id(?, N'U') is null then 0 else 1 end", (t.sql,))


# --- state table and crash journal ------------------------------------------------------------------


def test_state_and_journal_statements_take_the_same_parameters_as_postgres() -> None:
    t = d.table("dpone", "state")
    create = d.create_state_table(t)
    assert create[0].startswith("if schema_id(N'dpone') is null")
    assert "[load] nvarchar(200) not null" in create[1] and "primary key ([pipeline], [load])" in create[1]
    assert params_in(d.select_state(t)) == 2 and params_in(d.delete_state(t)) == 2
    assert params_in(d.list_state(t)) == 1
    upsert = d.upsert_state(t)
    assert params_in(upsert) == 4 and "with (updlock, serializable)" in upsert
    assert "if @@rowcount = 0 insert into [dpone].[state]" in upsert
    journal = d.table("dpone_staging", "dpone_journal")
    assert "[acknowledged] bit not null default 0" in d.create_journal_table(journal)[1]
    assert params_in(d.upsert_journal(journal)) == 5
    assert params_in(d.select_pending_journal(journal)) == 2
    assert params_in(d.acknowledge_journal(journal)) == 3
    every = [*create, upsert, d.upsert_journal(journal), *d.create_journal_table(journal)]
    assert not any(re.search(r"\bmerge\b", s, re.IGNORECASE) for s in every)


# --- extract ----------------------------------------------------------------------------------------


def test_cursor_window_takes_postgres_parameter_order() -> None:
    assert d.cursor_predicate("u", "datetime2(7)", False, False) == "[u] <= cast(? as datetime2(7))"
    plain = d.cursor_predicate("u", "datetime2(7)", True, False)
    assert plain == "[u] > cast(? as datetime2(7)) and [u] <= cast(? as datetime2(7))"
    back = d.cursor_predicate("u", "datetimeoffset(7)", True, True)
    assert params_in(back) == 3
    lower_then_lookback = "from (values (cast(? as datetimeoffset(7)), cast(? as float))) as p(v, s))"
    assert lower_then_lookback in back and back.endswith("and [u] <= cast(? as datetimeoffset(7))")
    day = d.cursor_predicate("d", "date", True, True)
    assert "cast(? as datetime2(7))" in day and "as date) from (values" in day


def test_a_rowversion_cursor_stops_below_the_oldest_open_transaction() -> None:
    bounds = d.cursor_bounds("[dbo].[t]", "rv", "timestamp")
    assert bounds == (
        "select convert(varchar(max), max([rv]), 1) from [dbo].[t] where [rv] < min_active_rowversion()"
    )
    assert d.cursor_predicate("rv", "timestamp", True, False) == (
        "[rv] > convert(binary(8), ?, 1) and [rv] <= convert(binary(8), ?, 1)"
    )
    assert (
        d.cursor_bounds("[dbo].[t]", "u", "datetime2(7)")
        == "select convert(varchar(33), max([u]), 126) from [dbo].[t]"
    )


def test_chunk_bounds_return_one_row_with_positional_parameters() -> None:
    first = d.chunk_bounds("[dbo].[t]", "id", "bigint", False, False)
    assert params_in(first) == 1 and "cast(m.mn + cast(p.chunk as bigint) as bigint)" in first
    later = d.chunk_bounds("[dbo].[t]", "u", "datetime2(7)", True, True)
    assert params_in(later) == 2 and "where [u] > p.lower" in later and "least(" not in later
    assert (
        "cross apply (select max([u]) as mx, min([u]) as mn from [dbo].[t] where [u] > p.lower) as m" in later
    )
    assert d.chunk_params(3600.0, None) == (3600.0,) and d.chunk_params(3600.0, "x") == (3600.0, "x")


def test_fixed_window_full_read_and_key_set() -> None:
    col = Column("day", C.DATE)
    assert d.window_predicate(col) == "[day] >= cast(? as date) and [day] < cast(? as date)"
    rel = d.source_relation(None, "select id, name from dbo.users where active = 1;")
    assert rel == "(select id, name from dbo.users where active = 1) as dpone_src"
    xml = Column("doc", C.STRING, native_type="xml", dialect="mssql")
    casts = d.read_casts(TableSchema((Column("id", C.INT64), xml)))
    assert d.select_rows(rel, ["id", "doc"], "", casts) == (
        "select [id], cast([doc] as nvarchar(max)) as [doc] from " + rel
    )
    assert d.key_set_query("select * from dbo.users", ["id"]) == (
        "select [id] from (select * from dbo.users) as dpone_src"
    )
    with pytest.raises(UnsupportedError, match="WITH"):
        d.source_relation(None, ";with x as (select 1 as a) select a from x")


# --- quality gates ----------------------------------------------------------------------------------


def test_quality_statements() -> None:
    s = d.table("dpone_staging", "t__abc")
    query, failing = d.quality_not_null(s, ["a", "b"])
    assert query.startswith(
        "select count_big(case when [a] is null or [b] is null then 1 end), count_big(case"
    )
    counts, dup = d.quality_unique(s, ["a"])
    assert "having count_big(*) > 1" in counts and dup.startswith(
        "exists (select 1 from (select [a] as dpone_k0"
    )
    assert d.sample_keys(s, ["a"], dup).startswith(
        "select top (5) [a] from [dpone_staging].[t__abc] where exists"
    )
    query, failing, params = d.quality_accepted_values(
        s, Column("status", C.STRING, length=10), ["new", "it's"]
    )
    assert (
        failing
        == "[status] is not null and [status] not in (select cast([value] as nvarchar(10)) from openjson(?))"
    )
    assert json.loads(params[0]) == ["new", "it's"]
    assert "datediff_big(microsecond, cast(max([at]) as datetimeoffset(7)), sysdatetimeoffset())" in (
        d.quality_freshness(s, "at")
    )


def test_null_key_samples_come_back_as_json_and_are_decoded() -> None:
    query = d.null_keys(d.table("dpone_staging", "t__abc"), ["id", "region"])
    assert "for json path, include_null_values" in query and "as [dpone_json_sample]" in query
    rows = decode_json_columns(["dpone_nulls", "dpone_json_sample"], [(2, '[{"id":null,"region":"eu"}]')])
    assert rows == [(2, [{"id": None, "region": "eu"}])]
    assert decode_json_columns(["n", "dpone_json_sample"], [(0, None)]) == [(0, None)]
