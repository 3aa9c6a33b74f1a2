"""Guards of the generic REST source (issue 13, items 1, 2 and 8), against real-socket fakes:
credentials stay with their origin, a selector that matches nothing fails, pagination and
response bodies cannot run away."""

from __future__ import annotations

import json
import os

import pytest

from airflow_provider_dpone.contracts.errors import (
    BadInputError,
    CredentialOriginError,
    ManifestError,
    SourceContractError,
)
from airflow_provider_dpone.hooks.rest import AuthError, DponeRestHook
from tests.fake_api import API_KEY, TOKEN, FakeApi
from tests.hooks.test_rest import PAGINATIONS, read_all, records, source

pytestmark = pytest.mark.integration

HEADER_SECRET = "hdr-secret-5c0ffee91"  # a credential carried by the connection's `headers` extra
SECRETS = (TOKEN, API_KEY, HEADER_SECRET)
CREDENTIAL_HEADERS = ("authorization", "x-api-key", "x-tenant-secret")

AUTHS = {  # fake API auth mode -> connection fields
    "bearer": {"password": TOKEN, "extra": {"auth": "bearer"}},
    "basic": {"login": "user", "password": API_KEY, "extra": {"auth": "basic"}},
    "api_key_header": {"password": API_KEY, "extra": {"auth": "api_key", "api_key_header": "X-Api-Key"}},
    "api_key_query": {"password": API_KEY, "extra": {"auth": "api_key", "api_key_param": "api_key"}},
}
MECHANISMS = ("next_url", "link_header", "redirect_301", "redirect_302", "redirect_307")


@pytest.fixture(scope="module")
def servers():
    main, other = FakeApi(), FakeApi(auth="none")
    yield main, other
    main.close()
    other.close()


@pytest.fixture
def api(servers):
    """The API of the connection; a fresh state for each test."""
    main, other = servers
    main.reset(records(53), auth="bearer")
    other.reset(records(53), auth="none")
    connect(main, "bearer")
    return main


@pytest.fixture
def other(servers, api):
    """Another origin: the same API on another port of 127.0.0.1, without auth."""
    return servers[1]


def connect(api: FakeApi, auth: str, **extra: object) -> None:
    """The connection to ``api`` with ``auth`` credentials and a secret in the `headers` extra."""
    conn = AUTHS[auth]
    os.environ["AIRFLOW_CONN_API"] = json.dumps(
        {
            "conn_type": "http",
            "host": api.url,
            **conn,
            "extra": {**conn["extra"], "headers": {"X-Tenant-Secret": HEADER_SECRET}, **extra},
        }
    )


def hook() -> DponeRestHook:
    h = DponeRestHook(conn_id="api")
    h.sleep = lambda seconds: None
    return h


def header(entry: dict, name: str) -> str | None:
    """A header of one logged request, by case-insensitive name."""
    return {k.lower(): v for k, v in entry["headers"].items()}.get(name.lower())


def as_text(logged: object) -> str:
    """Logged requests as JSON text; a body (bytes) as its text, so a secret in it is found."""
    return json.dumps(logged, default=lambda v: v.decode("latin-1") if isinstance(v, bytes) else str(v))


def leaks(entry: dict) -> list[str]:
    """The credentials one logged request carried."""
    found = [name for name in CREDENTIAL_HEADERS if header(entry, name) is not None]
    found += [f"query {k}" for k in entry["query"] if k == "api_key"]
    text = as_text(entry)
    return found + [f"secret {s[:4]}..." for s in SECRETS if s in text]


def cross_origin_source(api: FakeApi, other: FakeApi, mechanism: str, policy: str | None) -> dict:
    """A source whose pages (or redirects) lead from ``api`` to ``other``."""
    endpoint = {"cross_origin": policy} if policy else {}
    if mechanism.startswith("redirect_"):
        api.redirects["/offset"] = (int(mechanism[-3:]), f"{other.url}/offset")
        return source(*PAGINATIONS["offset"], endpoint=endpoint)
    api.link_base = other.url
    return source(*PAGINATIONS[mechanism], endpoint=endpoint)


# --- 1. credentials stay with their origin ---------------------------------------------------


