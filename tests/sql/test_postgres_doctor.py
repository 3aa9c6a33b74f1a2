"""The pure side of ``dpone doctor``: what the manifests ask of each connection, the findings
built from catalog rows, and PostgreSQL's schema creation that needs no database privilege."""

from __future__ import annotations

import pytest

from airflow_provider_dpone.contracts.doctor import Finding, connection_uses, exit_code, render
from airflow_provider_dpone.contracts.manifest import parse_manifest
from airflow_provider_dpone.contracts.strategies import Strategy
from airflow_provider_dpone.sql import postgres_doctor as pd
from airflow_provider_dpone.sql.postgres import POSTGRES

pytestmark = pytest.mark.unit

SERVER = pd.Server("loader", "15.4", 150004, False, "replica", 10, 10, 0, False, False, False, "dwh")


def test_connections_group_the_loads_that_read_write_and_keep_state() -> None:
    m = parse_manifest(
        {
            "pipeline": "p",
            "state": {"backend": "table", "conn_id": "dwh", "table": "dpone.state"},
            "defaults": {"source": {"connector": "postgres", "conn_id": "shop"}, "sink": {"connector": "postgres", "conn_id": "dwh"}},
            "loads": [
                {"name": "a", "source": {"table": "a"}, "sink": {"table": "raw.a"}},
                {"name": "b", "source": {"table": "b", "conn_id": "dwh"}, "sink": {"table": "raw.b"}},
            ],
        }
    )  # fmt: skip
    uses = connection_uses([m])
    assert [(u.conn_id, [s.key for s in u.sources], [s.key for s in u.sinks]) for u in uses] == [
        ("shop", ["p.a"], []),
        ("dwh", ["p.b"], ["p.a", "p.b"]),
    ]
    assert [(p, s.table) for p, s in uses[1].states] == [("p", "dpone.state")]


def test_the_privileges_of_each_strategy_on_an_existing_target() -> None:
    assert pd.target_dml(Strategy.INCREMENTAL_APPEND, "none") == {"INSERT"}
    assert pd.target_dml(Strategy.INCREMENTAL_MERGE, "none") == {"SELECT", "INSERT", "UPDATE"}
    assert pd.target_dml(Strategy.INCREMENTAL_MERGE, "hard") == {"SELECT", "INSERT", "UPDATE", "DELETE"}
    assert pd.target_dml(Strategy.INCREMENTAL_APPEND, "soft") == {"INSERT", "UPDATE"}


def test_a_missing_schema_needs_create_on_the_database() -> None:
    [finding] = pd.schema_findings("p.a sink", "raw", None, SERVER, create_in=True, what="the target")
    assert finding.status == "fail"
    assert (
        finding.fix
        == 'CREATE SCHEMA "raw" AUTHORIZATION "loader" (or GRANT CREATE ON DATABASE "dwh" TO "loader")'
    )
    [ok] = pd.schema_findings("p.a sink", "raw", (True, False), SERVER, create_in=False, what="read")
    assert ok.status == "ok"


def test_a_non_owner_gets_the_grant_and_the_ownership_advice() -> None:
    access = pd.TableAccess.of((False, "admin", False, True, True, False, False))
    found = pd.table_findings(
        "p.a sink", "raw.a", access, frozenset({"SELECT", "UPDATE"}), SERVER, owner="schema changes"
    )
    assert [(f.status, f.message) for f in found] == [
        ("fail", "no UPDATE on raw.a"),
        ("warn", "raw.a is owned by admin, not loader: schema changes"),
    ]
    assert found[0].fix == 'GRANT UPDATE ON "raw"."a" TO "loader"'
    swap = pd.table_findings(
        "s", "raw.a", access, frozenset({"SELECT"}), SERVER, owner="a swap", must_own=True
    )
    assert [f.status for f in swap] == ["ok", "fail"]


def test_a_change_feed_needs_logical_wal_replication_and_a_free_slot() -> None:
    found = pd.cdc_server_findings("p.f source", SERVER, slot_exists=False)
    assert [f.status for f in found] == ["fail", "fail", "fail", "fail"]
    assert [f.fix for f in found][:2] == [
        "ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL (docs/cdc.md)",
        'ALTER ROLE "loader" REPLICATION',
    ]
    assert "no free replication slot (10 of max_replication_slots = 10 used)" in found[2].message
    assert pd.cdc_server_findings("p.f source", SERVER, slot_exists=True)[2].status == "ok"


def test_exit_code_and_the_human_report() -> None:
    findings = [
        Finding("ok", "reachable", "dwh", "connected", seconds=0.004),
        Finding("fail", "privilege", "p.a sink", "no UPDATE on raw.a", fix="GRANT UPDATE ON raw.a TO loader"),
    ]
    assert exit_code(findings) == 1 and exit_code(findings[:1]) == 0
    text = render([("dwh (postgres)", findings)])
    assert "  ok    reachable     connected (4 ms)" in text
    assert (
        "  FAIL  privilege     p.a sink: no UPDATE on raw.a\n        fix: GRANT UPDATE ON raw.a TO loader"
        in text
    )
    assert text.endswith("2 checks: 1 ok, 0 info, 0 warnings, 1 failing: a load cannot run")


@pytest.mark.parametrize("name", ["raw", "it's", 'a"b', "x$dpone$y"])
def test_a_schema_is_created_only_when_missing_whatever_its_name(name: str) -> None:
    statement = POSTGRES.create_schema(name)
    tag = statement.split(" ")[1]
    assert statement.startswith(f"do {tag} begin if not exists (select from pg_namespace where nspname = ")
    assert statement.endswith(f"end if; end {tag}") and statement.count(tag) == 2
    assert POSTGRES.quote_literal(name) in statement and POSTGRES.quote_ident(name) in statement


def test_every_connector_has_a_doctor_check() -> None:
    from airflow_provider_dpone.cli.doctor import CHECKS
    from airflow_provider_dpone.contracts.connectors import CONNECTORS

    assert set(CHECKS) == set(CONNECTORS)
