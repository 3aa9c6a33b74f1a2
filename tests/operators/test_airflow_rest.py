"""REST -> PostgreSQL end to end through ``airflow dags test``: a merge load and an append load."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import pytest
import yaml

from tests.fake_api import TOKEN, FakeApi
from tests.operators.test_airflow_e2e import airflow

pytestmark = pytest.mark.integration

BASE = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
FIELDS = {"id": "int64", "name": "string", "amount": "decimal(10,2)", "updated_at": "timestamptz"}


def record(i: int, minutes: int, name: str | None = None) -> dict:
    stamp = (BASE + dt.timedelta(minutes=minutes)).isoformat()
    return {"id": i, "name": name or f"n{i}", "amount": f"{i}.25", "updated_at": stamp}


MANIFEST = {
    "pipeline": "rest_orders",
    "state": {"backend": "table", "conn_id": "dst"},
    "defaults": {"source": {"connector": "rest", "conn_id": "api", "fields": FIELDS}},
    "loads": [
        {
            "name": "orders",
            "source": {
                "endpoint": {
                    "path": "/offset",
                    "record_selector": "data",
                    "primary_key": ["id"],
                    "server_filter": {"param": "updated_since", "field": "updated_at"},
                    "pagination": {"type": "offset", "page_size": 25},
                },
                "incremental": {"mode": "cursor", "cursor": "updated_at"},
            },
            "sink": {
                "connector": "postgres",
                "conn_id": "dst",
                "table": "raw.orders",
                "strategy": "incremental_merge",
                "unique_key": ["id"],
            },
        },
        {
            "name": "events",
            "source": {
                "endpoint": {
                    "path": "/next",
                    "record_selector": "data",
                    "server_filter": {"param": "updated_after", "field": "updated_at"},  # exclusive
                    "pagination": {"type": "next_url", "next_url_path": "links.next"},
                },
                "incremental": {"mode": "cursor", "cursor": "updated_at"},
            },
            "sink": {
                "connector": "postgres",
                "conn_id": "dst",
                "table": "raw.events",
                "strategy": "incremental_append",
            },
        },
    ],
}


@pytest.fixture
def env(clean_pg, airflow_db, tmp_path: Path):
    api = FakeApi([record(i, i) for i in range(1, 121)])
    (tmp_path / "rest.yaml").write_text(yaml.safe_dump(MANIFEST))
    conn = {"conn_type": "http", "host": api.url, "password": TOKEN, "extra": {"auth": "bearer"}}
    yield {**os.environ, "DPONE_MANIFESTS_DIR": str(tmp_path), "AIRFLOW_CONN_API": json.dumps(conn)}, api
    api.close()


def test_rest_to_postgres_under_airflow_dags_test(env, clean_pg) -> None:
    environ, api = env
    pg = clean_pg
    first = airflow(environ, "dags", "test", "rest_orders", "2026-01-01")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert pg.query("dst", "select count(*), sum(amount)::text from raw.orders") == [(120, "7290.00")]
    assert pg.query("dst", "select count(*) from raw.events") == [(120,)]
    api.records[4] = record(5, 500, "changed")
    api.records.append(record(121, 600))
    api.log.clear()
    second = airflow(environ, "dags", "test", "rest_orders", "2026-01-02")
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    filtered = [r["query"].get("updated_since") for r in api.log if r["path"] == "/offset"]
    assert filtered == ["2026-01-01T02:00:00Z"]  # one page past the watermark (minute 120)
    assert pg.query("dst", "select count(*), count(distinct id) from raw.orders") == [(121, 121)]
    assert pg.query("dst", "select name from raw.orders where id = 5") == [("changed",)]
    # append: only records after the watermark (an exclusive filter), so none twice; id 5 changed
    # after the watermark, so its new version is appended as a new row
    assert pg.query("dst", "select count(*), count(distinct (id, updated_at)) from raw.events") == [
        (122, 122)
    ]
    state = json.loads(pg.query("dst", "select state::text from dpone.state where load = 'orders'")[0][0])
    assert state["value"].startswith("2026-01-01T10:00:00")
