"""The extract planner (cursor, lookback, chunk, fixed window): every decision, no service."""

from __future__ import annotations

import datetime as dt

import pytest

from airflow_provider_dpone.contracts.errors import BadInputError, UnsupportedError
from airflow_provider_dpone.contracts.sources import IncrementalSpec, WindowSpec
from airflow_provider_dpone.contracts.state import CursorState, OffsetsState, XminState
from airflow_provider_dpone.contracts.table import CanonicalType, Column, TableSchema
from airflow_provider_dpone.sql.extract_plan import (
    advance_cursor,
    bound_cursor,
    cursor_column,
    expect_state,
    fixed_window,
    plan_cursor,
)

pytestmark = pytest.mark.unit

TS = Column("updated_at", CanonicalType.TIMESTAMPTZ, native_type="timestamp with time zone")
ID = Column("id", CanonicalType.INT64, native_type="bigint")
LABEL = Column("label", CanonicalType.STRING, native_type="text")
SCHEMA = TableSchema((ID, TS, LABEL))


def inc(cursor: str = "updated_at", **options: object) -> IncrementalSpec:
    return IncrementalSpec.model_validate({"mode": "cursor", "cursor": cursor, **options})


def stored(value: str, cursor: str = "updated_at") -> CursorState:
    return CursorState(cursor, value, "timestamptz")


# --- plan_cursor: validation ---------------------------------------------------------------------


def test_a_cursor_column_the_source_lacks_is_refused() -> None:
    assert cursor_column(inc(), SCHEMA) is TS
    with pytest.raises(BadInputError) as err:
        cursor_column(inc("changed"), SCHEMA)
    assert err.value.message == (
        "source.incremental.cursor: column 'changed' not in source ['id', 'updated_at', 'label']"
    )


@pytest.mark.parametrize("state", [XminState(5), OffsetsState("t", {"0": 1})])
def test_a_state_of_another_kind_is_refused(state) -> None:
    with pytest.raises(BadInputError) as err:
        plan_cursor(inc(), state, TS)
    assert err.value.message == f"stored state is {state.kind!r} but the load uses cursor mode; reset it"


def test_expect_state_names_the_mode() -> None:
    assert expect_state(XminState(7), XminState, "xmin") == XminState(7)
    assert expect_state(None, XminState, "xmin") is None
    with pytest.raises(BadInputError) as err:
        expect_state(stored("2026-01-01"), XminState, "xmin")
    assert err.value.message == "stored state is 'cursor' but the load uses xmin mode; reset it"


def test_a_state_on_another_cursor_column_is_refused() -> None:
    with pytest.raises(BadInputError) as err:
        plan_cursor(inc(), CursorState("created_at", "2026-01-01"), TS)
    assert err.value.message == (
        "stored state is a cursor on 'created_at' but the load's cursor is 'updated_at'; reset it"
    )


def test_lookback_needs_a_date_time_cursor() -> None:
    with pytest.raises(BadInputError) as err:
        plan_cursor(inc("id", lookback="10m"), None, ID)
    assert (
        err.value.message == "source.incremental.lookback: only applies to date/time cursors; 'id' is bigint"
    )
    assert plan_cursor(inc(lookback="10m"), None, TS).lookback == 600


def test_a_chunk_needs_a_date_time_or_numeric_cursor() -> None:
    with pytest.raises(BadInputError) as err:
        plan_cursor(inc("label", chunk=10), None, LABEL)
    assert err.value.message == (
        "source.incremental.chunk: needs a date/time or numeric cursor; 'label' is text"
    )
    assert plan_cursor(inc("id", chunk=10), None, ID).chunk == 10
    assert plan_cursor(inc(chunk="1d"), None, TS).chunk == 86400


def test_a_source_that_cannot_chunk_refuses_a_chunk_naming_itself() -> None:
    with pytest.raises(UnsupportedError) as err:
        plan_cursor(inc("id", chunk=10), None, ID, no_chunks="clickhouse")
    assert err.value.message == "source.incremental.chunk is not supported by the clickhouse source yet"
    assert plan_cursor(inc("id"), None, ID, no_chunks="clickhouse").chunk is None


