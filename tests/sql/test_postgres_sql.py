from __future__ import annotations

import pytest

from airflow_provider_dpone.contracts.errors import BadInputError
from airflow_provider_dpone.contracts.table import CanonicalType, Column, TableSchema
from airflow_provider_dpone.sql.postgres import POSTGRES as dialect


def test_quote_ident_escapes_quotes() -> None:
    assert dialect.quote_ident('we"ird') == '"we""ird"'
    assert dialect.parse_table("raw.Orders; drop table x").sql == '"raw"."Orders; drop table x"'
    with pytest.raises(BadInputError):
        dialect.quote_ident("")


def test_table_ref_default_schema() -> None:
    assert dialect.parse_table("orders") == dialect.table("public", "orders")
    assert str(dialect.parse_table("raw.orders")) == "raw.orders"


@pytest.mark.parametrize(
    ("native", "expected"),
    [
        ("numeric(38,10)", (CanonicalType.DECIMAL, 38, 10, None)),
        ("numeric", (CanonicalType.DECIMAL, None, None, None)),
        ("character varying(20)", (CanonicalType.STRING, None, None, 20)),
        ("timestamp with time zone", (CanonicalType.TIMESTAMPTZ, None, None, None)),
        ("timestamp(3) with time zone", (CanonicalType.TIMESTAMPTZ, None, None, None)),
        ("jsonb", (CanonicalType.JSON, None, None, None)),
        ("integer[]", (CanonicalType.ARRAY, None, None, None)),
        ("tsvector", (CanonicalType.UNKNOWN, None, None, None)),
    ],
)
def test_canonical_from_native(native, expected) -> None:
    assert dialect.canonical_from_native(native) == expected


def test_enum_and_domain_columns_map_to_portable_types() -> None:
    enum = dialect.column_from_catalog(("m", "mood", False, "e", False, "", "", True))
    domain = dialect.column_from_catalog(("d", "posint", True, "d", False, "integer", "", True))
    assert (enum.native_type, enum.type, enum.nullable) == ("text", CanonicalType.STRING, True)
    assert (domain.native_type, domain.nullable) == ("integer", False)


def test_native_type_from_other_dialect() -> None:
    assert dialect.native_type(Column("a", CanonicalType.DECIMAL, precision=12, scale=2)) == "numeric(12,2)"
    assert dialect.native_type(Column("a", CanonicalType.STRING, length=5)) == "varchar(5)"
    assert dialect.native_type(Column("a", CanonicalType.ARRAY, element=CanonicalType.INT64)) == "bigint[]"
    assert dialect.native_type(Column("a", CanonicalType.JSON)) == "jsonb"


def test_create_table_keeps_not_null_and_primary_key() -> None:
    schema = TableSchema(
        (
            Column("id", CanonicalType.INT64, False, native_type="bigint", dialect="postgres"),
            Column("v", CanonicalType.STRING, True, native_type="text", dialect="postgres"),
        ),
        ("id",),
    )
    ddl = dialect.create_table(dialect.table("raw", "t"), schema, primary_key=("id",), if_not_exists=True)
    assert (
        ddl
        == 'create table if not exists "raw"."t" (\n  "id" bigint not null,\n  "v" text,\n  primary key ("id")\n)'
    )
    assert dialect.create_table(dialect.table("s", "t"), schema, unlogged=True).startswith(
        'create unlogged table "s"."t"'
    )


def test_cursor_predicate_uses_parameters_only() -> None:
    assert dialect.cursor_predicate("u", "timestamptz", False, False) == '"u" <= %s::timestamptz'
    assert dialect.cursor_predicate("u", "timestamptz", True, True) == (
        '"u" > (%s::timestamptz - make_interval(secs => %s)) and "u" <= %s::timestamptz'
    )


def test_merge_statements() -> None:
    t, s = dialect.table("raw", "o"), dialect.table("stg", "o1")
    update = dialect.merge_update(t, s, ["id", "v"], ["id"])
    assert update == 'update "raw"."o" as t set "v" = s."v" from "stg"."o1" as s where t."id" = s."id"'
    assert dialect.merge_update(t, s, ["id"], ["id"]) is None
    assert "where not exists" in dialect.merge_insert(t, s, ["id", "v"], ["id"])


def test_swap_in_renames_primary_key() -> None:
    stmts = dialect.swap_in(dialect.table("stg", "o__x"), dialect.table("raw", "o"), "o__x_pk")
    assert stmts == [
        'drop table if exists "raw"."o"',
        'alter table "stg"."o__x" set schema "raw"',
        'alter table "raw"."o__x" rename to "o"',
        'alter table "raw"."o" rename constraint "o__x_pk" to "o_pkey"',
    ]
