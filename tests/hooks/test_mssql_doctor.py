"""``dpone doctor`` on SQL Server. Unit: the check's flow on the driver fake (``tests/mssql_fake``)
answering as a SQL Server catalog (``tests/mssql_doctor_fake``): a login with every permission
its loads need is clean, one missing each permission in turn gets that finding and its fix, a
refused login is told apart from an unreachable host without the secret, every probe runs in a
transaction rolled back. Live (``DPONE_MSSQL_URI``): the same against a real server with a
restricted login."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import mssql_python
import pytest

from airflow_provider_dpone.cli import doctor as cli_doctor
from airflow_provider_dpone.cli.main import main
from airflow_provider_dpone.contracts.doctor import connection_uses
from airflow_provider_dpone.contracts.manifest import parse_manifest
from airflow_provider_dpone.hooks import mssql_doctor, mssql_session
from airflow_provider_dpone.hooks.mssql_connector import MsSqlEngine
from tests.mssql_doctor_fake import Capture, Schema, SqlServer, Table
from tests.mssql_fake import FakeServer

SECRET = "s3cr;et"
URI = "mssql://loader:s3cr%3Bet@sql.example.com:1433/dwh"
CHECK = "airflow_provider_dpone.hooks.mssql_doctor:check"
MANIFEST = {
    "pipeline": "shop",
    "state": {"backend": "table", "connector": "mssql", "conn_id": "mssql_t", "table": "dpone.state"},
    "defaults": {"source": {"connector": "mssql", "conn_id": "mssql_t"}, "sink": {"connector": "mssql", "conn_id": "mssql_t"}},
    "loads": [
        {"name": "orders", "source": {"table": "src.orders", "incremental": {"mode": "cursor", "cursor": "updated_at"}},
         "sink": {"table": "raw.orders", "strategy": "incremental_merge", "unique_key": ["id"]}},
    ],
}  # fmt: skip


def granted() -> SqlServer:
    """A login with everything the manifest's load needs, and no more: SELECT on the source,
    DML on the target, its own staging schema, DML on the state table."""
    return SqlServer(
        db_grants={"CREATE TABLE"},
        schemas={
            "src": Schema(),
            "raw": Schema(),
            "dpone_staging": Schema(owner="loader"),
            "dpone": Schema(),
        },
        tables={
            "src.orders": Table(grants={"SELECT"}),
            "raw.orders": Table(grants={"SELECT", "INSERT", "UPDATE", "ALTER"}),
            "dpone.state": Table(grants={"SELECT", "INSERT", "UPDATE", "DELETE"}),
        },
    )


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeServer:
    server = FakeServer()
    monkeypatch.setattr(mssql_session.mssql_python, "connect", server.connect)
    monkeypatch.setenv("AIRFLOW_CONN_MSSQL_T", URI)
    return server


def run_check(fake: FakeServer, catalog: SqlServer, manifest: dict[str, Any] = MANIFEST) -> list[Any]:
    fake.answer = catalog
    [use] = connection_uses([parse_manifest(manifest)])
    found = mssql_doctor.check(MsSqlEngine("mssql_t"), use)
    assert not catalog.in_transaction and not catalog.created and not catalog.created_schemas
    assert fake.sql()[-1].startswith("if @@trancount > 0 rollback transaction")  # the session's reset
    return found


def failures(found: list[Any]) -> list[tuple[str, str | None]]:
    return [(f.message, f.fix) for f in found if f.status == "fail"]


@pytest.mark.unit
def test_a_login_with_every_permission_is_clean_and_the_probes_roll_back(fake: FakeServer) -> None:
    found = run_check(fake, granted())
    assert failures(found) == [] and [f.status for f in found].count("warn") == 0
    assert [f.check for f in found[:3]] == ["reachable", "authenticated", "version"]
    assert "SQL Server 16.0.4135.4" in found[2].message
    probe = next(f for f in found if f.message.startswith("created, filled"))
    assert probe.subject == "shop.orders sink" and "dpone_staging" in probe.message
    sql = fake.sql()
    assert "begin transaction" in sql
    # every create happens between a begin and its rollback
    depth = 0
    for s in sql:
        depth += s == "begin transaction"
        if s.startswith(("create table", "if schema_id", "exec sp_rename", "drop table", "insert into")):
            assert depth == 1, s
        if s == "if @@trancount > 0 rollback transaction":
            depth = 0


@pytest.mark.unit
@pytest.mark.parametrize(
    ("take", "fix"),
    [
        (lambda c: c.tables["src.orders"].grants.clear(), "GRANT SELECT ON [src].[orders] TO [loader]"),
        (lambda c: c.tables["raw.orders"].grants.discard("UPDATE"), "GRANT UPDATE ON [raw].[orders] TO [loader]"),
        (lambda c: c.tables["raw.orders"].grants.discard("SELECT"), "GRANT SELECT ON [raw].[orders] TO [loader]"),
        (lambda c: c.tables["dpone.state"].grants.discard("DELETE"), "GRANT DELETE ON [dpone].[state] TO [loader]"),
        (lambda c: c.db_grants.clear(), "GRANT CREATE TABLE TO [loader]"),
        (lambda c: setattr(c.schemas["dpone_staging"], "owner", "dbo"),
         "GRANT ALTER, SELECT, INSERT, DELETE ON SCHEMA::[dpone_staging] TO [loader]"),
        (lambda c: c.schemas.pop("dpone_staging"), "GRANT CREATE SCHEMA TO [loader]"),
    ],
)  # fmt: skip
def test_a_login_missing_each_permission_gets_its_fix(fake: FakeServer, take: Any, fix: str) -> None:
    catalog = granted()
    take(catalog)
    assert fix in [f for _, f in failures(run_check(fake, catalog))]


@pytest.mark.unit
def test_without_alter_a_schema_change_is_a_warning(fake: FakeServer) -> None:
    catalog = granted()
    catalog.tables["raw.orders"].grants.discard("ALTER")
    found = run_check(fake, catalog)
    [warn] = [f for f in found if f.status == "warn"]
    assert warn.fix == "GRANT ALTER ON [raw].[orders] TO [loader]" and failures(found) == []


@pytest.mark.unit
def test_a_table_created_in_a_schema_the_login_does_not_own_must_be_usable(fake: FakeServer) -> None:
    """The state table is created in dpone (owned by dbo): with ALTER only the login creates it
    but cannot write it. The probe agrees with the catalog."""
    catalog = granted()
    del catalog.tables["dpone.state"]
    catalog.schemas["dpone"].grants = {"ALTER"}
    [(message, fix)] = failures(run_check(fake, catalog))
    assert "no SELECT, INSERT, UPDATE, DELETE on schema dpone (owned by dbo" in message
    assert fix == "GRANT SELECT, INSERT, UPDATE, DELETE ON SCHEMA::[dpone] TO [loader]"
    catalog.schemas["dpone"].grants |= {"SELECT", "INSERT", "UPDATE", "DELETE"}
    found = run_check(fake, catalog)
    assert failures(found) == []
    assert any(f.subject == "shop state" and "in dpone (rolled back)" in f.message for f in found)


@pytest.mark.unit
def test_a_full_refresh_that_swaps_staging_in_needs_control_of_it(fake: FakeServer) -> None:
    manifest = {**MANIFEST, "state": {"backend": "variable"}, "loads": [
        {"name": "orders", "source": {"table": "src.orders"}, "sink": {"table": "raw.orders", "strategy": "full_refresh"}}]}  # fmt: skip
    catalog = granted()
    catalog.schemas["dpone_staging"] = Schema(owner="dbo", grants={"ALTER", "SELECT", "INSERT", "DELETE"})
    catalog.schemas["raw"].grants = {"ALTER"}
    fixes = [f for _, f in failures(run_check(fake, catalog, manifest))]
    assert fixes == ["ALTER AUTHORIZATION ON SCHEMA::[dpone_staging] TO [loader]; "
                     "GRANT CONTROL ON SCHEMA::[dpone_staging] TO [loader]"]  # fmt: skip
    catalog.schemas["dpone_staging"].owner = "loader"
    found = run_check(fake, catalog, manifest)
    assert failures(found) == []
    assert any("(moved to raw)" in f.message for f in found)
    assert any(s.startswith("alter schema [raw] transfer [dpone_staging].") for s in fake.sql())


@pytest.mark.unit
def test_the_probe_reports_what_the_catalog_could_not_tell(fake: FakeServer) -> None:
    """DENY on the staging schema's INSERT is a catalog 0 already; here the catalog says yes
    and the server refuses (as a DENY on the probe's table would): the probe's step names it."""
    catalog = granted()

    real = catalog.on_table

    def refuse_insert(name: str, permission: str) -> bool:
        return False if permission == "INSERT" and "dpone_doctor_" in name else real(name, permission)

    catalog.on_table = refuse_insert  # type: ignore[method-assign]
    [(message, _)] = failures(run_check(fake, catalog))
    assert "failed at insert into it: The INSERT permission was denied on the object" in message


@pytest.mark.unit
def test_change_tracking_and_cdc_sources(fake: FakeServer) -> None:
    manifest = {**MANIFEST, "state": {"backend": "variable"}, "loads": [
        {"name": "ct", "source": {"table": "src.orders", "incremental": {"mode": "change_tracking"}},
         "sink": {"table": "raw.orders", "strategy": "cdc_apply", "unique_key": ["id"]}},
        {"name": "cdc", "source": {"table": "src.orders", "incremental": {"mode": "cdc"}},
         "sink": {"table": "raw.orders", "strategy": "cdc_apply", "unique_key": ["id"]}}]}  # fmt: skip
    catalog = granted()
    catalog.tables["raw.orders"].grants |= {"DELETE"}
    catalog.schemas["dpone_staging"].owner = "loader"
    fixes = [f for _, f in failures(run_check(fake, catalog, manifest))]
    assert fixes == [
        "ALTER DATABASE [dwh] SET CHANGE_TRACKING = ON (CHANGE_RETENTION = 2 DAYS, AUTO_CLEANUP = ON)",
        "ALTER TABLE [src].[orders] ENABLE CHANGE_TRACKING",
        "GRANT VIEW CHANGE TRACKING ON [src].[orders] TO [loader]",
        "EXEC sys.sp_cdc_enable_db",
    ]
    catalog.ct_version, catalog.cdc = 17, True
    catalog.tables["src.orders"] = Table(
        grants={"SELECT", "VIEW CHANGE TRACKING"}, change_tracked=True, cdc_tracked=True
    )
    catalog.captures["src_orders"] = Capture("src.orders", role="cdc_readers")
    fixes = [f for _, f in failures(run_check(fake, catalog, manifest))]
    assert fixes == ["ALTER ROLE [cdc_readers] ADD MEMBER [loader]"]
    catalog.roles.add("cdc_readers")
    found = run_check(fake, catalog, manifest)
    assert failures(found) == []
    assert any(
        s.startswith("select top (0) * from cdc.[fn_cdc_get_all_changes_src_orders]") for s in fake.sql()
    )
    catalog.snapshot = 0
    assert [f for _, f in failures(run_check(fake, catalog, manifest))] == [
        "ALTER DATABASE [dwh] SET ALLOW_SNAPSHOT_ISOLATION ON"
    ] * 2


@pytest.mark.unit
def test_a_query_source_is_compiled_never_run_and_names_what_it_lacks(fake: FakeServer) -> None:
    manifest = {**MANIFEST, "state": {"backend": "variable"}, "loads": [
        {"name": "q", "source": {"query": "select id, updated_at from src.orders"},
         "sink": {"table": "raw.orders", "strategy": "incremental_merge", "unique_key": ["id"]}}]}  # fmt: skip
    catalog = granted()
    catalog.tables["src.orders"].grants.clear()
    [(message, _)] = failures(run_check(fake, catalog, manifest))
    assert message.startswith("the query does not compile: the query: The SELECT permission was denied")
    assert "exec sp_describe_first_result_set @tsql = ?" in fake.sql()  # described, not executed
    assert not any(s.startswith("select top (0) * from (") for s in fake.sql())


@pytest.mark.unit
def test_a_refused_login_is_not_an_unreachable_host_and_no_secret_shows(
    fake: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    [use] = connection_uses([parse_manifest(MANIFEST)])
    errors = {
        "login": mssql_python.InterfaceError(
            "Invalid authorization specification",
            f"[Microsoft][ODBC Driver 18 for SQL Server][SQL Server]Login failed for user 'loader'. PWD={SECRET}",
        ),
        "host": mssql_python.OperationalError(
            "Client unable to establish connection",
            "[Microsoft][ODBC Driver 18 for SQL Server]Login timeout expired",
        ),
    }
    for kind, error in errors.items():

        def refuse(*args: Any, error: Exception = error, **kwargs: Any) -> Any:
            raise error

        monkeypatch.setattr(mssql_session.mssql_python, "connect", refuse)
        found = mssql_doctor.check(MsSqlEngine("mssql_t"), use)
        assert SECRET not in json.dumps([f.to_dict() for f in found])
        if kind == "login":
            assert [(f.status, f.check) for f in found] == [("ok", "reachable"), ("fail", "authenticated")]
            assert "Login failed for user '***'" in found[1].message  # the login is masked too
        else:
            [f] = found
            assert (f.status, f.check) == ("fail", "reachable") and f.message.endswith(
                "Login timeout expired"
            )
            assert f.seconds is not None


@pytest.mark.unit
def test_dpone_doctor_runs_the_check(fake: FakeServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    monkeypatch.setitem(cli_doctor.CHECKS, "mssql", CHECK)
    catalog = granted()
    catalog.tables["raw.orders"].grants.discard("UPDATE")
    fake.answer = catalog
    path = tmp_path / "shop.yaml"
    path.write_text(json.dumps(MANIFEST))
    assert main(["doctor", "--format", "json", str(path)]) == 1
    report = json.loads(capsys.readouterr().out)
    [connection] = report["connections"]
    fixes = [f.get("fix") for f in connection["findings"] if f["status"] == "fail"]
    assert fixes == ["GRANT UPDATE ON [raw].[orders] TO [loader]"] and SECRET not in json.dumps(report)
    opened = fake.connections[0]
    assert opened["autocommit"] is True and opened["timeout"] == mssql_doctor.LOGIN_TIMEOUT


# --- live: a real SQL Server and a restricted login -------------------------------------------

LIVE = """
pipeline: doctor_live
state: {backend: table, connector: mssql, conn_id: mssql_doc, table: dpone.state}
defaults:
  source: {connector: mssql, conn_id: mssql_doc}
  sink: {connector: mssql, conn_id: mssql_doc}
loads:
  - name: items
    source: {table: src.items, incremental: {mode: cursor, cursor: updated_at}}
    sink: {table: raw.items, strategy: incremental_merge, unique_key: [id]}
"""
GRANTS = {
    "select_source": "grant select on src.items to {u}",
    "dml_target": "grant select, insert, update, alter on raw.items to {u}",
    "create_table": "grant create table to {u}",
    "staging": "grant alter, select, insert, delete on schema::dpone_staging to {u}",
    "state": "grant select, insert, update, delete on dpone.state to {u}",
}
EXPECTED = {
    "select_source": "GRANT SELECT ON [src].[items] TO [{u}]",
    "dml_target": "GRANT SELECT, INSERT, UPDATE ON [raw].[items] TO [{u}]",
    "create_table": "GRANT CREATE TABLE TO [{u}]",
    "staging": "GRANT ALTER, SELECT, INSERT, DELETE ON SCHEMA::[dpone_staging] TO [{u}]",
    "state": "GRANT SELECT, INSERT, UPDATE, DELETE ON [dpone].[state] TO [{u}]",
}


@pytest.fixture
def restricted(clean_mssql: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, str]]:
    """A login and user with no permission yet, a connection logging in as it, and the tables
    of the manifest (created by the admin connection)."""
    env, name = clean_mssql, f"dpone_doc_{uuid.uuid4().hex[:8]}"
    password = f"Doc-{uuid.uuid4().hex}-9x"
    env.execute(f"create login [{name}] with password = N'{password}', check_policy = off")
    env.execute(f"create user [{name}] for login [{name}]")
    env.execute("create table src.items (id bigint not null primary key, updated_at datetime2 not null)")
    env.execute("create table raw.items (id bigint not null primary key, updated_at datetime2 not null)")
    for statement in mssql_doctor.dialect.create_state_table(mssql_doctor.dialect.table("dpone", "state")):
        env.execute(statement)
    admin = urlsplit(os.environ["DPONE_MSSQL_URI"])
    netloc = f"{name}:{password}@{admin.hostname}:{admin.port or 1433}"
    monkeypatch.setenv("AIRFLOW_CONN_MSSQL_DOC", admin._replace(netloc=netloc).geturl())
    monkeypatch.setitem(cli_doctor.CHECKS, "mssql", CHECK)
    yield env, name
    env.execute(f"drop user if exists [{name}]")
    env.execute(f"if exists (select 1 from sys.server_principals where name = N'{name}') drop login [{name}]")


def live_doctor(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any]]:
    path = tmp_path / f"m_{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(LIVE)
    code = main(["doctor", "--format", "json", str(path)])
    return code, json.loads(capsys.readouterr().out)


def _objects(env: Any) -> set[tuple[str, str]]:
    rows = env.query(
        "select s.name, o.name from sys.objects o join sys.schemas s on s.schema_id = o.schema_id "
        "where o.is_ms_shipped = 0"
    )
    return {(r[0], r[1]) for r in rows} | {(r[0], "") for r in env.query("select name from sys.schemas")}


def _revoke(grant: str, user: str) -> str:
    return grant.replace("grant ", "revoke ", 1).replace(" to {u}", " from {u}").format(u=f"[{user}]")


@pytest.mark.integration
def test_live_a_login_missing_each_permission_in_turn_gets_its_fix(
    restricted: tuple[Any, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env, user = restricted
    before = _objects(env)
    for left_out in GRANTS:
        given = [g for key, g in GRANTS.items() if key != left_out]
        for grant in given:
            env.execute(grant.format(u=f"[{user}]"))
        code, report = live_doctor(tmp_path, capsys)
        fixes = [f.get("fix") for c in report["connections"] for f in c["findings"] if f["status"] == "fail"]
        assert code == 1 and EXPECTED[left_out].format(u=user) in fixes, (left_out, fixes)
        for grant in given:
            env.execute(_revoke(grant, user))
    for grant in GRANTS.values():
        env.execute(grant.format(u=f"[{user}]"))
    code, report = live_doctor(tmp_path, capsys)
    problems = [f for c in report["connections"] for f in c["findings"] if f["status"] in ("warn", "fail")]
    assert code == 0 and problems == [], problems
    assert _objects(env) == before  # the probes left nothing


@pytest.mark.integration
def test_live_a_wrong_password_is_a_refused_login(
    restricted: tuple[Any, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    good = urlsplit(os.environ["AIRFLOW_CONN_MSSQL_DOC"])
    wrong = good._replace(
        netloc=f"{good.username}:wrong-{SECRET.replace(';', '')}@{good.hostname}:{good.port}"
    )
    monkeypatch.setenv("AIRFLOW_CONN_MSSQL_DOC", wrong.geturl())
    code, report = live_doctor(tmp_path, capsys)
    checks = [(f["status"], f["check"]) for f in report["connections"][0]["findings"]]
    assert code == 1 and checks[:2] == [("ok", "reachable"), ("fail", "authenticated")]
    assert SECRET.replace(";", "") not in json.dumps(report)
