"""``dpone doctor`` against the real PostgreSQL: a role with every privilege its loads need is
clean; a role missing each one in turn gets that finding and its fix; an unreachable host and a
wrong password fail clearly without the secret; nothing is left behind."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_dpone.cli.main import main
from airflow_provider_dpone.sql.postgres import POSTGRES
from tests.conftest import PgEnv

pytestmark = pytest.mark.integration

MANIFEST = """
pipeline: doctor_shop
state: {backend: table, conn_id: doc_dst, table: dpone.state}
defaults:
  source: {connector: postgres, conn_id: doc_src}
  sink: {connector: postgres, conn_id: doc_dst}
loads:
  - name: orders
    source: {table: public.orders, incremental: {mode: cursor, cursor: updated_at}}
    sink: {table: raw.orders, strategy: incremental_merge, unique_key: [id]}
"""

FULL = """
pipeline: doctor_full
defaults:
  source: {connector: postgres, conn_id: doc_src}
  sink: {connector: postgres, conn_id: doc_dst}
loads:
  - name: customers
    source: {table: public.orders}
    sink: {table: raw.orders_full, staging: {schema: %s}}
"""

CDC = """
pipeline: doctor_cdc
defaults:
  source: {connector: postgres, conn_id: doc_src}
  sink: {connector: postgres, conn_id: doc_dst}
loads:
  - name: feed
    source: {table: public.orders, incremental: {mode: cdc%s}}
    sink: {table: raw.orders_cdc, strategy: cdc_apply, unique_key: [id]}
