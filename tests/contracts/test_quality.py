"""Quality checks: manifest validation of the ``quality`` list and pass/fail judgement."""

from __future__ import annotations

import pytest

from airflow_provider_dpone.contracts.errors import ManifestError
from airflow_provider_dpone.contracts.manifest import parse_manifest
from airflow_provider_dpone.contracts.quality import (
    Measurement,
    QualityGateError,
    RowCountCheck,
    SqlCheck,
    enforce,
    judge,
)


def manifest(quality: list) -> dict:
    return {
        "pipeline": "p",
        "loads": [
            {
                "name": "l",
                "source": {"connector": "postgres", "conn_id": "a", "table": "t"},
                "sink": {"connector": "postgres", "conn_id": "b", "table": "t"},
                "quality": quality,
            }
        ],
    }


@pytest.mark.parametrize(
    ("check", "field", "needle"),
    [
        ({"check": "nope"}, "quality.0", "'not_null', 'unique'"),
        ({"check": "not_null"}, "quality.0.not_null.columns", "required key is missing"),
        ({"check": "not_null", "columns": []}, "quality.0.not_null.columns", "at least 1"),
        ({"check": "row_count"}, "quality.0.row_count", "needs 'min', 'max' or 'equals_source"),
        ({"check": "row_count", "min": 5, "max": 1}, "quality.0.row_count", "min (5) is greater than max"),
        ({"check": "freshness", "column": "x", "max_age": "soon"}, "quality.0.freshness.max_age", "duration"),
        ({"check": "sql", "sql": "select 1"}, "quality.0.sql.sql", "'{staging}' placeholder"),
        ({"check": "unique", "columns": ["a"], "colums": 1}, "quality.0.unique.colums", "unknown key"),
        (
            {"check": "accepted_values", "column": "s", "values": []},
            "quality.0.accepted_values.values",
            "at least 1",
        ),
        (
            {"check": "not_null", "columns": ["a"], "severity": "fatal"},
            "quality.0.not_null.severity",
            "'error'",
        ),
    ],
)
def test_bad_checks_name_the_field(check: dict, field: str, needle: str) -> None:
    with pytest.raises(ManifestError) as caught:
        parse_manifest(manifest([check]), "m.yaml")
    issue = caught.value.issues[0]
    assert issue.field == field, caught.value
    assert needle in issue.message, issue.message
    assert issue.load == "l" and issue.file == "m.yaml"


def test_good_checks_parse_into_typed_models() -> None:
    m = parse_manifest(
        manifest(
            [
                {"check": "row_count", "min": 1, "equals_source": True},
                {"check": "freshness", "column": "ts", "max_age": "2h"},
            ]
        )
    )
    row_count, freshness = m.loads[0].quality
    assert isinstance(row_count, RowCountCheck) and row_count.label == "row_count(min=1, equals_source)"
    assert freshness.max_age == 7200


def test_row_count_judgement() -> None:
    check = RowCountCheck(check="row_count", min=10, max=100, equals_source=True)
    assert judge(check, Measurement(50), source_rows=50).passed
    failed = judge(check, Measurement(5), source_rows=6)
    assert not failed.passed
    assert failed.message == "5 row(s) staged: below min 10; the source sent 6"
    assert "no row count" in judge(check, Measurement(50), source_rows=None).message


def test_a_row_count_that_was_not_measured_fails() -> None:
    check = RowCountCheck(check="row_count", max=100)
    result = judge(check, Measurement(None))
    assert not result.passed and "not measured" in result.message


def test_enforce_raises_for_errors_only() -> None:
    warn = judge(SqlCheck(check="sql", sql="select 1 from {staging}", severity="warn"), Measurement(3))
    enforce("l", [warn])
    err = judge(SqlCheck(check="sql", sql="select 1 from {staging}", name="mine"), Measurement(3))
    with pytest.raises(QualityGateError, match=r"mine: query returned 3 \(expected 0\)"):
        enforce("l", [warn, err])
