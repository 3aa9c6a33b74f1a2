"""What ``dpone plan`` prints is what the run executes: every statement that writes (or guards
a write) in a PostgreSQL finalize appears in the plan, in the same order, for every strategy."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest

from airflow_provider_dpone.contracts.manifest import parse_manifest
from airflow_provider_dpone.hooks.postgres import DponePostgresHook
from airflow_provider_dpone.operators.wiring import assemble
from airflow_provider_dpone.runtime.planning import plan_load
from tests.helpers import run_first_load as run

pytestmark = pytest.mark.integration

ACCOUNTS = """
create table accounts (id bigint primary key, name text not null, balance numeric(12,2),
                       day date not null, updated_at timestamptz not null);
insert into accounts select g, 'acct' || g, g * 10, date '2026-01-01' + (g % 20),
                            timestamptz '2026-01-01' + g * interval '1 minute'
from generate_series(1, 200) g;
"""
CHANGE = """
update accounts set name = 'changed', updated_at = updated_at + interval '30 days' where id % 40 = 0;
delete from accounts where id in (3, 4);
insert into accounts values (1001, 'new', 1, date '2026-01-05', timestamptz '2026-03-01');
"""
CURSOR = {"incremental": {"mode": "cursor", "cursor": "updated_at"}}
WINDOW = {"column": "day", "start": "2026-01-05", "end": "2026-01-06"}

CASES: dict[str, tuple[dict, dict, dict]] = {  # (sink, source, load extras)
    "full_refresh": ({"strategy": "full_refresh"}, {}, {"reconciliation": {"max_delete_fraction": 0.5}}),
    "incremental_append": ({"strategy": "incremental_append"}, CURSOR, {}),
    "incremental_merge": ({"strategy": "incremental_merge", "unique_key": ["id"]}, CURSOR, {}),
    "merge_soft_deletes": (
        {"strategy": "incremental_merge", "unique_key": ["id"]},
        {},
        {"reconciliation": {"deletes": "soft", "max_delete_fraction": 0.5}},
    ),
    "merge_hard_deletes_incremental": (
        {"strategy": "incremental_merge", "unique_key": ["id"]},
        CURSOR,
        {"reconciliation": {"deletes": "hard", "max_delete_fraction": 0.5}},
    ),
    "snapshot_diff": (
        {"strategy": "snapshot_diff", "unique_key": ["id"]},
        {},
        {"reconciliation": {"deletes": "hard", "max_delete_fraction": 0.5}},
    ),
    "scd2": (
        {"strategy": "scd2", "unique_key": ["id"]},
        {},
        {"reconciliation": {"deletes": "hard", "max_delete_fraction": 0.5}},
    ),
    "replace": ({"strategy": "replace", "replace": {"window": WINDOW}}, {}, {}),
    "partition_replace": ({"strategy": "partition_replace", "partition_by": ["day"]}, {"window": WINDOW}, {}),
}

_WRITES = re.compile(
    r"^\s*(insert|update|delete|truncate|alter|drop|create table|lock table|select count|select \(select count)",
    re.I,
)


def _normal(statement: str) -> str:
    """Whitespace folded; the run's staging name (a hash of the run id) as ``<staging>``."""
    return re.sub(r"__[0-9a-f]{12}", "__<staging>", " ".join(statement.split()).rstrip(";"))


@contextmanager
def captured_finalize() -> Iterator[list[str]]:
    """Every statement psycopg 3 cursors execute inside the sink's ``finalize``, as text."""
    seen: list[str] = []
    inside = [False]
    real_execute, real_finalize = psycopg.Cursor.execute, DponePostgresHook.finalize

    def execute(self: Any, query: Any, params: Any = None, **kwargs: Any) -> Any:
        if inside[0]:
            seen.append(query if isinstance(query, str) else query.as_string(self))
        return real_execute(self, query, params, **kwargs)

    def finalize(self: Any, *args: Any, **kwargs: Any) -> Any:
        inside[0] = True
        try:
            return real_finalize(self, *args, **kwargs)
        finally:
            inside[0] = False

    psycopg.Cursor.execute = execute  # type: ignore[method-assign]
    DponePostgresHook.finalize = finalize  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        psycopg.Cursor.execute = real_execute  # type: ignore[method-assign]
        DponePostgresHook.finalize = real_finalize  # type: ignore[method-assign]


# The state row (or its journal row) committed with the data: the state backend's, not the plan's.
_STATE_ROW = re.compile(r"\(pipeline, load, (state|run_id)")


def finalize_statements(seen: list[str]) -> list[str]:
    """The finalize's writes and guards, in order (catalog reads and the state row left out)."""
    return [_normal(s) for s in seen if _WRITES.match(s) and not _STATE_ROW.search(s)]


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_plan_shows_every_statement_the_finalize_runs(clean_pg, case: str, monkeypatch) -> None:
    pg = clean_pg
    pg.execute("src", ACCOUNTS)
    sink, source, extras = CASES[case]
    body = {
        "name": "accounts",
        "source": {"connector": "postgres", "conn_id": "src", "table": "accounts", **source},
        "sink": {"connector": "postgres", "conn_id": "dst", "table": "raw.accounts", **sink},
        **extras,
    }
    m = parse_manifest(
        {"pipeline": "planrun", "state": {"backend": "table", "conn_id": "dst"}, "loads": [body]}
    )
    first = m
    if "window" in source:  # the first run loads everything, later ones the window
        whole = {**body, "source": {k: v for k, v in body["source"].items() if k != "window"}}
        first = parse_manifest({**m.model_dump(by_alias=True), "loads": [whole]})
    run(first, "r1")
    pg.execute("src", CHANGE)
    load = m.loads[0]
    plan = [
        _normal(s) for s in plan_load(m.pipeline, load, assemble(load, m.state))["load_sql"]["statements"]
    ]
    with captured_finalize() as seen:
        assert run(m, "r2").status == "success"
    executed = finalize_statements(seen)
    assert executed, "nothing captured"
    position = 0
    for statement in executed:
        assert statement in plan[position:], (
            f"{case}: the run executed a statement the plan does not show (in this order):\n"
            f"{statement}\n--- plan ---\n" + "\n".join(plan)
        )
        position = plan.index(statement, position) + 1
