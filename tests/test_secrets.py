"""A token planted in every credential field never reaches a log, report, plan, error or XCom."""

from __future__ import annotations

import json
import logging
import os
import traceback
import uuid
from urllib.parse import quote

import pytest
import yaml

from airflow_provider_dpone.cli.main import main
from airflow_provider_dpone.contracts.errors import DponeError
from airflow_provider_dpone.contracts.redaction import Redactor
from airflow_provider_dpone.operators.staged_load import StagedLoadOperator

pytestmark = pytest.mark.integration

TOKEN = "tok" + uuid.uuid4().hex[:20]
ROLE = f"dpone_{TOKEN}"


def conn_uri(libpq: str, login: str) -> str:
    """An Airflow URI with the token as password and in two extras (one sensitive, one not)."""
    from psycopg.conninfo import conninfo_to_dict

    p = conninfo_to_dict(libpq)
    host = p.get("host", "127.0.0.1")
    extras = f"sslpassword={TOKEN}&application_name={TOKEN}"
    if host.startswith("/"):
        return f"postgres://{login}:{TOKEN}@/{p['dbname']}?host={quote(host, safe='')}&{extras}"
    return f"postgres://{login}:{TOKEN}@{host}:{p.get('port', 5432)}/{p['dbname']}?{extras}"


@pytest.fixture
def secret_conns(clean_pg):
    pg = clean_pg
    import psycopg

    with psycopg.connect(pg.admin, autocommit=True) as conn:
        conn.execute(f'drop role if exists "{ROLE}"')
        conn.execute(f'create role "{ROLE}" login superuser')
    os.environ["AIRFLOW_CONN_SECRET_SRC"] = conn_uri(pg.src, ROLE)
    os.environ["AIRFLOW_CONN_SECRET_DST"] = conn_uri(pg.dst, ROLE)
    pg.execute("src", "create table items (id int primary key, name text not null)")
    pg.execute("src", "insert into items select g, 'n' || g from generate_series(1, 10) g")
    yield pg
    for key in ("AIRFLOW_CONN_SECRET_SRC", "AIRFLOW_CONN_SECRET_DST"):
        os.environ.pop(key, None)
    for which in ("src", "dst"):  # objects the role created live in both test databases
        pg.execute(which, f'drop owned by "{ROLE}" cascade')
    with psycopg.connect(pg.admin, autocommit=True) as conn:
        conn.execute(f'drop role if exists "{ROLE}"')


def load(**sink) -> dict:
    return {
        "name": "items",
        "source": {"connector": "postgres", "conn_id": "secret_src", "table": "items"},
        "sink": {"connector": "postgres", "conn_id": "secret_dst", "table": "raw.items", **sink},
    }


STATE = {"backend": "table", "conn_id": "secret_dst"}


def run_operator(spec: dict, run_id: str):
    op = StagedLoadOperator(
        task_id="items", pipeline="secrets", source=spec["source"], sink=spec["sink"], state=STATE
    )
    return op.execute({"run_id": run_id})


def assert_clean(*texts: str) -> None:
    for text in texts:
        assert TOKEN not in text, (
            f"the planted token leaked: ...{text[max(0, text.find(TOKEN) - 120) :][:300]}"
        )


def test_a_successful_run_leaks_nothing(secret_conns, tmp_path, caplog, capfd, monkeypatch) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("DPONE_REPORT_DIR", str(tmp_path / "task-reports"))
    op = StagedLoadOperator(
        task_id="items", pipeline="secrets", source=load()["source"], sink=load()["sink"], state=STATE
    )
    xcom = op.execute({"run_id": "ok1"})
    assert xcom["status"] == "success" and xcom["rows"] == 10
    # The operator saved its report (DPONE_REPORT_DIR) and hands its lineage to OpenLineage.
    (saved,) = (tmp_path / "task-reports" / "secrets" / "items").glob("*.json")
    lineage = op.get_openlineage_facets_on_complete(None)
    assert lineage.outputs[0].name.endswith(".raw.items")
    assert lineage.outputs[0].outputFacets["outputStatistics"].rowCount == 10
    assert_clean(saved.read_text(), repr(lineage))
    manifest = tmp_path / "secrets.yaml"
    manifest.write_text(yaml.safe_dump({"pipeline": "secrets", "state": STATE, "loads": [load()]}))
    assert main(["plan", str(manifest), "--format", "json"]) == 0
    assert main(["run", str(manifest), "--report-dir", str(tmp_path / "r"), "--format", "json"]) == 0
    assert main(["report", "--dir", str(tmp_path / "r"), "--format", "markdown"]) == 0
    out, err = capfd.readouterr()
    reports = "".join(p.read_text() for p in (tmp_path / "r").rglob("*.json"))
    assert_clean(json.dumps(xcom, default=str), out, err, caplog.text, reports)


def test_failed_runs_leak_nothing(secret_conns, tmp_path, caplog, capfd) -> None:
    pg = secret_conns
    caplog.set_level(logging.DEBUG)
    # 1. The login is refused: libpq echoes the role name, which carries the token.
    os.environ["AIRFLOW_CONN_SECRET_DST"] = conn_uri(pg.dst, ROLE + "_missing")
    with pytest.raises(DponeError) as refused:
        run_operator(load(), "bad1")
    text = "".join(traceback.format_exception(refused.value))
    assert "cannot connect to 'secret_dst'" in text and '"***"' in text
    manifest = tmp_path / "secrets.yaml"
    manifest.write_text(yaml.safe_dump({"pipeline": "secrets", "state": STATE, "loads": [load()]}))
    main(["plan", str(manifest), "--format", "json"])  # reports the connection error in its output
    assert main(["run", str(manifest), "--report-dir", str(tmp_path / "r")]) == 1
    # 2. A data failure with working credentials (duplicate keys in a merge batch).
    os.environ["AIRFLOW_CONN_SECRET_DST"] = conn_uri(pg.dst, ROLE)
    pg.execute("src", "alter table items drop constraint items_pkey; insert into items values (1, 'again')")
    with pytest.raises(Exception) as dupes:
        run_operator(load(strategy="incremental_merge", unique_key=["id"]), "bad2")
    out, err = capfd.readouterr()
    reports = "".join(p.read_text() for p in (tmp_path / "r").rglob("*.json"))
    assert "[failed]" in caplog.text or "failed" in reports
    assert_clean(text, "".join(traceback.format_exception(dupes.value)), out, err, caplog.text, reports)


def test_redactor_masks_secrets_anywhere_and_logins_only_where_drivers_echo_them() -> None:
    r = Redactor()
    r.add_connection("s3cr3t/pw", "postgres", {"api_token": "abc123", "sslmode": "require"})
    assert r.redact("password s3cr3t/pw and s3cr3t%2Fpw") == "password *** and ***"
    assert r.redact("token=abc123!") == "token=***!"
    assert r.redact('role "postgres" does not exist; user=postgres') == 'role "***" does not exist; user=***'
    assert r.redact("the postgres sink needs sslmode require") == "the postgres sink needs sslmode require"
    assert r.redact_data({"a": ["x s3cr3t/pw"]}) == {"a": ["x ***"]}
