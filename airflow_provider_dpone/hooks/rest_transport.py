"""The HTTP side of the REST hook: connection, credentials, requests, retries, redirects.

Credentials go only to the origin (scheme, host, port) of the connection's base URL, so
redirects are followed here, hop by hop (``MAX_REDIRECTS`` at most), deciding at each hop; and
response bodies are read as a stream, up to a limit, so one answer cannot exhaust the worker's
memory. Every request is logged with the run's ids and its timing, secrets masked.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from http.cookiejar import Cookie, CookieJar, DefaultCookiePolicy
from typing import TYPE_CHECKING, Any

from ..contracts.errors import (
    BadInputError,
    CredentialOriginError,
    MissingExtraError,
    SourceContractError,
    TransientError,
)

try:
    import httpx
    import tenacity
except ImportError as _exc:  # pragma: no cover - the rest extra is not installed
    raise MissingExtraError(_exc.name or "httpx", "rest") from None

from ..contracts.redaction import Redactor
from .rest_pages import describe_keys

log = logging.getLogger("airflow_provider_dpone.hooks.rest")  # the hook's logger

Origin = tuple[str, str, int]

MAX_REDIRECTS = 10
DEFAULT_MAX_RESPONSE_BYTES = 100 * 1024 * 1024  # decompressed; connection extra max_response_bytes
_DEFAULT_PORTS = {"http": 80, "https": 443}
# headers that describe the body as sent, not as buffered (already decompressed)
_WIRE_HEADERS = frozenset({"content-encoding", "content-length", "transfer-encoding"})
_LIMIT_HINT = "raise the connection extra max_response_bytes, or ask the API for smaller pages"
TOKEN_BODY_LIMIT = 1024 * 1024  # an OAuth token answer is a few kB
_TOKEN_HINT = "check extra token_url: an OAuth2 token endpoint answers a small JSON object"


class AuthError(BadInputError):
    """401/403 or a refused token: a retry cannot fix it."""


class RetryableHTTPError(TransientError):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def origin_of(url: httpx.URL | str) -> Origin:
    """(scheme, host, port) of ``url``, the port filled in when the scheme's default."""
    parsed = httpx.URL(url)
    scheme = parsed.scheme.lower()
    return scheme, parsed.host.lower(), parsed.port or _DEFAULT_PORTS.get(scheme, 0)


def show_origin(origin: Origin) -> str:
    scheme, host, port = origin
    return f"{scheme}://{f'[{host}]' if ':' in host else host}:{port}"


class HomeCookies(DefaultCookiePolicy):
    """Keeps only cookies the connection's origin sets: the default policy keys them by host
    alone, so another port or scheme of the host could plant one. (Requests to another origin
    carry no cookies at all: ``RestTransport._authorize``.)"""

    def __init__(self, home: Origin) -> None:
        super().__init__()
        self.home = home

    def set_ok(self, cookie: Cookie, request: Any) -> bool:
        return origin_of(request.get_full_url()) == self.home and super().set_ok(cookie, request)


