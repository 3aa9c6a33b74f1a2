"""An ``incremental_append`` whose extract re-reads rows (lookback, xmin's overlap, an API's
``at_watermark: read``) needs ``sink.unique_key``, by which it skips the keys its target holds;
a Kafka topic cannot skip, so it refuses those reads. Fields a mode would ignore are refused."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_dpone.contracts.errors import ManifestError
from airflow_provider_dpone.contracts.manifest import LoadSpec, parse_manifest

pytestmark = pytest.mark.unit
PG_SINK = {"connector": "postgres", "conn_id": "dwh", "table": "raw.t", "strategy": "incremental_append"}
KAFKA_SINK = {"connector": "kafka", "conn_id": "k", "topic": "t", "strategy": "incremental_append"}
CURSOR = {"mode": "cursor", "cursor": "updated_at"}


def _load(
    incremental: dict[str, Any], sink: dict[str, Any], source: dict[str, Any] | None = None
) -> LoadSpec:
    src = source or {"connector": "postgres", "conn_id": "shop", "table": "t"}
    body = {"name": "l", "source": {**src, "incremental": incremental}, "sink": sink}
    return parse_manifest({"pipeline": "p", "loads": [body]}).loads[0]


def _refused(incremental: dict[str, Any], sink: dict[str, Any], source: dict[str, Any] | None = None):
    with pytest.raises(ManifestError) as err:
        _load(incremental, sink, source)
    return [(i.field, i.message) for i in err.value.issues]


@pytest.mark.parametrize(
    ("incremental", "field", "why"),
    [
        (
            {**CURSOR, "lookback": "1h"},
            "source.incremental.lookback",
            "re-reads the rows before the watermark",
        ),
        ({"mode": "xmin"}, "source.incremental.mode", "transactions still open at the last run's snapshot"),
    ],
)
def test_a_keyless_append_that_re_reads_is_refused_from_a_database_too(incremental, field, why) -> None:
    [(got, message)] = _refused(incremental, PG_SINK)
    assert got == field and why in message
    assert "incremental_append without sink.unique_key would append them a second time" in message
    keyed = _load(incremental, {**PG_SINK, "unique_key": ["id"]})  # the append skips by it
    assert keyed.sink.unique_key == ["id"]


def test_an_append_that_reads_each_row_once_needs_no_key() -> None:
    assert _load(CURSOR, PG_SINK).sink.unique_key is None


@pytest.mark.parametrize("incremental", [{**CURSOR, "lookback": "10m"}, {"mode": "xmin"}])
def test_an_append_to_a_topic_refuses_a_re_read_even_with_a_key(incremental) -> None:
    issues = _refused(incremental, {**KAFKA_SINK, "unique_key": ["id"]})
    assert any(
        "connector 'kafka' cannot skip what its topic already holds" in message for _, message in issues
    ), issues
    assert _load(CURSOR, {**KAFKA_SINK, "unique_key": ["id"]}).sink.strategy.value == "incremental_append"


def test_an_api_append_to_a_topic_skips_the_records_at_the_watermark_by_default() -> None:
    api = {"connector": "cbr", "conn_id": "cbr", "resource": "dynamics", "options": {"currency_id": "R01235"}}
    load = _load({"mode": "cursor", "cursor": "date"}, {**KAFKA_SINK, "unique_key": ["date"]}, api)
    assert load.source.incremental is not None and load.source.incremental.at_watermark == "skip"
    keyed_table = _load({"mode": "cursor", "cursor": "date"}, {**PG_SINK, "unique_key": ["date"]}, api)
    assert keyed_table.source.incremental.at_watermark == "read"  # the append skips by the key
    issues = _refused({"mode": "cursor", "cursor": "date", "at_watermark": "read"}, KAFKA_SINK, api)
    assert any(field == "source.incremental.at_watermark" for field, _ in issues), issues


@pytest.mark.parametrize(
    ("incremental", "source", "message"),
    [
        (
            {"mode": "xmin", "lookback": "1h"},
            None,
            "'lookback' applies to mode 'cursor' (it would be ignored)",
        ),
        ({"mode": "xmin", "initial_value": "5"}, None, "mode 'xmin' starts with a full read of the table"),
        (
            {"mode": "offsets", "lookback": "1h"},
            {"connector": "kafka", "conn_id": "k", "topic": "t", "fields": {"id": "int64"}},
            "'lookback' applies to mode 'cursor'",
        ),
        (
            {"mode": "offsets", "initial_value": "2026-01-01"},
            {"connector": "kafka", "conn_id": "k", "topic": "t", "fields": {"id": "int64"}},
            "at 'earliest' or 'latest', not '2026-01-01'",
        ),
    ],
)
def test_fields_a_mode_would_ignore_are_refused(incremental, source, message) -> None:
    sink = {**PG_SINK, "unique_key": ["id"]}
    issues = _refused(incremental, sink, source)
    assert any(message in m for _, m in issues), issues
