"""SaaS API sources: a catalog of resources declared as data, read by the generic REST hook.

Each vendor module in ``apis/`` declares an :class:`ApiSource` (base URL, auth, body format,
rate limits) and its :class:`Resource` catalog (path, params, pagination, typed fields, primary
key, the server-side incremental filter if the API has one), and a hook class bound to it.
A manifest names a resource and its options:

    source: {connector: cbr, conn_id: cbr, resource: daily_rates, options: {start_date: 2026-01-01}}

Each extract reads its resource through a :class:`ResourceRead` handed down the hook's methods;
the hook itself keeps no per-extract state.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal
from xml.etree import ElementTree

from ..contracts import records as values
from ..contracts.artifacts import ExtractResult
from ..contracts.certification import Level
from ..contracts.connectors import CONNECTORS
from ..contracts.errors import BadInputError, UnsupportedError
from ..contracts.sources import (
    EndpointSource,
    EndpointSpec,
    PaginationSpec,
    ResourceSource,
    SourceSpec,
    source_of,
)
from ..contracts.state import StateRecord
from ..hooks.rest import DponeRestHook, Read
from ..hooks.rest_http import public_url
from ..sql.extract_plan import CursorPlan, bound_cursor
from .async_export import AsyncExport, ExportReader

_PLACEHOLDER = re.compile(r"\{(\w+)\}")
Targets = Callable[[dict[str, Any], dict[str, Any]], list[tuple[str, dict[str, Any]]]]


@dataclass(frozen=True)
class Resource:
    """One readable resource of an API."""

    name: str
    path: str  # may use {option} placeholders, filled from ``source.options``
    fields: dict[str, str]  # typed fields of a record (canonical type names)
    primary_key: tuple[str, ...]
    description: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    record_selector: str = ""
    pagination: dict[str, Any] = field(default_factory=dict)
    # The API's own filter: {param, field, format}. None: read in full every run.
    server_filter: dict[str, Any] | None = None
    records: Callable[[Any], list[dict[str, Any]]] | None = None  # decoded body -> records
    # (options, server-filter params) -> [(path, params)]: one request series per target,
    # e.g. one per day of a date range. None: the one path.
    targets: Targets | None = None
    required_options: tuple[str, ...] = ()
    method: str = "GET"
    # (options, server-filter params) -> the JSON body of each request (e.g. a query language)
    body: Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]] | None = None
    # Fan-out: {path, record_selector, field, as} of the parent resource (placeholders filled too)
    parent: dict[str, Any] | None = None
    # Drop records whose primary key was already read in this run (APIs that answer a
    # non-working day with the previous day's data).
    distinct: bool = False
    # A background export (start, poll, download files) instead of pages of records.
    export: AsyncExport | None = None
    # The watermark is the end of the window asked for (``until`` in the server-filter params),
    # not a field of the records: for APIs that filter on a change time they do not return.
    window_end: bool = False
    # (options) -> why an incremental_append without unique_key would load rows twice (the
    # resource reads some again on every run), or "" when it would not: such a load is refused.
    rereads: Callable[[Mapping[str, Any]], str] | None = None
    # A next link or redirect to another origin: ``fail``, or ``follow_without_credentials`` for
    # an API known to hand over to another host. Set by the catalog, not by manifests.
    cross_origin: Literal["fail", "follow_without_credentials"] = "fail"


@dataclass(frozen=True, eq=False)
class ResourceRead(Read):
    """One extract of a resource: the endpoint read (``Read``), the catalog's resource, the
    manifest's options, and the primary keys read so far (a ``distinct`` resource's own)."""

    resource: Resource
    options: Mapping[str, Any]
    seen: set[tuple] = field(default_factory=set)

    def records(self, payload: Any, selector: str) -> Any:
        res = self.resource
        records = res.records(payload) if res.records else super().records(payload, selector)
        if not res.distinct or not isinstance(records, list):
            return records
        fresh = []
        for record in records:
            key = tuple(record.get(k) for k in res.primary_key)
            if key not in self.seen:
                self.seen.add(key)
                fresh.append(record)
        return fresh


def resource_read(read: Read) -> ResourceRead:
    """``read`` as the resource read :meth:`ApiHook.read_of` built (an API hook reads nothing else)."""
    if not isinstance(read, ResourceRead):
        raise TypeError(f"an API hook reads resources, not a {type(read).__name__}")
    return read


@dataclass(frozen=True)
class ApiSource:
    name: str
    title: str
    base_url: str
    docs_url: str
    auth: str  # how to fill the connection, for the docs
    extra: dict[str, Any]  # connection extras every call needs (auth kind, key parameter)
    resources: dict[str, Resource]
    rate_limits: str
    body_format: str = "json"  # json | xml | csv
    # a required option another option can stand for (the hook turns it into the required one)
    option_aliases: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def certification(self) -> Level:
        """Its seed 002 level, declared with its evidence in contracts/certifications.py (one
        declaration per connector; ``dpone certify`` checks that the evidence earns it)."""
        return CONNECTORS[self.name].certification


class ApiHook(DponeRestHook):
    """The REST hook bound to one API's catalog; its default connection id is the API's name."""

    api: ApiSource

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "api" in cls.__dict__:
            cls.default_conn_name = cls.api.name

    def __init__(self, http_conn_id: str | None = None, *, conn_id: str | None = None, **kwargs: Any) -> None:
        """``http_conn_id`` (what Airflow passes) or its alias ``conn_id``; other keyword
        arguments go to DponeRestHook."""
        super().__init__(http_conn_id, conn_id=conn_id, **kwargs)

    def _conn(self) -> Any:
        """The connection; an API without authentication also works without one."""
        try:
            return super()._conn()
        except Exception:
            if self.api.extra.get("auth", "none") != "none":
                raise
            from airflow.models.connection import Connection

            return Connection(conn_id=self.dpone_conn_id, conn_type="http")

    def base_url(self) -> str:
        return super().base_url() if self._conn().host else self.api.base_url.rstrip("/") + "/"

    def _read_extra(self) -> dict[str, Any]:
        return {**self.api.extra, **super()._read_extra()}

    def resource(self, spec: SourceSpec) -> Resource:
        name = source_of(spec, ResourceSource, spec.connector).resource
        if name not in self.api.resources:
            raise BadInputError(
                f"source.resource: '{name}' is not a resource of {self.api.title}; "
                f"allowed: {', '.join(sorted(self.api.resources))}"
            )
        found = self.api.resources[name]
        missing = [
            o
            for o in found.required_options
            if o not in source_of(spec, ResourceSource, spec.connector).options
        ]
        if missing:
            raise BadInputError(f"source.options: resource '{name}' needs {missing}")
        return found

    def read_of(self, spec: SourceSpec) -> ResourceRead:
        """The read of ``spec``'s resource: its endpoint, fields and the manifest's options."""
        effective = self.effective(spec)
        options = source_of(spec, ResourceSource, spec.connector).options
        res, inc = self.resource(spec), spec.incremental
        why = res.rereads(options) if res.rereads and inc and inc.at_watermark == "skip" else ""
        if why:  # an unkeyed append would load the re-read rows a second time
            raise BadInputError(
                f"sink: {self.api.title} '{res.name}' {why}, so an incremental_append without "
                f"sink.unique_key would load them twice; merge it (incremental_merge, unique_key "
                f"{list(res.primary_key) or 'of your choice'})"
            )
        return ResourceRead(effective, effective.endpoint, self.resource(spec), dict(options))

    def effective(self, spec: SourceSpec) -> EndpointSource:
        """``spec`` as a plain endpoint read: the resource's endpoint and typed fields."""
        res = self.resource(spec)
        spec = source_of(spec, ResourceSource, spec.connector)
        if spec.incremental is not None and res.server_filter is None:
            raise UnsupportedError(
                f"source.incremental: {self.api.title} '{res.name}' has no server-side filter, so it is "
                "read in full every run; remove source.incremental"
            )
        filtered = res.server_filter
        if spec.incremental is not None and filtered and spec.incremental.cursor != filtered["field"]:
            raise BadInputError(
                f"source.incremental.cursor: {self.api.title} '{res.name}' filters on "
                f"'{filtered['field']}', not '{spec.incremental.cursor}'"
            )

        def fill(text: str) -> str:
            return _PLACEHOLDER.sub(lambda m: str(spec.options.get(m.group(1), m.group(0))), text)

        path = fill(res.path)
        parent = dict(res.parent) if res.parent else None
        if parent:
            parent["path"] = fill(parent["path"])
            open_parts = [p for p in _PLACEHOLDER.findall(path) if p != parent.get("as")]
        else:
            open_parts = _PLACEHOLDER.findall(path)
        if res.targets is None and (open_parts or (parent and _PLACEHOLDER.search(parent["path"]))):
            missing = open_parts + (_PLACEHOLDER.findall(parent["path"]) if parent else [])
            raise BadInputError(f"source.options: resource '{res.name}' needs {sorted(set(missing))}")
        params = {k: spec.options.get(k, v) for k, v in res.params.items()}
        endpoint = EndpointSpec.model_validate(
            {
                "path": path,
                "params": {k: v for k, v in params.items() if v is not None},
                "record_selector": res.record_selector,
                "primary_key": list(res.primary_key),
                "pagination": res.pagination,
                "server_filter": res.server_filter,
                "parent": parent,
                "method": res.method,
                "cross_origin": res.cross_origin,
            }
        )
        # Resources whose columns the user defines (a spreadsheet) take them from source.fields.
        fields = spec.fields or res.fields or None
        return EndpointSource(
            connector=spec.connector,
            conn_id=spec.conn_id,
            incremental=spec.incremental,
            batch_size=spec.batch_size,
            endpoint=endpoint,
            fields=fields,
            requests_per_second=spec.requests_per_second,
        )

    def probe(self, spec: SourceSpec, state: StateRecord | None = None) -> int:
        if self.resource(spec).export is not None:
            raise UnsupportedError(
                f"{self.api.title} '{spec.object_name}' is a background export: there is no cheap "
                "request that tells whether new data exists, so the sensor does not apply"
            )
        return super().probe(spec, state)

    def pages(
        self,
        path: str,
        params: dict[str, Any],
        pagination: PaginationSpec,
        selector: str,
        *,
        read: Read | None = None,
        **kwargs: Any,
    ) -> Iterator[tuple[list[Any], dict[str, Any] | None]]:
        resource = None if read is None or kwargs.get("plain") else resource_read(read)
        if resource is None or resource.resource.export is None:
            return super().pages(path, params, pagination, selector, read=read, **kwargs)
        # the export's start, polls and downloads wait for the load's pace like any request
        reader = ExportReader.of(
            self, resource.resource.export, resource.options, resource.spec.requests_per_second
        )
        details = kwargs.get("details")
        return reader.pages(
            path,
            params,
            method=kwargs.get("method", "GET"),
            body=kwargs.get("body"),
            headers=kwargs.get("headers"),
            details={} if details is None else details,
            start=kwargs.get("start"),
            batch_rows=pagination.page_size,
        )

    def _rows(
        self,
        read: Read,
        filter_params: dict[str, Any],
        result: ExtractResult,
        resume: dict[str, Any] | None,
        plan: CursorPlan | None,
    ) -> Iterator[tuple[list, dict[str, Any]]]:
        read = resource_read(read)
        if not read.resource.window_end:
            yield from super()._rows(read, filter_params, result, resume, plan)
            return
        # The window's end is fixed once per run: a retry reads the same window it started.
        until = (resume or {}).get("until")
        if until is None and read.options.get("end_date"):
            end = values.parse_timestamp(str(read.options["end_date"]), aware=True)
            until = end.astimezone(dt.timezone.utc).isoformat()
        if until is None:
            until = dt.datetime.now(dt.timezone.utc).replace(second=0, microsecond=0).isoformat()
        # the watermark is the window's end, not a record's: nothing before it is known as loaded
        unskipped = None if plan is None else replace(plan, skip_loaded=False)
        for batch, checkpoint in super()._rows(
            read, {**filter_params, "until": until}, result, resume, unskipped
        ):
            yield batch, {**checkpoint, "until": until}
        result.details["until"] = until
        if plan is not None:  # the window's end is the upper bound, whatever the records said
            window = bound_cursor(plan, until)
            result.state_candidate = window.candidate
            result.details["upper"] = window.upper

    def dataset(self, table: str) -> dict[str, str]:
        return {"namespace": public_url(self.api.base_url), "name": table}

    def decode(self, response: Any) -> Any:
        if self.api.body_format == "xml":
            try:
                return ElementTree.fromstring(response.content)  # honours the declared encoding
            except ElementTree.ParseError as exc:
                raise BadInputError(f"{self.api.title}: the response is not XML: {exc}") from None
        if self.api.body_format == "csv":
            return list(csv.DictReader(io.StringIO(response.text)))
        return super().decode(response)

    def _targets(
        self, read: Read, filter_params: dict[str, Any], details: dict[str, Any]
    ) -> Iterator[tuple[Any, str, dict[str, Any], Any]]:
        read = resource_read(read)
        res, options = read.resource, dict(read.options)
        body = res.body(options, filter_params) if res.body else None
        if res.targets is None:
            for parent_value, path, params, default_body in super()._targets(read, filter_params, details):
                yield parent_value, path, params, body if body is not None else default_body
            return
        for path, params in res.targets(options, filter_params):
            yield None, path, {**read.endpoint.params, **params}, body


def day_range(options: dict[str, Any], since: str | None, *, default_days: int = 7) -> list[dt.date]:
    """The days to read: from the watermark (or ``start_date``, or the last ``default_days``)
    through ``end_date`` (default today)."""
    today = dt.date.today()
    end = dt.date.fromisoformat(str(options["end_date"])) if options.get("end_date") else today
    if since:
        start = dt.date.fromisoformat(str(since)[:10])
    elif options.get("start_date"):
        start = dt.date.fromisoformat(str(options["start_date"]))
    else:
        start = end - dt.timedelta(days=default_days - 1)
    if start > end:
        return []
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
