"""``dpone doctor`` on a BigQuery connection: against the emulator (which answers datasets.get,
tables.get and dry runs but has no IAM: every permission is reported as not known, and nothing
is created), an endpoint that does not answer, an endpoint and a token server that refuse the
credentials (the key never printed), and real BigQuery in the live profile."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_dpone.cli import doctor as cli_doctor
from airflow_provider_dpone.cli.main import main
from airflow_provider_dpone.contracts.doctor import Finding, connection_uses
from airflow_provider_dpone.contracts.manifest import parse_manifest

pytest_plugins = ("tests.bigquery_fixtures",)
pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

MANIFEST = """
pipeline: doc_bq
state: {backend: table, conn_id: bq, connector: bigquery, table: meta.state}
defaults:
  source: {connector: postgres, conn_id: src, table: public.doc_items}
  sink: {connector: bigquery, conn_id: bq}
loads:
  - name: items
    sink: {table: raw.items, strategy: incremental_merge, unique_key: [id]}
  - name: fresh
    sink: {table: stg.fresh, strategy: full_refresh}
"""


@pytest.fixture(autouse=True)
def bigquery_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """The doctor runs this module for connector bigquery (until cli/doctor.py names it)."""
    checks = {**cli_doctor.CHECKS, "bigquery": "airflow_provider_dpone.hooks.bigquery_doctor:check"}
    monkeypatch.setattr(cli_doctor, "CHECKS", checks)


def findings(conn_id: str, text: str = MANIFEST) -> list[Finding]:
    """The doctor's findings for one connection of the manifest (the CLI's own path)."""
    import yaml

    manifest = parse_manifest(yaml.safe_load(text))
    (use,) = [u for u in connection_uses([manifest]) if u.conn_id == conn_id]
    return cli_doctor.connection_findings(use)


def about(found: list[Finding], status: str, *words: str) -> list[Finding]:
    """The findings of ``status`` whose check and message hold every word."""
    return [f for f in found if f.status == status and all(w in f"{f.check} {f.message}" for w in words)]


def test_the_emulator_shows_objects_and_reports_every_permission_as_not_known(
    clean_pg: Any, clean_bq: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clean_pg.execute("src", "create table public.doc_items (id int primary key, name text)")
    clean_bq.client.create_dataset("raw")
    clean_bq.client.create_dataset("dpone_staging")
    clean_bq.query("create table raw.items (id int64, name string)")
    before = sorted(d.dataset_id for d in clean_bq.client.list_datasets())
    path = tmp_path / "doc_bq.yaml"
    path.write_text(MANIFEST)

    code = main(["doctor", "--format", "json", str(path)])
    report = json.loads(capsys.readouterr().out)
    (bq,) = [c for c in report["connections"] if c["conn_id"] == "bq"]
    found = [Finding(**f) for f in bq["findings"]]

    assert code == 0, found  # nothing fails; what the emulator cannot tell is info
    assert about(found, "ok", "reachable") and about(found, "ok", "authenticated", "anonymous")
    assert about(found, "ok", "object", "test-proj.raw.items (the target) exists")
    assert about(found, "ok", "object", "dataset test-proj.dpone_staging (staging) exists in US")
    # testIamPermissions: the emulator answers 405, so the permissions are not known
    unknown = about(found, "info", "privilege", "bigquery.tables.getData", "test-proj.raw.items", "not known")
    assert unknown and "405" in unknown[0].message, found
    # the dry run plans (the emulator implements dryRun) but proves no jobs.create
    assert about(found, "ok", "object", "a SELECT of test-proj.raw.items plans (dry run")
    assert about(found, "info", "privilege", "bigquery.jobs.create", "not known")
    # missing: stg (the second target's dataset) and meta (the state table's) are created by a run
    assert about(found, "info", "privilege", "dataset test-proj.stg", "bigquery.datasets.create")
    assert about(found, "info", "privilege", "dataset test-proj.meta", "bigquery.datasets.create")
    assert about(found, "info", "object", "test-proj.meta.state (the state table) does not exist")
    # the emulator's answers never become an ok privilege
    assert not [f for f in found if f.status == "ok" and f.check == "privilege"], found
    # nothing was written
    assert sorted(d.dataset_id for d in clean_bq.client.list_datasets()) == before
    assert [t.table_id for t in clean_bq.client.list_tables("raw")] == ["items"]
    assert [t.table_id for t in clean_bq.client.list_tables("dpone_staging")] == []


def test_datasets_in_another_location_than_the_connections_fail(
    clean_bq: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    clean_bq.client.create_dataset("raw")
    clean_bq.query("create table raw.items (id int64, name string)")
    extra = {"is_anonymous": True, "project": clean_bq.target.project, "location": "EU"}
    monkeypatch.setenv("AIRFLOW_CONN_BQ", json.dumps({"conn_type": "google_cloud_platform", "extra": extra}))
    found = findings("bq")
    assert about(found, "fail", "setting", "runs jobs in EU", "test-proj.raw in US"), found


def test_state_kept_elsewhere_checks_the_crash_journal_in_the_staging_dataset(clean_bq: Any) -> None:
    clean_bq.client.create_dataset("dpone_staging")
    clean_bq.query("create table dpone_staging.dpone_journal (pipeline string, `load` string)")
    text = MANIFEST.replace(
        "state: {backend: table, conn_id: bq, connector: bigquery, table: meta.state}\n", ""
    )
    found = findings("bq", text)
    journal = "test-proj.dpone_staging.dpone_journal"
    assert about(found, "ok", "object", f"{journal} (the crash journal")
    assert about(found, "info", "privilege", "bigquery.tables.updateData", journal, "not known", "405"), found
    assert not about(found, "info", "privilege", "meta")  # no state table on this connection


def test_an_endpoint_that_does_not_answer_is_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    monkeypatch.setenv("BIGQUERY_EMULATOR_HOST", f"http://127.0.0.1:{port}")
    extra = {"is_anonymous": True, "project": "test-proj"}
    monkeypatch.setenv("AIRFLOW_CONN_BQ", json.dumps({"conn_type": "google_cloud_platform", "extra": extra}))
    (finding,) = findings("bq")
    assert (finding.status, finding.check) == ("fail", "reachable"), finding
    assert finding.seconds is not None and finding.seconds < 30


class _Refusing(BaseHTTPRequestHandler):
    """A BigQuery endpoint that answers 401, and a token endpoint that answers invalid_grant."""

    def do_POST(self) -> None:  # the token exchange: /token refuses the key, /token-ok grants a token
        if self.path.endswith("/token-ok"):
            self._answer(200, {"access_token": "doctor-token", "expires_in": 3600, "token_type": "Bearer"})
        else:
            self._answer(400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."})

    def do_GET(self) -> None:  # datasets.get
        body = {"error": {"code": 401, "message": "Request had invalid authentication credentials."}}
        self._answer(401, body)

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        return None


@pytest.fixture
def refusing() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Refusing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def keyed_connection(monkeypatch: pytest.MonkeyPatch, server: str, token_path: str) -> str:
    """A service-account connection whose endpoint and token exchange are ``server``; its key's
    PEM body (which must never be printed)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    pem = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        .decode()
    )
    key = {
        "type": "service_account",
        "project_id": "test-proj",
        "private_key_id": "doctor-key-id-0123456789",
        "private_key": pem,
        "client_email": "doctor@test-proj.iam.gserviceaccount.com",
        "token_uri": f"{server}{token_path}",  # the exchange stays on this machine
    }
    monkeypatch.setenv("BIGQUERY_EMULATOR_HOST", server)
    extra = {"project": "test-proj", "keyfile_dict": json.dumps(key)}
    monkeypatch.setenv("AIRFLOW_CONN_BQ", json.dumps({"conn_type": "google_cloud_platform", "extra": extra}))
    return pem.split("-----")[2].strip().splitlines()[1]


