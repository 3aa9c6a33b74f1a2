"""``cdc_apply`` planned for both set-based dialects: key guards first, a full snapshot's
missing keys deleted under the mass-delete guard, the feed's deletes, then the merge; the
operation column never reaches the target."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_dpone.contracts.errors import MassDeleteError
from airflow_provider_dpone.contracts.manifest import parse_manifest
from airflow_provider_dpone.contracts.strategies import CHANGE_OP
from airflow_provider_dpone.contracts.table import CanonicalType, Column, TableSchema
from airflow_provider_dpone.sql.finalize import FinalizeJob, TargetFacts, plan_finalize
from airflow_provider_dpone.sql.finalize_result import finalize_result
from airflow_provider_dpone.sql.mssql import MSSQL
from airflow_provider_dpone.sql.postgres import POSTGRES
from airflow_provider_dpone.sql.steps import Outcome, run_steps
from airflow_provider_dpone.sql.targets import data_schema

pytestmark = pytest.mark.unit

STAGED = TableSchema(
    (Column("id", CanonicalType.INT64, nullable=False), Column("name", CanonicalType.STRING),
     Column(CHANGE_OP, CanonicalType.STRING, nullable=False, length=1)),
    ("id",),
)  # fmt: skip
EXISTING = TargetFacts(exists=True, primary_key=("id",), unique_keys=frozenset({frozenset({"id"})}))


def job(d: Any, fraction: float = 0.05, snapshot: bool | None = None) -> FinalizeJob:
    body = {
        "name": "items",
        "source": {"connector": "mssql", "conn_id": "src", "table": "items", "incremental": {"mode": "change_tracking"}},
        "sink": {"connector": "postgres", "conn_id": "dst", "table": "raw.items", "strategy": "cdc_apply", "unique_key": ["id"]},
        "reconciliation": {"max_delete_fraction": fraction},
    }  # fmt: skip
    load = parse_manifest({"pipeline": "p", "loads": [body]}).loads[0]
    return FinalizeJob("p.items", load, d.parse_table("raw.items"), d.table("dpone_staging", "items__x"),
                       data_schema(STAGED), staged_rows=4, snapshot=snapshot)  # fmt: skip


def test_the_operation_column_is_staged_never_a_target_column() -> None:
    assert data_schema(STAGED).names == ["id", "name"]
    created = plan_finalize(POSTGRES, job(POSTGRES), TargetFacts(exists=False, primary_key=("id",)))
    table = next(s.sql for s in created if s.sql.startswith("create table"))
    assert CHANGE_OP not in table


@pytest.mark.parametrize("d", [POSTGRES, MSSQL], ids=["postgres", "mssql"])
def test_guards_then_snapshot_then_deletes_then_merge(d: Any) -> None:
    steps = plan_finalize(d, job(d), EXISTING)
    sql = [s.sql for s in steps]

    def at(fragment: str) -> int:
        return next(i for i, s in enumerate(sql) if fragment in s)

    op = d.quote_ident(CHANGE_OP)
    order = [
        at("is null"),  # NULL keys
        at("having count"),  # keys staged twice
        at("not exists"),  # a snapshot's missing keys (counted, then deleted)
        at(f"s.{op} = "),  # the feed's deletes
        at(f"where {op} = "),  # deleted keys leave the batch
        at("insert into"),
    ]
    assert order == sorted(order)
    snapshot_only = [s for s in steps if s.when is not None and "snapshot" in s.when.describe]
    assert len(snapshot_only) == 2


def test_a_snapshot_deleting_too_much_fails_before_any_change() -> None:
    d = POSTGRES
    steps = plan_finalize(d, job(d, snapshot=True), EXISTING)
    answers = {"is null": Outcome(1, [(0, None)]), "having count": Outcome(0, []), "not exists": Outcome(1, [(10, 10)])}  # fmt: skip
    ran: list[str] = []

    def execute(step: Any) -> Outcome:
        ran.append(step.sql)
        return next((o for k, o in answers.items() if k in step.sql), Outcome(1))

    # an empty snapshot (the source table is empty now) would delete every target row
    with pytest.raises(MassDeleteError, match="full snapshot would delete 10 of 10"):
        run_steps(steps, execute)
    assert not any(s.startswith("delete") for s in ran)
    # a batch of changes (not a snapshot) never deletes the keys it does not hold
    ran.clear()
    run_steps(plan_finalize(d, job(d, snapshot=False), EXISTING), execute)
    assert not any("not exists (select 1 from" in s for s in ran if s.startswith("delete"))
    assert any(s.startswith("delete") for s in ran)  # the feed's deletes did run


def test_the_result_counts_each_kind_of_change() -> None:
    outcomes = {
        "inserted": Outcome(2),
        "updated": Outcome(3),
        "deleted": Outcome(1),
        "deleted_by_snapshot": Outcome(4),
    }
    result = finalize_result(job(POSTGRES), EXISTING, outcomes)
    assert result == {"method": "cdc_apply", "duplicates_removed": 0, "rows_inserted": 2, "rows_updated": 3,
                      "rows_deleted": 5}  # fmt: skip
