from __future__ import annotations

import pytest

from airflow_provider_dpone.contracts.durations import parse_duration, validate_cron, validate_schedule
from airflow_provider_dpone.contracts.errors import StateError
from airflow_provider_dpone.contracts.state import CursorState, XminState, state_from_dict, state_to_dict


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("10m", 600), ("1h30m", 5400), ("2d", 172800), (45, 45), ("1w", 604800)],
)
def test_parse_duration(text, seconds) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["", "10", "10 minutes", "-1s", -5, True, None, "1x"])
def test_parse_duration_rejects(bad) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


@pytest.mark.parametrize("cron", ["*/5 * * * *", "0 3 * * mon-fri", "15,45 1-5 1 jan *", "0 0 * * 0"])
def test_valid_cron(cron) -> None:
    validate_cron(cron)
    validate_schedule("@daily")


@pytest.mark.parametrize(
    ("cron", "word"),
    [
        ("* 24 * * *", "hour"),
        ("* * 0 * *", "day of month"),
        ("*/0 * * * *", "step"),
        ("5-1 * * * *", "backwards"),
    ],
)
def test_invalid_cron(cron, word) -> None:
    with pytest.raises(ValueError, match=word):
        validate_cron(cron)


def test_state_roundtrip() -> None:
    for record in (
        CursorState("updated_at", "2026-01-01 00:00:00+00", "timestamptz"),
        XminState(12345678901),
    ):
        assert state_from_dict(state_to_dict(record)) == record
    assert state_from_dict(None) is None


def test_state_errors() -> None:
    with pytest.raises(StateError, match="unknown kind"):
        state_from_dict({"kind": "lsn", "value": 1})
    with pytest.raises(StateError, match="malformed"):
        state_from_dict({"kind": "xmin", "position": 1})
