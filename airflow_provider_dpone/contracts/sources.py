"""A load's source, one kind per object it reads: a table or a query (databases), a topic
(Kafka), an endpoint (REST) or a resource (SaaS catalogs), as a discriminated union. Each
kind has only its own keys; what every kind takes (connector, incremental, batch size) is on
the base. Pure: no I/O.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import Discriminator, Field, Tag, TypeAdapter, field_validator, model_validator

from .durations import parse_duration, parse_size
from .errors import BadInputError
from .spec_base import Strict, check_connector, check_table
from .strategies import CHANGE_MODES, IncrementalMode
from .table import column_from_type_name


class IncrementalSpec(Strict):
    mode: IncrementalMode
    cursor: str | None = None
    lookback: float = 0.0  # seconds
    initial_value: str | None = None
    # Backfill in resumable chunks: a duration for date/time cursors, a number for numeric ones.
    chunk: float | None = None
    # State says rows were loaded but the target is missing: fail, or read the source in full.
    on_target_missing: Literal["fail", "full_extract"] = "fail"
    # No state, but the target already holds rows (an append would load them twice): fail, or
    # take the watermark from the target's max(cursor) (cursor mode only).
    on_state_missing: Literal["fail", "from_target"] = "fail"
    # API sources: records the API hands back at or before the stored watermark (its filter is
    # coarser than the cursor): skip them (already loaded) or read them again (merged). Set by
    # the load when not given: skip for an incremental_append without unique_key, else read.
    at_watermark: Literal["skip", "read"] | None = None
    # cdc mode on SQL Server: the capture instance to read (default: <schema>_<table>).
    capture_instance: str | None = None
    # cdc mode on PostgreSQL: the load's logical replication slot and publication (default:
    # dpone_<pipeline>_<load> and a hash; created on the first run).
    slot: str | None = None
    publication: str | None = None
    # cdc mode on PostgreSQL: WAL the slot may hold back on the source (bytes, or '10GB') before
    # its health check fails (dpone cdc status, the slot sensor); a run over it warns
    max_retained_wal: int | None = None

    @field_validator("lookback", mode="before")
    @classmethod
    def _lookback(cls, value: Any) -> float:
        return parse_duration(value)

    @field_validator("max_retained_wal", mode="before")
    @classmethod
    def _max_retained_wal(cls, value: Any) -> int | None:
        return None if value is None else parse_size(value)

    @field_validator("chunk", mode="before")
    @classmethod
    def _chunk(cls, value: Any) -> float | None:
        if value is None:
            return None
        size = parse_duration(value)
        if size <= 0:
            raise ValueError("a chunk must be greater than 0")
        return size

    @model_validator(mode="after")
    def _needs_cursor(self) -> IncrementalSpec:
        if self.mode is IncrementalMode.CURSOR and not self.cursor:
            raise ValueError("incremental mode 'cursor' needs 'cursor: <column>'")
        if self.mode is not IncrementalMode.CURSOR and self.cursor:
            raise ValueError(f"'cursor' only applies to mode 'cursor', not '{self.mode.value}'")
        if self.mode is not IncrementalMode.CURSOR and self.chunk:
            raise ValueError(f"'chunk' splits a cursor range; it does not apply to mode '{self.mode.value}'")
        for name in ("capture_instance", "slot", "publication", "max_retained_wal"):
            if getattr(self, name) and self.mode is not IncrementalMode.CDC:
                raise ValueError(f"'{name}' only applies to mode 'cdc', not '{self.mode.value}'")
        if self.mode in CHANGE_MODES and (self.lookback or self.initial_value):
            raise ValueError(
                f"mode '{self.mode.value}' reads from its stored position exactly; 'lookback' and "
                "'initial_value' apply to mode 'cursor'"
            )
        if self.mode in (IncrementalMode.XMIN, IncrementalMode.OFFSETS) and self.lookback:
            raise ValueError(
                f"mode '{self.mode.value}' reads from its stored position; 'lookback' applies to "
                "mode 'cursor' (it would be ignored)"
            )
        if self.mode is IncrementalMode.XMIN and self.initial_value:
            raise ValueError(
                "mode 'xmin' starts with a full read of the table; 'initial_value' applies to modes "
                "'cursor' and 'offsets' (it would be ignored)"
            )
        if self.mode is IncrementalMode.OFFSETS and self.initial_value not in (None, "earliest", "latest"):
            raise ValueError(
                f"mode 'offsets' starts a new consumer at 'earliest' or 'latest', not {self.initial_value!r}"
            )
        if self.mode is not IncrementalMode.CURSOR and self.on_state_missing == "from_target":
            raise ValueError(
                f"'on_state_missing: from_target' reads max(cursor) from the target; mode "
                f"'{self.mode.value}' has no cursor there"
            )
        return self


class WindowSpec(Strict):
    """A bounded range of one column: ``start <= column < end`` (values are parameters)."""

    column: str
    start: str
    end: str


class PaginationSpec(Strict):
    """How an endpoint pages: by offset, page number, a cursor in the body, the Link header or a
    next URL in the body. ``max_pages`` is a hard cap; a read that reaches it with pages left fails."""

    type: Literal["none", "offset", "page", "cursor", "link_header", "next_url"] = "none"
    page_size: int = Field(default=100, gt=0)
    limit_param: str = "limit"
    offset_param: str = "offset"
    page_param: str = "page"
    first_page: int = 1
    cursor_param: str = "cursor"
    cursor_path: str | None = None  # where the next cursor is in the body, e.g. meta.next_cursor
    next_url_path: str | None = None  # where the next URL is in the body, e.g. links.next
    has_more_path: str | None = None  # optional flag in the body that says more pages follow
    max_pages: int = Field(default=10_000, gt=0)

    @model_validator(mode="after")
    def _paths(self) -> PaginationSpec:
        if self.type == "cursor" and not self.cursor_path:
            raise ValueError("pagination type 'cursor' needs 'cursor_path' (where the next cursor is)")
        if self.type == "next_url" and not self.next_url_path:
            raise ValueError("pagination type 'next_url' needs 'next_url_path' (where the next URL is)")
        return self


class ServerFilterSpec(Strict):
    """The API's server-side incremental filter: ``param`` filters on record field ``field``."""

    param: str
    field: str
    # iso | date | unix | unix_ms, or a strftime pattern in UTC (e.g. "%Y-%m-%d %H:%M")
    format: str = "iso"

    @field_validator("format")
    @classmethod
    def _format(cls, value: str) -> str:
        if value not in ("iso", "date", "unix", "unix_ms") and "%" not in value:
            raise ValueError(f"'{value}' is not iso, date, unix, unix_ms or a strftime pattern (with %)")
        return value


