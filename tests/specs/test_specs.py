"""The typed specs: each is exactly the manifest mapping it spells, with every key the
manifest takes, and there is one per connector."""

from __future__ import annotations

import copy
import inspect
import json
import pickle

import pytest

from airflow_provider_dpone import specs
from airflow_provider_dpone.contracts.connectors import CONNECTORS
from airflow_provider_dpone.contracts.manifest import SinkSpec, StateSpec, parse_manifest
from airflow_provider_dpone.contracts.sources import (
    SOURCE_KINDS,
    EndpointSpec,
    IncrementalSpec,
    SourceBase,
    WindowSpec,
)
from airflow_provider_dpone.specs.sinks import SINKS
from airflow_provider_dpone.specs.sources import SOURCES


def _params(cls: type) -> set[str]:
    return {p.rstrip("_") for p in inspect.signature(cls.__init__).parameters if p != "self"}


def _keys(model: type) -> set[str]:
    return {f.alias or name for name, f in model.model_fields.items()}


def _kind_of(cls: type) -> type[SourceBase]:
    objects = CONNECTORS[cls.connector].objects
    return SOURCE_KINDS["resource" if objects == "resource" else objects]


@pytest.mark.parametrize("cls", SOURCES, ids=lambda c: c.__name__)
def test_each_source_takes_every_key_its_kind_has(cls) -> None:
    kind = _kind_of(cls)
    expected = _keys(kind) - {"connector"}
    if kind.kind == "table":  # a database source is a table or a query
        expected |= _keys(SOURCE_KINDS["query"]) - {"connector"}
    assert _params(cls) == expected


def test_one_typed_source_per_reading_connector_and_one_sink_per_writer() -> None:
    assert sorted(c.connector for c in SOURCES) == sorted(n for n, c in CONNECTORS.items() if c.source_modes)
    assert sorted(c.connector for c in SINKS) == sorted(n for n, c in CONNECTORS.items() if c.sink_strategies)


def test_sinks_incremental_window_endpoint_and_state_spell_every_key() -> None:
    table_sink = _keys(SinkSpec) - {"connector", "topic"}
    assert (
        _params(specs.PostgresSink) == _params(specs.MsSqlSink) == _params(specs.ClickHouseSink) == table_sink
    )
    assert _params(specs.KafkaSink) <= _keys(SinkSpec) - {"connector", "table"}
    assert _params(specs.Cursor) == _keys(IncrementalSpec) - {
        "mode",
        "capture_instance",
        "slot",
        "publication",
        "max_retained_wal",
    }
    assert (
        _params(specs.Cdc)
        == {"capture_instance", "slot", "publication", "max_retained_wal", "on_target_missing"}
        <= _keys(IncrementalSpec)
    )
    assert _params(specs.ChangeTracking) == {"on_target_missing"}
    assert _params(specs.Window) == _keys(WindowSpec)
    assert _params(specs.Endpoint) == _keys(EndpointSpec)
    assert _params(specs.TableState) == _keys(StateSpec) - {"backend"}


def test_a_typed_load_validates_like_its_yaml() -> None:
    typed = {
        "name": "orders",
        "source": specs.PostgresSource(
            "shop", table="public.orders", incremental=specs.Cursor("updated_at", lookback="10m")
        ),
        "sink": specs.ClickHouseSink("dwh", "raw.orders", strategy="incremental_merge", unique_key=["id"]),
    }
    yaml_like = {
        "name": "orders",
        "source": {
            "connector": "postgres",
            "conn_id": "shop",
            "table": "public.orders",
            "incremental": {"mode": "cursor", "cursor": "updated_at", "lookback": "10m"},
        },
        "sink": {
            "connector": "clickhouse",
            "conn_id": "dwh",
            "table": "raw.orders",
            "strategy": "incremental_merge",
            "unique_key": ["id"],
        },
    }
    assert typed == yaml_like
    one = parse_manifest({"pipeline": "p", "state": specs.TableState("meta"), "loads": [typed]})
    two = parse_manifest(
        {"pipeline": "p", "state": {"backend": "table", "conn_id": "meta"}, "loads": [yaml_like]}
    )
    assert one == two and one.loads[0].source.incremental.lookback == 600


def test_unset_arguments_are_left_to_the_manifest_defaults() -> None:
    source = specs.FastTrackSource("ft", "chat_sessions", options={"uuid": "u-1", "date_from": "{{ ds }}"})
    assert source == {
        "connector": "fasttrack",
        "conn_id": "ft",
        "resource": "chat_sessions",
        "options": {"uuid": "u-1", "date_from": "{{ ds }}"},
    }
    assert specs.XMin() == {"mode": "xmin"} and specs.VariableState() == {"backend": "variable"}


def test_a_spec_is_plain_data_for_airflow() -> None:
    """Serialized, copied, pickled and JSON-dumped as the mapping it is."""
    spec = specs.KafkaSource("broker", "orders", incremental=specs.Offsets(), fields={"id": "int64"})
    assert json.loads(json.dumps(spec)) == spec
    assert copy.deepcopy(spec) == spec and pickle.loads(pickle.dumps(spec)) == spec
    assert repr(spec).startswith("KafkaSource({'connector': 'kafka'")
