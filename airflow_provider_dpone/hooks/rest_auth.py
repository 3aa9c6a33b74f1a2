"""Authenticators of the REST hook: one small class per connection extra ``auth``.

An authenticator puts the connection's credentials on a request. The transport asks it to only
for requests to the connection's own origin (``RestTransport._authorize``: another origin fails
with DPONE104, or is sent without credentials); so the classes here never look at a URL's host.
Their reprs and errors hold no secret, and an OAuth token they fetch is registered with the
connection's redactor before it is used.
"""

from __future__ import annotations

import base64
import json
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

from ..contracts.errors import BadInputError, MissingExtraError
from ..contracts.redaction import Redactor
from . import google_auth
from .rest_http import AuthError, RetryableHTTPError, read_head, read_limited, retry_after
from .rest_pages import describe_keys

try:
    import httpx
except ImportError as _exc:  # pragma: no cover - the rest extra is not installed
    raise MissingExtraError(_exc.name or "httpx", "rest") from None

TOKEN_BODY_LIMIT = 1024 * 1024  # an OAuth token answer is a few kB
_TOKEN_HINT = "check extra token_url: an OAuth2 token endpoint answers a small JSON object"
_EARLY = 30  # seconds: a token this close to its expiry is fetched anew


class Authenticator(ABC):
    """The credentials of one connection (``login``, ``password``, ``extra``) as one auth type."""

    type: ClassVar[str]

    def __init__(
        self,
        conn_id: str,
        login: str | None,
        password: str | None,
        extra: Mapping[str, Any],
        redactor: Redactor,
    ) -> None:
        self.conn_id, self.extra, self.redactor = conn_id, extra, redactor
        self._login, self._password = login or "", password or ""

    def __repr__(self) -> str:  # never the credentials
        return f"{type(self).__name__}(conn_id={self.conn_id!r})"

    @abstractmethod
    def apply(self, request: httpx.Request) -> None:
        """Put the credentials on ``request``, one to the connection's origin (they replace a
        header of the same name)."""

    @property
    def renewable(self) -> bool:
        """Whether :meth:`renew` can fetch new credentials (an OAuth token, once fetched)."""
        return False

    def renew(self) -> None:
        """Fetch new credentials, after a 401 to a request that carried these (only when
        :attr:`renewable`)."""
        raise NotImplementedError(f"{type(self).__name__} has no credentials to renew")

    def strip(self, request: httpx.Request) -> None:
        """Drop from ``request``, bound for another origin, the connection's key parameter
        (extra ``api_key_param``) when the URL carries it (an API echoing it in next links)."""
        key_param = self.extra.get("api_key_param")
        if key_param and key_param in request.url.params:
            request.url = request.url.copy_remove_param(key_param)


class NoAuth(Authenticator):
    """A public API: nothing to attach."""

    type = "none"

    def apply(self, request: httpx.Request) -> None:
        return None


class BearerAuth(Authenticator):
    """``Authorization: Bearer <password>``."""

    type = "bearer"

    def apply(self, request: httpx.Request) -> None:
        request.headers["Authorization"] = f"Bearer {self._password}"


class BasicAuth(Authenticator):
    """``Authorization: Basic base64(login:password)``."""

    type = "basic"

    def apply(self, request: httpx.Request) -> None:
        pair = f"{self._login}:{self._password}".encode()
        request.headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()


class ApiKeyAuth(Authenticator):
    """The password as a key: the query parameter ``api_key_param`` when set, else the header
    ``api_key_header`` (``X-API-Key``) after ``api_key_prefix`` (e.g. ``Authorization:
    OAuth <key>`` for Yandex, ``SecretKey <key>`` for Mindbox)."""

    type = "api_key"

    def apply(self, request: httpx.Request) -> None:
        param = self.extra.get("api_key_param")
        if param:
            request.url = request.url.copy_merge_params({param: self._password})
            return
        prefix = self.extra.get("api_key_prefix", "")
        request.headers[self.extra.get("api_key_header", "X-API-Key")] = f"{prefix}{self._password}"