@pytest.mark.parametrize("mechanism", MECHANISMS)
@pytest.mark.parametrize("auth", list(AUTHS))
def test_a_cross_origin_hop_fails_by_default_before_anything_reaches_the_other_host(
    api, other, auth: str, mechanism: str
) -> None:
    api.auth = auth
    connect(api, auth)
    with pytest.raises(CredentialOriginError) as caught:
        read_all(hook(), cross_origin_source(api, other, mechanism, None))
    message = str(caught.value)
    assert message.startswith("[DPONE104]")
    assert api.url in message and other.url in message and "cross_origin" in message
    assert not [s for s in SECRETS if s in message]
    assert other.log == []
    assert len(api.log) == 1 and header(api.log[0], "X-Tenant-Secret") == HEADER_SECRET


@pytest.mark.parametrize("mechanism", MECHANISMS)
@pytest.mark.parametrize("auth", list(AUTHS))
def test_follow_without_credentials_sends_none_to_the_other_host(
    api, other, auth: str, mechanism: str
) -> None:
    api.auth = auth
    connect(api, auth)
    rows, _ = read_all(hook(), cross_origin_source(api, other, mechanism, "follow_without_credentials"))
    assert [r[0] for r in rows] == list(range(1, 54))
    assert other.log and [leaks(e) for e in other.log] == [[] for _ in other.log]
    # the API itself still got every credential (it answers 401 without them)
    assert all(header(e, "X-Tenant-Secret") == HEADER_SECRET for e in api.log)


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("relative", [False, True])
def test_same_origin_redirects_keep_the_credentials(api, status: int, relative: bool) -> None:
    api.auth = "api_key_query"
    connect(api, "api_key_query")
    api.redirects["/old"] = (status, "/offset" if relative else f"{api.url}/offset")
    rows, _ = read_all(hook(), source("/old", "data", PAGINATIONS["offset"][2]))
    assert len(rows) == 53
    served = [e for e in api.log if e["path"] == "/offset"]
    assert len(served) == 6 and all(leaks(e) for e in served)


def test_redirects_are_bounded(api) -> None:
    api.redirects["/loop"] = (302, "/loop")
    with pytest.raises(SourceContractError, match="more than 10 redirects"):
        read_all(hook(), source("/loop", "data", {"type": "none"}))
    assert len(api.log) == 11


def test_origins_compare_scheme_host_and_port() -> None:
    from airflow_provider_dpone.hooks.rest_transport import origin_of

    assert origin_of("HTTPS://Api.Example.com/v1?x=1") == origin_of("https://api.example.com:443/v2")
    assert origin_of("http://api.example.com") == ("http", "api.example.com", 80)
    assert origin_of("http://api.example.com") != origin_of("https://api.example.com")
    assert origin_of("http://127.0.0.1:8080") != origin_of("http://127.0.0.1:8081")
    assert origin_of("http://127.0.0.1:8080") != origin_of("http://localhost:8080")


def test_cross_origin_takes_fail_or_follow_without_credentials() -> None:
    from tests.hooks.test_rest import manifest

    assert manifest(source(*PAGINATIONS["offset"])).loads[0].source.endpoint.cross_origin == "fail"
    with pytest.raises(ManifestError, match=r"source\.endpoint\.cross_origin: invalid value 'follow'"):
        manifest(source(*PAGINATIONS["offset"], endpoint={"cross_origin": "follow"}))


# --- 2. a selector that matches nothing ------------------------------------------------------


@pytest.mark.parametrize("selector", ["items", "data.orders"])
def test_a_selector_absent_from_the_first_page_fails_naming_the_keys_there(api, selector: str) -> None:
    with pytest.raises(SourceContractError) as caught:
        read_all(hook(), source("/offset", selector, PAGINATIONS["offset"][2]))
    message = str(caught.value)
    assert message.startswith("[DPONE307]")
    assert f"record_selector '{selector}'" in message and "first page" in message
    assert "top-level keys: data" in message
    assert len(api.log) == 1


def test_a_selector_absent_only_from_the_last_page_ends_the_pagination(api) -> None:
    api.reset(records(50))
    api.omit_empty = True  # 5 full pages, then a page without "data"
    rows, result = read_all(hook(), source(*PAGINATIONS["offset"]))
    assert len(rows) == 50 and result.details["pages"] == 6


def test_an_empty_list_at_the_selector_is_zero_rows(api) -> None:
    api.reset([])
    rows, result = read_all(hook(), source(*PAGINATIONS["offset"]))
    assert rows == [] and result.details["pages"] == 1


