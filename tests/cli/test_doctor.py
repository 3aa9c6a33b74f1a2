"""``dpone doctor`` beyond PostgreSQL's privileges (tests/hooks/test_postgres_doctor.py): Kafka
topics, groups and transactions on the real broker, ClickHouse grants on the real engine, the
local tools, a connection that is not defined, and manifests that do not validate."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_dpone.cli.main import main
from tests.conftest import ChEnv, KafkaEnv

KAFKA_TO_CLICKHOUSE = """
pipeline: doctor_stream
defaults:
  source: {connector: kafka, conn_id: kafka}
  sink: {connector: clickhouse, conn_id: ch}
loads:
  - name: events
    source: {topic: %s, incremental: {mode: offsets}}
    sink: {table: raw.events, strategy: incremental_append}
  - name: copy
    source: {connector: clickhouse, conn_id: ch, table: %s}
    sink: {connector: kafka, conn_id: kafka, topic: %s, strategy: incremental_append}
"""


def doctor(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, *extra: str) -> tuple[int, str]:
    path = tmp_path / f"m_{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(text)
    code = main(["doctor", *extra, str(path)])
    return code, capsys.readouterr().out


def findings(out: str) -> list[dict[str, Any]]:
    report = json.loads(out)
    return [f for c in report["connections"] for f in c["findings"]] + report["tools"]


@pytest.mark.integration
def test_kafka_and_clickhouse_loads_that_can_run(
    kafka: KafkaEnv, clean_ch: ChEnv, airflow_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every check passes; the state lives in Airflow Variables, so Airflow's database is migrated."""
    events, copy = f"doc_events_{uuid.uuid4().hex[:6]}", f"doc_copy_{uuid.uuid4().hex[:6]}"
    kafka.create_topic(events, 3)
    kafka.create_topic(copy, 1)
    clean_ch.command("create table src.items (id Int64) engine = MergeTree order by id")
    code, out = doctor(
        tmp_path, capsys, KAFKA_TO_CLICKHOUSE % (events, "src.items", copy), "--format", "json"
    )
    found = findings(out)
    assert code == 0, [f for f in found if f["status"] != "ok"]
    messages = [f["message"] for f in found]
    assert f"topic {events}: 3 partition(s)" in messages
    assert "the broker does not report the operations allowed on topic " + events in messages
    assert any(
        m.startswith("a transactional producer started (id dpone.doctor_stream.copy.doctor") for m in messages
    )
    assert any(m.startswith("ClickHouse 2") for m in messages)
    assert "CREATE TABLE, DROP TABLE, INSERT, SELECT, ALTER MODIFY COMMENT on dpone_staging.*" in messages
    assert "SELECT on src.items" in messages
    assert (
        "driver installed (extra 'kafka')" in messages and "driver installed (extra 'clickhouse')" in messages
    )
    assert not clean_ch.query("select name from system.databases where name in ('raw', 'dpone_staging')")


