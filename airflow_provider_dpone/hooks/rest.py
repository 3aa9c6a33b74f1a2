"""Generic REST API source: endpoints declared as data, paginated, authenticated, retried.

The connection is the official HTTP provider's ``http`` connection: host (with scheme, or the
``schema`` field), port, login, password, and extras:

- ``auth``: ``none`` | ``bearer`` (password is the token) | ``basic`` | ``api_key`` (password is the
  key, sent in header ``api_key_header`` or query parameter ``api_key_param``) | ``oauth2``
  (client credentials: login/password are the client id/secret, ``token_url``, ``scope``);
- ``headers``, ``timeout`` (s), ``max_retries``.

Every request is logged with the pipeline, load and run ids and its timing, secrets masked.
Transport errors, 429 and 5xx are retried (bounded, honouring ``Retry-After``); 401 and 403
fail the task without Airflow retries and say what to fix.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urljoin

from ..contracts.errors import MissingExtraError

try:
    import httpx
    import tenacity
    from airflow.sdk import BaseHook
except ImportError as _exc:  # pragma: no cover - exercised by the missing-extra test
    raise MissingExtraError(_exc.name or "httpx", "rest") from None

from ..contracts import records as values
from ..contracts.artifacts import CheckpointedBatches, ExtractResult, StreamingBatches
from ..contracts.errors import BadInputError, TransientError, UnsupportedError
from ..contracts.manifest import EndpointSpec, PaginationSpec, SourceSpec
from ..contracts.redaction import Redactor
from ..contracts.state import CursorState, StateRecord
from ..contracts.strategies import IncrementalMode
from ..contracts.table import CanonicalType, Column, TableSchema

log = logging.getLogger(__name__)

_LINK_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')
RECORD = Column("record", CanonicalType.JSON, True)


class AuthError(BadInputError):
    """401/403 or a refused token: a retry cannot fix it."""


class RetryableHTTPError(TransientError):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def dig(body: Any, path: str | None) -> Any:
    """The value at dotted ``path`` in a JSON body ("" or None: the body itself)."""
    if not path:
        return body
    node = body
    for part in path.split("."):
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0.0, (when - dt.datetime.now(dt.timezone.utc)).total_seconds())


def _format_filter(value: str, fmt: str) -> str:
    """The stored cursor value as the API's filter parameter wants it."""
    parsed = values.parse_timestamp(value, aware=True).astimezone(dt.timezone.utc)
    if fmt == "unix":
        return str(int(parsed.timestamp()))
    if fmt == "unix_ms":
        return str(int(parsed.timestamp() * 1000))
    if fmt == "date":
        return parsed.date().isoformat()
    if "%" in fmt:
        return parsed.strftime(fmt)
    return parsed.isoformat().replace("+00:00", "Z")