def test_the_keys_in_the_message_are_truncated() -> None:
    from airflow_provider_dpone.hooks.rest_pages import describe_keys

    assert describe_keys({"a": 1, "b": 2}) == "top-level keys: a, b"
    many = describe_keys({f"key_{i}": i for i in range(40)} | {"x" * 200: 1})
    assert many.startswith("top-level keys: key_0, key_1") and many.endswith("(+21 more)")
    assert len(many) < 400
    assert describe_keys([1, 2, 3]) == "the body is a list of 3 items"
    assert describe_keys(None) == "the body is empty"
    assert describe_keys("text") == "the body is a str"


def test_a_selector_that_matches_nothing_leaves_a_full_refresh_target_as_it_was(api, clean_pg) -> None:
    from tests.helpers import run_first_load as run
    from tests.hooks.test_rest import manifest

    sink = {"connector": "postgres", "conn_id": "dst", "table": "raw.items", "strategy": "full_refresh"}
    assert run(manifest(source(*PAGINATIONS["offset"]), sink), "r1").rows == 53
    with pytest.raises(SourceContractError, match="record_selector 'items'"):
        run(manifest(source("/offset", "items", PAGINATIONS["offset"][2]), sink), "r2")
    assert clean_pg.query("dst", "select count(*) from raw.items") == [(53,)]


# --- 3. pagination and bodies cannot run away ------------------------------------------------

NEXT = {"type": "next_url", "next_url_path": "links.next", "max_pages": 50}
CURSOR = {"type": "cursor", "cursor_path": "meta.next_cursor", "max_pages": 50}


@pytest.mark.parametrize(
    ("pagination", "stuck_next", "requests", "position"),
    [
        (NEXT, "/stuck?page=2", 2, "/stuck?page=2"),
        (NEXT, "/stuck", 1, "/stuck"),  # back to the first page
        (CURSOR, "/stuck?page=2", 2, "cursor=c2"),
    ],
)
def test_a_pagination_that_repeats_a_position_fails_at_once(
    api, pagination: dict, stuck_next: str, requests: int, position: str
) -> None:
    api.stuck_next = stuck_next
    with pytest.raises(SourceContractError) as caught:
        read_all(hook(), source("/stuck", "data", pagination))
    message = str(caught.value)
    assert "pagination loops" in message and position in message
    assert len(api.log) == requests


def test_a_looping_position_is_shown_without_the_key(api) -> None:
    api.auth = "api_key_query"
    connect(api, "api_key_query")
    api.stuck_next = f"/stuck?page=2&api_key={API_KEY}"  # an API echoing the key in its links
    with pytest.raises(SourceContractError, match="pagination loops") as caught:
        read_all(hook(), source("/stuck", "data", NEXT))
    message = str(caught.value)
    assert API_KEY not in message and "/stuck?page=2&" in message and "***" in message


@pytest.mark.parametrize("sent", ["content_length", "chunked", "gzip"])
def test_a_body_over_max_response_bytes_fails(api, sent: str) -> None:
    connect(api, "bearer", max_response_bytes=1000)  # a page of 10 records is ~1.3 kB of JSON
    api.chunked = sent == "chunked"
    api.gzip = sent == "gzip"  # ~300 bytes on the wire, ~1.3 kB decompressed
    with pytest.raises(SourceContractError, match="over the limit of 1,000 bytes") as caught:
        read_all(hook(), source(*PAGINATIONS["offset"]))
    message = str(caught.value)
    assert "max_response_bytes" in message
    assert ("Content-Length" in message) == (sent == "content_length")


def test_a_body_under_the_limit_is_read(api) -> None:
    connect(api, "bearer", max_response_bytes=5000)
    api.gzip = True
    rows, _ = read_all(hook(), source(*PAGINATIONS["offset"]))
    assert len(rows) == 53


def test_max_response_bytes_defaults_to_100_mb_and_is_validated(api) -> None:
    assert hook().max_response_bytes() == 100 * 1024 * 1024
    connect(api, "bearer", max_response_bytes="lots")
    with pytest.raises(BadInputError, match="extra max_response_bytes"):
        read_all(hook(), source(*PAGINATIONS["offset"]))


# --- review follow-ups -----------------------------------------------------------------------


