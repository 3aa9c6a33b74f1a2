"""Each authenticator class on its own (OAuth2's token endpoint on httpx.MockTransport), and the
hook attaching credentials only to the connection's origin (DPONE104)."""

from __future__ import annotations

import base64
import json
import re
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from airflow_provider_dpone.contracts.errors import BadInputError, CredentialOriginError
from airflow_provider_dpone.contracts.redaction import Redactor
from airflow_provider_dpone.contracts.sources import PaginationSpec
from airflow_provider_dpone.hooks.rest import AuthError, DponeRestHook, RetryableHTTPError
from airflow_provider_dpone.hooks.rest_auth import (
    AUTHENTICATORS,
    ApiKeyAuth,
    Authenticator,
    BasicAuth,
    BearerAuth,
    NoAuth,
    OAuth2Auth,
    authenticator_for,
)

pytestmark = pytest.mark.unit

SECRET = "s3cret-9f2a71c4"
CLIENT_ID = "client-4471"
HOME = "https://api.example.test/v1/"


def build(extra: dict[str, Any], login: str | None = "user", password: str | None = SECRET) -> Authenticator:
    conn = SimpleNamespace(login=login, password=password)
    return authenticator_for("api", conn, extra, Redactor())


def request(url: str = HOME + "items", **headers: str) -> httpx.Request:
    return httpx.Request("GET", url, headers=headers)


def test_the_registry_is_keyed_by_the_auth_extra() -> None:
    assert list(AUTHENTICATORS) == ["none", "bearer", "basic", "api_key", "oauth2", "google"]
    for kind, cls in AUTHENTICATORS.items():
        assert cls.type == kind and type(build({"auth": kind})) is cls
    assert type(build({})) is NoAuth  # no auth extra: a public API


def test_an_unknown_auth_type_is_refused_without_the_secret() -> None:
    with pytest.raises(BadInputError, match="extra auth 'digest' is not one of none, bearer") as caught:
        build({"auth": "digest"})
    assert SECRET not in str(caught.value)


def test_none_attaches_nothing() -> None:
    sent = request()
    build({"auth": "none"}).apply(sent)
    assert "Authorization" not in sent.headers and sent.url == httpx.URL(HOME + "items")


def test_bearer_puts_the_password_in_authorization_replacing_a_header_of_that_name() -> None:
    auth = build({"auth": "bearer"})
    sent = request(Authorization="Bearer from-the-endpoint")
    auth.apply(sent)
    assert isinstance(auth, BearerAuth) and sent.headers["Authorization"] == f"Bearer {SECRET}"


def test_basic_encodes_login_and_password() -> None:
    auth = build({"auth": "basic"}, login="me")
    sent = request()
    auth.apply(sent)
    assert isinstance(auth, BasicAuth)
    assert base64.b64decode(sent.headers["Authorization"].removeprefix("Basic ")).decode() == f"me:{SECRET}"


def test_api_key_goes_in_a_header_with_an_optional_prefix_or_in_the_query() -> None:
    default, prefixed, query = (
        build({"auth": "api_key"}),
        build({"auth": "api_key", "api_key_header": "Authorization", "api_key_prefix": "OAuth "}),
        build({"auth": "api_key", "api_key_param": "app_id"}),
    )
    assert isinstance(default, ApiKeyAuth)
    sent = request()
    default.apply(sent)
    assert sent.headers["X-API-Key"] == SECRET
    sent = request()
    prefixed.apply(sent)
    assert sent.headers["Authorization"] == f"OAuth {SECRET}"
    sent = request(HOME + "items?page=2")
    query.apply(sent)
    assert dict(sent.url.params) == {"page": "2", "app_id": SECRET} and "X-API-Key" not in sent.headers


def test_strip_drops_the_key_parameter_a_next_link_echoes() -> None:
    auth = build({"auth": "api_key", "api_key_param": "app_id"})
    elsewhere = request(f"https://cdn.example.test/p2?app_id={SECRET}&page=2")
    auth.strip(elsewhere)
    assert dict(elsewhere.url.params) == {"page": "2"}


@pytest.mark.parametrize("kind", ["none", "bearer", "basic", "api_key"])
def test_static_credentials_cannot_be_renewed(kind: str) -> None:
    auth = build({"auth": kind})
    assert auth.renewable is False
    with pytest.raises(NotImplementedError):
        auth.renew()


@pytest.mark.parametrize("kind", list(AUTHENTICATORS))
def test_no_repr_shows_a_credential(kind: str) -> None:
    auth = build({"auth": kind, "token_url": "https://auth.example.test/token"}, login=CLIENT_ID)
    assert repr(auth) == f"{type(auth).__name__}(conn_id='api')"
    assert SECRET not in repr(auth) and CLIENT_ID not in str(auth)


# --- OAuth2 ------------------------------------------------------------------------------------


class TokenEndpoint:
    """A token endpoint on httpx.MockTransport: answers ``replies`` in turn (then a token),
    keeping each request's form and Authorization header."""

    def __init__(self, *replies: httpx.Response, expires_in: int = 3600) -> None:
        self.replies, self.expires_in = list(replies), expires_in
        self.forms: list[dict[str, str]] = []
        self.basic: list[str | None] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.forms.append({k: v[0] for k, v in parse_qs(request.content.decode()).items()})
        self.basic.append(request.headers.get("Authorization"))
        if self.replies:
            return self.replies.pop(0)
        token = f"tok-{len(self.forms)}-7c1e"
        return httpx.Response(200, json={"access_token": token, "expires_in": self.expires_in})


