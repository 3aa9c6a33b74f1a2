"""HTTP pieces of the REST hook that hold no connection: errors, origins, redirects, and
response bodies read up to a limit."""

from __future__ import annotations

import datetime as dt
import io
from email.utils import parsedate_to_datetime

from ..contracts.errors import BadInputError, MissingExtraError, SourceContractError, TransientError

try:
    import httpx
except ImportError as _exc:  # pragma: no cover - the rest extra is not installed
    raise MissingExtraError(_exc.name or "httpx", "rest") from None

Origin = tuple[str, str, int]

MAX_REDIRECTS = 10
DEFAULT_MAX_RESPONSE_BYTES = 100 * 1024 * 1024  # decompressed; connection extra max_response_bytes
_DEFAULT_PORTS = {"http": 80, "https": 443}
# headers that describe the body as sent, not as buffered (already decompressed)
_WIRE_HEADERS = frozenset({"content-encoding", "content-length", "transfer-encoding"})
_LIMIT_HINT = "raise the connection extra max_response_bytes, or ask the API for smaller pages"


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


def public_url(url: str) -> str:
    """``url`` as lineage may name it: no user info, query or fragment (they may hold a secret)."""
    parsed = httpx.URL(url)
    return str(parsed.copy_with(username=None, password=None, query=None, fragment=None)).rstrip("/")


def show_origin(origin: Origin) -> str:
    scheme, host, port = origin
    return f"{scheme}://{f'[{host}]' if ':' in host else host}:{port}"


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


class ResponseTooLargeError(SourceContractError):
    """A response body over the connection's ``max_response_bytes``: nothing of it was used (a
    source that can ask for less, a shorter window, catches it and does)."""


def read_limited(response: httpx.Response, limit: int, shown: str, hint: str = _LIMIT_HINT) -> httpx.Response:
    """``response`` (sent with ``stream=True``) with its body read into memory once.

    A ``Content-Length`` over ``limit`` fails before reading; otherwise reading stops as soon
    as the decompressed body passes ``limit`` bytes (``SourceContractError`` ending in ``hint``).
    """
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ResponseTooLargeError(
            f"{shown}: the response declares {int(declared):,} bytes (Content-Length), over the "
            f"limit of {limit:,} bytes, so nothing was read; {hint}"
        )
    body = io.BytesIO()
    for chunk in response.iter_bytes():
        body.write(chunk)
        if body.tell() > limit:
            raise ResponseTooLargeError(
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