def test_cookies_stay_with_their_origin(api, other) -> None:
    """The client's cookie jar keys cookies by host alone: another port of the same host must
    get none of the API's cookies, and the API none of the other origin's."""
    api.cookie, other.cookie = "sid=home-cookie-1", "planted=other-cookie-2"
    api.link_base, other.link_base = other.url, api.url  # pages alternate between the origins
    rows, _ = read_all(hook(), cross_origin_source(api, other, "next_url", "follow_without_credentials"))
    assert len(rows) == 53
    assert [header(e, "Cookie") for e in other.log] == [None] * len(other.log)
    home_cookies = [header(e, "Cookie") for e in api.log[1:]]
    assert home_cookies == ["sid=home-cookie-1"] * len(home_cookies)  # the API's own cookie kept


OTHER_KEY = "second-origin-key-7d1e"  # the credential a hook holds for a second origin


class TwoOrigins(DponeRestHook):
    """A hook that knows a second origin with its own credential (``_authorize_other``)."""

    def __init__(self, other_url: str) -> None:
        super().__init__(conn_id="api")
        self.other_url = other_url
        self.sleep = lambda seconds: None

    def _authorize_other(self, request, there) -> bool:
        from airflow_provider_dpone.hooks.rest_http import origin_of

        if there != origin_of(self.other_url):
            return False
        request.headers["X-Other-Key"] = OTHER_KEY
        return True


def test_a_second_origin_gets_its_own_credential_and_none_of_the_connections(api, other) -> None:
    api.cookie = "sid=home-cookie-1"
    api.link_base, other.link_base = other.url, api.url  # pages alternate between the origins
    rows, _ = read_all(TwoOrigins(other.url), cross_origin_source(api, other, "next_url", None))
    assert len(rows) == 53  # no DPONE104: the second origin is known, not "another"
    assert other.log and all(header(e, "X-Other-Key") == OTHER_KEY for e in other.log)
    assert [leaks(e) for e in other.log] == [[] for _ in other.log]
    assert [header(e, "Cookie") for e in other.log] == [None] * len(other.log)
    assert all(header(e, "X-Other-Key") is None for e in api.log)
    assert all(header(e, "X-Tenant-Secret") == HEADER_SECRET for e in api.log)


def test_json_pages_are_released_before_the_next_request(api) -> None:
    """Peak memory of reading ~10 MB pages: the body, its decoded text and the parsed page,
    never the previous page too."""
    import gc
    import tracemalloc

    from airflow_provider_dpone.contracts.sources import PaginationSpec

    size = 1000
    api.raw_pages = [
        json.dumps(
            {"data": [{"id": p * size + i, "blob": f"{p}-{i}-" + "x" * 10_000} for i in range(n)]}
        ).encode()
        for p, n in enumerate((size, size, size, 10))
    ]
    page_bytes = len(api.raw_pages[0])
    h = hook()
    h.client(), h.max_response_bytes(), h.redactor()  # the connection read before measuring
    pagination = PaginationSpec(type="page", page_size=size)
    gc.collect()
    tracemalloc.start()
    try:
        count = 0
        for page_records, _ in h.pages("/raw", {}, pagination, "data"):
            count += len(page_records)
            del page_records  # a consumer that keeps nothing
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 3 * size + 10
    assert peak < 3.5 * page_bytes, f"peak {peak / page_bytes:.2f} x one page body"


def test_a_child_series_without_the_selector_is_no_records_for_that_parent(api) -> None:
    api.children = {"a0": [], "a1": records(3), "a2": [], "a3": records(2, 10)}
    api.omitted = {"a0", "a2"}  # no orders: the API leaves "data" out
    parent = {"path": "/accounts", "record_selector": "data", "field": "id", "as": "account"}
    src = source("/accounts/{account}/orders", "data", {"type": "none"}, endpoint={"parent": parent})
    rows, result = read_all(hook(), src)
    assert sorted((r[0], r[1]) for r in rows) == [("a1", 1), ("a1", 2), ("a1", 3), ("a3", 10), ("a3", 11)]
    assert result.details["pages"] == 5  # the parent page and one per child


