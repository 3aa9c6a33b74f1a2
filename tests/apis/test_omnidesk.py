"""Omnidesk source against a fake of its API: numbered bodies, page/limit, from_updated_time."""

from __future__ import annotations

import base64
import datetime as dt
import email.utils
import json
import os
import re

import pytest

from airflow_provider_dpone.contracts.errors import BadInputError
from airflow_provider_dpone.contracts.manifest import parse_manifest
from airflow_provider_dpone.hooks.rest import AuthError
from tests.apis.vendor_fake import VendorFake
from tests.helpers import run_first_load as run

pytestmark = pytest.mark.integration

EMAIL, KEY = "agent@shop.example", "omni-key-6b1f"
BASE = dt.datetime(2026, 3, 1, tzinfo=dt.timezone(dt.timedelta(hours=3)))
CASES = [
    {
        "case_id": i,
        "case_number": f"664-{i:06d}",
        "subject": f"Order {i}",
        "status": "closed" if i % 3 == 0 else "open",
        "created_at": email.utils.format_datetime(BASE + dt.timedelta(hours=i)),
        "updated_at": email.utils.format_datetime(BASE + dt.timedelta(hours=i, minutes=30)),
        "closed_at": email.utils.format_datetime(BASE + dt.timedelta(hours=i + 1)) if i % 3 == 0 else "-",
        "closing_speed": 60 if i % 3 == 0 else "-",
        "custom_fields": {"cf_25": f"v{i}"},
        "labels": [101],
    }
    for i in range(1, 251)
]


def _json(status: int, body: object, headers: dict | None = None):
    return status, json.dumps(body).encode(), {"Content-Type": "application/json", **(headers or {})}


MAX_PAGE = {"cap": 500}  # the API answers no page past 500 (tests lower it with the hook's)


def _messages(case_id: int) -> list[dict]:
    return [
        {
            "message_id": case_id * 10 + n,
            "user_id": 7,
            "staff_id": 0 if n == 0 else 3,
            "content": f"message {n} of {case_id}",
            "attachments": [],
            "note": False,
            "created_at": CASES[case_id - 1]["created_at"],
        }
        for n in range(1 + case_id % 2)
    ]


def _numbered(kind: str, rows: list[dict], query: dict):
    page, limit = int(query["page"]), int(query["limit"])
    if page > MAX_PAGE["cap"]:
        return _json(400, {"error": "max_page_is_500"})
    chunk = rows[(page - 1) * limit : page * limit]
    out: dict = {str(i): {kind: c} for i, c in enumerate(chunk)}
    out["total_count"] = len(rows)
    return _json(200, out, {"api_calls_left": "499"})


def route(method: str, path: str, query: dict, headers: object, body: bytes):
    expected = "Basic " + base64.b64encode(f"{EMAIL}:{KEY}".encode()).decode()
    if headers.get("Authorization") != expected:  # type: ignore[attr-defined]
        return _json(401, {"error": "authentication_failed"})
    found = re.fullmatch(r"/api/cases/(\d+)/messages\.json", path)
    if found and 1 <= int(found.group(1)) <= len(CASES):
        return _numbered("message", _messages(int(found.group(1))), query)
    if path != "/api/cases.json":
        return _json(404, {"error": "not_found"})
    rows = CASES
    for param, keep in (("from_updated_time", int.__ge__), ("to_updated_time", int.__le__)):
        if param in query:  # unix seconds, both ends included
            rows = [c for c in rows if keep(_stamp(c), int(query[param]))]
    return _numbered("case", rows, query)


def _stamp(case: dict) -> int:
    return int(email.utils.parsedate_to_datetime(case["updated_at"]).timestamp())


@pytest.fixture
def omni():
    fake = VendorFake(route)
    os.environ["AIRFLOW_CONN_OMNI"] = json.dumps(
        {
            "conn_type": "http",
            "host": f"{fake.url}/api/",
            "login": EMAIL,
            "password": KEY,
            "extra": {"max_retries": 2},
        }
    )
    yield fake
    fake.close()


def manifest(**source):
    return parse_manifest(
        {
            "pipeline": "support",
            "state": {"backend": "table", "conn_id": "dst"},
            "loads": [
                {
                    "name": "cases",
                    "source": {"connector": "omnidesk", "conn_id": "omni", "resource": "cases"} | source,
                    "sink": {
                        "connector": "postgres",
                        "conn_id": "dst",
                        "table": "raw.omni_cases",
                        "strategy": "incremental_merge",
                        "unique_key": ["case_id"],
                    },
                }
            ],
        }
    )