class ParentSpec(Strict):
    """Fan-out: each record of the parent endpoint yields one child request; ``path`` of the
    child uses ``{<as>}``, filled with the parent record's ``field``."""

    path: str
    record_selector: str = ""
    field: str = "id"
    as_: str = Field(default="parent_id", alias="as")
    params: dict[str, Any] = Field(default_factory=dict)
    pagination: PaginationSpec = Field(default_factory=PaginationSpec)


class EndpointSpec(Strict):
    """One REST endpoint, declared as data."""

    path: str
    method: Literal["GET", "POST"] = "GET"
    params: dict[str, Any] = Field(default_factory=dict)
    body: dict[str, Any] | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    record_selector: str = ""  # dotted path to the records in the body; "" when the body is the list
    primary_key: list[str] = Field(default_factory=list)
    server_filter: ServerFilterSpec | None = None
    pagination: PaginationSpec = Field(default_factory=PaginationSpec)
    parent: ParentSpec | None = None
    # A next link or redirect to another scheme, host or port than the connection's: fail, or
    # follow it without any of the connection's credentials (auth, the headers extra).
    cross_origin: Literal["fail", "follow_without_credentials"] = "fail"


def _check_fields(value: dict[str, str] | None) -> dict[str, str] | None:
    for name, type_ in (value or {}).items():
        try:
            column_from_type_name(name, type_)
        except ValueError as exc:
            raise ValueError(f"field '{name}': {exc}") from None
    return value