def never_printed(found: list[Finding], key_line: str) -> None:
    printed = json.dumps([f.to_dict() for f in found])
    assert key_line not in printed and "PRIVATE KEY" not in printed and "doctor-key-id" not in printed
    assert "doctor-token" not in printed


def test_credentials_bigquery_refuses_are_told_apart_from_an_unreachable_endpoint(
    refusing: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_line = keyed_connection(monkeypatch, refusing, "/token-ok")
    found = findings("bq")
    assert about(found, "ok", "reachable", "Google answered"), found
    (refused,) = about(found, "fail", "authenticated", "refused", "401")
    assert refused.fix and "service account key" in refused.fix
    never_printed(found, key_line)


def test_a_key_the_token_endpoint_refuses_fails_authentication_without_the_key(
    refusing: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_line = keyed_connection(monkeypatch, refusing, "/token")
    found = findings("bq")
    assert about(found, "fail", "authenticated", "invalid_grant"), found
    never_printed(found, key_line)


LIVE = os.environ.get("DPONE_BIGQUERY_PROJECT")


@pytest.mark.integration_live
@pytest.mark.skipif(
    not LIVE,
    reason="DPONE_BIGQUERY_PROJECT (and DPONE_BIGQUERY_KEYFILE or application default credentials) not set: "
    "docs/bigquery.md, the live profile",
)
def test_live_doctor_asks_bigquery_for_the_permissions() -> None:
    """Real BigQuery answers testIamPermissions and dry runs: the scratch dataset's creator
    holds the table permissions of a merge, jobs.create shows, and nothing is created."""
    from google.cloud import bigquery

    from tests.bigquery_live import CONN_ID, live_dataset

    with live_dataset() as dataset:
        project = os.environ["DPONE_BIGQUERY_PROJECT"]
        keyfile = os.environ.get("DPONE_BIGQUERY_KEYFILE")
        client = (
            bigquery.Client.from_service_account_json(keyfile, project=project)
            if keyfile
            else bigquery.Client(project=project)
        )
        client.query(f"create table `{project}.{dataset}.items` (id int64, name string)").result()
        text = f"""
pipeline: doc_live
state: {{backend: table, conn_id: {CONN_ID}, connector: bigquery, table: {dataset}.state}}
loads:
  - name: items
    source: {{connector: postgres, conn_id: src, table: public.items}}
    sink: {{connector: bigquery, conn_id: {CONN_ID}, table: {dataset}.items, strategy: incremental_merge,
            unique_key: [id], staging: {{schema: {dataset}}}}}
"""
        found = findings(CONN_ID, text)
        assert not [f for f in found if f.status == "fail"], found
        target = f"{project}.{dataset}.items"
        assert about(found, "ok", "privilege", "bigquery.tables.getData", target, "testIamPermissions")
        assert about(found, "ok", "privilege", "bigquery.jobs.create", "dry run")
        assert about(found, "info", "object", f"{project}.{dataset}.state (the state table) does not exist")
        assert [t.table_id for t in client.list_tables(f"{project}.{dataset}")] == ["items"]