class OAuth2Auth(Authenticator):
    """``Authorization: Bearer <token>`` with a token from extra ``token_url``: grant
    ``client_credentials`` (login/password are the client id/secret, optional ``scope``) or
    ``refresh_token`` (extra ``refresh_token``); the client sent as HTTP basic auth or, with
    ``token_auth: body``, in the form. Fetched once, again shortly before it expires and once
    after a 401. ``transport`` (tests) replaces the network."""

    type = "oauth2"

    def __init__(self, *args: Any, transport: httpx.BaseTransport | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.transport = transport
        self._token: tuple[str, float] | None = None  # (token, monotonic expiry)

    def apply(self, request: httpx.Request) -> None:
        request.headers["Authorization"] = f"Bearer {self.token()}"

    @property
    def renewable(self) -> bool:
        return self._token is not None

    def renew(self) -> None:
        self.token(refresh=True)

    def token(self, refresh: bool = False) -> str:
        """The current token; fetched when there is none, it is about to expire, or ``refresh``."""
        if self._token and not refresh and self._token[1] > time.monotonic() + _EARLY:
            return self._token[0]
        response = self._fetch()
        if response.status_code in (400, 401, 403):
            raise AuthError(
                f"connection '{self.conn_id}': the token endpoint refused the credentials "
                f"({response.status_code}); {self._refused_hint()}"
            )
        if response.status_code == 429 or response.status_code >= 500:  # retried like any request
            raise RetryableHTTPError(f"token endpoint returned {response.status_code}", retry_after(response))
        if response.status_code >= 400:
            raise BadInputError(
                f"connection '{self.conn_id}': the token endpoint returned {response.status_code}"
            )
        body = self._body(response)
        try:
            lifetime = float(body.get("expires_in", 3600))
        except (TypeError, ValueError):
            lifetime = 3600.0
        self.redactor.add_secret(body["access_token"])
        self._token = (body["access_token"], time.monotonic() + lifetime)
        return self._token[0]

    def _refused_hint(self) -> str:
        return (
            "check login (client id), password (client secret) and, for grant_type "
            "refresh_token, extra refresh_token"
        )

    def _grant(self) -> tuple[str, dict[str, str], tuple[str, str] | None]:
        """The token URL, the grant's form and the client's basic-auth pair (or None)."""
        extra = self.extra
        token_url = extra.get("token_url")
        if not token_url:
            raise BadInputError(f"connection '{self.conn_id}': auth {self.type} needs extra 'token_url'")
        grant = extra.get("grant_type", "client_credentials")
        data = {"grant_type": grant}
        if grant == "refresh_token":  # a user's offline grant (Google APIs)
            data["refresh_token"] = extra.get("refresh_token", "")
        if extra.get("scope"):
            data["scope"] = extra["scope"]
        auth = None
        if extra.get("token_auth", "basic") == "body":
            data.update(client_id=self._login, client_secret=self._password)
        else:
            auth = (self._login, self._password)
        return token_url, data, auth

    def _fetch(self) -> httpx.Response:
        """POST the grant to its token URL; the answer's body read (up to ``TOKEN_BODY_LIMIT``)."""
        token_url, data, auth = self._grant()
        timeout = float(self.extra.get("timeout", 60))
        try:
            with (
                httpx.Client(transport=self.transport, timeout=timeout) as client,
                client.stream("POST", token_url, data=data, auth=auth) as streamed,
            ):
                return self._answer(streamed)
        except httpx.TransportError as exc:
            raise RetryableHTTPError(f"token endpoint: {type(exc).__name__}") from None

    def _answer(self, response: httpx.Response) -> httpx.Response:
        """The token endpoint's answer, its body read up to ``TOKEN_BODY_LIMIT``; a redirect
        fails (the client credentials are not sent on to wherever it points)."""
        shown = f"POST {self.redactor.redact(str(response.request.url.copy_with(query=None)))}"
        if response.is_redirect:
            raise BadInputError(
                f"connection '{self.conn_id}': the token endpoint ({shown}) answered "
                f"{response.status_code}, a redirect; set extra token_url to the URL that issues tokens"
            )
        if response.status_code >= 400:
            read_head(response)  # a refusal: only its status is used
            return response
        return read_limited(response, TOKEN_BODY_LIMIT, f"the token endpoint ({shown})", _TOKEN_HINT)

    def _body(self, response: httpx.Response) -> dict[str, Any]:
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
                f"connection '{self.conn_id}': the token endpoint answered {response.status_code} "
                f"but {self.redactor.redact(problem)}; check extra token_url (an OAuth2 token "
                "endpoint answers a JSON object with access_token)"
            )
        return body


class GoogleAuth(OAuth2Auth):
    """Google's OAuth2: with extra ``service_account_key`` (a service account's JSON key) a JWT
    signed with the key, exchanged at the key's ``token_uri`` for a token of extra
    ``service_account_scope`` (acting as extra ``service_account_subject`` if set); without
    one, a user's refresh token (``OAuth2Auth``'s ``refresh_token`` grant at ``token_url``)."""

    type = "google"

    def _refused_hint(self) -> str:
        if self.extra.get(google_auth.KEY_FIELD):
            return (
                f"check extra {google_auth.KEY_FIELD} (a key deleted or disabled in the Cloud console, "
                "or an account not allowed the scope, is refused)"
            )
        return super()._refused_hint()

    def _grant(self) -> tuple[str, dict[str, str], tuple[str, str] | None]:
        raw = self.extra.get(google_auth.KEY_FIELD)
        if not raw:
            if not self.extra.get("refresh_token"):
                raise BadInputError(
                    f"connection '{self.conn_id}': set extra {google_auth.KEY_FIELD} (a service "
                    "account's JSON key) or extra refresh_token with login/password (OAuth client)"
                )
            return super()._grant()
        self.redactor.add_secret(raw if isinstance(raw, str) else json.dumps(raw))
        key = google_auth.parse_key(raw, self.conn_id)
        self.redactor.add_secret(key.private_key, *key.private_key.splitlines())
        scope = str(self.extra.get("service_account_scope") or "")
        if not scope:
            raise BadInputError(
                f"connection '{self.conn_id}': auth google needs extra 'service_account_scope'"
            )
        signed = google_auth.assertion(
            key, scope, self.conn_id, subject=self.extra.get("service_account_subject") or None
        )
        self.redactor.add_secret(signed)
        return key.token_uri, {"grant_type": google_auth.JWT_BEARER, "assertion": signed}, None


AUTHENTICATORS: dict[str, type[Authenticator]] = {
    cls.type: cls for cls in (NoAuth, BearerAuth, BasicAuth, ApiKeyAuth, OAuth2Auth, GoogleAuth)
}


def authenticator_for(conn_id: str, conn: Any, extra: Mapping[str, Any], redactor: Redactor) -> Authenticator:
    """The authenticator of extra ``auth`` (default ``none``) for connection ``conn``."""
    kind = extra.get("auth", "none")
    cls = AUTHENTICATORS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise BadInputError(
            f"connection '{conn_id}': extra auth '{kind}' is not one of {', '.join(AUTHENTICATORS)}"
        )
    return cls(conn_id, conn.login, conn.password, extra, redactor)