class SourceBase(Strict):
    """What every source has; the kinds below add what they read."""

    kind: ClassVar[str]
    connector: str
    conn_id: str
    incremental: IncrementalSpec | None = None
    batch_size: int = Field(default=50_000, gt=0)

    _connector = field_validator("connector")(classmethod(lambda cls, v: check_connector(v)))

    @model_validator(mode="before")
    @classmethod
    def _unset_others(cls, data: Any) -> Any:
        """Another kind's key set to null is not given (a load overriding its defaults' table
        with ``table: null`` and a ``query``)."""
        if isinstance(data, dict):
            others = set().union(*KIND_KEYS.values()) - set(cls.model_fields)
            return {k: v for k, v in data.items() if v is not None or k not in others}
        return data

    @property
    def object_name(self) -> str:
        """What the source reads, for the run report."""
        return ""

    @property
    def dataset_name(self) -> str | None:
        """The source's own name of what it reads, for lineage (tables and topics)."""
        return None


class TableSource(SourceBase):
    """A database table (or view): ``columns`` picks some, ``window`` reads a fixed range."""

    kind: ClassVar[str] = "table"
    table: str
    columns: list[str] | None = None
    window: WindowSpec | None = None

    _table = field_validator("table")(classmethod(lambda cls, v: check_table(v)))

    @model_validator(mode="after")
    def _window_or_incremental(self) -> TableSource:
        if self.window and self.incremental:
            raise ValueError("'window' reads a fixed range; it cannot be combined with 'incremental'")
        return self

    @property
    def object_name(self) -> str:
        return self.table

    @property
    def dataset_name(self) -> str | None:
        return self.table


class QuerySource(SourceBase):
    """A database query (columns and filters are the query's own)."""

    kind: ClassVar[str] = "query"
    query: str

    @property
    def object_name(self) -> str:
        return "query"


class TopicSource(SourceBase):
    """A Kafka topic."""

    kind: ClassVar[str] = "topic"
    topic: str
    value_format: Literal["json", "avro", "json_schema", "protobuf"] = "json"
    # Typed fields of schema-less JSON messages: {name: canonical type}, e.g. {id: int64}.
    fields: dict[str, str] | None = None
    commit_offsets: bool = False  # also commit the consumer group after the sink commits
    # debezium: each message is a Debezium change event, applied by cdc_apply (docs/cdc.md)
    envelope: Literal["none", "debezium"] = "none"

    @model_validator(mode="after")
    def _envelope(self) -> TopicSource:
        if self.envelope == "debezium":
            if self.value_format not in ("json", "avro"):
                raise ValueError(f"envelope 'debezium' reads JSON or Avro values, not '{self.value_format}'")
            if self.value_format == "json" and not self.fields:
                raise ValueError(
                    "envelope 'debezium' with JSON values needs 'fields' (the row's columns and types)"
                )
        return self

    @property
    def change_feed(self) -> bool:
        return self.envelope == "debezium"

    _fields = field_validator("fields")(classmethod(lambda cls, v: _check_fields(v)))

    @property
    def object_name(self) -> str:
        return self.topic

    @property
    def dataset_name(self) -> str | None:
        return self.topic


