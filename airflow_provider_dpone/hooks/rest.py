"""Generic REST API source: endpoints declared as data, paginated, authenticated, retried.

The connection is the official HTTP provider's ``http`` connection: host (with scheme, or the
``schema`` field), port, login, password, and extras:

- ``auth``: ``none`` | ``bearer`` (password is the token) | ``basic`` | ``api_key`` (password is the
  key, sent in header ``api_key_header`` or query parameter ``api_key_param``) | ``oauth2``
  (client credentials: login/password are the client id/secret, ``token_url``, ``scope``);
- ``headers``, ``timeout`` (s), ``max_retries``, ``max_response_bytes`` (100 MB).

Credentials (auth and the ``headers`` extra) go only to the origin of the connection's URL;
redirects are followed hop by hop to enforce it (``rest_transport``: the HTTP side of the hook;
``rest_auth``: one class per ``auth`` type; ``rest_paginators``: one class per pagination type;
``rest_pages``: the page guards). Each extract's read (``rest_pages.Read``) is passed down the
methods: the hook keeps no per-extract state. Every request is logged with the pipeline, load and
run ids and its timing, secrets masked. Transport errors, 429 and 5xx are retried (bounded,
honouring ``Retry-After``); 401 and 403 fail the task without Airflow retries and say what to fix.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Iterator
from typing import Any

from ..contracts.errors import MissingExtraError

try:
    import httpx
    from airflow.sdk import BaseHook
except ImportError as _exc:  # pragma: no cover - exercised by the missing-extra test
    raise MissingExtraError(_exc.name or "httpx", "rest") from None

from ..contracts import records as values
from ..contracts.artifacts import CheckpointedBatches, ExtractResult, StreamingBatches
from ..contracts.errors import BadInputError, SourceContractError, UnsupportedError
from ..contracts.sources import EndpointSource, PaginationSpec, SourceSpec, source_of
from ..contracts.state import StateRecord
from ..contracts.strategies import IncrementalMode
from ..contracts.table import CanonicalType, Column, TableSchema
from ..sql.extract_plan import CursorPlan, advance_cursor, plan_cursor
from .connection import conn_id_of, probe
from .rest_http import AuthError as AuthError  # re-exported: hooks.rest is the public module
from .rest_http import RetryableHTTPError as RetryableHTTPError
from .rest_http import headers_only, public_url
from .rest_pages import LoopGuard, MissingKey, Read, body_digest, dig, has_path, missing_selector
from .rest_paginators import Page, paginator_for
from .rest_transport import RestTransport

log = logging.getLogger(__name__)

RECORD = Column("record", CanonicalType.JSON, True)


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


class DponeRestHook(RestTransport, BaseHook):
    """Reads declared endpoints of a REST API as rows."""

    conn_name_attr = "http_conn_id"
    default_conn_name = "http_default"
    conn_type = "dpone_rest"
    hook_name = "dpone REST API"

    def __init__(
        self,
        http_conn_id: str | None = None,
        *,
        conn_id: str | None = None,
        context: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        """``http_conn_id`` (what Airflow passes) or its alias ``conn_id``; other keyword
        arguments go to BaseHook."""
        super().__init__(**kwargs)
        self.http_conn_id = conn_id_of(self, http_conn_id, conn_id)
        self.context = context or {}  # pipeline, load and run ids for the request log
        # the HTTP side's state (declared in RestTransport)
        self._client = self._authenticator = self._connection = self._extras = self._redactor = None
        self._refreshed = False
        self._paces = {}
        self.requests = 0
        self.sleep = time.sleep  # tests may shorten the waits
        self.clock = time.monotonic

    def test_connection(self) -> tuple[bool, str]:
        """The UI's Test button: one authenticated GET of the base URL, or of extra
        ``test_path`` (an endpoint that answers cheaply); fails on an error status. No
        credential in the message."""

        return probe(self.redactor(), self.probe_request)

    def probe_request(self) -> str:
        """One authenticated GET of extra ``test_path`` (else the base URL), as the Test button
        and ``dpone doctor`` send it; what it answered. Raises the hook's errors: ``AuthError``
        (401/403), ``RetryableHTTPError`` (unreachable, 429, 5xx), ``BadInputError`` (other)."""
        path = str(self._extra().get("test_path") or "").lstrip("/")
        response = self._send("GET", path, {}, None, {}, "fail")
        said = f"GET {response.request.url} returned {response.status_code} {response.reason_phrase}"
        return str(self.redactor().redact(said))  # a key sent as a query parameter stays masked

    def bind_run(self, ctx: Any) -> None:
        self.context = {"pipeline": ctx.pipeline, "load": ctx.load.name, "run_id": ctx.run_id}

    def dataset(self, table: str) -> dict[str, str]:
        return {"namespace": public_url(self.base_url()), "name": table}

    # --- pages -----------------------------------------------------------------------------

    def pages(
        self,
        path: str,
        params: dict[str, Any],
        pagination: PaginationSpec,
        selector: str,
        *,
        read: Read | None = None,
        method: str = "GET",
        body: dict | None = None,
        headers: dict | None = None,
        details: dict[str, Any] | None = None,
        start: dict[str, Any] | None = None,
        plain: bool = False,
        cross_origin: str = "fail",
        required: bool = True,
    ) -> Iterator[tuple[list[Any], dict[str, Any] | None]]:
        """``(records, next position)`` for each page of one endpoint, to the end of its
        pagination. The position (URL and query of the next request, None after the last page)
        lets a retry continue here: pass it back as ``start``. ``read`` shapes the records (an
        API's record function); ``plain`` reads them at ``selector`` as they are (parent lists).

        Fail with ``SourceContractError``: a ``selector`` absent from the first page when
        ``required`` (the load's first page; a fan-out child or a later request series may
        leave it out: no records), or from a page whose pagination continues; a position
        requested twice or a page body read twice (a loop). An empty body (204) has no records.
        A page's objects are released before the next request."""
        details = details if details is not None else {}
        paginator = paginator_for(pagination)
        if start is not None:
            url, query = start["url"], dict(start["query"])
        else:
            url, query = path.lstrip("/"), paginator.first(params)
        page = 0
        loops = LoopGuard(path, paginator.type, self._position(url, query))
        while True:
            if page >= pagination.max_pages:  # more pages follow: loading these would cut the data
                details["page_cap_hit"] = True
                raise SourceContractError(
                    f"{path}: stopped at the page cap ({page} pages) with more pages to read; nothing "
                    "is loaded from a cut read: raise pagination.max_pages or filter the request"
                )
            response = self.request(
                method,
                url,
                params=query,
                json_body=body,
                headers=headers,
                cross_origin=cross_origin,
                pace=None if read is None else read.spec.requests_per_second,
            )
            page += 1
            details["pages"] = details.get("pages", 0) + 1
            empty = not response.content  # 204, or no body: no records
            digest = body_digest(response.content)
            payload = None if empty else self.decode(response)
            response = headers_only(response)  # the body's bytes dropped once decoded
            records = [] if empty else self._records(read, path, selector, payload, plain, page)
            missing = records is None and not has_path(payload, selector)
            if not empty and not plain:  # how many pages carried the selector's key (fan-outs check it)
                seen = "selector_missing" if missing else "selector_found"
                details[seen] = details.get(seen, 0) + 1
            if records is None:
                records = []  # null, or a page without the key (checked below): no records
            if not isinstance(records, list):
                raise BadInputError(f"{path}: record_selector '{selector}' is not a list in the response")
            nxt = paginator.next(Page(response, payload, records, url, query))
            if missing and page == 1 and required and start is None:
                raise missing_selector(path, selector, payload, self.redactor().redact)
            if missing and nxt is not None:
                where = f"page {page}, whose pagination continues"
                raise missing_selector(path, selector, payload, self.redactor().redact, where)
            if nxt is not None:
                position = self._position(nxt["url"], nxt["query"])
                loops.check(position, page, self.redactor().redact(position))
            if records:  # empty pages may repeat (an empty list under advancing links)
                loops.check_body(digest, page)
            yield records, nxt
            del payload, records  # the page is the consumer's now: not held during the next request
            if nxt is None:
                return
            url, query = nxt["url"], nxt["query"]

    def _records(
        self, read: Read | None, path: str, selector: str, payload: Any, plain: bool, page: int
    ) -> Any:
        """The records of one decoded page (None: the selector's key is absent or null); an
        API's record function missing its key fails naming the path and the keys present."""
        if plain or read is None:
            return dig(payload, selector)
        try:
            return read.records(payload, selector)
        except MissingKey as exc:
            raise SourceContractError(f"{path}: page {page}: {self.redactor().redact(exc.message)}") from None

    def _position(self, url: str, query: dict[str, Any]) -> str:
        """The full URL a page position requests (before credentials are attached)."""
        return str(self.client().build_request("GET", url, params=query or None).url)

    def decode(self, response: httpx.Response) -> Any:
        """The response body as data (JSON here; APIs answering XML or CSV override it)."""
        if not response.content:
            return None
        try:
            return json.loads(response.content)  # from the bytes: no text copy of the body
        except ValueError:
            head = response.content[:200].decode("utf-8", errors="replace")
            raise BadInputError(
                f"{response.request.method} {self.redactor().redact(str(response.request.url))}: "
                f"the body is not JSON: {self.redactor().redact(head)!r}"
            ) from None

    # --- source ----------------------------------------------------------------------------

    def read_of(self, spec: SourceSpec) -> Read:
        """The read of ``spec`` (API catalogs: of its resource), built once per extract."""
        read = source_of(spec, EndpointSource, spec.connector)
        return Read(read, read.endpoint)

    def _schema(self, spec: EndpointSource) -> TableSchema:
        endpoint = spec.endpoint
        columns: tuple[Column, ...] = (
            values.declared_schema(spec.fields).columns if spec.fields else (RECORD,)
        )
        if endpoint.parent:
            columns = (Column(endpoint.parent.as_, CanonicalType.STRING, True), *columns)
        keys = tuple(k for k in endpoint.primary_key if any(c.name == k for c in columns))
        return TableSchema(columns, keys)

    def _window(
        self, spec: EndpointSource, state: StateRecord | None
    ) -> tuple[dict[str, Any], CursorPlan | None, dict[str, Any]]:
        """The server-side filter parameter for this run, the cursor's plan, the report's window."""
        inc, endpoint = spec.incremental, spec.endpoint
        if inc is None:
            return {}, None, {"mode": "full"}
        if inc.mode is not IncrementalMode.CURSOR:
            raise UnsupportedError(
                f"source.incremental.mode: '{inc.mode.value}' does not apply to an endpoint"
            )
        flt = endpoint.server_filter
        assert flt is not None  # validated by the manifest
        plan = plan_cursor(inc, state, Column(flt.field, CanonicalType.TIMESTAMPTZ), no_chunks="rest")
        details = plan.details()
        since = plan.since()
        if since is None:
            return {}, plan, details
        params = {flt.param: _format_filter(since.isoformat(), flt.format)}
        details["filter"] = params
        return params, plan, details

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
        read = self.read_of(spec)
        schema = self._schema(read.spec)
        filter_params, plan, details = self._window(read.spec, state)
        if resume is not None:
            details["resumed_from"] = resume
        result = ExtractResult(StreamingBatches(()), schema, plan.state if plan else None, details)
        batches = self._rows(read, filter_params, result, resume, plan)
        if CheckpointedBatches.kind in accepted_formats:
            result.artifact = CheckpointedBatches(batches)
        else:
            result.artifact = StreamingBatches(rows for rows, _ in batches)
        return result

    def _rows(
        self,
        read: Read,
        filter_params: dict[str, Any],
        result: ExtractResult,
        resume: dict[str, Any] | None,
        plan: CursorPlan | None,
    ) -> Iterator[tuple[list, dict[str, Any]]]:
        """Row batches, one per page, each with the checkpoint to resume after it. Once drained,
        the rows sent go to ``result.stats``, and the newest cursor value seen past the lower
        bound becomes the state candidate."""
        spec, endpoint, details = read.spec, read.endpoint, result.details
        value_schema = values.declared_schema(spec.fields) if spec.fields else TableSchema((RECORD,))
        cursor = plan.cursor if plan else None
        resume = resume or {}
        newest = values.parse_timestamp(resume["newest"], aware=True) if resume.get("newest") else None
        sent = int(resume.get("rows", 0))
        for index, (parent_value, path, params, body) in enumerate(
            self._targets(read, filter_params, details)
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
                read=read,
                method=endpoint.method,
                body=body,
                headers=endpoint.headers,
                details=details,
                start=start,
                cross_origin=endpoint.cross_origin,
                # the load's first page must carry the selector; a fan-out child may leave it out
                required=not resume and index == 0 and endpoint.parent is None,
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
                        if plan is not None and plan.already_loaded(str(record[cursor])):
                            details["already_loaded"] = details.get("already_loaded", 0) + 1
                            continue  # handed back by a coarse filter (its day): not loaded twice
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
                del records, batch  # not held while the next page is read
        if (
            endpoint.parent
            and not resume
            and details.get("selector_missing", 0) >= 2
            and not details.get("selector_found")
        ):
            # One child without the key is a parent with no records; all of several is a renamed key.
            raise SourceContractError(
                f"{endpoint.path}: record_selector '{endpoint.record_selector}' matches nothing in any "
                f"of the {details['selector_missing']} child page(s) read; point record_selector at "
                "the list of records"
            )
        result.stats.source_rows = sent
        details["requests"] = self.requests
        if plan is not None:
            window = advance_cursor(plan, None if newest is None else newest.isoformat())
            result.state_candidate = window.candidate
            details["upper"] = window.upper

    def _targets(
        self, read: Read, filter_params: dict[str, Any], details: dict[str, Any]
    ) -> Iterator[tuple[Any, str, dict[str, Any], Any]]:
        """(parent value, path, params, body) per request series: one, or one per parent record."""
        endpoint = read.endpoint
        params = {**endpoint.params, **filter_params}
        parent = endpoint.parent
        if parent is None:
            yield None, endpoint.path, params, endpoint.body
            return
        fanned = 0
        for records, _ in self.pages(  # with the load's read: the parent list takes its pace too
            parent.path,
            parent.params,
            parent.pagination,
            parent.record_selector,
            read=read,
            details=details,
            plain=True,
            cross_origin=endpoint.cross_origin,
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
        read = self.read_of(spec)
        endpoint = read.endpoint
        filter_params, _, details = self._window(read.spec, state)
        schema = self._schema(read.spec)
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
        """Records on the first page past the stored watermark (the sensor's question), asked
        of each request series the load would send (a fan-out's children, a catalog's domains
        or hosts) with its method and body, until one has any."""
        read = self.read_of(spec)
        endpoint = read.endpoint
        filter_params, _, details = self._window(read.spec, state)
        for _, path, params, body in self._targets(read, filter_params, details):
            for records, _ in self.pages(
                path,
                params,
                endpoint.pagination,
                endpoint.record_selector,
                read=read,
                method=endpoint.method,
                body=body,
                headers=endpoint.headers,
                details=details,
                cross_origin=endpoint.cross_origin,
            ):
                if records:
                    return len(records)
                break  # the first page answers for its series
        return 0
