"""A manual run's request (the Trigger form params) and the load each mode runs. Pure."""

from __future__ import annotations

import pytest

from airflow_provider_dpone.contracts.errors import BadInputError
from airflow_provider_dpone.contracts.manifest import LoadSpec
from airflow_provider_dpone.contracts.run_request import RunRequest, backfill_load, reload_load, run_request
from airflow_provider_dpone.contracts.strategies import Strategy

CURSOR = {"mode": "cursor", "cursor": "updated_at", "lookback": "10m", "chunk": "1d"}


def _load(strategy: str = "incremental_merge", **source) -> LoadSpec:
    sink = {"connector": "postgres", "conn_id": "dwh", "table": "raw.orders", "strategy": strategy}
    if strategy in (
        "incremental_merge",
        "snapshot_diff",
        "incremental_append",
    ):  # an append's lookback skips by it
        sink["unique_key"] = ["id"]
    src = {"connector": "postgres", "conn_id": "shop", "table": "orders", "incremental": CURSOR, **source}
    return LoadSpec.model_validate({"name": "orders", "source": src, "sink": sink})


def test_params_make_a_request_or_a_clear_error() -> None:
    assert run_request({}) == RunRequest()
    got = run_request(
        {
            "dpone_mode": "backfill",
            "dpone_from": "2026-01-01",
            "dpone_to": "2026-02-01",
            "dpone_loads": "a, b",
        }
    )
    assert got == RunRequest("backfill", "2026-01-01", "2026-02-01", ("a", "b"))
    assert got.applies_to("a") and not got.applies_to("c") and RunRequest().applies_to("c")
    assert got.to_dict() == {
        "mode": "backfill",
        "start": "2026-01-01",
        "end": "2026-02-01",
        "loads": ("a", "b"),
    }
    bad = [
        ({"dpone_mode": "rewind"}, "params.dpone_mode: 'rewind' is not one of scheduled, backfill"),
        ({"dpone_mode": "backfill", "dpone_from": "2026-01-01"}, "needs both ends"),
        (
            {"dpone_mode": "backfill", "dpone_from": "2026-02-01", "dpone_to": "2026-01-01"},
            "params.dpone_to: '2026-01-01' is not after",
        ),
        ({"dpone_mode": "backfill", "dpone_from": "10", "dpone_to": "9"}, "is not after"),
        ({"dpone_mode": "full_reload", "dpone_from": "2026-01-01"}, "only a backfill takes a window"),
        ({"dpone_mode": "full_reload", "dpone_loads": [1]}, "params.dpone_loads: give a list"),
        (
            {"dpone_mode": "backfill", "dpone_from": {"a": 1}, "dpone_to": "x"},
            "params.dpone_from: give a text value",
        ),
    ]
    for params, message in bad:
        with pytest.raises(BadInputError, match=message.replace(".", r"\.")):
            run_request(params)


def test_a_backfill_merges_or_replaces_its_window_and_keeps_state() -> None:
    merged = backfill_load(_load(), "2026-01-01", "2026-02-01")
    assert merged.source.incremental is None
    assert merged.source.window is not None and merged.source.window.column == "updated_at"
    assert (merged.source.window.start, merged.source.window.end) == ("2026-01-01", "2026-02-01")
    assert merged.sink.strategy is Strategy.INCREMENTAL_MERGE and merged.reconciliation.deletes == "none"
    appended = backfill_load(_load("incremental_append"), "2026-01-05", "2026-01-09", "2026-02-01", True)
    assert appended.sink.strategy is Strategy.REPLACE
    assert appended.sink.replace is not None and appended.sink.replace.window == appended.source.window