def redirect_target(response: httpx.Response) -> tuple[str, httpx.URL, bool]:
    """(method, URL, whether the body is sent again) of the request a redirect asks for: 303,
    and a POST answered 301 or 302, become a GET (as browsers and httpx do); 307 and 308 repeat
    the request as it was."""
    request = response.request
    url = request.url.join(response.headers["Location"])
    status, method = response.status_code, request.method
    if (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST"):
        return "GET", url, False
    return method, url, True


def read_limited(response: httpx.Response, limit: int, shown: str, hint: str = _LIMIT_HINT) -> httpx.Response:
    """``response`` (sent with ``stream=True``) with its body read into memory once.

    A ``Content-Length`` over ``limit`` fails before reading; otherwise reading stops as soon
    as the decompressed body passes ``limit`` bytes (``SourceContractError`` ending in ``hint``).
    """
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limit:
        raise SourceContractError(
            f"{shown}: the response declares {int(declared):,} bytes (Content-Length), over the "
            f"limit of {limit:,} bytes, so nothing was read; {hint}"
        )
    body = io.BytesIO()
    for chunk in response.iter_bytes():
        body.write(chunk)
        if body.tell() > limit:
            raise SourceContractError(
                f"{shown}: the response body is over the limit of {limit:,} bytes (decompressed); "
                f"reading stopped there; {hint}"
            )
    headers = [(k, v) for k, v in response.headers.multi_items() if k.lower() not in _WIRE_HEADERS]
    return httpx.Response(
        response.status_code,
        headers=headers,
        content=body.getvalue(),  # BytesIO hands over its buffer: one copy of the body
        request=response.request,
        extensions=response.extensions,
    )


def headers_only(response: httpx.Response) -> httpx.Response:
    """``response`` without its body (status, headers and request kept), so a page's bytes are
    not held once decoded."""
    return httpx.Response(
        response.status_code,
        headers=response.headers,
        request=response.request,
        extensions=response.extensions,
    )


def read_head(response: httpx.Response, size: int = 2048) -> str:
    """The first ``size`` bytes of a (streamed) body as text, for an error message."""
    head = b""
    for chunk in response.iter_bytes():
        head += chunk
        if len(head) >= size:
            break
    return head[:size].decode(response.encoding or "utf-8", errors="replace")


def retry_after(response: httpx.Response) -> float | None:
    """The wait a ``Retry-After`` header asks for (seconds or an HTTP date), if any."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0.0, (when - dt.datetime.now(dt.timezone.utc)).total_seconds())


class RestTransport:
    """Connection, credentials and requests of :class:`DponeRestHook` (a mixin before BaseHook)."""

    http_conn_id: str
    context: dict[str, str]
    requests: int
    _client: httpx.Client | None
    _token: tuple[str, float] | None
    _connection: Any
    _extras: dict[str, Any] | None
    _redactor: Redactor | None
    _refreshed: bool
    sleep: Callable[[float], None]  # the waits between retries (tests shorten them)

    if TYPE_CHECKING:

        def get_connection(self, conn_id: str) -> Any: ...  # BaseHook's

    # --- connection ------------------------------------------------------------------------

    @property
    def dpone_conn_id(self) -> str:
        return self.http_conn_id

    def _conn(self) -> Any:
        """The connection, read once per hook (every request needs it; inside a task each read
        is a call to the API server)."""
        if self._connection is None:
            self._connection = self.get_connection(self.dpone_conn_id)
        return self._connection

    def _extra(self) -> dict[str, Any]:
        """The connection's extras, parsed once (several lookups per request)."""
        if self._extras is None:
            self._extras = self._read_extra()
        return self._extras

    def _read_extra(self) -> dict[str, Any]:
        """The extras; a key the UI form left empty (null) counts as absent."""
        return {k: v for k, v in self._conn().extra_dejson.items() if v is not None}

    def redactor(self) -> Redactor:
        """The connection's credentials, and the OAuth tokens fetched so far; built once."""
        if self._redactor is None:
            self._redactor = Redactor.of_connection(self._conn)
        return self._redactor

    def base_url(self) -> str:
        conn = self._conn()
        host = conn.host or ""
        if "://" not in host:
            host = f"{conn.schema or 'https'}://{host}"
        if conn.port:
            host = f"{host.rstrip('/')}:{conn.port}"
        return host.rstrip("/") + "/"

    def client(self) -> httpx.Client:
        """The HTTP client: no credentials of its own, redirects left to ``_send``."""
        if self._client is None:
            self._client = httpx.Client(
                base_url=self.base_url(),
                timeout=float(self._extra().get("timeout", 60)),
                headers={"Accept": "application/json"},
                follow_redirects=False,
                cookies=CookieJar(HomeCookies(origin_of(self.base_url()))),
            )
        return self._client

    def max_response_bytes(self) -> int:
        """The largest response body read (decompressed): extra ``max_response_bytes``."""
        value = self._extra().get("max_response_bytes", DEFAULT_MAX_RESPONSE_BYTES)
        try:
            limit = int(value) if not isinstance(value, bool) else 0
        except (TypeError, ValueError):
            limit = 0
        if limit <= 0:
            raise BadInputError(
                f"connection '{self.dpone_conn_id}': extra max_response_bytes must be a positive "
                f"number of bytes (default {DEFAULT_MAX_RESPONSE_BYTES}, 100 MB)"
            )
        return limit

    def _auth(self, headers: dict[str, str], params: dict[str, Any]) -> None:
        conn, extra = self._conn(), self._extra()
        kind = extra.get("auth", "none")
        if kind == "bearer":
            headers["Authorization"] = f"Bearer {conn.password}"
        elif kind == "basic":
            import base64

            pair = f"{conn.login or ''}:{conn.password or ''}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        elif kind == "api_key":
            if extra.get("api_key_param"):
                params[extra["api_key_param"]] = conn.password
            else:  # e.g. header Authorization with prefix "OAuth " (Yandex) or "SecretKey " (Mindbox)
                prefix = extra.get("api_key_prefix", "")
                headers[extra.get("api_key_header", "X-API-Key")] = f"{prefix}{conn.password or ''}"
        elif kind == "oauth2":
            headers["Authorization"] = f"Bearer {self._oauth_token()}"
        elif kind != "none":
            raise BadInputError(
                f"connection '{self.dpone_conn_id}': extra auth '{kind}' is not one of "
                "none, bearer, basic, api_key, oauth2"
            )

    def _oauth_token(self, refresh: bool = False) -> str:
        """A client-credentials token, fetched once and refreshed before it expires."""
        if self._token and not refresh and self._token[1] > time.monotonic() + 30:
            return self._token[0]
        conn, extra = self._conn(), self._extra()
        token_url = extra.get("token_url")
        if not token_url:
            raise BadInputError(f"connection '{self.dpone_conn_id}': auth oauth2 needs extra 'token_url'")
        grant = extra.get("grant_type", "client_credentials")
        data = {"grant_type": grant}
        if grant == "refresh_token":  # a user's offline grant (Google APIs)
            data["refresh_token"] = extra.get("refresh_token", "")
        if extra.get("scope"):
            data["scope"] = extra["scope"]
        auth = None
        if extra.get("token_auth", "basic") == "body":
            data.update(client_id=conn.login or "", client_secret=conn.password or "")
        else:
            auth = (conn.login or "", conn.password or "")
        timeout = float(extra.get("timeout", 60))
        try:
            with httpx.stream("POST", token_url, data=data, auth=auth, timeout=timeout) as streamed:
                response = self._token_answer(streamed)
        except httpx.TransportError as exc:
            raise RetryableHTTPError(f"token endpoint: {type(exc).__name__}") from None
        if response.status_code in (400, 401, 403):
            raise AuthError(
                f"connection '{self.dpone_conn_id}': the token endpoint refused the credentials "
                f"({response.status_code}); check login (client id), password (client secret) and, "
                "for grant_type refresh_token, extra refresh_token"
            )
        if response.status_code == 429 or response.status_code >= 500:  # retried like any request
            raise RetryableHTTPError(f"token endpoint returned {response.status_code}", retry_after(response))
        if response.status_code >= 400:
            raise BadInputError(
                f"connection '{self.dpone_conn_id}': the token endpoint returned {response.status_code}"
            )
        body = self._token_body(response)
        try:
            lifetime = float(body.get("expires_in", 3600))
        except (TypeError, ValueError):
            lifetime = 3600.0
        self._token = (body["access_token"], time.monotonic() + lifetime)
        self.redactor().add_secret(self._token[0])
        return self._token[0]

    def _token_answer(self, response: httpx.Response) -> httpx.Response:
        """The token endpoint's answer, its body read up to ``TOKEN_BODY_LIMIT``; a redirect
        fails (the client credentials are not sent on to wherever it points)."""
        shown = f"POST {self.redactor().redact(str(response.request.url.copy_with(query=None)))}"
        if response.is_redirect:
            raise BadInputError(
                f"connection '{self.dpone_conn_id}': the token endpoint ({shown}) answered "
                f"{response.status_code}, a redirect; set extra token_url to the URL that issues tokens"
            )
        if response.status_code >= 400:
            read_head(response)  # a refusal: only its status is used
            return response
        return read_limited(response, TOKEN_BODY_LIMIT, f"the token endpoint ({shown})", _TOKEN_HINT)

    def _token_body(self, response: httpx.Response) -> dict[str, Any]:
        """The token endpoint's JSON object with a string ``access_token``; anything else fails
        naming what came instead (never the body: it may hold a token)."""
        problem = ""
        try:
            body = json.loads(response.content)
        except ValueError:
            kind = response.headers.get("Content-Type", "no Content-Type")
            problem = f"the body is not JSON ({kind}, {len(response.content):,} bytes)"
        else:
            if not isinstance(body, dict):
                problem = f"the body is not a JSON object ({describe_keys(body)})"
            elif not isinstance(body.get("access_token"), str) or not body["access_token"]:
                problem = f"the body has no access_token string ({describe_keys(body)})"
        if problem:
            raise BadInputError(
                f"connection '{self.dpone_conn_id}': the token endpoint answered {response.status_code} "
                f"but {self.redactor().redact(problem)}; check extra token_url (an OAuth2 token "
                "endpoint answers a JSON object with access_token)"
            )
        return body

    # --- requests --------------------------------------------------------------------------

    def _wait(self, state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        after = getattr(exc, "retry_after", None)
        if after is not None:
            return min(after, float(self._extra().get("max_retry_after", 300)))
        return min(30.0, 0.5 * 2 ** (state.attempt_number - 1))

    def request(
        self,
        method: str,
        url: str,
        *,
        params: dict | None = None,
        json_body: Any = None,
        headers: dict | None = None,
        cross_origin: str = "fail",
    ) -> httpx.Response:
        """One API call with bounded retries on transport errors, 429 and 5xx. ``cross_origin``
        (``fail`` | ``follow_without_credentials``): what a URL or redirect to another origin
        than the connection's does."""
        attempts = int(self._extra().get("max_retries", 5)) + 1
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(attempts),
            wait=self._wait,
            retry=tenacity.retry_if_exception_type(RetryableHTTPError),
            sleep=lambda seconds: self.sleep(seconds),
            reraise=True,
        )
        return retrying(self._send, method, url, params or {}, json_body, headers or {}, cross_origin)

    def _send(
        self, method: str, url: str, params: dict, json_body: Any, headers: dict, cross_origin: str
    ) -> httpx.Response:
        """One attempt: the request and its redirects, each hop authorized for its own origin;
        the final answer checked and its body read (up to the size limit)."""
        client = self.client()
        request = client.build_request(method, url, params=params or None, json=json_body, headers=headers)
        try:
            for _ in range(MAX_REDIRECTS + 1):
                credentialed = self._authorize(request, cross_origin)
                response = self._transmit(request)
                if not response.has_redirect_location:
                    return self._answer(response, credentialed)
                read_head(response)  # a short body drained: the connection can be reused
                response.close()
                hop_method, target, keep_body = redirect_target(response)
                request = client.build_request(
                    hop_method, target, json=json_body if keep_body else None, headers=headers
                )
        except httpx.TransportError as exc:
            redact = self.redactor().redact
            log.warning("%s %s failed: %s (%s)", method, redact(url), redact(str(exc)), self._ids())
            raise RetryableHTTPError(
                f"{method} {redact(url)}: {type(exc).__name__}: {redact(str(exc))}"
            ) from None
        raise SourceContractError(
            f"{method} {self.redactor().redact(str(request.url))}: more than {MAX_REDIRECTS} redirects; "
            "point the endpoint at the URL the API really answers"
        )

    def _authorize(self, request: httpx.Request, cross_origin: str) -> bool:
        """Attach the connection's credentials (auth, the ``headers`` extra) when ``request``
        goes to the connection's origin. Another origin fails (``CredentialOriginError``) or,
        with ``cross_origin: follow_without_credentials``, is sent without any (also without an
        ``api_key_param`` echoed in its URL, and without cookies: the client's jar holds the
        API's). Whether credentials were attached."""
        home, there = origin_of(self.base_url()), origin_of(request.url)
        if there == home:
            headers: dict[str, str] = {}
            params: dict[str, Any] = {}
            self._auth(headers, params)
            for key, value in (self._extra().get("headers") or {}).items():
                request.headers.setdefault(key, str(value))  # the endpoint's own headers win
            request.headers.update(headers)
            if params:
                request.url = request.url.copy_merge_params(params)
            return True
        where = self.redactor().redact(f"{show_origin(there)}{request.url.path}")
        if cross_origin != "follow_without_credentials":
            raise CredentialOriginError(
                f"{request.method} {where}: a next link or redirect leads from the connection's "
                f"origin {show_origin(home)} to {show_origin(there)}; the connection's credentials "
                f"go only to {show_origin(home)}. If the API hands over to that host on purpose, set "
                "endpoint.cross_origin: follow_without_credentials"
            )
        key_param = self._extra().get("api_key_param")
        if key_param and key_param in request.url.params:
            request.url = request.url.copy_remove_param(key_param)
        request.headers.pop("Cookie", None)  # the jar matches by host alone: another port would get them
        log.info(
            "%s %s: another origin than %s, sent without credentials",
            request.method,
            where,
            show_origin(home),
        )
        return False

    def _transmit(self, request: httpx.Request) -> httpx.Response:
        """Send one hop; the response is open (stream) until read or closed."""
        started = time.perf_counter()
        response = self.client().send(request, stream=True)
        self.requests += 1
        ms = (time.perf_counter() - started) * 1000
        shown = self.redactor().redact(str(request.url))
        log.info("%s %s -> %d in %.0f ms (%s)", request.method, shown, response.status_code, ms, self._ids())
        return response

    def _answer(self, response: httpx.Response, credentialed: bool) -> httpx.Response:
        """The final response of an attempt, with its body read; errors raised."""
        method, status = response.request.method, response.status_code
        shown = self.redactor().redact(str(response.request.url))
        try:
            if status < 400:
                self._refreshed = False
                return read_limited(response, self.max_response_bytes(), f"{method} {shown}")
            head = read_head(response)  # for the message; a short body drained
            if status == 401 and credentialed and self._token and not self._refreshed:
                self._refreshed = True  # an expired token: fetch a new one and try once more
                self._oauth_token(refresh=True)
                raise RetryableHTTPError(f"{method} {shown}: 401, token refreshed")
            if status in (401, 403) and not credentialed:
                raise AuthError(
                    f"{method} {shown} returned {status} {response.reason_phrase}: another origin "
                    f"than the connection's ({show_origin(origin_of(self.base_url()))}) refused the "
                    "request; no credentials were sent there (cross_origin: follow_without_credentials), "
                    "so the API's next link or redirect leads somewhere that needs its own; not retried"
                )
            if status in (401, 403):
                raise AuthError(
                    f"{method} {shown} returned {status} {response.reason_phrase}: the API refused the "
                    f"credentials of connection '{self.dpone_conn_id}' (check the key or token, its "
                    "scopes and the account's access); not retried"
                )
            if status == 429 or status >= 500:
                raise RetryableHTTPError(
                    f"{method} {shown} returned {status} {response.reason_phrase}", retry_after(response)
                )
            text = self.redactor().redact(head[:300])
            raise BadInputError(f"{method} {shown} returned {status} {response.reason_phrase}: {text}")
        finally:
            response.close()

    def _ids(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.context.items()) or "no run context"
