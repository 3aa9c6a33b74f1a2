"""The schema-evolution planner: every safe and breaking change, each mode, new_column routing."""

from __future__ import annotations

import pytest

from airflow_provider_dpone.contracts.table import CanonicalType as T
from airflow_provider_dpone.contracts.table import Column, TableSchema
from airflow_provider_dpone.schema import ChangeKind, EvolutionMode, compare_types, plan_schema


def col(name: str, type_: T, nullable: bool = True, **kw) -> Column:
    return Column(name, type_, nullable=nullable, **kw)


def schema(*cols: Column) -> TableSchema:
    return TableSchema(tuple(cols))


ID = col("id", T.INT64, nullable=False)


@pytest.mark.parametrize(
    ("source", "target", "kind"),
    [
        (col("c", T.INT64), col("c", T.INT32), ChangeKind.WIDEN),
        (col("c", T.INT32), col("c", T.INT16), ChangeKind.WIDEN),
        (col("c", T.INT32), col("c", T.INT64), ChangeKind.NARROW),
        (col("c", T.FLOAT64), col("c", T.FLOAT32), ChangeKind.WIDEN),
        (col("c", T.STRING, length=50), col("c", T.STRING, length=20), ChangeKind.WIDEN),
        (col("c", T.STRING), col("c", T.STRING, length=20), ChangeKind.WIDEN),  # varchar -> text
        (col("c", T.STRING, length=10), col("c", T.STRING, length=20), ChangeKind.NARROW),
        (col("c", T.STRING, length=10), col("c", T.STRING), None),  # unbounded text holds it
        (col("c", T.DECIMAL, precision=12, scale=2), col("c", T.DECIMAL), None),  # so does numeric
        (
            col("c", T.DECIMAL, precision=14, scale=2),
            col("c", T.DECIMAL, precision=12, scale=2),
            ChangeKind.WIDEN,
        ),
        (
            col("c", T.DECIMAL, precision=12, scale=4),
            col("c", T.DECIMAL, precision=10, scale=2),
            ChangeKind.WIDEN,
        ),
        (
            col("c", T.DECIMAL, precision=10, scale=2),
            col("c", T.DECIMAL, precision=12, scale=2),
            ChangeKind.NARROW,
        ),
        (
            col("c", T.DECIMAL, precision=12, scale=4),
            col("c", T.DECIMAL, precision=12, scale=2),
            ChangeKind.INCOMPATIBLE,
        ),
        (col("c", T.DECIMAL), col("c", T.DECIMAL, precision=12, scale=2), ChangeKind.WIDEN),
        (col("c", T.INT64), col("c", T.DECIMAL, precision=10, scale=0), ChangeKind.WIDEN),
        (col("c", T.INT32), col("c", T.DECIMAL, precision=12, scale=2), ChangeKind.NARROW),
        (col("c", T.STRING), col("c", T.INT64), ChangeKind.INCOMPATIBLE),
        (col("c", T.INT64), col("c", T.STRING), ChangeKind.INCOMPATIBLE),
        (col("c", T.TIMESTAMP), col("c", T.TIMESTAMPTZ), ChangeKind.INCOMPATIBLE),
        (col("c", T.ARRAY, element=T.INT64), col("c", T.ARRAY, element=T.STRING), ChangeKind.INCOMPATIBLE),
        (col("c", T.INT64), col("c", T.INT64), None),
        (col("c", T.DECIMAL), col("c", T.DECIMAL), None),
        # same canonical type, different native spelling: loads as it is
        (
            col("c", T.JSON, native_type="json", dialect="postgres"),
            col("c", T.JSON, native_type="jsonb", dialect="postgres"),
            None,
        ),
        (
            col("c", T.UNKNOWN, native_type="inet", dialect="postgres"),
            col("c", T.UNKNOWN, native_type="cidr", dialect="postgres"),
            ChangeKind.INCOMPATIBLE,
        ),
    ],
)
def test_compare_types(source: Column, target: Column, kind: ChangeKind | None) -> None:
    assert compare_types(source, target) is kind


def test_no_target_means_create() -> None:
    plan = plan_schema(schema(ID), None)
    assert not plan.target_exists and plan.changes == () and "created" in plan.summary()


