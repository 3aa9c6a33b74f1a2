"""Record the run reports ``tests/runtime/test_perf_advice.py`` advises on: real ``dpone run``s
against the local PostgreSQL, one JSON per scenario in this folder.

    .venv/bin/python tests/golden/perf_reports/record.py [--admin postgresql://postgres@127.0.0.1:5432/postgres]

Each file holds the scenario's manifest, the reports the runs saved (``--report-dir``, oldest
first) and what ``dpone perf advise`` read of the load's tables after the last run
(``cli/perf_inspect.py``). Nothing in them is edited by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import psycopg
import yaml

HERE = Path(__file__).resolve().parent
ORDERS = """
create table orders (id bigint primary key, amount numeric(12,2) not null, note text,
                     updated_at timestamptz not null);
insert into orders select g, g, 'n' || g, timestamptz '2024-01-01' + g * interval '1 second'
from generate_series(1, {rows}) g;
"""
# 1% of the rows changed, their cursor moved past every other row's
CHANGE = "update orders set amount = amount + 1, updated_at = updated_at + {shift} where id % 100 = 0"
# 1% of the rows changed a minute after the newest row: the watermark advances one minute
LATE_CHANGE = (
    "update orders set amount = amount + 1, "
    "updated_at = (select max(updated_at) from orders) + interval '1 minute' where id % 100 = 0"
)


def _merge(name: str, **extra: Any) -> dict[str, Any]:
    sink = {
        "table": f"raw.{name}",
        "strategy": "incremental_merge",
        "unique_key": ["id"],
        **extra.pop("sink", {}),
    }
    source = {
        "table": "orders",
        "incremental": {"mode": "cursor", "cursor": "updated_at", **extra.pop("inc", {})},
    }
    return {"name": name, "source": source, "sink": sink, **extra}


# name: (source setup, target setup, load, steps between runs: None = run, else SQL on the source)
SCENARIOS: dict[str, tuple[str, str, dict[str, Any], list[str | None]]] = {
    "merge_lookback": (
        ORDERS.format(rows=200_000),
        "",
        _merge("merge_lookback", inc={"lookback": "10m"}),
        [None, CHANGE.format(shift="interval '1 year'"), None],
    ),
    "merge_user_target": (
        ORDERS.format(rows=200_000),
        "create schema raw; create table raw.merge_user_target "
        "(id bigint, amount numeric(12,2), note text, updated_at timestamptz)",
        _merge("merge_user_target"),
        [None, CHANGE.format(shift="interval '1 year'"), None],
    ),
    "lookback_heavy": (
        ORDERS.format(rows=50_000),
        "",
        _merge("lookback_heavy", inc={"lookback": "1h"}),
        [None, LATE_CHANGE, None],
    ),
    "empty_runs": (
        ORDERS.format(rows=20_000),
        "",
        _merge("empty_runs", sink={"staging": {"keep": "always"}}),
        [None, None, None],
    ),
    "text_path": (
        "create type mood as enum ('ok', 'sad'); create table feelings (id bigint primary key, moods mood[]);"
        "insert into feelings select g, array['ok', 'sad']::mood[] from generate_series(1, 10000) g;",
        "",
        {"name": "text_path", "source": {"table": "feelings"}, "sink": {"table": "raw.feelings"}},
        [None],
    ),
    "snapshot_diff": (
        ORDERS.format(rows=100_000),
        "",
        {
            "name": "snapshot_diff",
            "source": {"table": "orders"},
            "sink": {"table": "raw.snapshot_diff", "strategy": "snapshot_diff", "unique_key": ["id"]},
            "reconciliation": {"deletes": "hard"},
        },
        [None, CHANGE.format(shift="interval '1 day'"), None],
    ),
    "full_large": (
        ORDERS.format(rows=500_000),
        "",
        {"name": "full_large", "source": {"table": "orders"}, "sink": {"table": "raw.full_large"}},
        [None],
    ),
    "failed": (
        ORDERS.format(rows=1_000),
        "",
        _merge("failed"),
        [None, "drop table orders", None],
    ),
}


def record(admin: str, name: str, scenario: tuple[str, str, dict[str, Any], list[str | None]]) -> Path:
    from airflow_provider_dpone.cli.main import main
    from airflow_provider_dpone.cli.perf_inspect import inspect_load
    from airflow_provider_dpone.contracts.manifest import parse_manifest
    from airflow_provider_dpone.demo.postgres_server import airflow_conn_uri, recreate_database

    source_sql, target_sql, load, steps = scenario
    src = recreate_database(admin, "dpone_perf_rec_src")
    dst = recreate_database(admin, "dpone_perf_rec_dst")
    os.environ["AIRFLOW_CONN_REC_SRC"] = airflow_conn_uri(src)
    os.environ["AIRFLOW_CONN_REC_DST"] = airflow_conn_uri(dst)
    with psycopg.connect(src, autocommit=True) as conn:
        conn.execute(source_sql)
    if target_sql:
        with psycopg.connect(dst, autocommit=True) as conn:
            conn.execute(target_sql)
    manifest = {
        "pipeline": "perf",
        "state": {"backend": "table", "conn_id": "rec_dst"},
        "defaults": {
            "source": {"connector": "postgres", "conn_id": "rec_src"},
            "sink": {"connector": "postgres", "conn_id": "rec_dst"},
        },
        "loads": [load],
    }
    with tempfile.TemporaryDirectory() as tmp:
        path, reports = Path(tmp) / "perf.yaml", Path(tmp) / "reports"
        path.write_text(yaml.safe_dump(manifest))
        for step in steps:
            if step is None:
                main(["run", str(path), "--report-dir", str(reports)])
            else:
                with psycopg.connect(src, autocommit=True) as conn:
                    conn.execute(step)
        saved = [json.loads(f.read_text()) for f in sorted((reports / "perf" / name).glob("*.json"))]
    spec = parse_manifest(manifest).loads[0]
    inspected = [
        {"role": i.role, "table": i.table, "error": i.error, "facts": i.facts and vars(i.facts)}
        for i in inspect_load(spec)
    ]
    out = HERE / f"{name}.json"
    out.write_text(
        json.dumps({"manifest": manifest, "reports": saved, "inspected": inspected}, indent=1, default=str)
        + "\n"
    )
    return out


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--admin", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("scenarios", nargs="*", default=list(SCENARIOS))
    args = parser.parse_args()
    for name in args.scenarios:
        print(record(args.admin, name, SCENARIOS[name]))
    with psycopg.connect(args.admin, autocommit=True) as conn:
        for db in ("dpone_perf_rec_src", "dpone_perf_rec_dst"):
            conn.execute(f'drop database if exists "{db}" with (force)')


if __name__ == "__main__":
    cli()
