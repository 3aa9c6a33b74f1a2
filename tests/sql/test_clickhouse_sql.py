"""ClickHouse dialect: quoting, both type mappings, DDL of schema changes (pure)."""

from __future__ import annotations

import pytest

from airflow_provider_dpone.contracts.errors import BadInputError
from airflow_provider_dpone.contracts.table import CanonicalType as T
from airflow_provider_dpone.contracts.table import Column, TableSchema
from airflow_provider_dpone.schema.planner import ChangeKind, plan_schema
from airflow_provider_dpone.sql.clickhouse import CLICKHOUSE as dialect


def test_identifiers_and_literals_are_quoted() -> None:
    assert dialect.quote_ident("we`ird\\name") == "`we\\`ird\\\\name`"
    assert dialect.parse_table("raw.orders").sql == "`raw`.`orders`"
    assert dialect.parse_table("orders", "dwh") == dialect.table("dwh", "orders")
    assert dialect.quote_literal("it's \\ ok") == "'it\\'s \\\\ ok'"
    with pytest.raises(BadInputError):
        dialect.quote_ident("")


@pytest.mark.parametrize(
    ("column", "expected"),
    [
        (Column("a", T.INT32, nullable=False), "Int32"),
        (Column("a", T.INT64), "Nullable(Int64)"),
        (Column("a", T.DECIMAL, precision=12, scale=2), "Nullable(Decimal(12, 2))"),
        (Column("a", T.DECIMAL), "Nullable(Decimal(38, 10))"),  # unbounded numeric
        (Column("a", T.TIMESTAMPTZ, nullable=False), "DateTime64(6, 'UTC')"),
        (Column("a", T.TIMESTAMP), "Nullable(DateTime64(6))"),
        (Column("a", T.UUID), "Nullable(UUID)"),
        (Column("a", T.JSON), "Nullable(String)"),
        (Column("a", T.ARRAY, element=T.INT32), "Array(Nullable(Int32))"),  # arrays are never Nullable
        (Column("a", T.DATE), "Nullable(Date32)"),
        (
            Column("a", T.STRING, native_type="LowCardinality(String)", dialect="clickhouse"),
            "LowCardinality(Nullable(String))",
        ),
    ],
)
def test_canonical_to_clickhouse(column: Column, expected: str) -> None:
    assert dialect.column_type(column) == expected


def test_sorting_key_columns_are_never_nullable() -> None:
    assert dialect.column_type(Column("id", T.INT64, nullable=True), key=True) == "Int64"


@pytest.mark.parametrize(
    ("native", "type_", "extra"),
    [
        ("Nullable(Int64)", T.INT64, {"nullable": True}),
        ("UInt64", T.DECIMAL, {"precision": 20, "scale": 0, "nullable": False}),
        ("UInt32", T.INT64, {}),
        ("Decimal(18, 4)", T.DECIMAL, {"precision": 18, "scale": 4}),
        ("Decimal64(3)", T.DECIMAL, {"precision": 18, "scale": 3}),
        ("DateTime64(3, 'Europe/Berlin')", T.TIMESTAMPTZ, {}),
        ("DateTime", T.TIMESTAMP, {}),
        ("LowCardinality(Nullable(String))", T.STRING, {"nullable": True}),
        ("Array(Nullable(String))", T.ARRAY, {"element": T.STRING}),
        ("Enum8('a' = 1, 'b' = 2)", T.STRING, {}),
        ("FixedString(16)", T.BINARY, {"length": 16}),
        ("JSON", T.JSON, {}),
        ("Map(String, UInt64)", T.UNKNOWN, {}),
    ],
)
def test_clickhouse_to_canonical(native: str, type_: T, extra: dict) -> None:
    column = dialect.to_canonical("c", native)
    assert column.type is type_ and column.native_type == native
    for key, value in extra.items():
        assert getattr(column, key) == value


def test_round_trip_through_clickhouse_is_stable() -> None:
    """A source column and the column ClickHouse creates for it plan as no change."""
    source = TableSchema(
        (
            Column("id", T.INT64, nullable=False),
            Column("amount", T.DECIMAL),  # unbounded: stored as Decimal(38, 10)
            Column("took", T.INTERVAL),
            Column("tags", T.ARRAY, element=T.STRING),
            Column("at", T.TIMESTAMPTZ),
        ),
        ("id",),
    )
    created = TableSchema(
        tuple(
            dialect.to_canonical(c.name, dialect.column_type(c, key=c.name == "id")) for c in source.columns
        ),
        ("id",),
    )
    assert plan_schema(dialect.as_stored(source), created).changes == ()


def test_schema_change_ddl() -> None:
    target = TableSchema(
        (Column("id", T.INT64, False), Column("n", T.INT32, False, native_type="Int32", dialect="clickhouse"))
    )
    source = TableSchema(
        (Column("id", T.INT64, False), Column("n", T.INT64, True), Column("extra", T.STRING, False))
    )
    plan = plan_schema(dialect.as_stored(source), target)
    kinds = {(c.kind, c.column) for c in plan.changes}
    assert kinds == {
        (ChangeKind.WIDEN, "n"),
        (ChangeKind.RELAX_NOT_NULL, "n"),
        (ChangeKind.ADD_COLUMN, "extra"),
    }
    ddl = dialect.schema_changes_ddl(dialect.table("raw", "t"), plan.changes)
    assert ddl == [
        "alter table `raw`.`t` add column if not exists `extra` Nullable(String)",
        "alter table `raw`.`t` modify column `n` Nullable(Int64)",  # widened and relaxed at once
    ]


def test_cursor_predicate_binds_values_server_side() -> None:
    where = dialect.cursor_predicate("updated_at", "DateTime64(6, 'UTC')", True, True)
    assert where == (
        "`updated_at` > {lower:DateTime64(6, 'UTC')} - toIntervalMicrosecond({lookback_us:Int64}) "
        "and `updated_at` <= {upper:DateTime64(6, 'UTC')}"
    )
    assert dialect.param_type("LowCardinality(Nullable(String))") == "String"
    with pytest.raises(BadInputError):
        dialect.param_type("String}; drop table x; --")


def test_partition_and_delete_statements() -> None:
    t, s = dialect.table("raw", "t"), dialect.table("dpone_staging", "t__x")
    assert dialect.replace_partition_from(t, "2026", s) == (
        "alter table `raw`.`t` replace partition id '2026' from `dpone_staging`.`t__x`"
    )
    assert dialect.delete_matching_keys(t, s, ["a", "b"]) == (
        "delete from `raw`.`t` where (`a`, `b`) in (select `a`, `b` from `dpone_staging`.`t__x`)"
    )
