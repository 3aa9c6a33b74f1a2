"""StagedLoadOperator composed in Python: checked when the DAG file is parsed (with the
messages of ``dpone validate``), templated when it runs, mappable, and what the factory builds."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from airflow.sdk import DAG, task

from airflow_provider_dpone.contracts.errors import ManifestError
from airflow_provider_dpone.contracts.load_args import check_load
from airflow_provider_dpone.dag_factory.files import load_manifest
from airflow_provider_dpone.operators.staged_load import StagedLoadOperator
from airflow_provider_dpone.specs import AppsFlyerSource, Cursor, PostgresSink, PostgresSource, TableState

START = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
STATE = TableState("dwh")


def _dag() -> DAG:
    return DAG("py_pipeline", schedule=None, start_date=START)


def test_a_bad_argument_fails_the_parse_with_the_validate_message(tmp_path: Path) -> None:
    sink = PostgresSink("dwh", "raw.orders", strategy="incremental_merge")  # no unique_key
    with pytest.raises(ManifestError) as parsed, _dag():
        StagedLoadOperator(
            task_id="orders", source=PostgresSource("shop", table="orders"), sink=sink, state=STATE
        )
    manifest = tmp_path / "same.yaml"
    load = {"name": "orders", "source": PostgresSource("shop", table="orders"), "sink": sink}
    as_yaml = json.loads(json.dumps({"pipeline": "py_pipeline", "state": STATE, "loads": [load]}))
    manifest.write_text(yaml.safe_dump(as_yaml))
    with pytest.raises(ManifestError) as validated:
        load_manifest(manifest)
    assert [(i.load, i.field, i.message) for i in parsed.value.issues] == [
        (i.load, i.field, i.message) for i in validated.value.issues
    ]
    assert parsed.value.issues[0].file == __file__  # the DAG file, where the fix goes
    assert "needs 'unique_key" in str(parsed.value)


def test_templates_pass_the_parse_and_render_when_the_task_runs() -> None:
    with _dag():
        op = StagedLoadOperator(
            task_id="orders",
            source=PostgresSource(
                "shop", table="{{ params.table }}", incremental=Cursor("id", initial_value="{{ ds }}")
            ),
            sink=PostgresSink("dwh", "raw.orders", strategy="incremental_merge", unique_key=["id"]),
            state=STATE,
        )
    op.render_template_fields({"params": {"table": "public.orders"}, "ds": "2026-03-01"})
    spec, state = check_load("py_pipeline", op._load("orders"), op.state, "dag.py")
    assert spec.source.table == "public.orders" and spec.source.incremental.initial_value == "2026-03-01"
    assert state.conn_id == "dwh"


def test_a_rendered_value_is_still_checked_when_the_task_runs() -> None:
    with _dag():
        op = StagedLoadOperator(
            task_id="orders",
            source=PostgresSource("shop", table="{{ params.table }}"),
            sink=PostgresSink("dwh", "raw.orders"),
        )
    op.render_template_fields({"params": {"table": "not a table"}})
    with pytest.raises(
        ManifestError, match=r"source\.table: 'not a table' is not 'table' or 'schema\.table'"
    ):
        check_load("py_pipeline", op._load("orders"), op.state, "dag.py")


def test_a_source_from_an_upstream_task_is_checked_at_run_time() -> None:
    with _dag():

        @task
        def pick() -> dict:
            return dict(PostgresSource("shop", table="orders"))

        op = StagedLoadOperator(task_id="orders", source=pick(), sink=PostgresSink("dwh", "raw.orders"))
    assert op.upstream_task_ids == {"pick"}


def test_mapped_loads_get_one_state_key_per_target() -> None:
    with _dag() as dag:
        StagedLoadOperator.partial(task_id="snapshot", state=STATE).expand_kwargs(
            [
                {"source": PostgresSource("shop", table=t), "sink": PostgresSink("dwh", f"snap.{t}")}
                for t in ("customers", "orders")
            ]
        )
    assert dag.get_task("snapshot").is_mapped
    op = StagedLoadOperator(
        task_id="snapshot",
        source=PostgresSource("shop", table="orders"),
        sink=PostgresSink("dwh", "snap.orders"),
    )
    assert op._name({"ti": SimpleNamespace(map_index=1)}) == "snapshot.shop.orders-dwh.snap.orders"
    shard = StagedLoadOperator(  # another source into the same sink: its own state, never shared
        task_id="snapshot",
        source=PostgresSource("shop2", table="orders"),
        sink=PostgresSink("dwh", "snap.orders"),
    )
    assert shard._name({"ti": SimpleNamespace(map_index=2)}) == "snapshot.shop2.orders-dwh.snap.orders"
    query = StagedLoadOperator(
        task_id="q", source=PostgresSource("shop", query="select 1 as id"), sink=PostgresSink("dwh", "snap.q")
    )
    assert query._name({"ti": SimpleNamespace(map_index=0)}).startswith("q.shop.q")
    templated = StagedLoadOperator(
        task_id="q",
        source=PostgresSource("shop", query="select {{ ds }}"),
        sink=PostgresSink("dwh", "snap.q"),
    )
    before = templated._name({"ti": SimpleNamespace(map_index=0)})
    templated.render_template_fields({"ds": "2026-03-01"})
    assert templated._name({"ti": SimpleNamespace(map_index=0)}) == before  # the same state key every run
    apps = [
        StagedLoadOperator(
            task_id="af",
            source=AppsFlyerSource("af", "installs", options={"app_id": app}),
            sink=PostgresSink("dwh", "raw.installs"),
        )._name({"ti": SimpleNamespace(map_index=0)})
        for app in ("id1", "id2")
    ]
    assert apps[0] != apps[1]  # options tell the instances apart
    assert op._name({"ti": SimpleNamespace(map_index=-1)}) == "snapshot"
    named = StagedLoadOperator(
        task_id="t",
        load_name="orders_copy",
        source=PostgresSource("shop", table="o"),
        sink=PostgresSink("dwh", "o"),
    )
    assert named._name({"ti": SimpleNamespace(map_index=3)}) == "orders_copy"


def test_the_factory_builds_the_operator_a_python_dag_would(tmp_path: Path) -> None:
    from airflow_provider_dpone.dag_factory import build_dags

    (tmp_path / "m.yaml").write_text(
        yaml.safe_dump(
            {
                "pipeline": "py_pipeline",
                "state": {"backend": "table", "conn_id": "dwh"},
                "loads": [
                    {
                        "name": "orders",
                        "source": {
                            "connector": "postgres",
                            "conn_id": "shop",
                            "table": "orders",
                            "incremental": {"mode": "cursor", "cursor": "id", "lookback": "10m"},
                        },
                        "sink": {
                            "connector": "postgres",
                            "conn_id": "dwh",
                            "table": "raw.orders",
                            "strategy": "incremental_merge",
                            "unique_key": ["id"],
                        },
                    }
                ],
            }
        )
    )
    built = build_dags(tmp_path)["py_pipeline"].get_task("orders")
    with _dag():
        typed = StagedLoadOperator(
            task_id="orders",
            source=PostgresSource("shop", table="orders", incremental=Cursor("id", lookback="10m")),
            sink=PostgresSink("dwh", "raw.orders", strategy="incremental_merge", unique_key=["id"]),
            state=STATE,
        )
    assert type(built) is type(typed)
    assert check_load("py_pipeline", built._load("orders"), built.state, "f") == check_load(
        "py_pipeline", typed._load("orders"), typed.state, "f"
    )


def test_a_partitioned_load_composes_in_python_and_is_checked_at_parse() -> None:
    from airflow_provider_dpone.operators.partitioned_load import partitioned_load

    sink = {"connector": "postgres", "conn_id": "dwh", "table": "raw.orders", "strategy": "full_refresh",
            "staging": {"files": {"uri": "s3://bucket/dpone", "conn_id": "staging_s3"}}}  # fmt: skip
    source = PostgresSource("shop", table="orders")
    with _dag() as dag:
        _, _, orders = partitioned_load(
            task_id="orders", parallel={"partitions": 4, "by": "id"}, source=source, sink=sink, state=STATE
        )
    assert dag.task_dict["orders__extract"].upstream_task_ids == {"orders__plan"}
    assert orders.upstream_task_ids == {"orders__extract"} and orders.parallel == {
        "partitions": 4,
        "by": "id",
    }
    with pytest.raises(ManifestError, match=r"parallel: needs sink\.staging\.files"), _dag():
        partitioned_load(task_id="orders", parallel={"partitions": 4, "by": "id"}, source=source,
                         sink={**sink, "staging": {}}, state=STATE)  # fmt: skip