INC = {"incremental": {"mode": "cursor", "cursor": "updated_at"}}


def test_cases_page_through_numbered_bodies_then_filter_on_the_server(omni, clean_pg) -> None:
    pg = clean_pg
    assert run(manifest(**INC), "r1").rows == 250
    assert [q["query"]["page"] for q in omni.log] == ["1", "2", "3"] and omni.log[0]["query"][
        "sort"
    ] == "updated_at_asc"
    row = pg.query(
        "dst",
        "select updated_at, closed_at, closing_speed, custom_fields->>'cf_25' from raw.omni_cases where case_id = 3",
    )[0]
    assert row[0] == BASE + dt.timedelta(hours=3, minutes=30) and row[2] == 60 and row[3] == "v3"
    assert pg.query("dst", "select closed_at, closing_speed from raw.omni_cases where case_id = 1") == [
        (None, None)
    ]  # "-"
    CASES[4]["subject"], CASES[4]["updated_at"] = (
        "changed",
        email.utils.format_datetime(BASE + dt.timedelta(days=30)),
    )
    omni.log.clear()
    second = run(manifest(**INC), "r2")
    newest = BASE + dt.timedelta(hours=250, minutes=30)
    # the watermark minus Omnidesk's default 3-day lookback (a merge): late edits are read again
    assert omni.log[0]["query"]["from_updated_time"] == str(int((newest - dt.timedelta(days=3)).timestamp()))
    assert second.rows == 74  # the 73 cases updated in those 3 days again (merged), and the changed one
    assert pg.query("dst", "select subject from raw.omni_cases where case_id = 5") == [("changed",)]


def test_a_read_past_the_page_cap_is_split_into_windows_not_cut(omni, clean_pg, monkeypatch) -> None:
    from airflow_provider_dpone.apis import omnidesk

    monkeypatch.setattr(omnidesk, "MAX_PAGES", 2, raising=False)  # the vendor's cap, lowered on both sides
    monkeypatch.setitem(MAX_PAGE, "cap", 2)
    assert run(manifest(), "r1").rows == 250  # 3 pages of 100 in all: over the cap of 2
    assert max(int(q["query"]["page"]) for q in omni.log) <= 2
    assert clean_pg.query("dst", "select count(distinct case_id) from raw.omni_cases") == [(250,)]
    omni.log.clear()
    assert run(manifest(**INC), "r2").rows == 250  # an incremental first load: windows too
    assert all("to_updated_time" in q["query"] for q in omni.log)


def test_messages_fan_out_over_the_cases_updated_in_the_window(omni, clean_pg) -> None:
    updated = [email.utils.parsedate_to_datetime(c["updated_at"]) for c in CASES]
    start = updated[239].astimezone(dt.timezone.utc).isoformat()  # cases 240..250
    end = (BASE + dt.timedelta(days=20)).isoformat()
    load = {"resource": "messages", "options": {"start_date": start, "end_date": end}}
    inc = {"incremental": {"mode": "cursor", "cursor": "created_at"}}
    report = run(messages_manifest(**load, **inc), "r1")
    last = int((BASE + dt.timedelta(days=20)).timestamp())
    ids = sorted(c["case_id"] for c in CASES if _stamp(CASES[239]) <= _stamp(c) <= last)
    assert report.rows == sum(1 + i % 2 for i in ids) and ids[0] == 240
    paths = [q["path"] for q in omni.log if "messages" in q["path"]]
    assert paths == [f"/api/cases/{i}/messages.json" for i in ids]  # in case id order
    assert clean_pg.query(
        "dst", "select case_id, content from raw.omni_messages where message_id = 2411"
    ) == [(241, "message 1 of 241")]
    CASES[244]["updated_at"] = email.utils.format_datetime(BASE + dt.timedelta(days=25))
    omni.log.clear()
    load["options"]["end_date"] = (BASE + dt.timedelta(days=29)).isoformat()  # 5 moved to day 30
    assert run(messages_manifest(**load, **inc), "r2").rows == 2  # case 245 again, only
    assert [q["path"] for q in omni.log if "messages" in q["path"]] == ["/api/cases/245/messages.json"]


def messages_manifest(**source):
    m = manifest(**source).model_dump(mode="json", by_alias=True, exclude_none=True)
    m["loads"][0]["sink"].update(table="raw.omni_messages", unique_key=["message_id"])
    return parse_manifest(m)


