"""The HTTP side of the REST hook: connection, credentials, requests, retries, redirects.

Credentials (put on requests by the auth type's class, ``rest_auth``) go only to the origin (scheme, host, port) of the connection's base URL, so
redirects are followed here, hop by hop (``MAX_REDIRECTS`` at most), deciding at each hop; and
response bodies are read as a stream, up to a limit, so one answer cannot exhaust the worker's
memory. Every request is logged with the run's ids and its timing, secrets masked.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from http.cookiejar import Cookie, CookieJar, DefaultCookiePolicy
from typing import TYPE_CHECKING, Any

from ..contracts.errors import BadInputError, CredentialOriginError, MissingExtraError, SourceContractError

try:
    import httpx
    import tenacity
except ImportError as _exc:  # pragma: no cover - the rest extra is not installed
    raise MissingExtraError(_exc.name or "httpx", "rest") from None

from ..contracts.redaction import Redactor
from .rest_auth import Authenticator, authenticator_for
from .rest_http import (
    DEFAULT_MAX_RESPONSE_BYTES,
    MAX_REDIRECTS,
    AuthError,
    Origin,
    RetryableHTTPError,
    origin_of,
    read_head,
    read_limited,
    redirect_target,
    retry_after,
    show_origin,
)
from .rest_pace import Pace, pace_of

log = logging.getLogger("airflow_provider_dpone.hooks.rest")  # the hook's logger


class HomeCookies(DefaultCookiePolicy):
    """Keeps only cookies the connection's origin sets: the default policy keys them by host
    alone, so another port or scheme of the host could plant one. (Requests to another origin
    carry no cookies at all: ``RestTransport._authorize``.)"""

    def __init__(self, home: Origin) -> None:
        super().__init__()
        self.home = home

    def set_ok(self, cookie: Cookie, request: Any) -> bool:
        return origin_of(request.get_full_url()) == self.home and super().set_ok(cookie, request)


class RestTransport:
    """Connection, credentials and requests of :class:`DponeRestHook` (a mixin before BaseHook)."""

    http_conn_id: str
    context: dict[str, str]
    requests: int
    _client: httpx.Client | None
    _authenticator: Authenticator | None
    _connection: Any
    _extras: dict[str, Any] | None
    _redactor: Redactor | None
    _refreshed: bool
    _paces: dict[tuple[float, int], Pace]  # one token bucket per rate, shared by the requests
    sleep: Callable[[float], None]  # the waits between retries and for the pace (tests shorten them)
    clock: Callable[[], float]  # the pace's clock (monotonic seconds)

    if TYPE_CHECKING:

        def get_connection(self, conn_id: str) -> Any: ...  # BaseHook's

    # --- connection ------------------------------------------------------------------------

    @property
    def dpone_conn_id(self) -> str:
        return self.http_conn_id

    def connection(self) -> Any:
        """The connection this hook uses (``dpone doctor``; an API without authentication may
        need none)."""
        return self._conn()

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

    def authenticator(self) -> Authenticator:
        """The connection's credentials as its extra ``auth`` type (``rest_auth``); built once,
        so an OAuth token is reused across requests and extracts."""
        if self._authenticator is None:
            self._authenticator = authenticator_for(
                self.dpone_conn_id, self._conn(), self._extra(), self.redactor()
            )
        return self._authenticator

    # --- requests --------------------------------------------------------------------------

    def _pace(self, override: float | None) -> Pace | None:
        """The bucket of this rate, shared by the hook's requests (one per rate)."""
        found = pace_of(self._extra(), override)
        if found is None:
            return None
        if found not in self._paces:
            self._paces[found] = Pace(
                *found, clock=lambda: self.clock(), sleep=lambda seconds: self.sleep(seconds)
            )
        return self._paces[found]

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
        pace: float | None = None,
    ) -> httpx.Response:
        """One API call with bounded retries on transport errors, 429 and 5xx. ``cross_origin``
        (``fail`` | ``follow_without_credentials``): what a URL or redirect to another origin
        than the connection's does. Every attempt and hop waits for the pace (``pace``, the
        manifest's requests per second, else the connection's or the API's default)."""
        bucket = self._pace(pace)
        attempts = int(self._extra().get("max_retries", 5)) + 1
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(attempts),
            wait=self._wait,
            retry=tenacity.retry_if_exception_type(RetryableHTTPError),
            sleep=lambda seconds: self.sleep(seconds),
            reraise=True,
        )
        return retrying(self._send, method, url, params or {}, json_body, headers or {}, cross_origin, bucket)

    def _send(
        self,
        method: str,
        url: str,
        params: dict,
        json_body: Any,
        headers: dict,
        cross_origin: str,
        bucket: Pace | None = None,
    ) -> httpx.Response:
        """One attempt: the request and its redirects, each hop authorized for its own origin;
        the final answer checked and its body read (up to the size limit)."""
        client = self.client()
        request = client.build_request(method, url, params=params or None, json=json_body, headers=headers)
        try:
            for _ in range(MAX_REDIRECTS + 1):
                credentialed = self._authorize(request, cross_origin)
                if bucket is not None:
                    bucket.wait()
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
            shown = redact(str(request.url))  # the whole URL of the hop that failed, masked
            log.warning("%s %s failed: %s (%s)", method, shown, redact(str(exc)), self._ids())
            raise RetryableHTTPError(f"{method} {shown}: {type(exc).__name__}: {redact(str(exc))}") from None
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
            authenticator = self.authenticator()
            for key, value in (self._extra().get("headers") or {}).items():
                request.headers.setdefault(key, str(value))  # the endpoint's own headers win
            authenticator.apply(request)  # the auth header replaces one of the same name
            return True
        if self._authorize_other(request, there):
            request.headers.pop("Cookie", None)  # the jar holds the connection origin's cookies
            return True
        where = self.redactor().redact(f"{show_origin(there)}{request.url.path}")
        if cross_origin != "follow_without_credentials":
            raise CredentialOriginError(
                f"{request.method} {where}: a next link or redirect leads from the connection's "
                f"origin {show_origin(home)} to {show_origin(there)}; the connection's credentials "
                f"go only to {show_origin(home)}. If the API hands over to that host on purpose, set "
                "endpoint.cross_origin: follow_without_credentials"
            )
        self.authenticator().strip(request)
        request.headers.pop("Cookie", None)  # the jar matches by host alone: another port would get them
        log.info(
            "%s %s: another origin than %s, sent without credentials",
            request.method,
            where,
            show_origin(home),
        )
        return False

    def _authorize_other(self, request: httpx.Request, there: Origin) -> bool:
        """Attach the credential of a second origin the API's hook knows (a vendor with two
        hosts, each with its own key) to ``request`` bound for ``there``; whether it did. The
        connection's own credentials never go there. None by default."""
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
            refusal = self.refusal(status, head, f"{method} {shown}")
            if refusal is not None:  # a vendor's own meaning of this answer (e.g. a used-up quota)
                raise refusal
            if status == 401 and credentialed and not self._refreshed and self.authenticator().renewable:
                self._refreshed = True  # an expired token: fetch a new one and try once more
                self.authenticator().renew()
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

    def refusal(self, status: int, body: str, shown: str) -> Exception | None:
        """The error an API's hook makes of an error answer (``status``, the body's start) before
        the generic rules apply; None: the generic rules (401/403 auth, 429/5xx retried)."""
        return None

    def _ids(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.context.items()) or "no run context"