@pytest.mark.integration
def test_a_missing_topic_and_table_are_named(
    kafka: KafkaEnv, clean_ch: ChEnv, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = f"doc_missing_{uuid.uuid4().hex[:6]}"
    code, out = doctor(tmp_path, capsys, KAFKA_TO_CLICKHOUSE % (missing, "src.nothing", missing))
    assert code == 1
    assert f"FAIL  object        doctor_stream.events source: topic {missing} cannot be read" in out
    assert "FAIL  object        doctor_stream.copy source: table src.nothing does not exist" in out
    assert f"warn  object        doctor_stream.copy sink: topic {missing} does not exist" in out
    assert "the broker creates topics on first use" in out
    assert "fix: check source.table" in out


@pytest.mark.integration
def test_an_unreachable_broker_fails_within_the_timeout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("airflow_provider_dpone.hooks.kafka_doctor.TIMEOUT", 1.0)
    extra = {"bootstrap.servers": "127.0.0.1:1", "sasl.password": "doctor-kafka-secret"}
    monkeypatch.setenv("AIRFLOW_CONN_KAFKA", json.dumps({"conn_type": "kafka", "extra": extra}))
    monkeypatch.setenv(
        "AIRFLOW_CONN_CH",
        json.dumps({"conn_type": "dpone_clickhouse", "extra": {"dsn": f"chdb://{tmp_path}/ch"}}),
    )
    text = KAFKA_TO_CLICKHOUSE.split("  - name: copy")[0] % "t"
    code, out = doctor(tmp_path, capsys, text, "--format", "json")
    assert code == 1
    kafka_findings = json.loads(out)["connections"][0]["findings"]
    assert [(f["status"], f["check"]) for f in kafka_findings] == [("fail", "reachable")]
    assert "no broker answered within 1s" in kafka_findings[0]["message"]
    assert "doctor-kafka-secret" not in out


@pytest.mark.unit
def test_a_connection_that_is_not_defined_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_NOWHERE", raising=False)
    monkeypatch.setenv("AIRFLOW__SECRETS__BACKEND", "")
    text = """
pipeline: doctor_missing
loads:
  - name: a
    source: {connector: postgres, conn_id: nowhere, table: public.a}
    sink: {connector: postgres, conn_id: nowhere, table: raw.a}
"""
    code, out = doctor(tmp_path, capsys, text, "--format", "json")
    assert code == 1
    first = json.loads(out)["connections"][0]["findings"][0]
    assert first["status"] == "fail" and "connection 'nowhere' cannot be read" in first["message"]
    assert first["fix"] == "set AIRFLOW_CONN_NOWHERE or add the connection in Airflow"


@pytest.mark.unit
def test_an_invalid_manifest_is_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = "pipeline: broken\nloads:\n  - name: a\n    source: {connector: postgres, conn_id: x, table: t}\n    sink: {connector: nope, conn_id: y, table: t}\n"
    code, out = doctor(tmp_path, capsys, text)
    assert code == 2
    assert "sink.connector" in out and "fix these first (`dpone validate`)" in out


@pytest.mark.unit
def test_a_refused_acl_is_no_permission_and_an_unanswered_one_not_known() -> None:
    from concurrent.futures import Future

    from confluent_kafka import KafkaError, KafkaException

    from airflow_provider_dpone.hooks.kafka_doctor import _acl, _operations

    refused: Future = Future()
    refused.set_exception(KafkaException(KafkaError(KafkaError.GROUP_AUTHORIZATION_FAILED)))
    assert _operations(refused) == set()
    assert _acl("s", "group g", "READ", _operations(refused), "allow Read").status == "fail"
    silent: Future = Future()
    silent.set_exception(KafkaException(KafkaError(KafkaError._TIMED_OUT)))
    assert _operations(silent) is None
    assert _acl("s", "group g", "READ", None, "allow Read").status == "info"
    assert _acl("s", "topic t", "READ", {"DESCRIBE", "READ"}, "allow Read").status == "ok"


VARIABLES = """
pipeline: doctor_vars
loads:
  - name: a
    source: {connector: postgres, conn_id: doc_src, table: public.a}
    sink: {connector: postgres, conn_id: doc_src, table: raw.a}
"""


def _doctor_in(tmp_path: Path, env: dict[str, str]) -> dict[str, Any]:
    """``dpone doctor --format json`` in a child process: Airflow reads its configuration once."""
    import os
    import subprocess
    import sys

    path = tmp_path / "vars.yaml"
    path.write_text(VARIABLES)
    code = "import sys; from airflow_provider_dpone.cli.main import main; sys.exit(main(sys.argv[1:]))"
    done = subprocess.run(
        [sys.executable, "-c", code, "doctor", "--format", "json", str(path)],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "AIRFLOW_CONN_DOC_SRC": "postgresql://u@127.0.0.1:1/none", **env},
    )  # fmt: skip
    return json.loads(done.stdout)


@pytest.mark.integration
def test_state_in_airflow_variables_needs_a_readable_airflow_database(
    airflow_db: Path, tmp_path: Path
) -> None:
    found = {f["subject"]: f for f in _doctor_in(tmp_path, {})["tools"]}
    assert found["doctor_vars state"]["status"] == "ok"
    empty = {"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp_path / 'empty.db'}"}
    state = {f["subject"]: f for f in _doctor_in(tmp_path, empty)["tools"]}["doctor_vars state"]
    assert state["status"] == "fail" and "Airflow Variables cannot be read" in state["message"]
    assert "airflow db migrate" in state["fix"]
