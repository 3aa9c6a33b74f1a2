"""The generic REST source against a fake API on a real socket."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os

import pytest

from airflow_provider_dpone.contracts.errors import SourceContractError
from airflow_provider_dpone.contracts.manifest import parse_manifest
from airflow_provider_dpone.contracts.state import CursorState
from airflow_provider_dpone.hooks.rest import AuthError, DponeRestHook
from tests.fake_api import API_KEY, CLIENT, TOKEN, FakeApi
from tests.helpers import run_first_load as run
from tests.helpers import run_killed

pytestmark = pytest.mark.integration

BASE = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


def records(n: int, start: int = 1) -> list[dict]:
    return [
        {
            "id": i,
            "name": f"item {i}",
            "amount": f"{i}.50",
            "updated_at": (BASE + dt.timedelta(minutes=i)).isoformat(),
            "tags": {"i": i},
        }
        for i in range(start, start + n)
    ]


@pytest.fixture
def api():
    server = FakeApi(records(53))
    os.environ["AIRFLOW_CONN_API"] = json.dumps(
        {
            "conn_type": "http",
            "host": server.url,
            "password": TOKEN,
            "extra": {"auth": "bearer", "max_retries": 3},
        }
    )
    yield server
    server.close()


FIELDS = {
    "id": "int64",
    "name": "string",
    "amount": "decimal(10,2)",
    "updated_at": "timestamptz",
    "tags": "json",
}

PAGINATIONS = {
    "offset": ("/offset", "data", {"type": "offset", "page_size": 10}),
    "page": ("/pages", "items", {"type": "page", "page_size": 10, "limit_param": "per_page"}),
    "cursor": ("/cursor", "results", {"type": "cursor", "cursor_path": "meta.next_cursor"}),
    "link_header": ("/link", "", {"type": "link_header"}),
    "next_url": ("/next", "data", {"type": "next_url", "next_url_path": "links.next"}),
}


def source(path: str, selector: str, pagination: dict, **more) -> dict:
    endpoint = {"path": path, "record_selector": selector, "pagination": pagination, "primary_key": ["id"]}
    endpoint.update(more.pop("endpoint", {}))
    return {"connector": "rest", "conn_id": "api", "endpoint": endpoint, "fields": FIELDS, **more}


def hook() -> DponeRestHook:
    h = DponeRestHook(conn_id="api")
    h.sleeps = []  # type: ignore[attr-defined]
    h.sleep = h.sleeps.append  # type: ignore[attr-defined]
    return h


def read_all(
    h: DponeRestHook, spec_source: dict, state=None, sink: dict | None = None
) -> tuple[list, object]:
    m = manifest(spec_source, sink)
    result = h.extract(m.loads[0].source, state)
    rows = [r for batch in result.artifact.batches for r in batch]
    return rows, result


def manifest(src: dict, sink: dict | None = None):
    return parse_manifest(
        {
            "pipeline": "api",
            "state": {"backend": "table", "conn_id": "dst"},
            "loads": [
                {
                    "name": "items",
                    "source": src,
                    "sink": sink
                    or {
                        "connector": "postgres",
                        "conn_id": "dst",
                        "table": "raw.items",
                        "strategy": "incremental_append",
                    },
                }
            ],
        }
    )


@pytest.mark.parametrize("kind", list(PAGINATIONS))
def test_every_pagination_reads_every_record_once(api, kind: str) -> None:
    path, selector, pagination = PAGINATIONS[kind]
    rows, result = read_all(hook(), source(path, selector, pagination))
    assert [r[0] for r in rows] == list(range(1, 54))
    assert rows[0][2] == __import__("decimal").Decimal("1.50") and rows[0][3] == BASE + dt.timedelta(
        minutes=1
    )
    assert result.details["pages"] >= 6 and result.stats.source_rows == 53


def test_the_page_cap_fails_the_read_instead_of_cutting_it(api) -> None:
    """A read that stops at ``max_pages`` with pages left would load part of the data as if it
    were all of it: it fails; a cap the data fits under reads everything."""
    path, selector, pagination = PAGINATIONS["offset"]
    with pytest.raises(
        SourceContractError, match=r"stopped at the page cap \(2 pages\) with more pages to read"
    ):
        read_all(hook(), source(path, selector, {**pagination, "max_pages": 2}))
    rows, result = read_all(hook(), source(path, selector, {**pagination, "max_pages": 6}))
    assert len(rows) == 53 and "page_cap_hit" not in result.details


def test_429_retry_after_and_5xx_are_retried(api) -> None:
    api.fail = [(429, {"Retry-After": "2"}), (503, {}), (502, {})]
    h = hook()
    rows, _ = read_all(h, source(*PAGINATIONS["next_url"]))
    assert len(rows) == 53
    assert h.sleeps[0] == 2.0 and len(h.sleeps) == 3  # Retry-After honoured, then backoff


def test_retries_are_bounded(api) -> None:
    from airflow_provider_dpone.contracts.errors import TransientError

    api.fail = [(503, {})] * 10
    with pytest.raises(TransientError, match="503"):
        read_all(hook(), source(*PAGINATIONS["offset"]))
    assert len(api.log) == 4  # max_retries 3 -> 4 attempts, then the Airflow retry takes over


def test_401_is_not_retried_and_names_the_fix_without_the_secret(api) -> None:
    os.environ["AIRFLOW_CONN_API"] = json.dumps(
        {"conn_type": "http", "host": api.url, "password": "wrong-" + TOKEN, "extra": {"auth": "bearer"}}
    )
    with pytest.raises(AuthError, match="refused the credentials of connection 'api'") as caught:
        read_all(hook(), source(*PAGINATIONS["offset"]))
    assert len(api.log) == 1 and TOKEN not in str(caught.value)


@pytest.mark.parametrize(
    ("auth", "conn"),
    [
        (
            "api_key_header",
            {"password": API_KEY, "extra": {"auth": "api_key", "api_key_header": "X-Api-Key"}},
        ),
        ("api_key_query", {"password": API_KEY, "extra": {"auth": "api_key", "api_key_param": "api_key"}}),
        ("basic", {"login": "user", "password": API_KEY, "extra": {"auth": "basic"}}),
    ],
)
def test_api_key_and_basic_auth(api, auth: str, conn: dict, caplog) -> None:
    api.auth = auth
    os.environ["AIRFLOW_CONN_API"] = json.dumps({"conn_type": "http", "host": api.url, **conn})
    with caplog.at_level(logging.INFO):
        rows, _ = read_all(hook(), source(*PAGINATIONS["cursor"]))
    assert len(rows) == 53
    assert API_KEY not in caplog.text  # a key in the query string is masked in the request log


def test_oauth2_client_credentials_with_refresh(api) -> None:
    api.auth = "oauth2"
    os.environ["AIRFLOW_CONN_API"] = json.dumps(
        {
            "conn_type": "http",
            "host": api.url,
            "login": CLIENT[0],
            "password": CLIENT[1],
            "extra": {"auth": "oauth2", "token_url": f"{api.url}/oauth/token"},
        }
    )
    h = hook()
    rows, _ = read_all(h, source(*PAGINATIONS["page"]))
    assert len(rows) == 53 and len(api.tokens) == 1
    api.tokens.clear()  # the server forgets the token: the next call gets 401, refreshes, retries
    rows, _ = read_all(h, source(*PAGINATIONS["page"]))
    assert len(rows) == 53 and len(api.tokens) == 1


def test_incremental_sends_the_server_filter(api) -> None:
    inc = {"incremental": {"mode": "cursor", "cursor": "updated_at", "lookback": "1m"}}
    spec = source(
        *PAGINATIONS["offset"],
        endpoint={"server_filter": {"param": "updated_since", "field": "updated_at"}},
        **inc,
    )
    merged = {
        "connector": "postgres",
        "conn_id": "dst",
        "table": "raw.items",
        "strategy": "incremental_merge",
    }
    merged["unique_key"] = ["id"]  # re-read rows are merged (an unkeyed append refuses a lookback)
    rows, result = read_all(hook(), spec, sink=merged)
    assert len(rows) == 53 and "updated_since" not in api.log[0]["query"]
    state = result.state_candidate
    assert isinstance(state, CursorState) and state.value == (BASE + dt.timedelta(minutes=53)).isoformat()
    api.records += records(5, start=54)
    api.log.clear()
    rows, result = read_all(hook(), spec, state, sink=merged)
    assert api.log[0]["query"]["updated_since"] == "2026-01-01T00:52:00Z"  # the watermark minus lookback
    assert [r[0] for r in rows] == [52, 53, 54, 55, 56, 57, 58]  # the lookback re-reads 52 and 53


def test_a_server_filter_format_may_be_a_strftime_pattern() -> None:
    from airflow_provider_dpone.contracts.errors import ManifestError
    from airflow_provider_dpone.hooks.rest import _format_filter

    assert _format_filter("2026-03-01T10:30:00+03:00", "%Y-%m-%d %H:%M") == "2026-03-01 07:30"
    assert _format_filter("2026-03-01T10:30:00Z", "unix") == "1772361000"
    bad = {"server_filter": {"param": "since", "field": "updated_at", "format": "Y-m-d"}}
    with pytest.raises(ManifestError, match="strftime pattern"):
        manifest(source(*PAGINATIONS["offset"], endpoint=bad))


def test_incremental_without_a_server_filter_is_refused() -> None:
    from airflow_provider_dpone.contracts.errors import ManifestError

    with pytest.raises(ManifestError, match="server_filter"):
        manifest(source(*PAGINATIONS["offset"], incremental={"mode": "cursor", "cursor": "updated_at"}))


def test_parent_to_child_fan_out(api) -> None:
    api.children = {"a1": records(3), "a2": records(2, start=10)}
    spec = source(
        "/accounts/{account_id}/orders",
        "data",
        {"type": "none"},
        endpoint={
            "parent": {"path": "/accounts", "record_selector": "data", "field": "id", "as": "account_id"}
        },
    )
    rows, result = read_all(hook(), spec)
    assert [(r[0], r[1]) for r in rows] == [("a1", 1), ("a1", 2), ("a1", 3), ("a2", 10), ("a2", 11)]
    assert result.details["parents"] == 2


def test_rest_to_postgres_merge_then_incremental(api, clean_pg, caplog) -> None:
    pg = clean_pg
    spec = source(
        *PAGINATIONS["link_header"],
        endpoint={"server_filter": {"param": "updated_since", "field": "updated_at"}},
        incremental={"mode": "cursor", "cursor": "updated_at"},
    )
    sink = {
        "connector": "postgres",
        "conn_id": "dst",
        "table": "raw.items",
        "strategy": "incremental_merge",
        "unique_key": ["id"],
    }
    m = manifest(spec, sink)
    with caplog.at_level(logging.INFO):
        first = run(m, "r1")
    assert first.rows == 53
    assert "pipeline=api load=items run_id=r1" in caplog.text  # every request names its run
    api.records[0]["name"] = "renamed"
    api.records[0]["updated_at"] = (BASE + dt.timedelta(hours=5)).isoformat()
    second = run(m, "r2")
    # the changed one, and the watermark row the >= filter hands back again (merged: read)
    assert second.rows == 2 and "already_loaded" not in second.source["window"]
    assert pg.query("dst", "select count(*), count(distinct id) from raw.items") == [(53, 53)]
    assert pg.query("dst", "select name from raw.items where id = 1") == [("renamed",)]
    assert pg.query("dst", "select tags->>'i' from raw.items where id = 7") == [("7",)]


def test_new_data_sensor_polls_past_the_stored_watermark(api, clean_pg) -> None:
    from airflow_provider_dpone.contracts.manifest import StateSpec
    from airflow_provider_dpone.sensors.rest import RestNewDataSensor
    from airflow_provider_dpone.state import build_state_backend

    spec = source(
        *PAGINATIONS["offset"],
        endpoint={"server_filter": {"param": "updated_since", "field": "updated_at"}},
        incremental={"mode": "cursor", "cursor": "updated_at"},
    )
    state = {"backend": "table", "conn_id": "dst"}
    sensor = RestNewDataSensor(
        task_id="wait", source=spec, pipeline="api", load="items", state=state, min_records=2
    )
    assert sensor.poke({}) is True  # nothing stored: everything is new
    newest = (BASE + dt.timedelta(minutes=53)).isoformat()
    build_state_backend(StateSpec.model_validate(state)).commit(
        "api", "items", CursorState("updated_at", newest, "timestamptz"), "r1"
    )
    assert sensor.poke({}) is False  # only the watermark row itself
    api.records += records(1, start=54)
    assert sensor.poke({}) is True
    assert api.log[-1]["query"]["updated_since"] == "2026-01-01T00:53:00Z"


def _offsets(api) -> list[int]:
    return [int(r["query"].get("offset", -1)) for r in api.log]


def test_a_failed_run_resumes_at_the_page_after_the_last_staged_one(api, clean_pg) -> None:
    pg = clean_pg
    os.environ["AIRFLOW_CONN_API"] = json.dumps(
        {
            "conn_type": "http",
            "host": api.url,
            "password": TOKEN,
            "extra": {"auth": "bearer", "max_retries": 0},
        }
    )
    m = manifest(source(*PAGINATIONS["offset"]))
    api.fail_at = {4: 500}  # the 4th page fails (retries exhausted): the try fails
    from airflow_provider_dpone.contracts.errors import TransientError

    with pytest.raises(TransientError, match="500"):
        run(m, "r1")
    assert _offsets(api) == [0, 10, 20, 30]
    saved = pg.query("dst", "select state::text from dpone.state where load = 'items.__resume__'")
    assert json.loads(saved[0][0])["staged_rows"] == 30  # three pages staged and checkpointed
    api.log.clear()
    report = run(m, "r1")  # the Airflow retry: same run id
    assert _offsets(api) == [30, 40, 50]  # resumed, nothing read twice
    assert report.source["window"]["resumed_from"]["rows"] == 30
    assert report.source["window"]["source_rows"] == 53  # the rows of both tries
    assert pg.query("dst", "select count(*), count(distinct id) from raw.items") == [(53, 53)]
    assert pg.query("dst", "select count(*) from dpone.state where load = 'items.__resume__'") == [(0,)]


def test_a_run_killed_mid_pagination_resumes_after_the_last_staged_page(api, clean_pg) -> None:
    import signal

    from airflow_provider_dpone.runtime.failpoints import AFTER_CHECKPOINT

    pg = clean_pg
    m = manifest(source(*PAGINATIONS["cursor"]))

    # SIGKILL right after the first page is staged and checkpointed
    assert run_killed(m, "r1", AFTER_CHECKPOINT) == -signal.SIGKILL
    assert len(api.log) == 1
    api.log.clear()
    run(m, "r1")
    assert [r["query"].get("cursor") for r in api.log] == ["7", "14", "21", "28", "35", "42", "49"]
    assert pg.query("dst", "select count(*), count(distinct id) from raw.items") == [(53, 53)]


def test_state_reset_also_drops_an_unfinished_runs_checkpoint(api, clean_pg, tmp_path) -> None:
    import yaml

    from airflow_provider_dpone.cli.main import main
    from airflow_provider_dpone.contracts.errors import TransientError

    os.environ["AIRFLOW_CONN_API"] = json.dumps(
        {
            "conn_type": "http",
            "host": api.url,
            "password": TOKEN,
            "extra": {"auth": "bearer", "max_retries": 0},
        }
    )
    body = {
        "pipeline": "api",
        "state": {"backend": "table", "conn_id": "dst"},
        "loads": [
            {
                "name": "items",
                "source": source(*PAGINATIONS["offset"]),
                "sink": {
                    "connector": "postgres",
                    "conn_id": "dst",
                    "table": "raw.items",
                    "strategy": "full_refresh",
                },
            }
        ],
    }
    api.fail_at = {2: 500}
    with pytest.raises(TransientError):
        run(parse_manifest(body), "r1")
    checkpoints = "select count(*) from dpone.state where load = 'items.__resume__'"
    assert clean_pg.query("dst", checkpoints) == [(1,)]
    path = tmp_path / "api.yaml"
    path.write_text(yaml.safe_dump(body))
    assert main(["state", "reset", str(path), "--load", "items"]) == 0
    assert clean_pg.query("dst", checkpoints) == [(0,)]


def test_a_more_flag_in_the_body_ends_the_pagination() -> None:
    """``has_more_path``: a cursor (or a full page) with ``more: false`` is the last page."""
    from airflow_provider_dpone.contracts.sources import PaginationSpec
    from airflow_provider_dpone.hooks.rest_paginators import Page, paginator_for

    cursor = paginator_for(PaginationSpec(type="cursor", cursor_path="next", has_more_path="meta.more"))
    assert cursor.next(Page(None, {"next": "c2", "meta": {"more": True}}, [1], "x", {})) == {
        "url": "x",
        "query": {"cursor": "c2"},
    }
    assert cursor.next(Page(None, {"next": "c3", "meta": {"more": False}}, [1], "x", {})) is None
    offset = paginator_for(PaginationSpec(type="offset", page_size=2, has_more_path="more"))
    full_page = {"offset": 0, "limit": 2}
    assert offset.next(Page(None, {"more": False}, [1, 2], "x", full_page)) is None
    nxt = offset.next(Page(None, {"more": True}, [1, 2], "x", full_page))
    assert nxt is not None and nxt["query"]["offset"] == 2


def test_a_long_retry_after_is_capped_by_max_retry_after(api) -> None:
    os.environ["AIRFLOW_CONN_API"] = json.dumps(
        {
            "conn_type": "http",
            "host": api.url,
            "password": TOKEN,
            "extra": {"auth": "bearer", "max_retry_after": 7},
        }
    )
    api.fail = [(429, {"Retry-After": "3600"})]
    h = hook()
    rows, _ = read_all(h, source(*PAGINATIONS["offset"]))
    assert len(rows) == 53 and h.sleeps == [7.0]
