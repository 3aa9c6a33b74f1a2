"""The live REST profile: the generic REST source against an operator-provided JSON API, loaded
into the local test PostgreSQL. Without ``DPONE_LIVE_REST_URL`` every test skips, naming it
(docs/rest.md#Live certification profile).

- ``DPONE_LIVE_REST_URL``: an endpoint answering a JSON list of records, each with a key field;
- ``DPONE_LIVE_REST_KEY`` (default ``id``) and ``DPONE_LIVE_REST_KEY_TYPE`` (default ``int64``,
  a canonical type: docs/rest.md): that field;
- ``DPONE_LIVE_REST_SELECTOR`` (default: the body is the list): where the records are;
- ``DPONE_LIVE_REST_TOKEN`` (optional): a bearer token, sent to that origin only.
"""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import urlsplit

import pytest

from airflow_provider_dpone.contracts.manifest import Manifest, parse_manifest
from tests.conftest import PgEnv
from tests.helpers import run_first_load as run

pytestmark = pytest.mark.integration_live

ENV = "DPONE_LIVE_REST_URL"
SKIP = (
    f"{ENV} is not set: a JSON endpoint answering a list of records with a key field "
    "(docs/rest.md#Live certification profile)"
)


@pytest.fixture
def live_api(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    url = os.environ.get(ENV)
    if not url:
        pytest.skip(SKIP)
    parts = urlsplit(url)
    conn: dict[str, Any] = {"conn_type": "http", "host": f"{parts.scheme}://{parts.netloc}"}
    token = os.environ.get("DPONE_LIVE_REST_TOKEN")
    conn["extra"] = {"auth": "bearer" if token else "none"}
    if token:
        conn["password"] = token
    monkeypatch.setenv("AIRFLOW_CONN_REST_LIVE", json.dumps(conn))
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    return {"path": path, "key": os.environ.get("DPONE_LIVE_REST_KEY", "id"),
            "key_type": os.environ.get("DPONE_LIVE_REST_KEY_TYPE", "int64"),
            "selector": os.environ.get("DPONE_LIVE_REST_SELECTOR", "")}  # fmt: skip


def manifest(api: dict[str, str], strategy: str) -> Manifest:
    source = {
        "connector": "rest",
        "conn_id": "rest_live",
        "endpoint": {"path": api["path"], "record_selector": api["selector"], "primary_key": [api["key"]]},
        "fields": {api["key"]: api["key_type"]},
    }
    sink = {"connector": "postgres", "conn_id": "dst", "table": "raw.live_api", "strategy": strategy}
    if strategy == "incremental_merge":
        sink["unique_key"] = [api["key"]]
    load = {"name": "live_api", "source": source, "sink": sink}
    return parse_manifest(
        {"pipeline": "rest_live", "state": {"backend": "table", "conn_id": "dst"}, "loads": [load]}
    )


def test_live_endpoint_lands_every_record_and_a_rerun_converges(
    live_api: dict[str, str], clean_pg: PgEnv
) -> None:
    first = run(manifest(live_api, "full_refresh"), "r1")
    assert first.status == "success" and first.rows and first.rows > 0, first.to_dict()
    (count,) = clean_pg.query("dst", "select count(*) from raw.live_api")[0]
    assert count == first.rows
    second = run(manifest(live_api, "full_refresh"), "r2")  # the same records replace the first
    (again,) = clean_pg.query("dst", "select count(*) from raw.live_api")[0]
    assert second.status == "success" and again == second.rows


def test_live_merge_by_the_key_does_not_duplicate(live_api: dict[str, str], clean_pg: PgEnv) -> None:
    for run_id in ("m1", "m2"):
        report = run(manifest(live_api, "incremental_merge"), run_id)
        assert report.status == "success", report.to_dict()
    key = live_api["key"]
    total, distinct = clean_pg.query("dst", f'select count(*), count(distinct "{key}") from raw.live_api')[0]
    assert total == distinct > 0