class EndpointSource(SourceBase):
    """A REST endpoint, declared as data."""

    kind: ClassVar[str] = "endpoint"
    endpoint: EndpointSpec

    @property
    def dataset_name(self) -> str | None:
        return self.endpoint.path.split("?", 1)[0]  # a query string is parameters, not the dataset

    # client-side pace: at most this many requests a second (else the connection's extra)
    requests_per_second: float | None = Field(default=None, gt=0)
    fields: dict[str, str] | None = None  # typed fields of the records

    _fields = field_validator("fields")(classmethod(lambda cls, v: _check_fields(v)))

    @model_validator(mode="after")
    def _server_filter(self) -> EndpointSource:
        inc = self.incremental
        if inc and inc.mode is IncrementalMode.CURSOR:
            if self.endpoint.server_filter is None:
                raise ValueError(
                    "incremental reads of an endpoint need 'endpoint.server_filter' (the API's own "
                    "filter parameter); an API without one is read in full every run"
                )
            if inc.cursor != self.endpoint.server_filter.field:
                raise ValueError(
                    f"incremental.cursor '{inc.cursor}' must be the field the server filters on "
                    f"('{self.endpoint.server_filter.field}')"
                )
        return self

    @property
    def object_name(self) -> str:
        return self.endpoint.path


class ResourceSource(SourceBase):
    """A resource of a SaaS connector's catalog, with its options (ids, dates)."""

    kind: ClassVar[str] = "resource"
    resource: str
    # client-side pace: at most this many requests a second (else the connection's or the API's)
    requests_per_second: float | None = Field(default=None, gt=0)
    options: dict[str, Any] = Field(default_factory=dict)
    fields: dict[str, str] | None = None  # the columns of resources the user defines (a sheet)

    _fields = field_validator("fields")(classmethod(lambda cls, v: _check_fields(v)))

    @property
    def object_name(self) -> str:
        return self.resource

    @property
    def dataset_name(self) -> str | None:
        return self.resource


SOURCE_KINDS: dict[str, type[SourceBase]] = {
    c.kind: c for c in (TableSource, QuerySource, TopicSource, EndpointSource, ResourceSource)
}
# Keys that only one kind of source takes (``fields`` is shared, so not listed).
KIND_KEYS = {
    kind: set(cls.model_fields) - set(SourceBase.model_fields) - {"fields"}
    for kind, cls in SOURCE_KINDS.items()
}
TAG = "tagged-"  # error paths drop union tags that start like this


def _source_kind(data: Any) -> str | None:
    """The kind of source a mapping (or a built spec) describes: the one object key it names."""
    if isinstance(data, SourceBase):
        return TAG + data.kind
    if not isinstance(data, dict):
        return None
    named = [k for k in SOURCE_KINDS if data.get(k)]
    return TAG + named[0] if len(named) == 1 else None


SourceSpec = Annotated[
    Annotated[TableSource, Tag(TAG + "table")]
    | Annotated[QuerySource, Tag(TAG + "query")]
    | Annotated[TopicSource, Tag(TAG + "topic")]
    | Annotated[EndpointSource, Tag(TAG + "endpoint")]
    | Annotated[ResourceSource, Tag(TAG + "resource")],
    Discriminator(
        _source_kind,
        custom_error_type="source_kind",
        custom_error_message="give exactly one of 'table', 'query', 'topic', 'endpoint' or 'resource'",
    ),
]
"""A load's source: one kind per object it reads (a discriminated union)."""

SqlSource = TableSource | QuerySource


_Kind = TypeVar("_Kind", bound=SourceBase)


def source_of(spec: SourceSpec, kind: type[_Kind], connector: str) -> _Kind:
    """``spec`` as the kind of source ``connector`` reads (validation has checked it)."""
    if isinstance(spec, kind):
        return spec
    raise BadInputError(f"source: connector '{connector}' reads '{kind.kind}' sources, not '{spec.kind}'")


def sql_source(spec: SourceSpec, connector: str) -> SqlSource:
    """``spec`` as a table or query source (what database connectors read)."""
    if isinstance(spec, TableSource | QuerySource):
        return spec
    raise BadInputError(f"source: connector '{connector}' reads tables or queries, not '{spec.kind}'")


def source_spec(data: Any) -> SourceSpec:
    """Validate a source mapping (or rebuild one with changed keys) into its kind."""
    return SOURCE_ADAPTER.validate_python(data)


SOURCE_ADAPTER: TypeAdapter[SourceSpec] = TypeAdapter(SourceSpec)