def test_identical_schemas_have_no_changes() -> None:
    s = schema(ID, col("a", T.STRING))
    plan = plan_schema(s, s)
    assert plan.changes == () and plan.to_apply == [] and plan.blocked == []


def test_safe_changes_are_applied_in_safe_mode() -> None:
    source = schema(
        ID, col("qty", T.INT64), col("name", T.STRING, length=100), col("new", T.STRING, nullable=False)
    )
    target = schema(ID, col("qty", T.INT32, nullable=False), col("name", T.STRING, length=20))
    plan = plan_schema(source, target)
    kinds = {(c.column, c.kind) for c in plan.changes}
    assert kinds == {
        ("qty", ChangeKind.WIDEN),
        ("qty", ChangeKind.RELAX_NOT_NULL),
        ("name", ChangeKind.WIDEN),
        ("new", ChangeKind.ADD_COLUMN),
    }
    assert plan.blocked == [] and len(plan.to_apply) == 4
    added = next(c for c in plan.changes if c.kind is ChangeKind.ADD_COLUMN)
    assert added.result.nullable  # existing rows have no value for it
    widen = next(c for c in plan.changes if c.column == "name" and c.kind is ChangeKind.WIDEN)
    assert widen.result.length == 100 and widen.describe() == "column 'name': widen string(20) -> string(100)"


def test_decimal_widening_keeps_integer_digits_and_scale() -> None:
    source = schema(col("amount", T.DECIMAL, precision=10, scale=4))
    target = schema(col("amount", T.DECIMAL, precision=12, scale=2))
    plan = plan_schema(source, target)
    assert [c.kind for c in plan.changes] == [ChangeKind.INCOMPATIBLE]  # fewer integer digits, more scale
    source = schema(col("amount", T.DECIMAL, precision=14, scale=4))
    change = plan_schema(source, target).changes[0]
    assert change.kind is ChangeKind.WIDEN and (change.result.precision, change.result.scale) == (14, 4)


def test_breaking_changes_block_the_load_and_name_each_column() -> None:
    source = schema(ID, col("qty", T.STRING), col("code", T.INT16))
    target = schema(ID, col("qty", T.INT64), col("code", T.INT32), col("gone", T.DATE, nullable=False))
    plan = plan_schema(source, target)
    assert {(c.column, c.kind) for c in plan.blocked} == {
        ("qty", ChangeKind.INCOMPATIBLE),
        ("code", ChangeKind.NARROW),
        ("gone", ChangeKind.DROP),
    }
    assert plan.to_apply == []  # nothing is applied when the load is blocked
    text = plan.summary()
    assert "'qty': source type string is incompatible with the target's int64" in text
    assert "'code': source type int16 is narrower than the target's int32" in text
    assert "'gone': in the target (date, NOT NULL without a default) but not in the source" in text
    assert "no longer" not in text  # it may never have been in the source (a DBA added it)


def test_a_target_only_column_is_tolerated_when_nullable_or_defaulted() -> None:
    target = schema(ID, col("audited", T.BOOLEAN), col("origin", T.STRING, nullable=False))
    plan = plan_schema(schema(ID), target, target_defaults=["origin"])
    assert [(c.column, c.kind) for c in plan.changes] == [
        ("audited", ChangeKind.TARGET_ONLY),
        ("origin", ChangeKind.TARGET_ONLY),
    ]
    assert plan.blocked == [] and plan.to_apply == [] and not plan.needs_ddl
    assert any("'audited': in the target (boolean) but not in the source" in w for w in plan.warnings)
    # fail and plan_only modes do not stop for a column that needs no change either
    assert plan_schema(schema(ID), target, mode="fail", target_defaults=["origin"]).blocked == []


