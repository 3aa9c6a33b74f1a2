"""Runs asked for in the Trigger form, against a real PostgreSQL: a backfill re-reads a
window and leaves state alone, a full reload rebuilds the target and stores the new
watermark, a state reset needs its confirmation, and a run for other loads skips."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from airflow.sdk import DAG
from airflow.sdk.exceptions import AirflowFailException

from airflow_provider_dpone.operators.manual_run import run_params
from airflow_provider_dpone.operators.staged_load import StagedLoadOperator
from airflow_provider_dpone.specs import Cursor, PostgresSink, PostgresSource, TableState

pytestmark = pytest.mark.integration
STATE = TableState("dst")
SAME = "select count(*), sum(hashtext(id::text || amount::text)) from {}"


@pytest.fixture
def orders(clean_pg):
    pg = clean_pg
    pg.execute("src", "create table orders (id int primary key, amount int not null, day date not null)")
    pg.execute("src", "insert into orders select g, g, date '2026-01-01' + g from generate_series(1, 100) g")
    return pg


def _ops(strategy: str = "incremental_merge") -> tuple[StagedLoadOperator, StagedLoadOperator]:
    with DAG(
        "manual",
        schedule=None,
        start_date=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
        params=run_params(),
    ):
        keys = ["id"] if strategy == "incremental_merge" else None
        main = StagedLoadOperator(
            task_id="orders",
            source=PostgresSource("src", table="orders", incremental=Cursor("day")),
            sink=PostgresSink("dst", "raw.orders", strategy=strategy, unique_key=keys),
            state=STATE,
        )
        other = StagedLoadOperator(
            task_id="copy",
            source=PostgresSource("src", table="orders"),
            sink=PostgresSink("dst", "raw.copy"),
        )
    return main, other


def _state(pg) -> dict:
    rows = pg.query(
        "dst", "select state::text from dpone.state where pipeline = 'manual' and load = 'orders'"
    )
    return json.loads(rows[0][0]) if rows else {}


def _run(op: StagedLoadOperator, run_id: str, **params) -> dict:
    return op.execute(
        {"run_id": run_id, "params": {**{k: p.value for k, p in run_params().items()}, **params}}
    )


@pytest.mark.parametrize("strategy", ["incremental_merge", "incremental_append"])
def test_a_backfill_re_reads_its_window_and_leaves_state_alone(orders, strategy) -> None:
    pg = orders
    op, _ = _ops(strategy)
    _run(op, "r1")
    before = _state(pg)
    assert before["value"] == "2026-04-11"
    # late corrections below the watermark: a scheduled run never sees them
    pg.execute(
        "src", "update orders set amount = amount + 1000 where day >= '2026-01-10' and day < '2026-01-20'"
    )
    assert _run(op, "r2")["rows"] == 0
    window = {"dpone_mode": "backfill", "dpone_from": "2026-01-10", "dpone_to": "2026-01-20"}
    report = _run(op, "r3", **window)
    assert report["rows"] == 10 and report["request"]["mode"] == "backfill"
    assert report["state_after"] == report["state_before"] and _state(pg) == before
    assert pg.query("src", SAME.format("orders")) == pg.query(
        "dst", SAME.format("raw.orders")
    )  # no duplicates
    assert _run(op, "r4", **window)["rows"] == 10  # again: converges, nothing doubled
    assert pg.query("src", SAME.format("orders")) == pg.query("dst", SAME.format("raw.orders"))
    pg.execute("src", "insert into orders values (101, 101, date '2026-05-01')")
    past = {"dpone_mode": "backfill", "dpone_from": "2026-04-01", "dpone_to": "2026-06-01"}
    if strategy == "incremental_append":  # rows past the watermark are the next run's
        with pytest.raises(AirflowFailException, match="must end at or before its stored watermark"):
            _run(op, "r5", **past)
    else:  # a merge takes them now and again next run, merged: no duplicates
        assert _run(op, "r5", **past)["rows"] == 12  # 04-01..04-11 and the new 05-01
    assert _run(op, "r6")["rows"] == 1  # the scheduled run reads past the unchanged watermark
    assert pg.query("src", SAME.format("orders")) == pg.query("dst", SAME.format("raw.orders"))


def test_a_full_reload_rebuilds_the_target_and_stores_the_new_watermark(orders) -> None:
    pg = orders
    op, _ = _ops("incremental_append")
    _run(op, "r1")
    pg.execute("src", "delete from orders where id <= 5")
    pg.execute("src", "update orders set amount = -1 where id = 50")
    pg.execute("src", "insert into orders values (101, 101, date '2026-05-01')")
    report = _run(op, "r2", dpone_mode="full_reload")
    assert report["request"] == {"mode": "full_reload"} and report["strategy"] == "full_refresh"
    assert pg.query("src", SAME.format("orders")) == pg.query("dst", SAME.format("raw.orders"))
    assert _state(pg)["value"] == "2026-05-01"
    pg.execute("src", "insert into orders values (102, 102, date '2026-05-02')")
    assert _run(op, "r3")["rows"] == 1  # back to incremental from the reload's watermark
    assert pg.query("src", SAME.format("orders")) == pg.query("dst", SAME.format("raw.orders"))


def test_a_state_reset_needs_the_pipeline_name(orders) -> None:
    pg = orders
    op, _ = _ops()
    _run(op, "r1")
    with pytest.raises(AirflowFailException, match="needs the pipeline name 'manual' typed as confirmation"):
        _run(op, "r2", dpone_mode="reset_state", dpone_confirm="yes")
    assert _state(pg)["value"] == "2026-04-11"
    done = _run(op, "r3", dpone_mode="reset_state", dpone_confirm="manual")
    assert done["status"] == "state_reset" and done["existed"] is True and _state(pg) == {}


def test_a_run_for_other_loads_does_nothing_and_a_typo_fails(orders) -> None:
    op, other = _ops()
    done = _run(other, "r1", dpone_mode="full_reload", dpone_loads=["orders"])
    assert done["status"] == "not_selected"  # not a skip: loads downstream of it still run
    assert orders.query("dst", "select to_regclass('raw.copy')") == [(None,)]
    with pytest.raises(
        AirflowFailException, match=r"params\.dpone_loads: no load 'order' here; loads: copy, orders"
    ):
        _run(op, "r1", dpone_mode="full_reload", dpone_loads=["order"])
    assert _run(op, "r2", dpone_mode="full_reload", dpone_loads=["orders"])["status"] == "success"
