"""``dpone run``, ``plan`` and ``state`` on ``AIRFLOW_CONN_*`` connections import no Airflow and
load what the Airflow hooks load; without the variable, Airflow finds the connection."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from airflow_provider_dpone.cli.main import EXIT_FAILED, EXIT_OK, _MaskingFormatter, main

pytestmark = pytest.mark.integration

EVENTS = """
create table events (id bigint primary key, kind int not null, payload jsonb not null,
                     amount numeric(12,2), tags text[], updated_at timestamptz not null, note text);
insert into events
select g, g % 7, jsonb_build_object('n', g, 'tags', jsonb_build_array('a', g)), g / 3.0,
       array['t' || g, null], timestamptz '2024-01-01' + g * interval '1 minute',
       case when g % 4 = 0 then null else 'n' || g end
from generate_series(1, 200) g;
"""

# The CLI in a child process, reporting the top-level packages it imported.
_CHILD = (
    "import sys, json\n"
    "from airflow_provider_dpone.cli.main import main\n"
    "code = main(sys.argv[1:])\n"
    "top = sorted({m.split('.')[0] for m in sys.modules})\n"
    "sys.stderr.write('\\nIMPORTED ' + json.dumps(top) + '\\n')\n"
    "sys.exit(code)\n"
)


def dpone(*argv: str, env: dict[str, str] | None = None) -> tuple[int, str, str, list[str]]:
    """``dpone argv`` in a child process: exit code, stdout, stderr, top-level modules imported."""
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, *argv],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
    )
    err, _, imported = done.stderr.rpartition("\nIMPORTED ")
    return done.returncode, done.stdout, err, json.loads(imported) if imported else []


def loads(target: str, src: str = "src", dst: str = "dst") -> list[dict[str, Any]]:
    source = {"connector": "postgres", "conn_id": src}
    sink = {"connector": "postgres", "conn_id": dst}
    return [
        {
            "name": "events_full",
            "source": {**source, "table": "events"},
            "sink": {**sink, "table": f"raw.{target}_full"},
        },
        {
            "name": "events_inc",
            "source": {
                **source,
                "table": "events",
                "incremental": {"mode": "cursor", "cursor": "updated_at"},
            },
            "sink": {
                **sink,
                "table": f"raw.{target}_inc",
                "strategy": "incremental_merge",
                "unique_key": ["id"],
            },
        },
    ]


def write(tmp_path: Path, pipeline: str, target: str, state: dict | None = None, **conns: str) -> Path:
    doc = {
        "pipeline": pipeline,
        "state": state or {"backend": "table", "conn_id": conns.get("dst", "dst")},
        "loads": loads(target, **conns),
    }
    path = tmp_path / f"{pipeline}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def rows(pg, table: str) -> list[tuple]:
    return pg.query("dst", f"select * from {table} order by id")


def test_run_plan_and_state_import_no_airflow_and_load_as_the_airflow_hooks_do(clean_pg, tmp_path) -> None:
    pg = clean_pg
    pg.execute("src", EVENTS)
    path = write(tmp_path, "light", "light")
    code, out, err, imported = dpone("plan", str(path), "--format", "json")
    assert code == EXIT_OK, err
    assert "airflow" not in imported and "psycopg" in imported
    assert [p["load"] for p in json.loads(out)["loads"]] == ["events_full", "events_inc"]

    code, out, err, imported = dpone(
        "run", str(path), "--format", "json", "--report-dir", str(tmp_path / "r")
    )
    assert code == EXIT_OK, err
    assert "airflow" not in imported
    light = {r["load"]: r for r in json.loads(out)["reports"]}
    assert "state before" in err  # the log goes to stderr; stdout is the JSON alone

    pg.execute("src", "update events set amount = -1, updated_at = '2025-01-01' where id % 50 = 0")
    code, out, err, imported = dpone("run", str(path), "--load", "events_inc", "--format", "json")
    assert code == EXIT_OK and "airflow" not in imported, err
    light_again = json.loads(out)["reports"][0]
    code, out, err, imported = dpone("state", "show", str(path), "--format", "json")
    assert code == EXIT_OK and "airflow" not in imported, err
    shown = {s["load"]: s for s in json.loads(out)["states"]}
    assert shown["events_inc"]["state"]["value"] == light_again["state_after"]["value"]

    # The same loads through the Airflow hooks (the operator's wiring), into other tables.
    from airflow_provider_dpone.dag_factory.files import load_manifest
    from airflow_provider_dpone.hooks.postgres import DponePostgresHook
    from airflow_provider_dpone.operators.wiring import assemble
    from airflow_provider_dpone.runtime.engine import run_load

    pg.execute("src", "drop table events")
    pg.execute("src", EVENTS)
    reference = load_manifest(write(tmp_path, "hooks", "hooks"))

    def airflow_run(name: str) -> dict[str, Any]:
        load = reference.load(name)
        parts = assemble(load, reference.state)
        assert isinstance(parts.source, DponePostgresHook) and isinstance(parts.sink, DponePostgresHook)
        return run_load(reference.pipeline, load, parts, f"hooks-{uuid.uuid4().hex[:6]}").to_dict()

    hooks = {name: airflow_run(name) for name in ("events_full", "events_inc")}
    pg.execute("src", "update events set amount = -1, updated_at = '2025-01-01' where id % 50 = 0")
    hooks_again = airflow_run("events_inc")

    def same(report: dict[str, Any]) -> dict[str, Any]:
        """What a run did, without its names and timings."""
        fields = ("status", "rows", "fast_path", "strategy", "state_before", "state_after")
        finalize = {k: v for k, v in report["sink"]["finalize"].items() if k != "target"}
        return {**{k: report[k] for k in fields}, "finalize": finalize}

    for name in ("events_full", "events_inc"):
        assert same(light[name]) == same(hooks[name])
    assert same(light_again) == same(hooks_again) and light_again["rows"] == 4
    assert rows(pg, "raw.light_full") == rows(pg, "raw.hooks_full")
    assert rows(pg, "raw.light_inc") == rows(pg, "raw.hooks_inc")


def test_without_the_variable_airflow_finds_the_connection(clean_pg, tmp_path) -> None:
    """No ``AIRFLOW_CONN_<ID>``: Airflow is imported and its lookup (a secrets backend here)
    answers. With a secrets backend configured, Airflow answers even where the variable is set,
    since Airflow asks the backend first."""
    from airflow_provider_dpone.demo.postgres_server import airflow_conn_uri

    pg = clean_pg
    pg.execute("src", EVENTS)
    secrets = tmp_path / "connections.json"
    secrets.write_text(json.dumps({"vault_src": airflow_conn_uri(pg.src), "dst": airflow_conn_uri(pg.dst)}))
    backend = {
        "AIRFLOW__SECRETS__BACKEND": "airflow.secrets.local_filesystem.LocalFilesystemBackend",
        "AIRFLOW__SECRETS__BACKEND_KWARGS": json.dumps({"connections_file_path": str(secrets)}),
    }
    path = write(tmp_path, "vault", "vault", src="vault_src")
    assert "AIRFLOW_CONN_VAULT_SRC" not in os.environ
    # A wrong AIRFLOW_CONN_DST: the backend's 'dst' is the one Airflow (and so dpone) uses.
    wrong = {"AIRFLOW_CONN_DST": "postgres://nobody@127.0.0.1:9/nowhere"}
    code, out, err, imported = dpone("run", str(path), "--format", "json", env={**backend, **wrong})
    assert code == EXIT_OK, err
    assert "airflow" in imported
    assert [r["rows"] for r in json.loads(out)["reports"]] == [200, 200]
    assert len(rows(pg, "raw.vault_full")) == 200

    # Without the backend, the source id is unknown: Airflow says so.
    code, out, err, imported = dpone("run", str(path), "--load", "events_full")
    assert code == EXIT_FAILED and "airflow" in imported
    assert "vault_src" in err and "isn't defined" in err


def test_a_standalone_run_shows_no_credential(clean_pg, tmp_path) -> None:
    from psycopg.conninfo import conninfo_to_dict

    pg = clean_pg
    pg.execute("src", EVENTS)
    token = "tok" + uuid.uuid4().hex[:16]
    p = conninfo_to_dict(pg.src)
    host = p.get("host", "127.0.0.1")
    where = (
        f"@/{p['dbname']}?host={host}"
        if host.startswith("/")
        else f"@{host}:{p.get('port', 5432)}/{p['dbname']}"
    )
    # A login the server does not know: libpq's refusal names it.
    bad = f"postgres://dpone_{token}:{token}{where}"
    path = write(tmp_path, "masked", "masked")
    code, out, err, imported = dpone("run", str(path), "--load", "events_full", env={"AIRFLOW_CONN_SRC": bad})
    assert code == EXIT_FAILED and "airflow" not in imported
    assert "cannot connect to 'src'" in err and token not in out + err
    code, out, err, _ = dpone("plan", str(path), env={"AIRFLOW_CONN_SRC": bad})
    assert token not in out + err


def test_log_lines_mask_every_resolved_connection(monkeypatch) -> None:
    from airflow_provider_dpone.hooks.connection import resolve_connection

    token = "tok" + uuid.uuid4().hex[:16]
    monkeypatch.setenv("AIRFLOW_CONN_LOGGED", f"postgres://someone:{token}@h/db?api_token={token}x")
    monkeypatch.delenv("AIRFLOW__SECRETS__BACKEND", raising=False)
    resolve_connection("logged")
    record = logging.LogRecord("airflow_provider_dpone.x", logging.INFO, "f", 1, "dsn %s", (token,), None)
    formatted = _MaskingFormatter("%(message)s").format(record)
    assert formatted == "dsn ***"


def test_variable_state_shadowed_by_the_environment_is_refused(
    clean_pg, tmp_path, capsys, monkeypatch
) -> None:
    """A Variable Airflow reads from AIRFLOW_VAR_* would hide every state write: refused before
    any data moves (run), and for set and reset."""
    pg = clean_pg
    pg.execute("src", EVENTS)
    path = write(tmp_path, "shadow", "shadow", state={"backend": "variable"})
    monkeypatch.setenv("AIRFLOW_VAR_DPONE.SHADOW.EVENTS_INC", '{"kind": "cursor"}')
    assert main(["run", str(path), "--load", "events_inc"]) == EXIT_FAILED
    err = capsys.readouterr().err
    assert "environment variable AIRFLOW_VAR_DPONE.SHADOW.EVENTS_INC" in err and "never be read back" in err
    assert pg.query("dst", "select to_regclass('raw.shadow_inc')") == [(None,)]
    assert main(["state", "reset", str(path), "--load", "events_inc"]) == EXIT_FAILED
    assert main(["state", "set", str(path), "--load", "events_inc", "--value", "2024-01-01T00:00:00Z"]) in (
        EXIT_FAILED,
    )
    assert capsys.readouterr().err.count("never be read back") == 2


def test_kafka_and_clickhouse_loads_run_standalone_too(clean_pg, clean_ch, kafka, tmp_path) -> None:
    """Kafka -> ClickHouse (over HTTP) and PostgreSQL -> ClickHouse, by ``dpone run`` without
    Airflow: both connectors have a standalone engine."""
    from urllib.parse import quote

    from tests.clickhouse_http import ChdbHttpFront

    pg, ch = clean_pg, clean_ch
    pg.execute("src", EVENTS)
    topic = f"t_{uuid.uuid4().hex[:8]}"
    kafka.create_topic(topic, 3)
    kafka.produce(
        topic,
        [
            (str(i).encode(), json.dumps({"id": i, "amount": f"{i}.25", "tags": {"n": i}}).encode())
            for i in range(1, 121)
        ],
    )
    front = ChdbHttpFront(os.path.realpath(ch.dsn[len("chdb://") :]), "loader", "ch-Pass-1")
    try:
        http = f"dpone-clickhouse://loader:{quote('ch-Pass-1')}@127.0.0.1:{front.port}/default?compress=false"
        sink = {"connector": "clickhouse", "conn_id": "chhttp", "strategy": "incremental_merge"}
        doc = {
            "pipeline": "mixed",
            "state": {"backend": "table", "conn_id": "dst"},
            "loads": [
                {
                    "name": "msgs",
                    "source": {
                        "connector": "kafka",
                        "conn_id": "kafka",
                        "topic": topic,
                        "incremental": {"mode": "offsets"},
                        "fields": {"id": "int64", "amount": "decimal(12,2)", "tags": "json"},
                    },
                    "sink": {**sink, "table": "raw.msgs", "unique_key": ["id"]},
                },
                {
                    "name": "events",
                    "source": {"connector": "postgres", "conn_id": "src", "table": "events"},
                    "sink": {**sink, "table": "raw.events", "unique_key": ["id"]},
                },
            ],
        }
        path = tmp_path / "mixed.yaml"
        path.write_text(yaml.safe_dump(doc))
        code, out, err, imported = dpone(
            "run", str(path), "--format", "json", env={"AIRFLOW_CONN_CHHTTP": http}
        )
        assert code == EXIT_OK, err
        assert "airflow" not in imported and {"confluent_kafka", "clickhouse_connect"} <= set(imported)
        assert [r["rows"] for r in json.loads(out)["reports"]] == [120, 200]
        assert ch.query("select count(), uniqExact(id) from raw.msgs") == [(120, 120)]
        assert ch.query("select count() from raw.events") == [(200,)]
        assert "ch-Pass-1" not in out + err
    finally:
        front.close()
