"""Declared fields of JSON records (API and message sources) as typed values: a value that does
not fit its type fails naming the field, never loads as something else."""

from __future__ import annotations

import decimal

import pytest

from airflow_provider_dpone.contracts.errors import BadInputError
from airflow_provider_dpone.contracts.records import declared_schema, row_of

pytestmark = pytest.mark.unit
SCHEMA = declared_schema({"id": "int64", "n": "int32", "price": "decimal(12,2)", "ok": "boolean"})


def test_whole_numbers_in_any_form_are_integers() -> None:
    assert row_of(SCHEMA, {"id": 7, "n": 3.0, "price": "1.50", "ok": "yes"}) == [
        7,
        3,
        decimal.Decimal("1.50"),
        True,
    ]
    assert row_of(SCHEMA, {"id": " 12 ", "n": decimal.Decimal("4")}) == [12, 4, None, None]


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (12.7, "12.7 is not a whole number"),
        (True, "a boolean is not an integer"),
        ("12.5", "invalid literal"),
    ],
)
def test_a_fraction_or_a_boolean_is_never_cut_into_an_integer(value: object, why: str) -> None:
    with pytest.raises(BadInputError, match=rf"field 'id': cannot read \w+ value as int64: .*{why}"):
        row_of(SCHEMA, {"id": value})


@pytest.mark.parametrize(
    ("value", "read"), [(True, True), (0, False), ("Yes", True), (" off ", False), ("", None)]
)
def test_booleans_in_their_usual_spellings(value: object, read: object) -> None:
    assert row_of(SCHEMA, {"ok": value})[3] is read


@pytest.mark.parametrize("value", [2, "maybe", "N/A", 0.5])
def test_anything_else_is_not_read_as_false(value: object) -> None:
    with pytest.raises(BadInputError, match=r"field 'ok': cannot read \w+ value as boolean"):
        row_of(SCHEMA, {"ok": value})
