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
from airflow_provider_dpone.sql.postgres import POSTGRES
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
    "append_keyed_lookback": (
        {"strategy": "incremental_append", "unique_key": ["id"]},
        {"incremental": {**CURSOR["incremental"], "lookback": "40d"}},
        {},
    ),
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
    "partition_swap": ({"strategy": "partition_replace", "partition_by": ["day"]}, {"window": WINDOW}, {}),
    "merge_all_updated": (
        {"strategy": "incremental_merge", "unique_key": ["id"]},
        {"table": None, "query": "select * from accounts where id <= 200", **CURSOR},
        {},
    ),
    "merge_keep_last_duplicates": (
        {"strategy": "incremental_merge", "unique_key": ["id"], "on_duplicate_keys": "keep_last"},
        {"table": None, "query": "select * from accounts union all select * from accounts where id = 40"},
        {},
    ),
}
# Targets created before the first run (a declaratively partitioned one).
PREPARE = {
    "partition_swap": """
    create schema raw;
    create table raw.accounts (id bigint, name text not null, balance numeric(12,2), day date not null,
                               updated_at timestamptz not null, primary key (id, day))
      partition by range (day);
    create table raw.accounts_p1 partition of raw.accounts for values from ('2026-01-01') to ('2026-01-05');
    create table raw.accounts_p2 partition of raw.accounts for values from ('2026-01-05') to ('2026-01-10');
    create table raw.accounts_p3 partition of raw.accounts for values from ('2026-01-10') to ('2026-02-01');
    """
}
# The conditions of the plan's steps that the changed rerun finds false (so skips).
SKIPPED_WHEN = {
    "partition_swap": {"the batch has rows in raw.accounts_p1", "the batch has rows in raw.accounts_p3"},
    "merge_all_updated": {"some staged key did not match a target row (every one updated: nothing is new)"},
}

