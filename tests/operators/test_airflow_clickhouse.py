"""PostgreSQL <-> ClickHouse under real Airflow, each with an injected failure and a retry.

Airflow runs in its own process; it reaches the ClickHouse engine (chDB in the test process)
through the HTTP front, as it would reach a ClickHouse server.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from tests.clickhouse_http import ChdbHttpFront
from tests.operators.test_airflow_e2e import _fail_next_writes, airflow

pytestmark = pytest.mark.integration

PG_TO_CH = {
    "pipeline": "pg_to_ch",
    "retries": 1,
    "retry_delay": "0s",
    "state": {"backend": "table", "conn_id": "dst"},
    "loads": [
        {
            "name": "orders",
            "source": {
                "connector": "postgres",
                "conn_id": "src",
                "table": "orders_feed",
                "incremental": {"mode": "cursor", "cursor": "id"},
            },
            "sink": {
                "connector": "clickhouse",
                "conn_id": "chhttp",
                "table": "raw.orders",
                "strategy": "incremental_merge",
                "unique_key": ["id"],
            },
        }
    ],
}
CH_TO_PG = {
    "pipeline": "ch_to_pg",
    "retries": 1,
    "retry_delay": "0s",
    "state": {"backend": "table", "conn_id": "dst"},
    "loads": [
        {
            "name": "orders",
            "source": {
                "connector": "clickhouse",
                "conn_id": "chhttp",
                "table": "src.orders",
                "incremental": {"mode": "cursor", "cursor": "id"},
            },
            "sink": {
                "connector": "postgres",
                "conn_id": "dst",
                "table": "raw.orders",
                "strategy": "incremental_append",
            },
        }
    ],
}


@pytest.fixture
def ch_airflow(clean_pg, clean_ch, airflow_db, tmp_path: Path):
    front = ChdbHttpFront(os.path.realpath(clean_ch.dsn[len("chdb://") :]))
    env = {
        **os.environ,
        "DPONE_MANIFESTS_DIR": str(tmp_path),
        "AIRFLOW_CONN_CHHTTP": f"dpone-clickhouse://default@127.0.0.1:{front.port}/default?compress=false",
    }
    (tmp_path / "pg_to_ch.yaml").write_text(yaml.safe_dump(PG_TO_CH))
    (tmp_path / "ch_to_pg.yaml").write_text(yaml.safe_dump(CH_TO_PG))
    yield env
    front.close()


def test_postgres_to_clickhouse_retry_after_a_failure_mid_extract(ch_airflow, clean_pg, clean_ch) -> None:
    pg, ch = clean_pg, clean_ch
    pg.execute(
        "src",
        """
        create table orders (id bigint primary key, amount numeric(10,2) not null, note text);
        insert into orders select g, g, 'n' || g from generate_series(1, 5000) g;
        create sequence fail_n;
        create table fail_budget (times int);
        insert into fail_budget values (0);
        -- raises while the COPY streams row 5050, as long as the budget lasts (sequences survive rollback)
        create function gate(i bigint) returns boolean language plpgsql as $$
        begin
          if i = 5050 and nextval('fail_n') <= (select times from fail_budget) then
            raise exception 'injected failure mid-extract';
          end if;
          return true;
        end $$;
        create view orders_feed as select * from orders where gate(id);
        """,
    )
    first = airflow(ch_airflow, "tasks", "test", "pg_to_ch", "orders", "2026-01-01")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert ch.query("select count() from raw.orders") == [(5000,)]
    pg.execute("src", "update fail_budget set times = 1")
    pg.execute("src", "insert into orders select g, g, 'late' from generate_series(5001, 5100) g")
    failed = airflow(ch_airflow, "tasks", "test", "pg_to_ch", "orders", "2026-01-02")
    out = failed.stdout + failed.stderr
    assert "injected failure mid-extract" in out and "up_for_retry" in out.lower(), out[-3000:]
    assert ch.query("select count() from raw.orders") == [(5000,)]  # target untouched
    assert pg.query("dst", "select state->>'value' from dpone.state where pipeline = 'pg_to_ch'") == [
        ("5000",)
    ]
    retry = airflow(ch_airflow, "tasks", "test", "pg_to_ch", "orders", "2026-01-02")
    assert retry.returncode == 0, retry.stdout[-3000:] + retry.stderr[-3000:]
    want = pg.query("src", "select id, amount, note from orders order by id")
    got = ch.query("select id, amount, note from raw.orders order by id")
    assert [tuple(r) for r in got] == [tuple(r) for r in want]
    assert ch.query("select count(), uniqExact(id) from raw.orders") == [(5100, 5100)]
    assert pg.query("dst", "select state->>'value' from dpone.state where pipeline = 'pg_to_ch'") == [
        ("5100",)
    ]


def test_clickhouse_to_postgres_retry_after_a_failure_in_finalize(ch_airflow, clean_pg, clean_ch) -> None:
    pg, ch = clean_pg, clean_ch
    ch.command(
        "create table src.orders (id Int64, amount Decimal(10, 2), at DateTime64(6, 'UTC')) engine = MergeTree order by id"
    )
    ch.command("insert into src.orders select number, number / 4, now64(6) from numbers(1, 3000)")
    first = airflow(ch_airflow, "tasks", "test", "ch_to_pg", "orders", "2026-01-01")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    _fail_next_writes(pg, 1)
    ch.command("insert into src.orders select number, number / 4, now64(6) from numbers(3001, 200)")
    failed = airflow(ch_airflow, "tasks", "test", "ch_to_pg", "orders", "2026-01-02")
    out = failed.stdout + failed.stderr
    assert "injected failure" in out and "up_for_retry" in out.lower(), out[-3000:]
    assert pg.query("dst", "select count(*) from raw.orders") == [(3000,)]
    retry = airflow(ch_airflow, "tasks", "test", "ch_to_pg", "orders", "2026-01-02")
    assert retry.returncode == 0, retry.stdout[-3000:]
    assert pg.query("dst", "select count(*), count(distinct id), max(id) from raw.orders") == [
        (3200, 3200, 3200)
    ]
    assert pg.query("dst", "select state->>'value' from dpone.state where pipeline = 'ch_to_pg'") == [
        ("3200",)
    ]
