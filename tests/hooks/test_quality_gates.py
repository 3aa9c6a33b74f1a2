"""Quality gates on the real PostgreSQL: measured on staging, a failure leaves target and state."""

from __future__ import annotations

import pytest

from airflow_provider_dpone.contracts.errors import BadInputError
from airflow_provider_dpone.contracts.manifest import parse_manifest
from airflow_provider_dpone.contracts.quality import QualityGateError
from tests.helpers import run_first_load as run

pytestmark = pytest.mark.integration

SECRET_EMAIL = "very-private@example.org"

CUSTOMERS = f"""
create table customers (id bigint primary key, email text, status text not null,
                        amount numeric(12,2) not null, updated_at timestamptz not null);
insert into customers select g, 'c' || g || '@example.org', 'active', g, now() - interval '10 minutes'
from generate_series(1, 20) g;
update customers set email = '{SECRET_EMAIL}' where id = 20;
"""

CHECKS = [
    {"check": "not_null", "columns": ["id", "email"]},
    {"check": "unique", "columns": ["email"]},
    {"check": "row_count", "min": 1, "equals_source": True},
    {"check": "freshness", "column": "updated_at", "max_age": "1h"},
    {"check": "accepted_values", "column": "status", "values": ["active", "closed"]},
    {"check": "sql", "name": "no_negative_amounts", "sql": "select count(*) from {staging} where amount < 0"},
]


def manifest(checks: list[dict]):
    return parse_manifest(
        {
            "pipeline": "dq",
            "state": {"backend": "table", "conn_id": "dst"},
            "loads": [
                {
                    "name": "customers",
                    "source": {
                        "connector": "postgres",
                        "conn_id": "src",
                        "table": "customers",
                        "incremental": {"mode": "cursor", "cursor": "updated_at"},
                    },
                    "sink": {
                        "connector": "postgres",
                        "conn_id": "dst",
                        "table": "raw.customers",
                        "strategy": "incremental_merge",
                        "unique_key": ["id"],
                    },
                    "quality": checks,
                }
            ],
        }
    )


def snapshot(pg) -> tuple:
    rows = pg.query("dst", "select count(*), md5(string_agg(c::text, ',' order by id)) from raw.customers c")
    state = pg.query("dst", "select state::text from dpone.state where pipeline = 'dq'")
    return rows[0], state


def test_passing_gates_are_reported_and_the_load_finalizes(clean_pg) -> None:
    pg = clean_pg
    pg.execute("src", CUSTOMERS)
    report = run(manifest(CHECKS), "r1")
    assert report.status == "success"
    assert [q["passed"] for q in report.quality] == [True] * len(CHECKS)
    assert [q["name"] for q in report.quality][-1] == "no_negative_amounts"
    assert report.find_phase("quality") is not None
    assert pg.query("dst", "select count(*) from raw.customers") == [(20,)]
    assert "quality not_null(id, email): ok" in report.to_table()


def test_failed_gates_leave_target_and_state_and_name_only_keys(clean_pg) -> None:
    pg = clean_pg
    pg.execute("src", CUSTOMERS)
    m = manifest(CHECKS)
    run(m, "r1")
    before = snapshot(pg)
    pg.execute(
        "src",
        "insert into customers values (101, null, 'bogus', -5, now()), (102, null, 'active', 3, now()), "
        f"(103, '{SECRET_EMAIL}', 'active', 1, now())",
    )
    with pytest.raises(QualityGateError) as caught:
        run(m, "r2")
    message = str(caught.value)
    assert caught.value.code == "DPONE304"
    assert "not_null(id, email): 2 row(s) with NULL (email: 2)" in message
    assert "{'id': '101'}" in message and "{'id': '102'}" in message
    # unique(email) passes: the batch holds 103 only; its twin (id 20) is in the target, not staging.
    assert "accepted_values(status): 1 row(s) with a value not accepted" in message
    assert "no_negative_amounts: query returned 1 (expected 0)" in message
    assert "bogus" not in message and SECRET_EMAIL not in message
    assert snapshot(pg) == before
    # No staging left half-used by a later retry: the same run id restages from scratch.
    pg.execute("src", "delete from customers where id in (101, 102)")
    report = run(m, "r2")
    assert report.status == "success"
    assert pg.query("dst", "select count(*) from raw.customers") == [(21,)]


def test_unique_and_freshness_failures_and_warn_severity(clean_pg) -> None:
    pg = clean_pg
    pg.execute("src", CUSTOMERS)
    pg.execute("src", "update customers set email = 'dup@example.org' where id in (1, 2, 3)")
    checks = [
        {"check": "unique", "columns": ["email"]},
        {"check": "freshness", "column": "updated_at", "max_age": "1m", "severity": "warn"},
    ]
    with pytest.raises(QualityGateError) as caught:
        run(manifest(checks), "r1")
    assert "unique(email): 1 duplicated value(s) over 3 row(s)" in str(caught.value)
    assert "dup@example.org" not in str(caught.value)
    assert pg.query("dst", "select to_regclass('raw.customers') is null") == [(True,)]
    # The freshness check only warns: with unique satisfied the load goes through.
    pg.execute("src", "update customers set email = 'c' || id || '@example.org'")
    report = run(manifest(checks), "r2")
    assert report.status == "success"
    fresh = report.quality[1]
    assert fresh["passed"] is False and fresh["severity"] == "warn"
    assert "old (max 60s)" in fresh["message"]


def test_a_check_on_an_unknown_column_is_bad_input(clean_pg) -> None:
    pg = clean_pg
    pg.execute("src", CUSTOMERS)
    with pytest.raises(BadInputError, match=r"quality\[0\] \(not_null\(nope\)\): column\(s\) \['nope'\]"):
        run(manifest([{"check": "not_null", "columns": ["nope"]}]), "r1")