class DponeRestHook(BaseHook):
    """Reads declared endpoints of a REST API as rows."""

    conn_name_attr = "http_conn_id"
    default_conn_name = "http_default"
    conn_type = "dpone_rest"
    hook_name = "dpone REST API"

    def __init__(
        self, conn_id: str = default_conn_name, *, context: dict[str, str] | None = None, **kwargs: Any
    ):
        super().__init__(**kwargs)
        self.dpone_conn_id = conn_id
        self.context = context or {}  # pipeline, load and run ids for the request log
        self._client: httpx.Client | None = None
        self._token: tuple[str, float] | None = None
        self._connection: Any = None
        self._extras: dict[str, Any] | None = None
        self._redactor: Redactor | None = None
        self._refreshed = False
        self.requests = 0
        self.sleep = time.sleep  # tests may shorten the waits

    def bind_run(self, ctx: Any) -> None:
        self.context = {"pipeline": ctx.pipeline, "load": ctx.load.name, "run_id": ctx.run_id}

    # --- connection ------------------------------------------------------------------------

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
        return dict(self._conn().extra_dejson)

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

    def dataset(self, table: str) -> dict[str, str]:
        return {"namespace": self.base_url().rstrip("/"), "name": table}

    def client(self) -> httpx.Client:
        if self._client is None:
            extra = self._extra()
            self._client = httpx.Client(
                base_url=self.base_url(),
                timeout=float(extra.get("timeout", 60)),
                headers={"Accept": "application/json", **(extra.get("headers") or {})},
                follow_redirects=True,
            )
        return self._client

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
        try:
            response = httpx.post(token_url, data=data, auth=auth, timeout=float(extra.get("timeout", 60)))
        except httpx.TransportError as exc:
            raise RetryableHTTPError(f"token endpoint: {type(exc).__name__}") from None
        if response.status_code in (400, 401, 403):
            raise AuthError(
                f"connection '{self.dpone_conn_id}': the token endpoint refused the credentials "
                f"({response.status_code}); check login (client id), password (client secret) and, "
                "for grant_type refresh_token, extra refresh_token"
            )
        if response.status_code == 429 or response.status_code >= 500:  # retried like any request
            raise RetryableHTTPError(
                f"token endpoint returned {response.status_code}", _retry_after(response)
            )
        if response.status_code >= 400:
            raise BadInputError(
                f"connection '{self.dpone_conn_id}': the token endpoint returned {response.status_code}"
            )
        body = response.json()
        self._token = (body["access_token"], time.monotonic() + float(body.get("expires_in", 3600)))
        self.redactor().add_secret(self._token[0])
        return self._token[0]

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
    ) -> httpx.Response:
        """One API call with bounded retries on transport errors, 429 and 5xx."""
        attempts = int(self._extra().get("max_retries", 5)) + 1
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(attempts),
            wait=self._wait,
            retry=tenacity.retry_if_exception_type(RetryableHTTPError),
            sleep=lambda seconds: self.sleep(seconds),
            reraise=True,
        )
        return retrying(self._send, method, url, params or {}, json_body, headers or {})

    def _send(self, method: str, url: str, params: dict, json_body: Any, headers: dict) -> httpx.Response:
        params, headers = dict(params), dict(headers)
        self._auth(headers, params)
        redact = self.redactor().redact
        started = time.perf_counter()
        try:
            response = self.client().request(
                method, url, params=params or None, json=json_body, headers=headers
            )
        except httpx.TransportError as exc:
            log.warning("%s %s failed: %s (%s)", method, redact(url), redact(str(exc)), self._ids())
            raise RetryableHTTPError(
                f"{method} {redact(url)}: {type(exc).__name__}: {redact(str(exc))}"
            ) from None
        self.requests += 1
        ms = (time.perf_counter() - started) * 1000
        shown = redact(str(response.request.url))
        log.info("%s %s -> %d in %.0f ms (%s)", method, shown, response.status_code, ms, self._ids())
        status = response.status_code
        if status == 401 and self._extra().get("auth") == "oauth2" and self._token and not self._refreshed:
            self._refreshed = True  # an expired token: fetch a new one and try once more
            self._oauth_token(refresh=True)
            raise RetryableHTTPError(f"{method} {shown}: 401, token refreshed")
        if status < 400:
            self._refreshed = False
        if status in (401, 403):
            raise AuthError(
                f"{method} {shown} returned {status} {response.reason_phrase}: the API refused the "
                f"credentials of connection '{self.dpone_conn_id}' (check the key or token, its scopes "
                "and the account's access); not retried"
            )
        if status == 429 or status >= 500:
            raise RetryableHTTPError(
                f"{method} {shown} returned {status} {response.reason_phrase}", _retry_after(response)
            )
        if status >= 400:
            raise BadInputError(
                f"{method} {shown} returned {status} {response.reason_phrase}: {redact(response.text[:300])}"
            )
        return response

    def _ids(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.context.items()) or "no run context"

    # --- pages -----------------------------------------------------------------------------

    def pages(
        self,
        path: str,
        params: dict[str, Any],
        pagination: PaginationSpec,
        selector: str,
        *,
        method: str = "GET",
        body: dict | None = None,
        headers: dict | None = None,
        details: dict[str, Any] | None = None,
        start: dict[str, Any] | None = None,
        plain: bool = False,
    ) -> Iterator[tuple[list[Any], dict[str, Any] | None]]:
        """``(records, next position)`` for each page of one endpoint, to the end of its
        pagination. The position (URL and query of the next request, None after the last page)
        lets a retry continue here: pass it back as ``start``. ``plain`` reads the records at
        ``selector`` as they are (parent lists), without an API's own record shaping."""
        details = details if details is not None else {}
        kind, size = pagination.type, pagination.page_size
        if start is not None:
            url, query = start["url"], dict(start["query"])
        else:
            url, query = path.lstrip("/"), dict(params)
            if kind == "offset":
                query.update({pagination.limit_param: size, pagination.offset_param: 0})
            elif kind == "page":
                query.update({pagination.limit_param: size, pagination.page_param: pagination.first_page})
        page = 0
        while True:
            if page >= pagination.max_pages:
                log.warning("%s: stopped at the page cap (%d pages); later pages were not read", path, page)
                details["page_cap_hit"] = True
                return
            response = self.request(method, url, params=query, json_body=body, headers=headers)
            page += 1
            details["pages"] = details.get("pages", 0) + 1
            payload = self.decode(response)
            records = dig(payload, selector) if plain else self.records_of(payload, selector)
            if records is None:
                records = []
            if not isinstance(records, list):
                raise BadInputError(f"{path}: record_selector '{selector}' is not a list in the response")
            nxt = self._next(pagination, response, payload, records, url, query)
            yield records, nxt
            if nxt is None:
                return
            url, query = nxt["url"], nxt["query"]

    def decode(self, response: httpx.Response) -> Any:
        """The response body as data (JSON here; APIs answering XML or CSV override it)."""
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise BadInputError(
                f"{response.request.method} {self.redactor().redact(str(response.request.url))}: "
                f"the body is not JSON: {response.text[:200]!r}"
            ) from None

    def records_of(self, payload: Any, selector: str) -> Any:
        """The records in a decoded body (overridden where an API does not answer a list)."""
        return dig(payload, selector)

    @staticmethod
    def _next(
        pagination: PaginationSpec,
        response: Any,
        payload: Any,
        records: list,
        url: str,
        query: dict[str, Any],
    ) -> dict[str, Any] | None:
        """The request after this page, or None when this was the last one."""
        kind, size = pagination.type, pagination.page_size
        more = dig(payload, pagination.has_more_path) if pagination.has_more_path else None
        if more is False:
            return None
        if kind in ("offset", "page"):
            if len(records) < size:
                return None
            step = (
                {pagination.offset_param: query[pagination.offset_param] + size}
                if kind == "offset"
                else {pagination.page_param: query[pagination.page_param] + 1}
            )
            return {"url": url, "query": {**query, **step}}
        if kind == "cursor":
            cursor = dig(payload, pagination.cursor_path)
            if not cursor or not records:
                return None
            return {"url": url, "query": {**query, pagination.cursor_param: cursor}}
        if kind == "link_header":
            match = _LINK_NEXT.search(response.headers.get("Link", ""))
            # the next URL carries its own query
            return {"url": urljoin(str(response.request.url), match.group(1)), "query": {}} if match else None
        if kind == "next_url":
            nxt = dig(payload, pagination.next_url_path)
            return {"url": urljoin(str(response.request.url), nxt), "query": {}} if nxt else None
        return None

    # --- source ----------------------------------------------------------------------------

    def _schema(self, spec: SourceSpec) -> TableSchema:
        endpoint = spec.endpoint
        assert endpoint is not None
        columns: tuple[Column, ...] = (
            values.declared_schema(spec.fields).columns if spec.fields else (RECORD,)
        )
        if endpoint.parent:
            columns = (Column(endpoint.parent.as_, CanonicalType.STRING, True), *columns)
        keys = tuple(k for k in endpoint.primary_key if any(c.name == k for c in columns))
        return TableSchema(columns, keys)

    def _window(self, spec: SourceSpec, state: StateRecord | None) -> tuple[dict[str, Any], dict[str, Any]]:
        """The server-side filter parameter for this run, and the report's window."""
        inc, endpoint = spec.incremental, spec.endpoint
        assert endpoint is not None
        if inc is None:
            return {}, {"mode": "full"}
        if inc.mode is not IncrementalMode.CURSOR:
            raise UnsupportedError(
                f"source.incremental.mode: '{inc.mode.value}' does not apply to an endpoint"
            )
        if state is not None and not isinstance(state, CursorState):
            raise BadInputError(f"stored state is {state.kind!r} but the load uses cursor mode; reset it")
        flt = endpoint.server_filter
        assert flt is not None  # validated by the manifest
        lower = state.value if state is not None else inc.initial_value
        details = {"mode": "cursor", "cursor": flt.field, "lower": lower, "lookback_seconds": inc.lookback}
        if lower is None:
            return {}, details
        since = values.parse_timestamp(lower, aware=True) - dt.timedelta(seconds=inc.lookback)
        params = {flt.param: _format_filter(since.isoformat(), flt.format)}
        details["filter"] = params
        return params, details

    resumable = True  # the engine may pass ``resume`` and stage batch by batch

    def extract(
        self,
        spec: SourceSpec,
        state: StateRecord | None,
        *,
        accepted_formats: tuple[str, ...] = (),
        resume: dict[str, Any] | None = None,
    ) -> ExtractResult:
        """Read the endpoint lazily; with ``resume`` (a checkpoint), continue after it."""
        endpoint = spec.endpoint
        if endpoint is None:
            raise BadInputError("source.endpoint: the rest source reads an endpoint")
        schema = self._schema(spec)
        filter_params, details = self._window(spec, state)
        if resume is not None:
            details["resumed_from"] = resume
        candidate = state if spec.incremental else None
        result = ExtractResult(StreamingBatches(()), schema, candidate, details)
        batches = self._rows(spec, endpoint, filter_params, result, resume)
        if CheckpointedBatches.kind in accepted_formats:
            result.artifact = CheckpointedBatches(batches)
        else:
            result.artifact = StreamingBatches(rows for rows, _ in batches)
        return result

    def _rows(
        self,
        spec: SourceSpec,
        endpoint: EndpointSpec,
        filter_params: dict[str, Any],
        result: ExtractResult,
        resume: dict[str, Any] | None,
    ) -> Iterator[tuple[list, dict[str, Any]]]:
        """Row batches, one per page, each with the checkpoint to resume after it."""
        details = result.details
        value_schema = values.declared_schema(spec.fields) if spec.fields else TableSchema((RECORD,))
        cursor = endpoint.server_filter.field if endpoint.server_filter and spec.incremental else None
        resume = resume or {}
        newest = values.parse_timestamp(resume["newest"], aware=True) if resume.get("newest") else None
        sent = int(resume.get("rows", 0))
        for index, (parent_value, path, params, body) in enumerate(
            self._targets(endpoint, filter_params, details)
        ):
            start = None
            if index < resume.get("target", 0):
                continue  # finished before the failure
            if index == resume.get("target"):
                if resume.get("next") is None:
                    continue
                start = resume["next"]
            for records, nxt in self.pages(
                path,
                params,
                endpoint.pagination,
                endpoint.record_selector,
                method=endpoint.method,
                body=body,
                headers=endpoint.headers,
                details=details,
                start=start,
            ):
                batch = []
                for record in records:
                    if not isinstance(record, dict):
                        raise BadInputError(f"{path}: a record is not a JSON object")
                    row = (
                        values.row_of(value_schema, record)
                        if spec.fields
                        else [values.coerce(RECORD, record)]
                    )
                    if endpoint.parent:
                        row = [parent_value, *row]
                    if cursor is not None and record.get(cursor) is not None:
                        seen = values.parse_timestamp(record[cursor], aware=True)
                        newest = seen if newest is None or seen > newest else newest
                    batch.append(row)
                sent += len(batch)
                checkpoint = {
                    "target": index,
                    "next": nxt,
                    "newest": None if newest is None else newest.isoformat(),
                    "rows": sent,
                }
                yield batch, checkpoint
        details.update(source_rows=sent, requests=self.requests)
        if cursor is not None:
            lower = details.get("lower")
            if newest is not None and (lower is None or values.parse_timestamp(lower, aware=True) < newest):
                result.state_candidate = CursorState(
                    cursor=cursor, value=newest.isoformat(), value_type="timestamptz"
                )
            candidate = result.state_candidate
            details["upper"] = candidate.value if isinstance(candidate, CursorState) else lower

    def _targets(
        self, endpoint: EndpointSpec, filter_params: dict[str, Any], details: dict[str, Any]
    ) -> Iterator[tuple[Any, str, dict[str, Any], Any]]:
        """(parent value, path, params, body) per request series: one, or one per parent record."""
        params = {**endpoint.params, **filter_params}
        parent = endpoint.parent
        if parent is None:
            yield None, endpoint.path, params, endpoint.body
            return
        fanned = 0
        for records, _ in self.pages(
            parent.path, parent.params, parent.pagination, parent.record_selector, details=details, plain=True
        ):
            for record in records:
                value = dig(record, parent.field)
                if value is None:
                    continue
                fanned += 1
                details["parents"] = fanned
                yield (
                    str(value),
                    endpoint.path.replace("{" + parent.as_ + "}", str(value)),
                    params,
                    endpoint.body,
                )

    def plan_extract(self, spec: SourceSpec, state: StateRecord | None) -> tuple[dict[str, Any], TableSchema]:
        endpoint = spec.endpoint
        assert endpoint is not None
        filter_params, details = self._window(spec, state)
        schema = self._schema(spec)
        plan = {
            "request": f"{endpoint.method} {self.base_url()}{endpoint.path.lstrip('/')}",
            "params": {**endpoint.params, **filter_params},
            "pagination": endpoint.pagination.model_dump(),
            "window": details,
            "schema": [{"name": c.name, "type": c.type.value} for c in schema.columns],
        }
        return plan, schema

    def extract_keys(
        self, spec: SourceSpec, keys: list[str], *, accepted_formats: tuple[str, ...] = ()
    ) -> ExtractResult:
        keyed = spec.model_copy(update={"incremental": None})
        return self.extract(keyed, None, accepted_formats=accepted_formats)

    def probe(self, spec: SourceSpec, state: StateRecord | None = None) -> int:
        """Records on the first page past the stored watermark (the sensor's question)."""
        endpoint = spec.endpoint
        assert endpoint is not None
        filter_params, _ = self._window(spec, state)
        for records, _ in self.pages(
            endpoint.path, {**endpoint.params, **filter_params}, endpoint.pagination, endpoint.record_selector
        ):
            return len(records)
        return 0