def oauth(endpoint: TokenEndpoint, **extra: Any) -> OAuth2Auth:
    settings = {"auth": "oauth2", "token_url": "https://auth.example.test/token", **extra}
    return OAuth2Auth("api", CLIENT_ID, SECRET, settings, Redactor(), transport=httpx.MockTransport(endpoint))


def test_client_credentials_are_fetched_once_and_the_token_masked() -> None:
    endpoint = TokenEndpoint()
    auth = oauth(endpoint, scope="read")
    assert auth.renewable is False  # nothing fetched yet
    first, second = request(), request()
    auth.apply(first)
    auth.apply(second)
    assert first.headers["Authorization"] == second.headers["Authorization"] == "Bearer tok-1-7c1e"
    assert endpoint.forms == [{"grant_type": "client_credentials", "scope": "read"}]
    client = base64.b64decode((endpoint.basic[0] or "").removeprefix("Basic ")).decode()
    assert client == f"{CLIENT_ID}:{SECRET}"
    assert auth.redactor.redact("got tok-1-7c1e") == "got ***"
    assert auth.renewable is True


def test_a_token_is_fetched_again_near_its_expiry_and_on_renew() -> None:
    endpoint = TokenEndpoint(expires_in=10)  # inside the 30 s margin: every use fetches anew
    auth = oauth(endpoint)
    assert auth.token() == "tok-1-7c1e" and auth.token() == "tok-2-7c1e"
    long_lived = oauth(TokenEndpoint())
    assert long_lived.token() == "tok-1-7c1e"
    long_lived.renew()
    assert long_lived.token() == "tok-2-7c1e"


def test_refresh_token_grant_with_the_client_in_the_body() -> None:
    endpoint = TokenEndpoint()
    oauth(endpoint, grant_type="refresh_token", refresh_token="rt-55", token_auth="body").token()
    form = endpoint.forms[0]
    assert form == {
        "grant_type": "refresh_token",
        "refresh_token": "rt-55",
        "client_id": CLIENT_ID,
        "client_secret": SECRET,
    }
    assert endpoint.basic == [None]


@pytest.mark.parametrize(
    ("reply", "error", "expected"),
    [
        (httpx.Response(401, json={"error": "invalid_client"}), AuthError, "refused the credentials"),
        (httpx.Response(503), RetryableHTTPError, "token endpoint returned 503"),
        (httpx.Response(404), BadInputError, "token endpoint returned 404"),
        (httpx.Response(200, text=f"access_token={SECRET}"), BadInputError, "not JSON"),
        (httpx.Response(200, json={"token": SECRET}), BadInputError, "no access_token"),
        (httpx.Response(302, headers={"Location": "/login"}), BadInputError, "a redirect"),
    ],
)
def test_a_token_endpoint_failure_says_what_is_wrong_without_secrets(
    reply: httpx.Response, error: type[Exception], expected: str
) -> None:
    with pytest.raises(error, match=expected) as caught:
        oauth(TokenEndpoint(reply)).token()
    assert SECRET not in str(caught.value)


def test_a_token_url_is_required() -> None:
    auth = OAuth2Auth("api", CLIENT_ID, SECRET, {"auth": "oauth2"}, Redactor())
    with pytest.raises(BadInputError, match="needs extra 'token_url'"):
        auth.token()


# --- through the hook: credentials only for the connection's origin ----------------------------


def hook_over(monkeypatch: pytest.MonkeyPatch, handler: Any, extra: dict[str, Any]) -> DponeRestHook:
    conn = {"conn_type": "http", "host": HOME, "password": SECRET, "extra": {"max_retries": 0, **extra}}
    monkeypatch.setenv("AIRFLOW_CONN_AUTHAPI", json.dumps(conn))
    hook = DponeRestHook(conn_id="authapi")
    hook._client = httpx.Client(base_url=hook.base_url(), transport=httpx.MockTransport(handler))
    return hook


def two_origins(seen: list[httpx.Request]) -> Any:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.host == "api.example.test":  # its next link echoes a key parameter
            echo = f"?key={request.url.params['key']}" if "key" in request.url.params else ""
            return httpx.Response(
                200, json={"data": [{"id": 1}], "next": f"https://cdn.example.test/p2{echo}"}
            )
        return httpx.Response(200, json={"data": [{"id": 2}]})

    return handler


@pytest.mark.parametrize(
    ("extra", "credential"),
    [
        ({"auth": "bearer"}, lambda r: r.headers.get("Authorization") == f"Bearer {SECRET}"),
        ({"auth": "api_key", "api_key_param": "key"}, lambda r: r.url.params.get("key") == SECRET),
        (
            {"auth": "basic", "headers": {"X-Tenant": SECRET}},
            lambda r: r.headers["Authorization"].startswith("Basic ") and r.headers["X-Tenant"] == SECRET,
        ),
    ],
)
def test_credentials_reach_only_the_connections_origin(monkeypatch, extra: dict, credential: Any) -> None:
    seen: list[httpx.Request] = []
    hook = hook_over(monkeypatch, two_origins(seen), extra)
    pagination = PaginationSpec(type="next_url", next_url_path="next")
    with pytest.raises(
        CredentialOriginError, match=re.escape("credentials go only to https://api.example.test:443")
    ):
        list(hook.pages("/items", {}, pagination, "data"))
    assert [r.url.host for r in seen] == ["api.example.test"]  # DPONE104 before any request there
    assert credential(seen[0])
    seen.clear()
    pages = list(hook.pages("/items", {}, pagination, "data", cross_origin="follow_without_credentials"))
    assert [r["id"] for records, _ in pages for r in records] == [1, 2]
    home, there = seen
    assert credential(home) and there.url.host == "cdn.example.test"
    assert "Authorization" not in there.headers and "X-Tenant" not in there.headers
    assert SECRET not in str(there.url) and SECRET not in str(there.headers)
