"""Backfill in resumable chunks: each chunk commits its own state; a retry resumes."""

from __future__ import annotations

import pytest

from airflow_provider_dpone.contracts.errors import BadInputError
from airflow_provider_dpone.contracts.manifest import parse_manifest
from airflow_provider_dpone.contracts.quality import QualityGateError
from tests.helpers import run_first_load as run

pytestmark = pytest.mark.integration

EVENTS = """
create table events (id bigint primary key, amount int not null, ts timestamptz not null, label text);
insert into events select g, g, timestamptz '2026-03-01 00:00+00' + (g - 1) * interval '1 hour', 'e' || g
from generate_series(1, 240) g;  -- ten days, 24 rows a day
"""


def manifest(incremental: dict, quality: list | None = None):
    return parse_manifest(
        {
            "pipeline": "backfill",
            "state": {"backend": "table", "conn_id": "dst"},
            "loads": [
                {
                    "name": "events",
                    "source": {
                        "connector": "postgres",
                        "conn_id": "src",
                        "table": "events",
                        "incremental": {"mode": "cursor", **incremental},
                    },
                    "sink": {
                        "connector": "postgres",
                        "conn_id": "dst",
                        "table": "raw.events",
                        "strategy": "incremental_merge",
                        "unique_key": ["id"],
                    },
                    "quality": quality or [],
                }
            ],
        }
    )


def same(pg) -> bool:
    q = "select count(*), md5(string_agg(row(id, amount, ts, label)::text, '|' order by id)) from {}"
    return pg.query("src", q.format("events")) == pg.query("dst", q.format("raw.events"))


def stored(pg):
    rows = pg.query("dst", "select state->>'value' from dpone.state where pipeline = 'backfill'")
    return rows[0][0] if rows else None


def test_a_backfill_runs_in_chunks_and_a_retry_resumes_at_the_failed_chunk(clean_pg) -> None:
    pg = clean_pg
    pg.execute("src", EVENTS)
    pg.execute("src", "update events set amount = -1 where id = 100")  # day 5: poisons chunk 5
    gate = [{"check": "sql", "name": "no_negative", "sql": "select count(*) from {staging} where amount < 0"}]
    m = manifest({"cursor": "ts", "chunk": "1d"}, gate)
    with pytest.raises(QualityGateError, match="no_negative"):
        run(m, "try1")
    # The chunks before the poisoned one committed data and state; that chunk left both untouched.
    watermark = stored(pg)
    loaded = pg.query("src", "select count(*), max(id) from events where ts <= %s::timestamptz", (watermark,))
    assert pg.query("dst", "select count(*), max(id) from raw.events") == loaded
    assert 72 <= loaded[0][0] < 100  # three or four one-day chunks, stopped before id 100
    pg.execute("src", "update events set amount = 100 where id = 100")
    report = run(m, "try2")
    assert report.status == "success"
    assert report.chunks[0]["lower"] == watermark  # resumed at the failed chunk, not restarted
    assert len(report.chunks) >= 6 and report.rows == 240 - loaded[0][0]
    assert report.find_phase("stage").rows == report.rows
    assert all(c["quality_passed"] == 1 and not c["quality_failed"] for c in report.chunks)
    assert f"backfill: {len(report.chunks)} chunk(s)" in report.to_table()
    assert same(pg)
    assert stored(pg).startswith("2026-03-10 23:00:00")
    # Caught up: the next run is a single (empty) chunk that keeps the watermark.
    again = run(m, "try3")
    assert again.rows == 0 and not again.chunks
    assert stored(pg).startswith("2026-03-10 23:00:00")


def test_numeric_cursor_chunks_skip_gaps(clean_pg) -> None:
    pg = clean_pg
    pg.execute("src", EVENTS)
    pg.execute("src", "update events set id = id + 1000000 where id > 200")  # a gap of a million ids
    report = run(manifest({"cursor": "id", "chunk": 100}), "r1")
    # [1, 101], (101, 201], then past the gap (1000201-1000240) in one chunk, not 10000 empty ones.
    assert [c["rows"] for c in report.chunks] == [101, 99, 40]
    assert same(pg)


def test_a_chunk_needs_an_orderable_cursor(clean_pg) -> None:
    pg = clean_pg
    pg.execute("src", EVENTS)
    with pytest.raises(
        BadInputError, match=r"source\.incremental\.chunk: needs a date/time or numeric cursor"
    ):
        run(manifest({"cursor": "label", "chunk": 10}), "r1")