def test_a_selector_no_child_page_carries_fails(api) -> None:
    """One child without the key is a parent with no records; every child without it is a key
    the vendor renamed, which would otherwise read 0 rows and succeed."""
    api.children = {"a0": [], "a1": [], "a2": []}
    api.omitted = {"a0", "a1", "a2"}
    parent = {"path": "/accounts", "record_selector": "data", "field": "id", "as": "account"}
    src = source("/accounts/{account}/orders", "data", {"type": "none"}, endpoint={"parent": parent})
    with pytest.raises(SourceContractError, match=r"matches nothing in any of the 3 child page\(s\)"):
        read_all(hook(), src)


def test_a_parent_page_without_its_selector_still_fails(api) -> None:
    api.children = {"a1": records(3)}
    parent = {"path": "/accounts", "record_selector": "accounts", "field": "id", "as": "account"}
    src = source("/accounts/{account}/orders", "data", {"type": "none"}, endpoint={"parent": parent})
    with pytest.raises(
        SourceContractError, match="record_selector 'accounts' matches nothing in the first page"
    ):
        read_all(hook(), src)


def test_a_page_without_the_selector_whose_pagination_continues_fails(api) -> None:
    api.holes = {18}  # the third page has no "data", yet links to the fourth
    with pytest.raises(SourceContractError) as caught:
        read_all(hook(), source(*PAGINATIONS["next_url"]))
    message = str(caught.value)
    assert message.startswith("[DPONE307]") and "record_selector 'data'" in message
    assert "page 3" in message and "top-level keys: links" in message
    assert len(api.log) == 3


@pytest.mark.parametrize("path", ["/no_content", "/empty"])
def test_an_empty_body_is_zero_records(api, path: str) -> None:
    rows, result = read_all(hook(), source(path, "data", {"type": "offset", "page_size": 10}))
    assert rows == [] and result.details["pages"] == 1


def test_a_page_that_repeats_an_earlier_one_fails(api) -> None:
    """A server that ignores the page parameter answers the same page under every URL."""
    pagination = {"type": "page", "page_size": 10, "max_pages": 50}
    with pytest.raises(SourceContractError) as caught:
        read_all(hook(), source("/same", "data", pagination))
    message = str(caught.value)
    assert message.startswith("[DPONE307]") and "pagination loops" in message
    assert "page 2" in message and "page 1" in message
    assert len(api.log) == 2


def test_empty_pages_with_the_same_body_are_not_a_loop(api) -> None:
    rows, result = read_all(hook(), source("/quiet", "", {"type": "link_header"}))
    assert len(rows) == 53 and result.details["pages"] == 4


def test_a_cross_origin_refusal_does_not_blame_the_connections_credentials(api, other) -> None:
    other.auth = "bearer"  # the other origin wants credentials it is never sent
    with pytest.raises(AuthError) as caught:
        read_all(hook(), cross_origin_source(api, other, "next_url", "follow_without_credentials"))
    message = str(caught.value)
    assert "returned 401" in message and other.url in message
    assert "refused the credentials of connection" not in message
    assert "no credentials were sent" in message
    assert len(other.log) == 1 and leaks(other.log[0]) == []


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ((200, b"<html>sign in</html>", {}), "not JSON"),
        ((200, b"access_token=abc&expires_in=3600", {}), "not JSON"),
        ((200, b"[1, 2]", {}), "not a JSON object"),
        ((200, b'{"token": "t"}', {}), "no access_token"),
        ((302, b"", {"Location": "/login"}), "redirect"),
        ((200, b'{"access_token": "' + b"t" * 2_000_000 + b'"}', {}), "over the limit"),
    ],
)
def test_a_token_endpoint_answering_outside_oauth_fails_clearly(api, answer: tuple, expected: str) -> None:
    from tests.fake_api import CLIENT

    api.auth = "oauth2"
    api.token_answer = answer
    os.environ["AIRFLOW_CONN_API"] = json.dumps(
        {
            "conn_type": "http",
            "host": api.url,
            "login": CLIENT[0],
            "password": CLIENT[1],
            "extra": {"auth": "oauth2", "token_url": f"{api.url}/oauth/token", "max_retries": 0},
        }
    )
    with pytest.raises((BadInputError, SourceContractError)) as caught:
        read_all(hook(), source(*PAGINATIONS["offset"]))
    message = str(caught.value)
    assert "token endpoint" in message and expected in message
    assert "abc" not in message and CLIENT[1] not in message
    assert api.log == []


# --- SaaS record functions: a missing key is not 0 rows ---------------------------------------