"""


def _conn(pg: PgEnv, which: str, role: str) -> str:
    import psycopg.conninfo

    info = psycopg.conninfo.conninfo_to_dict(pg.src if which == "src" else pg.dst)
    return json.dumps(
        {
            "conn_type": "postgres",
            "host": info.get("host", "127.0.0.1"),
            "port": int(info.get("port", 5432)),
            "login": role,
            "password": "doctor-secret-pw",
            "schema": info["dbname"],
        }
    )


@pytest.fixture
def shop(clean_pg: PgEnv, airflow_db: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[PgEnv, str]]:
    """A role with everything the three manifests' loads need (the target and the source table
    it owns, REPLICATION, the schemas' grants), and connections logging in as it; Airflow's
    database migrated for the manifests that keep their state in Variables."""
    pg, role = clean_pg, f"dpone_doc_{uuid.uuid4().hex[:8]}"
    pg.execute("src", f"create role {role} login replication")
    pg.execute("src", "create table public.orders (id int primary key, updated_at timestamptz)")
    pg.execute("src", "insert into public.orders select g, now() from generate_series(1, 100) g")
    pg.execute("src", f"grant usage on schema public to {role}; grant select on public.orders to {role}")
    pg.execute("src", f"create publication {role}_pub for table public.orders")
    pg.execute("dst", "create schema raw; create schema dpone_staging; create schema dpone")
    pg.execute(
        "dst",
        f"grant usage, create on schema raw, dpone_staging to {role}; grant usage on schema dpone to {role}",
    )
    pg.execute("dst", "create table raw.orders (id int primary key, updated_at timestamptz)")
    pg.execute("dst", f"alter table raw.orders owner to {role}")
    for statement in POSTGRES.create_state_table(POSTGRES.table("dpone", "state")):
        pg.execute("dst", statement)
    pg.execute("dst", f"grant select, insert, update, delete on dpone.state to {role}")
    monkeypatch.setenv("AIRFLOW_CONN_DOC_SRC", _conn(pg, "src", role))
    monkeypatch.setenv("AIRFLOW_CONN_DOC_DST", _conn(pg, "dst", role))
    yield pg, role
    for which in ("src", "dst"):
        pg.execute(which, f"drop owned by {role} cascade")
    pg.execute("src", f"drop publication if exists {role}_pub")
    pg.execute("src", f"drop role {role}")


def doctor(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str) -> tuple[int, dict[str, Any], str]:
    path = tmp_path / f"m_{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(text)
    code = main(["doctor", "--format", "json", str(path)])
    out = capsys.readouterr().out
    return code, json.loads(out), out


def problems(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [f for c in report["connections"] for f in c["findings"] if f["status"] in ("warn", "fail")]


def _objects(pg: PgEnv) -> set[tuple[str, str]]:
    rows = pg.query("dst", "select n.nspname, c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace "
                    "where n.nspname not in ('pg_catalog', 'information_schema', 'pg_toast')")  # fmt: skip
    return {tuple(r) for r in rows} | {
        (r[0], "") for r in pg.query("dst", "select nspname from pg_namespace")
    }


def test_a_role_with_every_privilege_is_clean(
    shop: tuple[PgEnv, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pg, role = shop
    before = _objects(pg)
    for text in (MANIFEST, CDC % f", publication: {role}_pub"):
        code, report, _ = doctor(tmp_path, capsys, text)
        assert problems(report) == [] and code == 0, report
        assert report["can_run"] is True
    checks = {f["message"] for c in report["connections"] for f in c["findings"]}
    assert "wal_level = logical" in checks and f"role {role} has REPLICATION" in checks
    assert "the table can be read as a change feed" in checks
    assert _objects(pg) == before  # the probes' tables and schemas were rolled back
    # what doctor called clean runs, as that role: the verdict is the loads' own
    path = tmp_path / "run.yaml"
    path.write_text(MANIFEST)
    assert main(["run", str(path), "--report-dir", str(tmp_path / "reports")]) == 0
    assert pg.query("dst", "select count(*) from raw.orders") == [(100,)]


@pytest.mark.parametrize(
    ("change", "manifest", "expected", "fix"),
    [
        ("src: revoke select on public.orders from {role}", MANIFEST, "no SELECT on public.orders",
         'GRANT SELECT ON "public"."orders" TO "{role}"'),
        ("dst: revoke usage on schema raw from {role}", MANIFEST, "no USAGE on schema raw",
         'GRANT USAGE ON SCHEMA "raw" TO "{role}"'),
        ("dst: revoke create on schema dpone_staging from {role}", MANIFEST, "no CREATE on schema dpone_staging",
         'GRANT CREATE ON SCHEMA "dpone_staging" TO "{role}"'),
        ("dst: alter table raw.orders owner to postgres; grant select, insert on raw.orders to {role}", MANIFEST,
         "no UPDATE on raw.orders", 'GRANT UPDATE ON "raw"."orders" TO "{role}"'),
        ("dst: revoke delete on dpone.state from {role}", MANIFEST, "no DELETE on dpone.state",
         'GRANT DELETE ON "dpone"."state" TO "{role}"'),
        ("dst: create table raw.orders_full (id int)", FULL % "dpone_staging",
         "raw.orders_full is owned by postgres, not {role}: a full refresh swaps it in", "OWNER TO"),
        ("dst: revoke create on database {db} from public", FULL % "stg_missing",
         "schema stg_missing does not exist and {role} may not create schemas", "CREATE SCHEMA"),
        ("src: alter role {role} noreplication", CDC % ", publication: {role}_pub", "{role} lacks REPLICATION",
         'ALTER ROLE "{role}" REPLICATION'),
        ("src: select 1", CDC % "", "does not exist and only the owner of the table (postgres) may create it",
         "dpone cdc setup"),
        ("src: alter table public.orders replica identity nothing", CDC % ", publication: {role}_pub",
         "REPLICA IDENTITY NOTHING", "docs/cdc.md"),
    ],
    ids=["source-select", "target-schema-usage", "staging-create", "target-update", "state-delete",
         "swap-owner", "create-schema", "replication", "publication-owner", "replica-identity"],
)  # fmt: skip
def test_a_role_missing_a_privilege_gets_that_finding(
    shop: tuple[PgEnv, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    change: str,
    manifest: str,
    expected: str,
    fix: str,
) -> None:
    pg, role = shop
    which, _, statement = change.partition(": ")
    pg.execute(which, statement.format(role=role, db=pg.dst_db))
    try:
        code, report, _ = doctor(tmp_path, capsys, manifest.replace("{role}", role))
    finally:
        pg.execute("dst", f"grant create on database {pg.dst_db} to public")
    assert code == 1 and report["can_run"] is False
    found = [f for f in problems(report) if expected.format(role=role) in f["message"]]
    assert found, problems(report)
    assert fix.format(role=role) in found[0]["fix"]


def test_human_output_names_each_finding_and_its_fix(
    shop: tuple[PgEnv, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pg, role = shop
    pg.execute("src", f"revoke select on public.orders from {role}")
    path = tmp_path / "m.yaml"
    path.write_text(MANIFEST)
    assert main(["doctor", str(path)]) == 1
    out = capsys.readouterr().out
    assert "FAIL  privilege     doctor_shop.orders source: no SELECT on public.orders" in out
    assert f'fix: GRANT SELECT ON "public"."orders" TO "{role}"' in out
    assert "failing: a load cannot run" in out.splitlines()[-1]


def test_an_unreachable_host_fails_clearly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_DOC_SRC", "postgresql://someone:doctor-secret-pw@127.0.0.1:1/shop")
    monkeypatch.setenv("AIRFLOW_CONN_DOC_DST", "postgresql://someone:doctor-secret-pw@127.0.0.1:1/dwh")
    code, report, out = doctor(tmp_path, capsys, MANIFEST)
    assert code == 1
    first = report["connections"][0]["findings"]
    assert [(f["status"], f["check"]) for f in first] == [("fail", "reachable")]
    assert "cannot connect to 'doc_src'" in first[0]["message"] and "host and port" in first[0]["fix"]
    assert "doctor-secret-pw" not in out and "someone" not in out


def test_a_wrong_password_fails_authentication_without_the_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The local server trusts every local connection, so an embedded server (pgserver) that
    asks this role for its password stands in."""
    pgserver = pytest.importorskip(
        "pgserver", reason="pgserver (a dev dependency) gives a server with passwords"
    )
    server = pgserver.get_server(tmp_path / "pgdata", cleanup_mode="stop")
    try:
        server.psql("create role doc_pw login password 'the-right-one'")
        hba = tmp_path / "pgdata" / "pg_hba.conf"
        hba.write_text("local all doc_pw scram-sha-256\n" + hba.read_text())
        server.psql("select pg_reload_conf()")
        socket_dir = server.get_uri().split("host=")[1]
        conn = {
            "conn_type": "postgres",
            "host": socket_dir,
            "login": "doc_pw",
            "password": "wrong-doctor-pw",
            "schema": "postgres",
        }
        monkeypatch.setenv("AIRFLOW_CONN_DOC_SRC", json.dumps(conn))
        monkeypatch.setenv("AIRFLOW_CONN_DOC_DST", json.dumps(conn))
        code, report, out = doctor(tmp_path, capsys, MANIFEST)
    finally:
        server.cleanup()
    assert code == 1
    first = report["connections"][0]["findings"]
    assert [(f["status"], f["check"]) for f in first] == [("ok", "reachable"), ("fail", "authenticated")]
    assert "password authentication failed" in first[1]["message"]
    assert "wrong-doctor-pw" not in out and "the-right-one" not in out