# Statements finalize runs to read the catalog (the target's facts, the schema re-plan): the
# plan reads the same facts the same way and shows what follows from them instead.
_CATALOG = {
    " ".join(q.split())
    for q in (
        POSTGRES.TABLE_EXISTS,
        POSTGRES.INTROSPECT_COLUMNS,
        POSTGRES.INTROSPECT_PRIMARY_KEY,
        POSTGRES.INTROSPECT_UNIQUE_KEYS,
        POSTGRES.SWAP_BLOCKERS,
        POSTGRES.IS_PARTITIONED,
        POSTGRES.LEAF_PARTITIONS,
    )
}


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
    """Every statement of the finalize, in order (catalog reads and the state row left out)."""
    return [_normal(s) for s in seen if " ".join(s.split()) not in _CATALOG and not _STATE_ROW.search(s)]


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_plan_shows_every_statement_the_finalize_runs(clean_pg, case: str, monkeypatch) -> None:
    pg = clean_pg
    pg.execute("src", ACCOUNTS)
    sink, source, extras = CASES[case]
    body = {
        "name": "accounts",
        "source": {
            k: v
            for k, v in {"connector": "postgres", "conn_id": "src", "table": "accounts", **source}.items()
            if v is not None
        },
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
    if case in PREPARE:
        pg.execute("dst", PREPARE[case])
    run(first, "r1")
    pg.execute("src", CHANGE)
    load = m.loads[0]
    steps = plan_load(m.pipeline, load, assemble(load, m.state))["load_sql"]["steps"]
    with captured_finalize() as seen:
        assert run(m, "r2").status == "success"
    executed = finalize_statements(seen)
    assert executed, "nothing captured"
    ran = 0
    for step in steps:  # the run is the plan with only conditional steps left out
        if ran < len(executed) and executed[ran] == _normal(step["sql"]):
            ran += 1
        else:
            assert "when" in step, f"{case}: the plan's unconditional step did not run: {step['sql']}"
    assert ran == len(executed), (
        f"{case}: the run executed statements the plan does not show (in this order): {executed[ran:]}"
        "\n--- plan ---\n" + "\n".join(_normal(s["sql"]) for s in steps)
    )
    done = iter(executed)
    skipped, pending = set(), next(done, None)
    for step in steps:
        if pending == _normal(step["sql"]):
            pending = next(done, None)
        else:
            skipped.add(step["when"])
    assert skipped == SKIPPED_WHEN.get(case, set()), f"{case}: skipped {skipped}"


# --- ClickHouse ------------------------------------------------------------------------------

CH_CASES: dict[str, tuple[dict, dict, str | None]] = {  # (sink, source, target created before r1)
    "full_refresh": ({"strategy": "full_refresh"}, {}, None),
    "incremental_append": ({"strategy": "incremental_append"}, CURSOR, None),
    "append_keyed_lookback": (
        {"strategy": "incremental_append", "unique_key": ["id"]},
        {"incremental": {**CURSOR["incremental"], "lookback": "40d"}},
        None,
    ),
    "incremental_merge": ({"strategy": "incremental_merge", "unique_key": ["id"]}, CURSOR, None),
    "merge_replacing_merge_tree": (
        {"strategy": "incremental_merge", "unique_key": ["id"]},
        CURSOR,
        "create table raw.accounts (id Int64, name String, balance Nullable(Decimal(12, 2)), day Date32, "
        "updated_at DateTime64(6, 'UTC')) engine = ReplacingMergeTree order by id",
    ),
    "partition_replace": (
        {"strategy": "partition_replace", "partition_by": ["day"]},
        {"window": WINDOW},
        "create table raw.accounts (id Int64, name String, balance Nullable(Decimal(12, 2)), day Date32, "
        "updated_at DateTime64(6, 'UTC')) engine = MergeTree partition by day order by id",
    ),
}
_CH_CATALOG = ("from system.tables", "from system.parts")


def _ch_normal(statement: str) -> str:
    """As ``_normal``, with a concrete partition id as the plan's placeholder."""
    return re.sub(r"partition id '[^']*'", "partition id '<partition id>'", _normal(statement))


@contextmanager
def captured_ch_finalize() -> Iterator[list[str]]:
    """Every statement the ClickHouse sink sends inside its ``finalize``."""
    from airflow_provider_dpone.hooks.clickhouse import DponeClickHouseHook

    seen: list[str] = []
    inside = [False]
    real = {name: getattr(DponeClickHouseHook, name) for name in ("query", "command", "finalize")}

    def recorder(name: str) -> Any:
        def call(self: Any, statement: str, *args: Any, **kwargs: Any) -> Any:
            if inside[0]:
                seen.append(statement)
            return real[name](self, statement, *args, **kwargs)

        return call

    def finalize(self: Any, *args: Any, **kwargs: Any) -> Any:
        inside[0] = True
        try:
            return real["finalize"](self, *args, **kwargs)
        finally:
            inside[0] = False

    DponeClickHouseHook.query = recorder("query")  # type: ignore[method-assign]
    DponeClickHouseHook.command = recorder("command")  # type: ignore[method-assign]
    DponeClickHouseHook.finalize = finalize  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        for name, fn in real.items():
            setattr(DponeClickHouseHook, name, fn)


@pytest.mark.parametrize("case", sorted(CH_CASES))
def test_the_clickhouse_plan_shows_every_statement_the_finalize_runs(clean_pg, clean_ch, case: str) -> None:
    pg, ch = clean_pg, clean_ch
    pg.execute("src", ACCOUNTS)
    sink, source, target = CH_CASES[case]
    body = {
        "name": "accounts",
        "source": {"connector": "postgres", "conn_id": "src", "table": "accounts", **source},
        "sink": {"connector": "clickhouse", "conn_id": "ch", "table": "raw.accounts", **sink},
    }
    m = parse_manifest(
        {"pipeline": "planrun", "state": {"backend": "table", "conn_id": "dst"}, "loads": [body]}
    )
    if target:
        ch.command("create database if not exists raw")
        ch.command(target)
    whole = {**body, "source": {k: v for k, v in body["source"].items() if k != "window"}}
    run(parse_manifest({**m.model_dump(by_alias=True), "loads": [whole]}), "r1")
    pg.execute("src", CHANGE)
    load = m.loads[0]
    steps = plan_load(m.pipeline, load, assemble(load, m.state))["load_sql"]["steps"]
    with captured_ch_finalize() as seen:
        assert run(m, "r2").status == "success"
    executed = [_ch_normal(s) for s in seen if not any(c in s for c in _CH_CATALOG)]
    assert executed, "nothing captured"
    planned = [_ch_normal(s["sql"]) for s in steps]
    ran = 0
    for statement in planned:
        if ran < len(executed) and executed[ran] == statement:
            ran += 1
            # one templated step per staged partition: it may repeat
            while ran < len(executed) and "<partition id>" in statement and executed[ran] == statement:
                ran += 1
        else:
            raise AssertionError(f"{case}: the plan's step did not run: {statement}\nran: {executed}")
    assert ran == len(executed), (
        f"{case}: the run executed statements the plan does not show: {executed[ran:]}"
    )
