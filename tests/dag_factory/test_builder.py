"""The DAG factory: parse-safe, fast, and a broken manifest never hides the others."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
import yaml

from airflow_provider_dpone.dag_factory import build_dags
from tests.contracts.test_manifest_validation import VALID


def _write(folder: Path, n: int) -> None:
    for i in range(n):
        (folder / f"p{i:03}.yaml").write_text(yaml.safe_dump({**VALID, "pipeline": f"pipe_{i:03}"}))


def test_dags_tasks_and_dependencies(tmp_path: Path) -> None:
    _write(tmp_path, 1)
    dag = build_dags(tmp_path)["pipe_000"]
    assert set(dag.task_ids) == {"customers", "orders"}
    assert dag.get_task("orders").upstream_task_ids == {"customers"}
    op = dag.get_task("orders")
    assert op.template_fields == ("source", "sink", "state", "quality", "partitions")
    assert op.sink["unique_key"] == ["id"] and op.load_name == "orders" and op.pipeline == "pipe_000"
    assert op.retries == 2 and dag.max_active_runs == 1 and "dpone" in dag.tags
    # the Trigger form's fields
    assert {"dpone_mode", "dpone_from", "dpone_to", "dpone_loads", "dpone_confirm"} <= set(dag.params)
    assert dag.params["dpone_mode"] == "scheduled" and op.trigger_rule == "all_success"


def test_a_partitioned_load_is_a_plan_a_mapped_extract_and_its_own_task(tmp_path: Path) -> None:
    loads = [
        VALID["loads"][0],
        {**VALID["loads"][1], "parallel": {"partitions": 4, "by": "id"},
         "sink": {**VALID["loads"][1]["sink"], "staging": {"files": {"uri": "s3://bucket/dpone"}}}},
    ]  # fmt: skip
    (tmp_path / "p.yaml").write_text(yaml.safe_dump({**VALID, "pipeline": "par", "loads": loads}))
    dag = build_dags(tmp_path)["par"]
    assert set(dag.task_ids) == {"customers", "orders__plan", "orders__extract", "orders"}
    assert dag.get_task("orders__plan").upstream_task_ids == {"customers"}
    extract = dag.get_task("orders__extract")
    assert type(extract).__name__ == "MappedOperator" and extract.upstream_task_ids == {"orders__plan"}
    final = dag.get_task("orders")
    assert final.upstream_task_ids == {"orders__extract"} and final.load_name == "orders"
    assert final.parallel == {"partitions": 4, "by": "id"}


def test_broken_manifest_shows_as_its_own_dag(tmp_path: Path) -> None:
    _write(tmp_path, 2)
    (tmp_path / "broken.yaml").write_text("pipeline: x\nloads: [\n")
    bad = dict(VALID, pipeline="bad_one")
    bad["loads"] = [dict(VALID["loads"][0], sink={"table": "raw.c", "strategy": "nope"})]
    (tmp_path / "bad_strategy.yaml").write_text(yaml.safe_dump(bad))
    dags = build_dags(tmp_path)
    assert {"pipe_000", "pipe_001", "dpone_invalid__broken", "dpone_invalid__bad_strategy"} <= set(dags)
    invalid = dags["dpone_invalid__bad_strategy"]
    assert "sink.strategy" in invalid.description and "bad_strategy.yaml" in invalid.doc_md
    assert "bad_strategy.yaml" not in invalid.description  # the path is the display name's
    assert invalid.dag_display_name == "INVALID MANIFEST bad_strategy.yaml"
    assert "dpone-invalid" in invalid.tags
    healthy = dags["pipe_000"]
    assert "```yaml\n" in healthy.doc_md and "\npipeline: pipe_000\n" in healthy.doc_md  # as written


def test_a_task_run_parses_only_its_own_manifest(tmp_path: Path, caplog, monkeypatch) -> None:
    """Airflow's parsing context names the DAG of the task being run: the other manifests,
    valid or not, are never validated, so their errors never reach that task's log."""
    from airflow_provider_dpone.dag_factory import register_manifest_dags

    _write(tmp_path, 2)
    (tmp_path / "broken.yaml").write_text("pipeline: x\nloads: [\n")
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", "pipe_001")
    namespace: dict = {}
    with caplog.at_level("ERROR"):
        dags = register_manifest_dags(namespace, tmp_path)
    assert set(dags) == {"pipe_001"} and not caplog.records
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", "dpone_invalid__broken")
    assert set(register_manifest_dags({}, tmp_path)) == {"dpone_invalid__broken"}
    monkeypatch.delenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID")
    with caplog.at_level("ERROR"):
        assert set(register_manifest_dags({}, tmp_path)) == {"pipe_000", "pipe_001", "dpone_invalid__broken"}
    assert "invalid manifest" in caplog.text  # the DAG processor still reports it


def test_parsing_200_manifests_is_fast_and_offline(tmp_path: Path, monkeypatch) -> None:
    _write(tmp_path, 200)

    def no_network(*args, **kwargs):
        raise AssertionError("DAG parsing opened a network connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    build_dags(tmp_path)  # warm imports
    start = time.perf_counter()
    dags = build_dags(tmp_path)
    elapsed = time.perf_counter() - start
    assert len(dags) == 200
    print(f"parsed 200 manifests into DAGs in {elapsed:.3f}s")


@pytest.mark.integration
def test_airflow_dagbag_loads_the_factory_file(tmp_path: Path, airflow_db, monkeypatch) -> None:
    from airflow.dag_processing.dagbag import DagBag

    _write(tmp_path, 3)
    (tmp_path / "broken.yaml").write_text("")
    monkeypatch.setenv("DPONE_MANIFESTS_DIR", str(tmp_path))
    bag = DagBag(dag_folder=str(Path(__file__).resolve().parents[2] / "dags"))
    assert not bag.import_errors
    assert {"pipe_000", "pipe_001", "pipe_002", "dpone_invalid__broken"} <= set(bag.dag_ids)