def test_schemas_with_awkward_names_are_created_once(clean_pg: PgEnv) -> None:
    for name in ("it's", "x$dpone$y", 'a"b'):
        for _ in range(2):  # the second time it exists: nothing happens, no error
            clean_pg.execute("dst", POSTGRES.create_schema(name))
        assert clean_pg.query("dst", "select count(*) from pg_namespace where nspname = %s", (name,)) == [
            (1,)
        ]
        clean_pg.execute("dst", f"drop schema {POSTGRES.quote_ident(name)}")


SOFT = """
pipeline: doctor_soft
defaults:
  source: {connector: postgres, conn_id: doc_src}
  sink: {connector: postgres, conn_id: doc_dst}
loads:
  - name: orders
    source: {table: public.orders}
    sink: {table: raw.orders, strategy: incremental_merge, unique_key: [id]}
    reconciliation: {deletes: soft}
"""


def test_a_soft_delete_marker_is_added_by_the_owner_then_dml_is_enough(
    shop: tuple[PgEnv, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The managed column must be added once (the owner's right); after that the load runs as a
    role with DML only, because dpone adds a managed column only when it is missing."""
    pg, role = shop
    pg.execute(
        "dst",
        f"alter table raw.orders owner to postgres; grant select, insert, update on raw.orders to {role}",
    )
    code, report, _ = doctor(tmp_path, capsys, SOFT)
    assert code == 1
    [finding] = [f for f in problems(report) if f["status"] == "fail"]
    assert "the load adds its managed column(s) _dpone_deleted_at (ALTER TABLE)" in finding["message"]
    pg.execute("dst", "alter table raw.orders add column _dpone_deleted_at timestamptz")
    code, report, _ = doctor(tmp_path, capsys, SOFT)
    assert code == 0, problems(report)
    assert [f["status"] for f in problems(report)] == ["warn"]  # schema changes would need the owner
    path = tmp_path / "soft.yaml"
    path.write_text(SOFT)
    assert main(["run", str(path), "--report-dir", str(tmp_path / "reports")]) == 0
    assert pg.query("dst", "select count(*) from raw.orders") == [(100,)]


def test_partition_replace_of_a_partitioned_target_needs_its_owner(
    shop: tuple[PgEnv, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pg, role = shop
    pg.execute("dst", "create table raw.days (id int, day date not null) partition by range (day)")
    pg.execute(
        "dst",
        "create table raw.days_1 partition of raw.days for values from ('2026-01-01') to ('2026-02-01')",
    )
    pg.execute("dst", f"grant select, insert, delete on raw.days to {role}")
    text = MANIFEST.replace("table: raw.orders, strategy: incremental_merge, unique_key: [id]",
                            "table: raw.days, strategy: partition_replace, partition_by: [day]")  # fmt: skip
    code, report, _ = doctor(
        tmp_path, capsys, text.replace("incremental: {mode: cursor, cursor: updated_at}", "")
    )
    assert code == 1
    assert any(
        "partition_replace detaches and attaches its partitions" in f["message"] for f in problems(report)
    )


def test_an_unqualified_state_table_is_checked_where_the_backend_keeps_it(
    shop: tuple[PgEnv, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pg, role = shop
    pg.execute("dst", f"revoke delete on dpone.state from {role}")
    code, report, _ = doctor(tmp_path, capsys, MANIFEST.replace("table: dpone.state}", "table: state}"))
    assert code == 1
    assert any(f["message"] == "no DELETE on dpone.state" for f in problems(report))


def test_a_query_source_is_only_planned_never_run(
    shop: tuple[PgEnv, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pg, _ = shop
    text = MANIFEST.replace(
        "{table: public.orders, incremental: {mode: cursor, cursor: updated_at}}",
        '{query: "select 1 as id; commit; create table public.doctor_leak (id int)"}',
    )
    code, report, _ = doctor(tmp_path, capsys, text)
    assert code == 1
    assert any(f["message"].startswith("the query does not plan") for f in problems(report))
    assert pg.query("src", "select to_regclass('public.doctor_leak') is null") == [(True,)]


def test_a_journal_another_role_owns_needs_its_grants_when_state_is_kept_elsewhere(
    shop: tuple[PgEnv, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """State in Airflow Variables: the sink journals each finalize's state in staging."""
    pg, role = shop
    for statement in POSTGRES.create_journal_table(POSTGRES.table("dpone_staging", "dpone_journal")):
        pg.execute("dst", statement)
    code, report, _ = doctor(
        tmp_path,
        capsys,
        MANIFEST.replace(
            "state: {backend: table, conn_id: doc_dst, table: dpone.state}", "state: {backend: variable}"
        ),
    )
    assert code == 1
    assert any(
        f["message"] == "no SELECT, INSERT, UPDATE on dpone_staging.dpone_journal" for f in problems(report)
    )
    pg.execute("dst", f"grant select, insert, update on dpone_staging.dpone_journal to {role}")
    code, report, _ = doctor(
        tmp_path,
        capsys,
        MANIFEST.replace(
            "state: {backend: table, conn_id: doc_dst, table: dpone.state}", "state: {backend: variable}"
        ),
    )
    assert code == 0, problems(report)
