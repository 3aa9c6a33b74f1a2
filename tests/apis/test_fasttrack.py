"""FastTrack (fstrk.io) source against fakes of its two surfaces (../shared/contracts/fasttrack.md):
the dashboard's ``reports/`` (``bot-key``, one ``;`` CSV, gzip by magic bytes, BOM, Russian
headers, ``dd-mm-YYYY HH:MM:SS``) and a tenant flex host's ``ticket/`` (``X-Token``, DRF pages
with host-relative ``next``), each on its own origin."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import os
import signal

import pytest

from airflow_provider_dpone.apis.fasttrack import (
    DASHBOARD_URL,
    FastTrackHook,
    column_name,
    column_names,
    parse_when,
    report_rows,
)
from airflow_provider_dpone.contracts.errors import (
    BadInputError,
    ManifestError,
    SourceContractError,
    TransientError,
)
from airflow_provider_dpone.contracts.manifest import parse_manifest
from airflow_provider_dpone.hooks.rest import AuthError
from airflow_provider_dpone.runtime.failpoints import AFTER_CHECKPOINT
from tests.apis.vendor_fake import VendorFake
from tests.helpers import run_first_load as run
from tests.helpers import run_killed

pytestmark = pytest.mark.integration

BOT_KEY = "bot-key-9f3a51c2e7"
X_TOKEN = "flex-token-4be8d07a11"
BOT = "0f5c2a9e-1111-4c3d-9e8f-000000000001"
CATEGORY = "7d0c8e4b-2222-4a1b-8c9d-000000000002"
SESSION_HEADERS = ["UUID пользователя", "Дата начала", "Дата окончания", "Назначен на команду",
                   "Назначен на оператора", "Канал"]  # fmt: skip


def _sessions() -> list[list[str]]:
    rows = []
    for i in range(1, 5):
        start = dt.datetime(2026, 3, i, 9, 30, 15)
        end = start + dt.timedelta(minutes=20)
        rows.append([f"user-{i}", f"{start:%d-%m-%Y %H:%M:%S}", f"{end:%d-%m-%Y %H:%M:%S}",
                     f"{start:%d-%m-%Y %H:%M:%S}", "" if i == 2 else f"{end:%d-%m-%Y %H:%M:%S}", "Телеграм"])  # fmt: skip
    return rows


def _cascade() -> list[list[str]]:
    return [
        ["tx-1", "2026-03-01T10:00:00Z", "2026-03-01T10:05:00+03:00", "+79990000001"],
        ["tx-2", "2026-03-02 11:00:00", "", "+79990000002"],
        ["tx-3", "2026-03-03T12:00:00.250000", "not a date", "+79990000003"],
    ]


class Dashboard:
    """``GET /api/partners/reports/``: bot-key checked, ``type`` and ``uuid`` required, the
    whole report in one ``;`` CSV, gzip without Content-Encoding and a BOM on demand."""

    def __init__(self) -> None:
        self.gzip = self.bom = False
        self.body: bytes | None = None  # a fixed answer (an empty report)
        self.fake = VendorFake(self.route)

    def route(self, method: str, path: str, query: dict, headers, body: bytes):
        if method != "GET" or path != "/api/partners/reports/":
            return 404, b'{"detail":"Not found."}', {"Content-Type": "application/json"}
        key = headers.get("bot-key")
        if key != BOT_KEY:
            return (401 if key is None else 403), b'{"detail":"Invalid bot key"}', {}
        accept = headers.get("Accept", "*/*")
        if "*/*" not in accept and "text/csv" not in accept:  # DRF content negotiation
            return 406, b'{"detail":"Could not satisfy the request Accept header."}', {}
        if query.get("type") not in ("CASCADE_TRANSACTIONS", "SESSIONS") or not query.get("uuid"):
            return 400, b'{"detail":"type and uuid are required"}', {}
        if self.body is not None:
            data = self.body
        else:
            sessions = query["type"] == "SESSIONS"
            header = (
                SESSION_HEADERS if sessions else ["transaction_uuid", "created_at", "phone_number", "done_at"]
            )
            rows = _sessions() if sessions else _cascade()
            if query.get("date_from"):
                first = dt.date.fromisoformat(query["date_from"])
                last = dt.date.fromisoformat(query.get("date_to", "2999-12-31"))
                day = (lambda r: dt.datetime.strptime(r[1], "%d-%m-%Y %H:%M:%S").date()) if sessions else (
                    lambda r: dt.date.fromisoformat(r[1][:10]))  # fmt: skip
                rows = [r for r in rows if first <= day(r) <= last]
            if not sessions:  # the columns in the vendor's order
                rows = [[r[0], r[1], r[3], r[2]] for r in rows]
            lines = [";".join(header)] + [";".join(r) for r in rows]
            data = ("\ufeff" if self.bom else "").encode() + "\r\n".join(lines).encode() + b"\r\n"
        if self.gzip:
            data = gzip.compress(data)
        return 200, data, {"Content-Type": "text/csv; charset=utf-8"}


class Flex:
    """``GET /api/ticket/`` of a tenant's flex host: X-Token checked, DRF pages of
    ``page_size`` with a host-relative ``next`` (``""`` on the last page)."""

    def __init__(self, count: int = 25) -> None:
        self.tickets = [
            {"id": i, "category": CATEGORY, "rating": i % 5 + 1, "isClosed": i % 2 == 0,
             "created": f"2026-03-{i % 28 + 1:02d}T08:00:00+03:00", "modified": "2026-03-29T10:00:00Z"}
            for i in range(1, count + 1)
        ]  # fmt: skip
        self.loop = False
        self.fake = VendorFake(self.route)

    def route(self, method: str, path: str, query: dict, headers, body: bytes):
        if path != "/api/ticket/":
            return 404, b'{"detail":"Not found."}', {}
        if headers.get("X-Token") != X_TOKEN:
            return 401, b'{"detail":"Authentication credentials were not provided."}', {}
        if query.get("category") != CATEGORY:
            return 200, json.dumps({"count": 0, "next": "", "previous": None, "results": []}).encode(), {}
        size, page = int(query.get("page_size", 100)), int(query.get("page", 1))
        chunk = self.tickets[(page - 1) * size : page * size]
        more = page * size < len(self.tickets)
        nxt = f"/api/ticket/?category={CATEGORY}&page_size={size}&page={2 if self.loop else page + 1}"
        answer = {"count": len(self.tickets), "next": nxt if more else "", "previous": None, "results": chunk}
        return 200, json.dumps(answer).encode(), {"Content-Type": "application/json"}


@pytest.fixture
def vendor():
    dash, flex = Dashboard(), Flex()
    connect(dash, flex)
    yield dash, flex
    dash.fake.close()
    flex.fake.close()


def connect(dash: Dashboard, flex: Flex, **fields: object) -> None:
    conn = {
        "conn_type": "dpone_fasttrack",
        "host": f"{dash.fake.url}/api/partners",
        "password": BOT_KEY,
        "extra": {"flex_endpoint": f"{flex.fake.url}/api", "flex_x_token": X_TOKEN, "max_retries": 3},
    } | fields
    os.environ["AIRFLOW_CONN_FT"] = json.dumps(conn)


def manifest(resource: str, options: dict, sink: dict | None = None):
    keys = {
        "cascade_transactions": ["transaction_uuid"],
        "chat_sessions": ["uuid_polzovatelya", "data_nachala"],
    }
    return parse_manifest(
        {
            "pipeline": "fasttrack",
            "state": {"backend": "table", "conn_id": "dst"},
            "loads": [
                {
                    "name": resource,
                    "source": {"connector": "fasttrack", "conn_id": "ft", "resource": resource, "options": options},
                    "sink": sink
                    or (
                        {"connector": "postgres", "conn_id": "dst", "table": f"raw.ft_{resource}",
                         "strategy": "incremental_merge", "unique_key": keys[resource]}
                        if resource in keys
                        else {"connector": "postgres", "conn_id": "dst", "table": f"raw.ft_{resource}",
                              "strategy": "full_refresh"}
                    ),
                }
            ],
        }
    )  # fmt: skip


def header(entry: dict, name: str) -> str | None:
    return {k.lower(): v for k, v in entry["headers"].items()}.get(name.lower())


def _hook() -> FastTrackHook:
    h = FastTrackHook(conn_id="ft")
    h.sleep = lambda seconds: None
    return h


def read(resource: str, options: dict) -> list[list]:
    result = _hook().extract(manifest(resource, options).loads[0].source, None)
    return [r for batch in result.artifact.batches for r in batch]


# --- runs through the engine into PostgreSQL --------------------------------------------------


def test_chat_sessions_gzip_bom_russian_headers_into_postgres(vendor, clean_pg) -> None:
    dash, flex = vendor
    dash.gzip = dash.bom = True
    m = manifest("chat_sessions", {"uuid": BOT, "date_from": dt.date(2026, 3, 2), "date_to": "2026-03-31"})
    assert run(m, "r1").rows == 3
    (sent,) = dash.fake.log
    assert sent["query"] == {
        "type": "SESSIONS",
        "uuid": BOT,
        "date_from": "2026-03-02",
        "date_to": "2026-03-31",
    }
    assert header(sent, "bot-key") == BOT_KEY and header(sent, "X-Token") is None
    assert header(sent, "Accept") == "*/*"
    assert flex.fake.log == []
    rows = clean_pg.query(
        "dst",
        "select uuid_polzovatelya, data_nachala::text, naznachen_na_operatora::text, record->>'kanal' "
        "from raw.ft_chat_sessions order by 1",
    )
    assert rows == [
        ("user-2", "2026-03-02 09:30:15", None, "Телеграм"),  # an empty date is NULL
        ("user-3", "2026-03-03 09:30:15", "2026-03-03 09:50:15", "Телеграм"),
        ("user-4", "2026-03-04 09:30:15", "2026-03-04 09:50:15", "Телеграм"),
    ]
    types = dict(clean_pg.query("dst", "select column_name, data_type from information_schema.columns "
                                "where table_name = 'ft_chat_sessions'"))  # fmt: skip
    assert types["data_nachala"] == "timestamp without time zone" and types["record"] == "jsonb"
    assert run(m, "r2").rows == 3  # re-read and merged by the keys: no duplicates
    assert clean_pg.query("dst", "select count(*) from raw.ft_chat_sessions") == [(3,)]


def test_cascade_transactions_plain_csv_dates_to_naive_utc(vendor, clean_pg) -> None:
    assert run(manifest("cascade_transactions", {"uuid": BOT}), "r1").rows == 3
    rows = clean_pg.query(
        "dst",
        "select transaction_uuid, created_at::text, done_at::text, phone_number, record->>'done_at' "
        "from raw.ft_cascade_transactions order by 1",
    )
    assert rows == [
        ("tx-1", "2026-03-01 10:00:00", "2026-03-01 07:05:00", "+79990000001", "2026-03-01T10:05:00+03:00"),
        ("tx-2", "2026-03-02 11:00:00", None, "+79990000002", ""),
        ("tx-3", "2026-03-03 12:00:00.25", None, "+79990000003", "not a date"),  # kept in record
    ]


def test_flex_ratings_follow_host_relative_next_links(vendor, clean_pg) -> None:
    dash, flex = vendor
    report = run(manifest("flex_cms_ratings", {"category": CATEGORY, "page_size": 10}), "r1")
    assert report.rows == 25
    assert [e["query"].get("page") for e in flex.fake.log] == [None, "2", "3"]
    assert flex.fake.log[0]["query"] == {"category": CATEGORY, "page_size": "10"}
    assert all(header(e, "X-Token") == X_TOKEN and header(e, "bot-key") is None for e in flex.fake.log)
    assert all(header(e, "Accept") == "application/json" for e in flex.fake.log)
    assert dash.fake.log == []  # the bot key went nowhere
    rows = clean_pg.query(
        "dst", "select created::text, modified::text, record->>'is_closed' from raw.ft_flex_cms_ratings "
        "where (record->>'id')::int = 2",
    )  # fmt: skip
    assert rows == [("2026-03-03 05:00:00", "2026-03-29 10:00:00", "true")]


def test_flex_ratings_resume_at_the_next_link_after_a_kill(vendor, clean_pg) -> None:
    flex = vendor[1]
    m = manifest("flex_cms_ratings", {"category": CATEGORY, "page_size": 10})
    assert run_killed(m, "r1", AFTER_CHECKPOINT) == -signal.SIGKILL
    flex.fake.log.clear()
    assert run(m, "r1").rows == 25
    assert [e["query"].get("page") for e in flex.fake.log] == ["2", "3"]
    assert clean_pg.query("dst", "select count(*) from raw.ft_flex_cms_ratings") == [(25,)]


# --- failures ---------------------------------------------------------------------------------


def test_a_next_link_loop_fails_loudly(vendor) -> None:
    vendor[1].loop = True
    with pytest.raises(SourceContractError, match="pagination loops"):
        read("flex_cms_ratings", {"category": CATEGORY, "page_size": 10})
    assert len(vendor[1].fake.log) == 2  # page 2's next is page 2: stopped before asking again


def test_an_empty_report_is_zero_rows(vendor) -> None:
    for body in (b"", b"  \r\n", gzip.compress(b"\xef\xbb\xbf")):
        vendor[0].body = body
        assert read("cascade_transactions", {"uuid": BOT}) == []


def test_auth_failures_are_not_retried_and_show_no_secret(vendor) -> None:
    dash, flex = vendor
    connect(dash, flex, password="wrong-bot-key-000")
    with pytest.raises(AuthError, match="returned 403") as caught:
        read("chat_sessions", {"uuid": BOT})
    assert "wrong-bot-key-000" not in str(caught.value) and len(dash.fake.log) == 1
    connect(dash, flex, extra={"flex_endpoint": f"{flex.fake.url}/api", "flex_x_token": "wrong-token-000"})
    with pytest.raises(AuthError, match="returned 401") as caught:
        read("flex_cms_ratings", {"category": CATEGORY})
    assert "wrong-token-000" not in str(caught.value) and len(flex.fake.log) == 1


def test_429_and_5xx_are_retried(vendor) -> None:
    dash, flex = vendor
    dash.fake.faults = [(429, b"slow down", {"Retry-After": "0"}), (503, b"busy", {})]
    assert len(read("cascade_transactions", {"uuid": BOT})) == 3
    assert len(dash.fake.log) == 3
    flex.fake.faults = [(502, b"bad gateway", {})] * 4
    with pytest.raises(TransientError, match="502"):
        read("flex_cms_ratings", {"category": CATEGORY})
    assert len(flex.fake.log) == 4  # max_retries 3: four attempts


def test_missing_credentials_or_tenant_ids_fail_before_any_call(vendor) -> None:
    dash, flex = vendor
    # a missing option is refused by validation already (the manifest does not parse)
    with pytest.raises(ManifestError, match="resource 'chat_sessions' of 'fasttrack' needs uuid"):
        read("chat_sessions", {})
    with pytest.raises(ManifestError, match="resource 'flex_cms_ratings' of 'fasttrack' needs category"):
        read("flex_cms_ratings", {})
    connect(dash, flex, password=None)
    with pytest.raises(BadInputError, match="bot key as the password"):
        read("chat_sessions", {"uuid": BOT})
    connect(dash, flex, extra={"flex_endpoint": f"{flex.fake.url}/api"})
    with pytest.raises(BadInputError, match="flex_x_token"):
        read("flex_cms_ratings", {"category": CATEGORY})
    connect(dash, flex, extra={"flex_endpoint": f"{dash.fake.url}/api", "flex_x_token": X_TOKEN})
    with pytest.raises(BadInputError, match="on the dashboard's host"):
        read("flex_cms_ratings", {"category": CATEGORY})
    assert dash.fake.log == flex.fake.log == []


def test_a_flex_link_to_the_dashboard_carries_no_x_token(vendor) -> None:
    """Each key goes to its own origin whatever the links say: a flex next link to the
    dashboard reaches it without the X-Token."""
    dash, flex = vendor
    flex.tickets = flex.tickets[:15]
    original = flex.route

    def elsewhere(method, path, query, headers, body):
        status, data, head = original(method, path, query, headers, body)
        answer = json.loads(data)
        if answer.get("next"):
            answer["next"] = f"{dash.fake.url}/api/partners/reports/?type=SESSIONS&uuid={BOT}"
        return status, json.dumps(answer).encode(), head

    flex.fake.route = elsewhere
    with pytest.raises(BadInputError, match="returned 406"):  # JSON asked of the CSV host
        read("flex_cms_ratings", {"category": CATEGORY, "page_size": 10})
    (hop,) = dash.fake.log
    assert header(hop, "X-Token") is None and header(hop, "bot-key") == BOT_KEY
    assert all(header(e, "bot-key") is None for e in flex.fake.log)


# --- pieces -------------------------------------------------------------------------------------


pieces = pytest.mark.unit


@pieces
def test_headers_become_snake_case_latin_column_names() -> None:
    assert [column_name(h) for h in SESSION_HEADERS] == [
        "uuid_polzovatelya", "data_nachala", "data_okonchaniya", "naznachen_na_komandu",
        "naznachen_na_operatora", "kanal",
    ]  # fmt: skip
    assert [column_name(h) for h in ("Объём, шт.", "doneAt", "1-й", "", "Щука Ёж")] == [
        "obem_sht", "done_at", "column_1_i", "column", "schuka_ezh",
    ]  # fmt: skip
    assert column_names(["Имя", "имя", "IMYA", "Имя"]) == ["imya", "imya_2", "imya_3", "imya_4"]


@pieces
def test_dates_parse_in_the_contracts_order() -> None:
    fmt = "%d-%m-%Y %H:%M:%S"
    assert parse_when("05-03-2026 14:07:09", fmt) == dt.datetime(2026, 3, 5, 14, 7, 9)
    assert parse_when("2026-03-05T14:07:09+03:00", fmt) == dt.datetime(2026, 3, 5, 11, 7, 9)
    assert parse_when("2026-03-05T14:07:09Z", None) == dt.datetime(2026, 3, 5, 14, 7, 9)
    assert parse_when("2026-03-05 14:07:09.5", None) == dt.datetime(2026, 3, 5, 14, 7, 9, 500000)
    assert parse_when(" ", None) is None and parse_when("вчера", None) == "вчера"


@pieces
def test_report_bodies_gzip_bom_charset_and_bomb() -> None:
    text = "\ufeffa;Дата\r\n1;05-03-2026 10:00:00\r\n"
    assert report_rows(gzip.compress(text.encode()), None, 10_000) == [
        {"a": "1", "Дата": "05-03-2026 10:00:00"}
    ]
    assert report_rows("a;b\n1;Ж\n".encode("cp1251"), "windows-1251", 100) == [{"a": "1", "b": "Ж"}]
    with pytest.raises(SourceContractError, match="inflates past 1,000 bytes"):
        report_rows(gzip.compress(b"a;b\n" + b"1;2\n" * 10_000), None, 1_000)


@pieces
def test_options_are_query_params_and_dashboard_host_defaults(monkeypatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_FT",
        json.dumps({"conn_type": "dpone_fasttrack", "password": BOT_KEY,
                    "extra": {"flex_endpoint": "https://acme.flex.fstrk.io/api/", "flex_x_token": X_TOKEN}}),
    )  # fmt: skip
    hook = FastTrackHook(conn_id="ft")
    assert hook.base_url() == DASHBOARD_URL == "https://dashboard.fstrk.io/api/partners/"
    options = {"uuid": BOT, "date_to": dt.date(2026, 3, 2), "timeout": 5, "parse_temporal_fields": "no"}
    got = hook.read_of(manifest("cascade_transactions", options).loads[0].source)
    assert got.endpoint.params == {"type": "CASCADE_TRANSACTIONS", "uuid": BOT, "date_to": "2026-03-02"}
    assert got.spec.fields and got.spec.fields["created_at"] == "string"  # parsing off: dates as text
    flex = hook.read_of(manifest("flex_cms_ratings", {"category": CATEGORY}).loads[0].source)
    assert flex.endpoint.path == "https://acme.flex.fstrk.io/api/ticket/"
    assert flex.endpoint.params == {"category": CATEGORY, "page_size": 10_000}
    assert flex.spec.fields and flex.spec.fields["created"] == "timestamp"
    assert (
        hook.plan_extract(manifest("flex_cms_ratings", {"category": CATEGORY}).loads[0].source, None)[0][
            "request"
        ]
        == "GET https://acme.flex.fstrk.io/api/ticket/"
    )


@pytest.mark.integration_live
def test_live_fasttrack_chat_sessions() -> None:
    key, bot = os.environ.get("DPONE_LIVE_FASTTRACK_BOT_KEY"), os.environ.get("DPONE_LIVE_FASTTRACK_UUID")
    if not (key and bot):
        pytest.skip(
            "live test: set DPONE_LIVE_FASTTRACK_BOT_KEY (dashboard bot key) and DPONE_LIVE_FASTTRACK_UUID "
            "(the bot's uuid); optional DPONE_LIVE_FASTTRACK_HOST (default the public dashboard)"
        )
    conn = {
        "conn_type": "dpone_fasttrack",
        "password": key,
        "host": os.environ.get("DPONE_LIVE_FASTTRACK_HOST"),
    }
    os.environ["AIRFLOW_CONN_FT"] = json.dumps(conn)
    day = (dt.date.today() - dt.timedelta(days=1)).isoformat()
    rows = read("chat_sessions", {"uuid": bot, "date_from": day, "date_to": day})
    assert all(isinstance(r[-1], str) for r in rows)  # each row keeps its columns as json


@pieces
def test_a_sink_without_a_strategy_gets_the_resources_default_and_keys() -> None:
    def load(resource: str, **sink: object):
        body = {
            "name": resource,
            "source": {
                "connector": "fasttrack",
                "conn_id": "ft",
                "resource": resource,
                "options": {"uuid": "u", "category": "c"},  # what each resource needs
            },
            "sink": {"connector": "postgres", "conn_id": "dst", "table": f"raw.{resource}", **sink},
        }
        return parse_manifest({"pipeline": "ft", "loads": [body]}).loads[0].sink

    sessions = load("chat_sessions")
    assert sessions.strategy.value == "incremental_merge"
    assert sessions.unique_key == ["uuid_polzovatelya", "data_nachala"]
    assert load("cascade_transactions").unique_key == ["transaction_uuid"]
    ratings = load("flex_cms_ratings")
    assert ratings.strategy.value == "full_refresh" and ratings.unique_key is None
    chosen = load("chat_sessions", strategy="full_refresh")  # what the manifest says wins
    assert chosen.strategy.value == "full_refresh" and chosen.unique_key is None
    assert load("chat_sessions", unique_key=["uuid_polzovatelya"]).unique_key == ["uuid_polzovatelya"]


@pieces
def test_a_cut_gzip_report_fails_and_every_member_is_read() -> None:
    body = b"a;b\n" + b"".join(b"%d;x\n" % i for i in range(5_000))
    packed = gzip.compress(body)
    with pytest.raises(SourceContractError, match="cut short"):
        report_rows(packed[: len(packed) // 2], None, 1_000_000)
    half = len(body) // 2
    cut = body.rindex(b"\n", 0, half) + 1
    members = gzip.compress(body[:cut]) + gzip.compress(body[cut:])  # a concatenated gzip file
    assert len(report_rows(members, None, 1_000_000)) == 5_000