# --- plan_cursor: lower bound and lookback -------------------------------------------------------


def test_the_lower_bound_is_the_stored_watermark_else_the_initial_value() -> None:
    first = plan_cursor(inc(), None, TS)
    assert first.lower is None and not first.has_lower and first.state is None
    initial = plan_cursor(inc(initial_value="2026-01-01"), None, TS)
    assert initial.lower == "2026-01-01" and initial.has_lower
    later = plan_cursor(inc(initial_value="2026-01-01"), stored("2026-02-01"), TS)
    assert later.lower == "2026-02-01" and later.state == stored("2026-02-01")


def test_lookback_applies_only_below_a_lower_bound() -> None:
    assert not plan_cursor(inc(lookback="10m"), None, TS).lookback_applies  # a first run reads all
    assert plan_cursor(inc(lookback="10m"), stored("2026-01-01"), TS).lookback_applies
    assert not plan_cursor(inc(), stored("2026-01-01"), TS).lookback_applies


def test_since_is_the_lower_bound_minus_lookback() -> None:
    plan = plan_cursor(inc(lookback="1h"), stored("2026-01-01T10:00:00+00:00"), TS)
    assert plan.since() == dt.datetime(2026, 1, 1, 9, tzinfo=dt.timezone.utc)
    assert plan_cursor(inc(), None, TS).since() is None
    assert plan_cursor(inc(), stored("2026-01-01"), TS).since() == dt.datetime(
        2026, 1, 1, tzinfo=dt.timezone.utc
    )


def test_the_plan_details_before_the_upper_bound() -> None:
    plan = plan_cursor(inc(lookback=30), stored("5"), TS)
    assert plan.details() == {"mode": "cursor", "cursor": "updated_at", "lower": "5", "lookback_seconds": 30}


# --- bound_cursor: upper bound, more, candidate, details ----------------------------------------


def test_the_upper_bound_is_the_measured_max() -> None:
    window = bound_cursor(plan_cursor(inc(lookback=60), stored("2026-01-01"), TS), "2026-01-05")
    assert window.upper == "2026-01-05" and not window.more and not window.empty
    assert window.candidate == CursorState("updated_at", "2026-01-05", "timestamptz")
    assert window.details == {
        "mode": "cursor",
        "cursor": "updated_at",
        "lower": "2026-01-01",
        "upper": "2026-01-05",
        "lookback_seconds": 60,
    }
    assert list(window.details) == ["mode", "cursor", "lower", "upper", "lookback_seconds"]


def test_an_empty_source_reads_nothing_and_keeps_the_stored_state() -> None:
    window = bound_cursor(plan_cursor(inc(), stored("2026-01-01"), TS), None)
    assert window.empty and window.upper is None and window.candidate == stored("2026-01-01")
    assert bound_cursor(plan_cursor(inc(), None, TS), None).candidate is None


def test_the_candidate_carries_the_cursor_type() -> None:
    window = bound_cursor(plan_cursor(inc("id"), None, ID), "42")
    assert window.candidate == CursorState("id", "42", "int64")


def test_a_chunk_reads_to_its_end_and_says_more_remains() -> None:
    plan = plan_cursor(inc("id", chunk=100), CursorState("id", "100", "int64"), ID)
    window = bound_cursor(plan, "1000240", "200")
    assert window.upper == "200" and window.more
    assert window.candidate == CursorState("id", "200", "int64")
    assert window.details["chunk"] == 100 and window.details["more"] is True
    assert list(window.details)[-2:] == ["chunk", "more"]


def test_the_last_chunk_ends_at_the_max_and_has_no_more() -> None:
    window = bound_cursor(plan_cursor(inc("id", chunk=100), None, ID), "240", "240")
    assert window.upper == "240" and not window.more and window.details["more"] is False


