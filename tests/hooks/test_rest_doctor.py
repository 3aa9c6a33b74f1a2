"""``dpone doctor`` on REST and SaaS API connections, against a local HTTP API: credentials the
API refuses, an endpoint that answers, a base URL that tells nothing, a host that does not
answer, and a SaaS resource checked against its vendor's catalogue."""

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

from airflow_provider_dpone.cli.main import main
from tests.fake_api import TOKEN, FakeApi

REST = """
pipeline: doctor_api
loads:
  - name: items
    source:
      connector: rest
      conn_id: doc_api
      endpoint: {path: /pages, record_selector: items, primary_key: [id]}
      fields: {id: int64}
    sink: {connector: postgres, conn_id: doc_dst, table: raw.items, strategy: incremental_append}
"""
CBR = """
pipeline: doctor_cbr
loads:
  - name: rates
    source: {connector: cbr, conn_id: doc_cbr, resource: %s}
    sink: {connector: postgres, conn_id: doc_dst, table: raw.rates, strategy: full_refresh}
"""


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Any:
    server = FakeApi([{"id": 1, "updated_at": "2026-01-01T00:00:00+00:00"}])
    monkeypatch.setenv("AIRFLOW_CONN_DOC_DST", "postgresql://postgres@127.0.0.1:1/none")
    yield server
    server.close()


def connection(monkeypatch: pytest.MonkeyPatch, host: str, token: str, **extra: Any) -> None:
    conn = {"conn_type": "http", "host": host, "password": token, "extra": {"auth": "bearer", **extra}}
    monkeypatch.setenv("AIRFLOW_CONN_DOC_API", json.dumps(conn))


@pytest.fixture(autouse=True)
def own_log_lines_off_stdout(monkeypatch: pytest.MonkeyPatch) -> None:
    """In this process Airflow's root handler writes to the captured stdout; ``dpone`` itself
    logs to stderr (test_the_json_of_a_command_that_imports_airflow_stays_clean)."""
    monkeypatch.setattr(logging.getLogger("airflow_provider_dpone"), "propagate", False)


def api_findings(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str) -> tuple[list[dict], str]:
    path = tmp_path / f"m_{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(text)
    main(["doctor", "--format", "json", str(path)])
    out = capsys.readouterr().out
    return json.loads(out)["connections"][0]["findings"], out