def test_an_append_backfill_ends_at_its_watermark() -> None:
    """Rows past the watermark are the next run's: a window reaching them would load them twice.
    The end is compared with the watermark as the cursor's type, as the extract compares them."""
    from airflow_provider_dpone.contracts.run_request import RunRequest
    from airflow_provider_dpone.contracts.state import CursorState
    from airflow_provider_dpone.operators.manual_run import requested_load

    def backfill(end: str, value: str | None, value_type: str, cursor: str = "updated_at") -> LoadSpec:
        stored = None if value is None else CursorState(cursor, value, value_type)
        return requested_load(_load("incremental_append"), RunRequest("backfill", "0", end), stored)

    assert (
        backfill("2026-02-01", "2026-02-01T00:00:00+00:00", "timestamptz").sink.strategy is Strategy.REPLACE
    )
    assert backfill("2026-01-31T23:00:00-02:00", "2026-02-01T06:00:00+00:00", "timestamptz").sink.replace
    assert backfill("1800000000000000000", "1800000000000000000", "int64").sink.replace
    refused = [
        ("2026-03-01", "2026-02-01", "date"),
        ("2026-01-01", None, "date"),  # no state: nothing says where the next run starts
        ("1800000000000000100", "1800000000000000000", "int64"),  # beyond float precision
        ("0.1000000000000000001", "0.1", "decimal"),
        ("not a number", "10", "int64"),
    ]
    for end, value, value_type in refused:
        with pytest.raises(BadInputError, match="must end at or before its stored watermark"):
            backfill(end, value, value_type)
    with pytest.raises(BadInputError, match="the stored state does not fit this load"):
        backfill("2026-01-01", "2026-02-01", "date", cursor="created_at")
    assert backfill_load(_load(), "2026-01-01", "2099-01-01").sink.strategy is Strategy.INCREMENTAL_MERGE


def test_a_backfill_refuses_what_it_cannot_window() -> None:
    full = LoadSpec.model_validate(
        {
            "name": "c",
            "source": {"connector": "postgres", "conn_id": "shop", "table": "c"},
            "sink": {"connector": "postgres", "conn_id": "dwh", "table": "raw.c"},
        }
    )
    with pytest.raises(BadInputError, match="reads a table in full"):
        backfill_load(full, "1", "2")
    api = LoadSpec.model_validate(
        {
            "name": "rates",
            "source": {
                "connector": "cbr",
                "conn_id": "cbr",
                "resource": "daily_rates",
                "incremental": {"mode": "cursor", "cursor": "date"},
            },
            "sink": {
                "connector": "postgres",
                "conn_id": "dwh",
                "table": "raw.rates",
                "strategy": "incremental_merge",
                "unique_key": ["date", "code"],
            },
        }
    )
    with pytest.raises(BadInputError, match="this load reads a resource"):
        backfill_load(api, "2026-01-01", "2026-02-01")


def test_a_full_reload_replaces_the_target_and_keeps_the_cursor() -> None:
    reload = reload_load(_load("incremental_append"))
    assert reload.sink.strategy is Strategy.FULL_REFRESH
    assert reload.source.incremental is not None and reload.source.incremental.cursor == "updated_at"
    assert reload.source.incremental.chunk is None  # one read: a next chunk would replace this one
    merged = reload_load(_load())  # a merge keeps its keys and guards: it merges every row
    assert merged.sink == _load().sink and merged.source.incremental is not None
    assert merged.source.incremental.chunk is None
    for strategy in ("replace", "scd2"):
        kept = LoadSpec.model_validate(
            {
                "name": "o",
                "source": {"connector": "postgres", "conn_id": "shop", "table": "o"},
                "sink": {
                    "connector": "postgres",
                    "conn_id": "dwh",
                    "table": "raw.o",
                    "strategy": strategy,
                    **({"unique_key": ["id"]} if strategy == "scd2" else {"replace": {"where": "true"}}),
                },
            }
        )
        with pytest.raises(BadInputError, match=f"'{strategy}' keeps rows"):
            reload_load(kept)
    topic_sink = LoadSpec.model_validate(
        {
            "name": "t",
            "source": {
                "connector": "postgres",
                "conn_id": "shop",
                "table": "o",
                "incremental": {**CURSOR, "lookback": 0},  # a topic cannot skip what a lookback re-reads
            },
            "sink": {
                "connector": "kafka",
                "conn_id": "k",
                "topic": "orders",
                "strategy": "incremental_append",
            },
        }
    )
    with pytest.raises(BadInputError, match="a full reload of an append load replaces a table"):
        reload_load(topic_sink)
    from_topic = LoadSpec.model_validate(
        {
            "name": "t",
            "source": {
                "connector": "kafka",
                "conn_id": "k",
                "topic": "orders",
                "incremental": {"mode": "offsets"},
                "fields": {"id": "int64"},
            },
            "sink": {
                "connector": "postgres",
                "conn_id": "dwh",
                "table": "raw.o",
                "strategy": "incremental_append",
            },
        }
    )
    with pytest.raises(BadInputError, match="a topic keeps only its retention"):
        reload_load(from_topic)