def test_wrong_credentials_are_not_retried(omni, clean_pg) -> None:
    os.environ["AIRFLOW_CONN_OMNI"] = json.dumps(
        {"conn_type": "http", "host": f"{omni.url}/api/", "login": EMAIL, "password": "bad"}
    )
    with pytest.raises(AuthError, match="returned 401"):
        run(manifest(), "r1")
    assert len(omni.log) == 1


def test_rate_limit_and_server_errors_are_retried(omni, clean_pg) -> None:
    omni.faults = [_json(429, {"error": "too_many_requests"}, {"Retry-After": "0"}), _json(502, {})]
    assert run(manifest(), "r1").rows == 250


def test_a_missing_account_host_is_a_clear_error(omni, clean_pg) -> None:
    from airflow_provider_dpone.contracts.errors import BadInputError

    os.environ["AIRFLOW_CONN_OMNI"] = json.dumps({"conn_type": "http", "login": EMAIL, "password": KEY})
    with pytest.raises(BadInputError, match=r"omnidesk\.ru"):
        run(manifest(), "r1")


@pytest.mark.integration_live
def test_live_cases() -> None:
    host, mail, key = (
        os.environ.get(n)
        for n in ("DPONE_LIVE_OMNIDESK_HOST", "DPONE_LIVE_OMNIDESK_EMAIL", "DPONE_LIVE_OMNIDESK_KEY")
    )
    if not (host and mail and key):
        pytest.skip(
            "live test: set DPONE_LIVE_OMNIDESK_HOST (https://<domain>.omnidesk.ru/api/), _EMAIL and _KEY"
        )
    from airflow_provider_dpone.apis.omnidesk import OmnideskHook

    os.environ["AIRFLOW_CONN_OMNI"] = json.dumps(
        {"conn_type": "http", "host": host, "login": mail, "password": key}
    )
    list(OmnideskHook(conn_id="omni").extract(manifest().loads[0].source, None).artifact.batches)


@pytest.mark.parametrize(("strategy", "lookback"), [("incremental_merge", 0), ("incremental_merge", None)])
def test_messages_of_a_case_first_listed_by_a_later_run_are_loaded(
    omni, clean_pg, strategy: str, lookback: int | None
) -> None:
    """The messages state is a window's end, not a message's time: a case updated after the first
    window shows up in the second, and its older messages are loaded then, not skipped."""
    saved = [dict(c) for c in CASES]
    try:
        start = email.utils.parsedate_to_datetime(CASES[239]["updated_at"]).astimezone(dt.timezone.utc)
        CASES[230]["updated_at"] = email.utils.format_datetime(BASE + dt.timedelta(days=25))
        inc: dict = {"mode": "cursor", "cursor": "created_at"}
        if lookback is not None:
            inc["lookback"] = lookback
        options = {"start_date": start.isoformat(), "end_date": (BASE + dt.timedelta(days=20)).isoformat()}

        def load(end_days: int):
            m = manifest(
                resource="messages",
                options={**options, "end_date": (BASE + dt.timedelta(days=end_days)).isoformat()},
                incremental=inc,
            )
            body = m.model_dump(mode="json", by_alias=True, exclude_none=True)
            resolved = body["loads"][0]["source"]["incremental"]  # as the merge resolved it
            resolved.pop("at_watermark", None)
            if lookback is None:
                resolved.pop("lookback", None)
            sink = body["loads"][0]["sink"]
            sink.update(table="raw.omni_messages", strategy=strategy)
            sink.pop("unique_key", None)
            if strategy == "incremental_merge":
                sink["unique_key"] = ["message_id"]
            return parse_manifest(body)

        run(load(20), "r1")
        run(load(29), "r2")
        assert clean_pg.query("dst", "select count(*) from raw.omni_messages where case_id = 231") == [(2,)]
    finally:
        CASES[:] = saved


def test_an_unkeyed_append_of_messages_is_refused(omni, clean_pg) -> None:
    """Every message of a case is read again whenever the case changes: appended without a key,
    they would be loaded twice."""
    m = manifest(resource="messages", incremental={"mode": "cursor", "cursor": "created_at"})
    body = m.model_dump(mode="json", by_alias=True, exclude_none=True)
    body["loads"][0]["source"]["incremental"].pop("at_watermark")
    body["loads"][0]["source"]["incremental"].pop("lookback")
    sink = body["loads"][0]["sink"]
    sink.update(table="raw.omni_messages", strategy="incremental_append")
    sink.pop("unique_key")
    with pytest.raises(BadInputError, match="would load them twice"):
        run(parse_manifest(body), "r1")
    assert omni.log == []  # refused before any request
