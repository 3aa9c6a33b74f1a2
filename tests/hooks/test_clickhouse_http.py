"""The ClickHouse hook over HTTP (clickhouse-connect's HTTP client), against the real engine."""

from __future__ import annotations

import os
from urllib.parse import quote

import pytest

from airflow_provider_dpone.contracts.errors import BadInputError, TransientError
from airflow_provider_dpone.contracts.manifest import parse_manifest
from tests.clickhouse_http import ChdbHttpFront
from tests.helpers import run_first_load as run

pytestmark = pytest.mark.integration

PASSWORD = "s3cret-ch-pass"


@pytest.fixture
def http_ch(clean_ch):
    front = ChdbHttpFront(os.path.realpath(clean_ch.dsn[len("chdb://") :]), "loader", PASSWORD)
    os.environ["AIRFLOW_CONN_CHHTTP"] = (
        f"dpone-clickhouse://loader:{quote(PASSWORD)}@127.0.0.1:{front.port}/default?compress=false"
    )
    yield front
    front.close()
    os.environ.pop("AIRFLOW_CONN_CHHTTP", None)


def manifest(sink: dict, source: dict | None = None):
    return parse_manifest(
        {
            "pipeline": "chhttp",
            "state": {"backend": "table", "conn_id": "dst"},
            "loads": [
                {
                    "name": "events",
                    "source": {
                        "connector": "postgres",
                        "conn_id": "src",
                        "table": "events",
                        **(source or {}),
                    },
                    "sink": {"connector": "clickhouse", "conn_id": "chhttp", "table": "raw.events", **sink},
                }
            ],
        }
    )


def test_postgres_to_clickhouse_over_http_streams_tsv(clean_pg, clean_ch, http_ch) -> None:
    pg, ch = clean_pg, clean_ch
    pg.execute(
        "src",
        "create table events (id bigint primary key, label text, at timestamptz not null); "
        "insert into events select g, e'a\\tb ' || g, timestamptz '2026-01-01 00:00+00' + g * interval '1 s' "
        "from generate_series(1, 20000) g",
    )
    m = manifest(
        {"strategy": "incremental_merge", "unique_key": ["id"]},
        {"incremental": {"mode": "cursor", "cursor": "at"}},
    )
    first = run(m, "r1")
    assert first.fast_path == "tsv" and first.rows == 20000
    assert any(q.startswith("INSERT INTO") and "FORMAT TabSeparated" in q for q in http_ch.requests)
    pg.execute("src", "update events set label = 'late', at = at + interval '1 day' where id % 1000 = 0")
    assert run(m, "r2").rows == 20
    want = pg.query("src", "select id, label, at from events order by id")
    got = ch.query("select id, label, at from raw.events order by id")
    assert [tuple(r) for r in got] == [tuple(r) for r in want]


def test_a_wrong_password_fails_clearly_without_the_secret(clean_pg, clean_ch, http_ch) -> None:
    clean_pg.execute("src", "create table events (id bigint primary key); insert into events values (1)")
    os.environ["AIRFLOW_CONN_CHHTTP"] = (
        f"dpone-clickhouse://loader:wrong-{PASSWORD}@127.0.0.1:{http_ch.port}/default?compress=false"
    )
    with pytest.raises(BadInputError, match="refused the credentials") as caught:
        run(manifest({"strategy": "full_refresh"}), "r1")  # not transient: a retry cannot fix it
    assert "Authentication failed" in str(caught.value) and PASSWORD not in str(caught.value)
    assert not isinstance(caught.value, TransientError)