def test_a_chunk_past_the_data_is_empty_whatever_the_chunk_end() -> None:
    window = bound_cursor(
        plan_cursor(inc("id", chunk=100), CursorState("id", "240", "int64"), ID), None, "340"
    )
    assert window.empty and not window.more and window.candidate == CursorState("id", "240", "int64")
    assert window.details["upper"] is None and window.details["more"] is False


def test_an_unchunked_window_reports_no_chunk_keys() -> None:
    window = bound_cursor(plan_cursor(inc(), None, TS), "2026-01-01", "ignored")
    assert window.upper == "2026-01-01" and "chunk" not in window.details and "more" not in window.details


# --- advance_cursor: the upper bound learnt by reading --------------------------------------------


def test_a_read_source_advances_to_the_newest_value_past_the_lower_bound() -> None:
    plan = plan_cursor(inc(lookback="1h"), stored("2026-01-01T00:00:00+00:00"), TS)
    window = advance_cursor(plan, "2026-01-02T00:00:00+00:00")
    assert window.candidate == CursorState("updated_at", "2026-01-02T00:00:00+00:00", "timestamptz")
    assert window.upper == "2026-01-02T00:00:00+00:00" and not window.more


def test_a_read_source_compares_timestamps_not_text() -> None:
    # Later in time, though smaller as text ("+03:00" vs "Z"): still advances.
    plan = plan_cursor(inc(), stored("2026-01-01T10:00:00Z"), TS)
    assert advance_cursor(plan, "2026-01-01T14:00:00+03:00").candidate == CursorState(
        "updated_at", "2026-01-01T14:00:00+03:00", "timestamptz"
    )


def test_a_read_source_keeps_the_state_when_nothing_newer_was_seen() -> None:
    plan = plan_cursor(inc(lookback="1h"), stored("2026-01-02T00:00:00+00:00"), TS)
    for newest in (None, "2026-01-01T23:30:00+00:00", "2026-01-02T00:00:00+00:00"):
        window = advance_cursor(plan, newest)  # lookback re-reads: nothing past the watermark
        assert window.candidate == stored("2026-01-02T00:00:00+00:00")
        assert window.upper == "2026-01-02T00:00:00+00:00"


def test_a_read_source_without_state_or_rows_reports_the_initial_value() -> None:
    window = advance_cursor(plan_cursor(inc(initial_value="2026-01-01"), None, TS), None)
    assert window.candidate is None and window.upper == "2026-01-01"
    assert advance_cursor(plan_cursor(inc(), None, TS), None).upper is None
    first = advance_cursor(plan_cursor(inc(), None, TS), "2026-01-03T00:00:00+00:00")
    assert first.candidate is not None and first.candidate.value == "2026-01-03T00:00:00+00:00"


def test_a_numeric_read_cursor_compares_numbers() -> None:
    plan = plan_cursor(inc("id"), CursorState("id", "9", "int64"), ID)
    assert advance_cursor(plan, "10").candidate == CursorState("id", "10", "int64")  # "10" < "9" as text
    assert advance_cursor(plan, "8").candidate == CursorState("id", "9", "int64")
    with pytest.raises(BadInputError, match="is not a number"):
        advance_cursor(plan, "ten")


# --- fixed windows ---------------------------------------------------------------------------------


def test_a_fixed_window_on_a_source_column() -> None:
    window = fixed_window(WindowSpec(column="updated_at", start="2026-01-01", end="2026-02-01"), SCHEMA)
    assert window.column is TS and (window.start, window.end) == ("2026-01-01", "2026-02-01")
    assert window.details() == {"column": "updated_at", "start": "2026-01-01", "end": "2026-02-01"}


def test_a_fixed_window_on_a_missing_column_is_refused() -> None:
    with pytest.raises(BadInputError) as err:
        fixed_window(WindowSpec(column="day", start="1", end="2"), SCHEMA)
    assert err.value.message == "source.window.column: 'day' not in source ['id', 'updated_at', 'label']"
