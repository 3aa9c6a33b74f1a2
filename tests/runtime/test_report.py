"""The run report's log table: what finalize did to the target, the lookback's re-reads,
and the state of a failed run."""

from __future__ import annotations

from airflow_provider_dpone.contracts.durations import format_seconds
from airflow_provider_dpone.runtime.report import Phase, RunReport, rows_written

WINDOW = {
    "mode": "cursor",
    "cursor": "updated_at",
    "lower": "2026-01-02T00:00:00",
    "upper": "2026-01-02T06:00:00",
}


def _merge(**window) -> RunReport:
    report = RunReport("p", "orders", "r1", "incremental_merge", status="success")
    report.source["window"] = {**WINDOW, **window}
    report.phases = [Phase("stage", 0.5, 1_510, 90_000), Phase("finalize", 0.2, 1_510)]
    report.sink["finalize"] = {
        "method": "update_insert",
        "duplicates_removed": 0,
        "rows_updated": 1_500,
        "rows_inserted": 10,
    }
    report.state_before = {"kind": "cursor", "value": "2026-01-02T00:00:00"}
    report.state_after = {"kind": "cursor", "value": "2026-01-02T06:00:00"}
    report.state_committed = "with_data"
    return report


def test_the_table_shows_inserted_updated_and_deleted_at_finalize() -> None:
    table = _merge(lookback_seconds=0).to_table()
    assert "finalize: update_insert: 10 inserted, 1,500 updated, 0 duplicates dropped" in table
    assert "lookback" not in table
    assert (
        'state: {"kind": "cursor", "value": "2026-01-02T00:00:00"} -> {"kind": "cursor", "value": "2026-01-02T06:00:00"} (committed with_data)'
        in table
    )
    report = _merge()
    report.sink["finalize"] = {
        "method": "update_insert",
        "rows_updated": 3,
        "rows_inserted": 1,
        "rows_deleted": 7,
        "deletes": "hard",
    }
    assert "finalize: update_insert: 1 inserted, 3 updated, 7 deleted" in report.to_table()


def test_the_lookback_re_reads_are_named() -> None:
    table = _merge(lookback_seconds=600).to_table()
    assert (
        "window: updated_at past 2026-01-02T00:00:00 up to 2026-01-02T06:00:00; "
        "re-reading 10m before the watermark (lookback)"
    ) in table
    assert "1,500 updated, 0 duplicates dropped (updated includes the lookback's re-reads)" in table
    first = _merge(lookback_seconds=600, lower=None).to_table()  # no watermark yet: nothing re-read
    assert "window: first load, all rows up to" in first and "lookback" not in first


def test_a_failed_run_says_its_state_is_unchanged() -> None:
    report = _merge()
    report.status, report.state_committed, report.state_after = "failed", "no", None
    report.sink.pop("finalize")
    report.error = "boom"
    table = report.to_table()
    assert (
        'state: unchanged {"kind": "cursor", "value": "2026-01-02T00:00:00"} (the run failed before committing state)'
        in table
    )
    assert "-> null" not in table


def test_a_swap_and_rows_written() -> None:
    report = RunReport(
        "p", "customers", "r1", "full_refresh", status="success", phases=[Phase("stage", rows=50)]
    )
    report.sink["finalize"] = {"method": "swap", "rows_inserted": None}
    assert "finalize: swap: 50 swapped in" in report.to_table()
    assert rows_written({"method": "swap", "rows_inserted": None}, 50) == 50
    assert (
        rows_written({"method": "update_insert", "rows_updated": 1_500, "rows_inserted": 10}, 1_510) == 1_510
    )
    assert rows_written({"method": "transaction"}, 5) is None
    assert [format_seconds(s) for s in (600, 90, 86400, 7200, 1.5)] == ["10m", "90s", "1d", "2h", "1.5s"]