def test_a_column_added_to_a_partly_rewritten_target_warns_and_strict_refuses() -> None:
    source, target = schema(ID, col("note", T.STRING)), schema(ID)
    whole = plan_schema(source, target)
    assert whole.warnings == [] and [c.column for c in whole.to_apply] == ["note"]
    partial = plan_schema(source, target, rewrites_all_rows=False)
    assert [c.column for c in partial.to_apply] == ["note"]  # safe mode adds it, and says so
    assert len(partial.warnings) == 1 and "'note'" in partial.warnings[0]
    assert "stay NULL" in partial.warnings[0] and partial.to_dict()["warnings"] == partial.warnings
    strict = plan_schema(source, target, mode="strict", rewrites_all_rows=False)
    assert [c.column for c in strict.blocked] == ["note"] and strict.to_apply == []
    # strict still applies what needs no backfill
    widen = plan_schema(schema(ID, col("n", T.INT64)), schema(ID, col("n", T.INT32)), mode="strict")
    assert [c.kind for c in widen.to_apply] == [ChangeKind.WIDEN]


def test_fail_mode_refuses_even_safe_changes() -> None:
    plan = plan_schema(schema(ID, col("x", T.STRING)), schema(ID), mode="fail")
    assert [c.kind for c in plan.blocked] == [ChangeKind.ADD_COLUMN] and plan.to_apply == []


def test_plan_only_reports_and_applies_nothing() -> None:
    plan = plan_schema(schema(ID, col("x", T.STRING)), schema(ID), mode=EvolutionMode.PLAN_ONLY)
    assert [c.kind for c in plan.changes] == [ChangeKind.ADD_COLUMN]
    assert plan.to_apply == [] and plan.blocked == []
    assert plan.to_dict()["mode"] == "plan_only"


def test_new_column_routes_a_changed_type() -> None:
    source = schema(ID, col("price", T.STRING))
    target = schema(ID, col("price", T.DECIMAL, precision=12, scale=2, nullable=False))
    plan = plan_schema(source, target, on_type_change="new_column")
    assert plan.blocked == []
    assert plan.target_column("price") == "price__string" and plan.target_column("id") == "id"
    kinds = [(c.column, c.kind) for c in plan.changes]
    assert kinds == [("price", ChangeKind.NEW_COLUMN), ("price", ChangeKind.RELAX_NOT_NULL)]
    assert plan.changes[0].result.name == "price__string" and plan.changes[0].result.nullable
    # Next run: the routed column exists; nothing changes, and it is not a dropped column.
    target2 = schema(ID, col("price", T.DECIMAL, precision=12, scale=2), col("price__string", T.STRING))
    plan2 = plan_schema(source, target2, on_type_change="new_column")
    assert plan2.changes == () and plan2.target_column("price") == "price__string"
    # The source goes back to the original type: load into price; price__string stays, unreported.
    source3 = schema(ID, col("price", T.DECIMAL, precision=12, scale=2))
    assert plan_schema(source3, target2, on_type_change="new_column").changes == ()


def test_new_column_that_exists_with_another_type_is_breaking() -> None:
    source = schema(col("price", T.STRING))
    target = schema(col("price", T.INT64), col("price__string", T.INT64))
    plan = plan_schema(source, target, on_type_change="new_column")
    assert [(c.column, c.kind) for c in plan.blocked] == [("price__string", ChangeKind.INCOMPATIBLE)]


def test_sink_managed_columns_are_not_drops() -> None:
    plan = plan_schema(
        schema(ID), schema(ID, col("valid_from", T.TIMESTAMPTZ)), ignore_target_columns=["valid_from"]
    )
    assert plan.changes == ()


def test_plan_serialises_for_reports() -> None:
    plan = plan_schema(schema(ID, col("x", T.INT64)), schema(ID, col("x", T.INT32)))
    data = plan.to_dict()
    assert data["changes"][0] == {
        "kind": "widen",
        "column": "x",
        "source_type": "int64",
        "target_type": "int32",
        "result_column": "x",
        "result_type": "int64",
        "safe": True,
        "description": "column 'x': widen int32 -> int64",
    }
    assert data["applied"] == ["x"] and data["blocked"] == [] and data["warnings"] == []


def test_a_primary_key_column_keeps_not_null_when_the_source_reports_nullable() -> None:
    # A query source reports every column nullable; a key column cannot drop NOT NULL.
    source = schema(col("id", T.INT64), col("name", T.STRING))
    target = TableSchema((ID, col("name", T.STRING, nullable=False)), primary_key=("id",))
    plan = plan_schema(source, target)
    assert [(c.column, c.kind) for c in plan.changes] == [("name", ChangeKind.RELAX_NOT_NULL)]
