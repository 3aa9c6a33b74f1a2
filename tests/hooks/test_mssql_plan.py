"""``dpone plan`` on SQL Server: the plan of every strategy is a golden file (tests/golden/mssql/,
reviewed like code; ``DPONE_UPDATE_GOLDEN=1`` rewrites them), and the finalize a run executes is
that plan, step for step, in order (a conditional step may be skipped, nothing else). On the
driver fake (``tests/mssql_fake.py``): no SQL Server runs here."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_dpone.contracts.manifest import parse_manifest
from airflow_provider_dpone.contracts.strategies import CHANGE_OP
from airflow_provider_dpone.contracts.table import CanonicalType, Column, TableSchema
from airflow_provider_dpone.hooks import mssql_session
from airflow_provider_dpone.hooks.mssql_connector import MsSqlEngine
from airflow_provider_dpone.runtime.protocols import LoadContext, StagedData
from airflow_provider_dpone.sql import mssql_catalog as catalog
from tests.hooks.test_mssql_connector import ITEMS, Catalog
from tests.mssql_fake import FakeServer

pytestmark = pytest.mark.unit

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "mssql"
KEY = {"unique_key": ["id"]}
FULL = {"incremental": None}
CURSOR = {"incremental": {"mode": "cursor", "cursor": "updated_at"}}
WINDOW = {"column": "updated_at", "start": "2026-01-01", "end": "2026-02-01"}
CASES: dict[str, tuple[dict[str, Any], dict[str, Any], dict[str, Any]]] = {  # (sink, source, load extras)
    "full_refresh": ({"strategy": "full_refresh"}, FULL, {}),
    "incremental_append": ({"strategy": "incremental_append"}, CURSOR, {}),
    "incremental_merge": ({"strategy": "incremental_merge", **KEY}, CURSOR, {}),
    "merge_keep_last": ({"strategy": "incremental_merge", **KEY, "on_duplicate_keys": "keep_last"}, CURSOR, {}),
    "merge_soft_deletes": ({"strategy": "incremental_merge", **KEY}, FULL, {"reconciliation": {"deletes": "soft"}}),
    "snapshot_diff": ({"strategy": "snapshot_diff", **KEY}, FULL, {"reconciliation": {"deletes": "hard"}}),
    "scd2": ({"strategy": "scd2", **KEY}, FULL, {}),
    "replace": ({"strategy": "replace", "replace": {"window": WINDOW}}, {"window": WINDOW}, {}),
    "partition_replace": ({"strategy": "partition_replace", "partition_by": ["name"]}, FULL, {}),
    "cdc_apply": ({"strategy": "cdc_apply", **KEY}, {"incremental": {"mode": "change_tracking"}}, {}),
}  # fmt: skip
SCHEMA = TableSchema(
    (Column("id", CanonicalType.INT64, nullable=False), Column("name", CanonicalType.STRING, length=100, nullable=False),
     Column("updated_at", CanonicalType.TIMESTAMP, nullable=False)),
    ("id",),
)  # fmt: skip


class PlanCatalog(Catalog):
    """The target raw.items exists as a plain table; every guard finds nothing wrong."""

    def __call__(self, sql: str, params: tuple[Any, ...]) -> Any:
        if sql == catalog.SWAP_BLOCKERS:
            return [(0,) * 8], [f"c{i}" for i in range(8)]
        if sql == catalog.IS_PARTITIONED:
            return [(0,)], ["p"]
        if sql.startswith("select (select count_big(*) from [raw].[items] as t where"):
            return [(0, 10)], ["missing", "total"]
        return super().__call__(sql, params)


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> tuple[MsSqlEngine, FakeServer]:
    server = FakeServer(answer=PlanCatalog({"[raw].[items]": ITEMS}))
    monkeypatch.setattr(mssql_session.mssql_python, "connect", server.connect)
    monkeypatch.setenv("AIRFLOW_CONN_MSSQL_T", "mssql://loader:pw@sql.example.com:1433/dwh")
    return MsSqlEngine("mssql_t"), server


def _ctx(case: str) -> LoadContext:
    sink, source, extras = CASES[case]
    body = {
        "name": "items",
        "source": {"connector": "mssql", "conn_id": "mssql_t", "table": "src.items", **source},
        "sink": {"connector": "mssql", "conn_id": "mssql_t", "table": "raw.items", **sink},
        **extras,
    }
    return LoadContext("plan", parse_manifest({"pipeline": "plan", "loads": [body]}).loads[0], "run-1")


def _batch(case: str) -> TableSchema:
    if case != "cdc_apply":
        return SCHEMA
    op = Column(CHANGE_OP, CanonicalType.STRING, nullable=False, length=1)
    return TableSchema((*SCHEMA.columns, op), SCHEMA.primary_key)


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_plan_is_golden_and_is_what_the_run_executes(
    case: str, engine: tuple[MsSqlEngine, FakeServer]
) -> None:
    hook, server = engine
    ctx, schema = _ctx(case), _batch(case)
    plan = hook.plan_load(ctx, schema, schema_plan=hook.schema_plan(ctx, schema))
    text = "\n".join(plan["statements"]) + "\n"
    golden = GOLDEN / f"{case}.sql"
    if os.environ.get("DPONE_UPDATE_GOLDEN"):
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(text, encoding="utf-8")
    assert golden.exists(), f"no golden plan {golden}: run with DPONE_UPDATE_GOLDEN=1 and review it"
    assert text == golden.read_text(encoding="utf-8"), (
        f"the plan of {case} changed: review, then DPONE_UPDATE_GOLDEN=1"
    )

    planned = [step["sql"] for step in plan["steps"]]
    unconditional = [step["sql"] for step in plan["steps"] if "when" not in step]
    server.statements.clear()
    staged = StagedData(str(hook.staging_table(ctx)), schema, rows=10, bytes=None, format="tds_bulk_copy")
    hook.finalize(ctx, staged, [])
    executed = [s for s in server.sql() if s in planned]
    assert executed == [s for s in planned if s in executed], "the run executed the plan's steps out of order"
    assert set(unconditional) <= set(executed), "the run skipped a step the plan says always runs"