def test_refused_credentials_are_an_authentication_failure(
    api: FakeApi, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    connection(monkeypatch, api.url, "wrong-" + TOKEN, test_path="/pages")
    found, out = api_findings(tmp_path, capsys, REST)
    assert [(f["status"], f["check"]) for f in found] == [("ok", "reachable"), ("fail", "authenticated")]
    assert "returned 401" in found[1]["message"] and "scope" in found[1]["fix"]
    assert TOKEN not in out


def test_a_test_path_that_answers_shows_the_credentials_work(
    api: FakeApi, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    connection(monkeypatch, api.url, TOKEN, test_path="/pages")
    found, out = api_findings(tmp_path, capsys, REST)
    assert [(f["status"], f["check"]) for f in found] == [("ok", "reachable"), ("ok", "authenticated")]
    assert found[0]["message"].startswith(f"GET {api.url}/pages returned 200")
    assert api.log[-1]["headers"]["Authorization"] == f"Bearer {TOKEN}" and TOKEN not in out


def test_a_base_url_that_answers_an_error_is_a_warning_naming_test_path(
    api: FakeApi, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    connection(monkeypatch, api.url, TOKEN)
    found, _ = api_findings(tmp_path, capsys, REST)
    assert [(f["status"], f["check"]) for f in found] == [("warn", "authenticated")]
    assert "test_path" in found[0]["fix"]


def test_a_host_that_does_not_answer_is_unreachable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_DOC_DST", "postgresql://postgres@127.0.0.1:1/none")
    connection(monkeypatch, "http://127.0.0.1:1", TOKEN)
    found, out = api_findings(tmp_path, capsys, REST)
    assert [(f["status"], f["check"]) for f in found] == [("fail", "reachable")]
    assert "ConnectError" in found[0]["message"] and TOKEN not in out
    assert found[0]["message"].startswith("[DPONE200] GET http://127.0.0.1:1/")  # the URL it tried


def test_a_saas_resource_is_checked_against_the_catalogue(
    api: FakeApi, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = {"conn_type": "http", "host": api.url, "extra": {"test_path": "/pages"}}
    monkeypatch.setenv("AIRFLOW_CONN_DOC_CBR", json.dumps(conn))
    api.auth = "none"
    found, _ = api_findings(tmp_path, capsys, CBR % "daily_rates")
    assert [(f["status"], f["check"]) for f in found] == [
        ("ok", "reachable"),
        ("ok", "authenticated"),
        ("ok", "object"),
    ]
    assert found[-1]["message"].startswith("resource daily_rates of ")
    path = tmp_path / "unknown.yaml"  # a resource the catalogue lacks does not even validate
    path.write_text(CBR % "nothing")
    assert main(["doctor", "--format", "json", str(path)]) == 2
    errors = json.loads(capsys.readouterr().out)["errors"]
    assert "source.resource: 'nothing' is not a resource of 'cbr'" in errors[0]


def test_the_json_of_a_command_that_imports_airflow_stays_clean(tmp_path: Path) -> None:
    """A REST connection makes ``dpone`` import Airflow, which logs (here: it will not mask a
    password shorter than 5 characters); its lines go to stderr, stdout stays the JSON."""
    path = tmp_path / "m.yaml"
    path.write_text(REST)
    conn = {"conn_type": "http", "host": "http://127.0.0.1:1", "password": "x", "extra": {"auth": "bearer"}}
    env = {
        "AIRFLOW_CONN_DOC_API": json.dumps(conn),
        "AIRFLOW_CONN_DOC_DST": "postgresql://u@127.0.0.1:1/none",
    }
    code = "import sys; from airflow_provider_dpone.cli.main import main; sys.exit(main(sys.argv[1:]))"
    done = subprocess.run(
        [sys.executable, "-c", code, "doctor", "--format", "json", str(path)],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=300,
    )
    assert done.returncode == 1
    report = json.loads(done.stdout)
    assert report["connections"][0]["findings"][0]["check"] == "reachable"


def test_a_key_sent_as_a_query_parameter_stays_masked(
    api: FakeApi, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.fake_api import API_KEY

    api.auth = "api_key_query"
    conn = {"conn_type": "http", "host": api.url, "password": API_KEY,
            "extra": {"auth": "api_key", "api_key_param": "api_key", "test_path": "/pages"}}  # fmt: skip
    monkeypatch.setenv("AIRFLOW_CONN_DOC_API", json.dumps(conn))
    found, out = api_findings(tmp_path, capsys, REST)
    assert [(f["status"], f["check"]) for f in found] == [("ok", "reachable"), ("ok", "authenticated")]
    assert api.log[-1]["query"]["api_key"] == API_KEY  # the key reached the API
    assert API_KEY not in out and "/pages?" in found[0]["message"]


def test_lineage_names_an_api_without_its_credentials() -> None:
    from airflow_provider_dpone.hooks.rest_http import public_url

    assert public_url("https://svc:TopSecret@api.example.com/v1/?key=abc#x") == "https://api.example.com/v1"


def test_a_public_api_needs_no_connection(
    api: FakeApi, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """CBR asks for no credentials: without a connection the load reads the API's own URL, and
    doctor does not call the connection missing."""
    monkeypatch.delenv("AIRFLOW_CONN_DOC_CBR", raising=False)
    monkeypatch.setattr("airflow_provider_dpone.hooks.rest_doctor._request", lambda hook, label: [])
    found, _ = api_findings(tmp_path, capsys, CBR % "daily_rates")
    assert [(f["status"], f["check"]) for f in found] == [("ok", "object")]