def _saas_records():
    from airflow_provider_dpone.apis import openexchangerates, similarweb, yandex_webmaster

    return {
        "similarweb": (similarweb._records("visits"), {"meta": {}, "visits": []}, "visits"),
        "ywm_queries": (yandex_webmaster.query_records, {"queries": [], "count": 0}, "queries"),
        "ywm_history": (yandex_webmaster.history_records, {"indicators": {}}, "indicators"),
        "oxr_rates": (openexchangerates.rate_records, {"timestamp": 1, "base": "USD", "rates": {}}, "rates"),
    }


@pytest.mark.parametrize("name", ["similarweb", "ywm_queries", "ywm_history", "oxr_rates"])
def test_a_saas_record_key_that_is_missing_fails_naming_it(name: str) -> None:
    function, empty, key = _saas_records()[name]
    assert function(empty) == []  # an explicit empty list or object: 0 rows
    renamed = {("renamed_" + k if k == key else k): v for k, v in empty.items()}
    with pytest.raises(SourceContractError) as caught:
        function(renamed)
    message = str(caught.value)
    assert f"'{key}'" in message and f"renamed_{key}" in message


def test_a_renamed_vendor_key_fails_the_load_with_its_path() -> None:
    """End to end: Open Exchange Rates answering 'quotes' instead of 'rates'."""
    from airflow_provider_dpone.apis.openexchangerates import OpenExchangeRatesHook
    from airflow_provider_dpone.contracts.sources import source_spec
    from tests.apis.vendor_fake import VendorFake

    answer = {"timestamp": 1767225600, "base": "USD", "quotes": {"EUR": 0.9}}
    fake = VendorFake(lambda *_: (200, json.dumps(answer).encode(), {"Content-Type": "application/json"}))
    os.environ["AIRFLOW_CONN_OXR_RENAMED"] = json.dumps(
        {"conn_type": "http", "host": f"{fake.url}/api/", "password": "app-id-123"}
    )
    try:
        spec = source_spec({"connector": "openexchangerates", "conn_id": "oxr_renamed", "resource": "latest"})
        result = OpenExchangeRatesHook(conn_id="oxr_renamed").extract(spec, None)
        with pytest.raises(SourceContractError) as caught:
            list(result.artifact.batches)
    finally:
        fake.close()
    message = str(caught.value)
    assert "latest.json" in message and "'rates'" in message and "quotes" in message
    assert "app-id-123" not in message


# --- SaaS sources and other origins ------------------------------------------------------------


def test_a_saas_resource_fails_on_another_origin_unless_its_catalog_says_otherwise() -> None:
    import dataclasses

    from airflow_provider_dpone.apis.openexchangerates import OXR, OpenExchangeRatesHook
    from airflow_provider_dpone.contracts.sources import source_spec
    from tests.apis.vendor_fake import VendorFake

    elsewhere = VendorFake(lambda *_: (200, b'{"EUR": "Euro"}', {"Content-Type": "application/json"}))
    fake = VendorFake(lambda *_: (302, b"", {"Location": f"{elsewhere.url}/currencies.json"}))
    os.environ["AIRFLOW_CONN_OXR_MOVED"] = json.dumps(
        {"conn_type": "http", "host": f"{fake.url}/api/", "password": "app-id-123"}
    )
    spec = source_spec({"connector": "openexchangerates", "conn_id": "oxr_moved", "resource": "currencies"})
    try:
        with pytest.raises(CredentialOriginError):
            list(OpenExchangeRatesHook(conn_id="oxr_moved").extract(spec, None).artifact.batches)
        assert elsewhere.log == []
        follows = dataclasses.replace(OXR.resources["currencies"], cross_origin="follow_without_credentials")
        api = dataclasses.replace(OXR, resources={**OXR.resources, "currencies": follows})

        class Follows(OpenExchangeRatesHook):
            pass

        Follows.api = api
        h = Follows(conn_id="oxr_moved")
        assert h.effective(spec).endpoint.cross_origin == "follow_without_credentials"
        rows = [r for b in h.extract(spec, None).artifact.batches for r in b]
        assert rows == [["EUR", "Euro"]]
        assert len(elsewhere.log) == 1 and "app-id-123" not in as_text(elsewhere.log)
    finally:
        fake.close()
        elsewhere.close()
