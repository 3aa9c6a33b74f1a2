"""Manifest contract v1: the YAML a data engineer writes, parsed and validated.

Every problem becomes a :class:`ValidationIssue` naming the file, the load and the field
path, with the allowed values where there is a closed set.
"""

from __future__ import annotations

import copy
import datetime as dt
import re
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from .capabilities import load_problems, state_problems
from .connectors import CONNECTORS
from .durations import parse_duration, validate_schedule
from .errors import BadInputError, ManifestError, ValidationIssue
from .quality import QualityCheck
from .strategies import STRATEGIES_NEEDING_UNIQUE_KEY, IncrementalMode, Strategy
from .table import column_from_type_name

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,249}$")
_WHOLE_TARGET = frozenset(
    {Strategy.FULL_REFRESH, Strategy.INCREMENTAL_MERGE, Strategy.SNAPSHOT_DIFF, Strategy.SCD2}
)
_TABLE = re.compile(r"^[^.\s\"]+(\.[^.\s\"]+)?$")


def _check_connector(value: str) -> str:
    if value not in CONNECTORS:
        raise ValueError(f"unknown connector '{value}'; allowed: {', '.join(sorted(CONNECTORS))}")
    return value


def _check_table(value: str | None) -> str | None:
    if value is not None and not _TABLE.match(value):
        raise ValueError(f"'{value}' is not 'table' or 'schema.table'")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class IncrementalSpec(_Strict):
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

    @field_validator("lookback", mode="before")
    @classmethod
    def _lookback(cls, value: Any) -> float:
        return parse_duration(value)

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
        if self.mode is not IncrementalMode.CURSOR and self.on_state_missing == "from_target":
            raise ValueError(
                f"'on_state_missing: from_target' reads max(cursor) from the target; mode "
                f"'{self.mode.value}' has no cursor there"
            )
        return self


class WindowSpec(_Strict):
    """A bounded range of one column: ``start <= column < end`` (values are parameters)."""

    column: str
    start: str
    end: str


class PaginationSpec(_Strict):
    """How an endpoint pages: by offset, page number, a cursor in the body, the Link header or a
    next URL in the body. ``max_pages`` is a hard cap; hitting it is logged and reported."""

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


class ServerFilterSpec(_Strict):
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


class ParentSpec(_Strict):
    """Fan-out: each record of the parent endpoint yields one child request; ``path`` of the
    child uses ``{<as>}``, filled with the parent record's ``field``."""

    path: str
    record_selector: str = ""
    field: str = "id"
    as_: str = Field(default="parent_id", alias="as")
    params: dict[str, Any] = Field(default_factory=dict)
    pagination: PaginationSpec = Field(default_factory=PaginationSpec)


class EndpointSpec(_Strict):
    """One REST endpoint, declared as data."""

    path: str
    method: Literal["GET", "POST"] = "GET"
    params: dict[str, Any] = Field(default_factory=dict)
    body: dict[str, Any] | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    record_selector: str = ""  # dotted path to the records in the body; "" when the body is the list
    primary_key: list[str] = Field(default_factory=list)
    sort: str | None = None  # the field the request sorts on (documentation; the param is in params)
    partition_key: str | None = None
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


class _SourceBase(_Strict):
    """What every source has; the kinds below add what they read."""

    kind: ClassVar[str]
    connector: str
    conn_id: str
    incremental: IncrementalSpec | None = None
    batch_size: int = Field(default=50_000, gt=0)

    _connector = field_validator("connector")(classmethod(lambda cls, v: _check_connector(v)))

    @model_validator(mode="before")
    @classmethod
    def _unset_others(cls, data: Any) -> Any:
        """Another kind's key set to null is not given (a load overriding its defaults' table
        with ``table: null`` and a ``query``)."""
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v is not None or k in cls.model_fields}
        return data

    @property
    def object_name(self) -> str:
        """What the source reads, for the run report."""
        return ""

    @property
    def dataset_name(self) -> str | None:
        """The source's own name of what it reads, for lineage (tables and topics)."""
        return None


class TableSource(_SourceBase):
    """A database table (or view): ``columns`` picks some, ``window`` reads a fixed range."""

    kind: ClassVar[str] = "table"
    table: str
    columns: list[str] | None = None
    window: WindowSpec | None = None

    _table = field_validator("table")(classmethod(lambda cls, v: _check_table(v)))

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


class QuerySource(_SourceBase):
    """A database query (columns and filters are the query's own)."""

    kind: ClassVar[str] = "query"
    query: str

    @property
    def object_name(self) -> str:
        return "query"


class TopicSource(_SourceBase):
    """A Kafka topic."""

    kind: ClassVar[str] = "topic"
    topic: str
    value_format: Literal["json", "avro", "json_schema", "protobuf"] = "json"
    # Typed fields of schema-less JSON messages: {name: canonical type}, e.g. {id: int64}.
    fields: dict[str, str] | None = None
    commit_offsets: bool = False  # also commit the consumer group after the sink commits

    _fields = field_validator("fields")(classmethod(lambda cls, v: _check_fields(v)))

    @property
    def object_name(self) -> str:
        return self.topic

    @property
    def dataset_name(self) -> str | None:
        return self.topic


class EndpointSource(_SourceBase):
    """A REST endpoint, declared as data."""

    kind: ClassVar[str] = "endpoint"
    endpoint: EndpointSpec
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


class ResourceSource(_SourceBase):
    """A resource of a SaaS connector's catalog, with its options (ids, dates)."""

    kind: ClassVar[str] = "resource"
    resource: str
    options: dict[str, Any] = Field(default_factory=dict)
    fields: dict[str, str] | None = None  # the columns of resources the user defines (a sheet)

    _fields = field_validator("fields")(classmethod(lambda cls, v: _check_fields(v)))

    @property
    def object_name(self) -> str:
        return self.resource


_SOURCE_KINDS: dict[str, type[_SourceBase]] = {
    c.kind: c for c in (TableSource, QuerySource, TopicSource, EndpointSource, ResourceSource)
}
# Keys that only one kind of source takes (``fields`` is shared, so not listed).
_KIND_KEYS = {
    kind: set(cls.model_fields) - set(_SourceBase.model_fields) - {"fields"}
    for kind, cls in _SOURCE_KINDS.items()
}
_TAG = "tagged-"  # error paths drop union tags that start like this


def _source_kind(data: Any) -> str | None:
    """The kind of source a mapping (or a built spec) describes: the one object key it names."""
    if isinstance(data, _SourceBase):
        return _TAG + data.kind
    if not isinstance(data, dict):
        return None
    named = [k for k in _SOURCE_KINDS if data.get(k)]
    return _TAG + named[0] if len(named) == 1 else None


SourceSpec = Annotated[
    Annotated[TableSource, Tag(_TAG + "table")]
    | Annotated[QuerySource, Tag(_TAG + "query")]
    | Annotated[TopicSource, Tag(_TAG + "topic")]
    | Annotated[EndpointSource, Tag(_TAG + "endpoint")]
    | Annotated[ResourceSource, Tag(_TAG + "resource")],
    Discriminator(
        _source_kind,
        custom_error_type="source_kind",
        custom_error_message="give exactly one of 'table', 'query', 'topic', 'endpoint' or 'resource'",
    ),
]
"""A load's source: one kind per object it reads (a discriminated union)."""

SqlSource = TableSource | QuerySource


_Kind = TypeVar("_Kind", bound=_SourceBase)


def source_of(spec: SourceSpec, kind: type[_Kind], connector: str) -> _Kind:
    """``spec`` as the kind of source ``connector`` reads (validation has checked it)."""
    if isinstance(spec, kind):
        return spec
    raise BadInputError(f"source: connector '{connector}' reads '{kind.kind}' sources, not '{spec.kind}'")


def sql_source(spec: SourceSpec, connector: str) -> TableSource | QuerySource:
    """``spec`` as a table or query source (what database connectors read)."""
    if isinstance(spec, TableSource | QuerySource):
        return spec
    raise BadInputError(f"source: connector '{connector}' reads tables or queries, not '{spec.kind}'")


def source_spec(data: Any) -> SourceSpec:
    """Validate a source mapping (or rebuild one with changed keys) into its kind."""
    return _SOURCE_ADAPTER.validate_python(data)


class StagingSpec(_Strict):
    schema_name: str = Field(default="dpone_staging", alias="schema")
    keep: Literal["always", "never", "on_failure"] = "on_failure"
    # Staging left by other runs of the load (killed, or kept on failure) is dropped once older.
    stale_after: float = 86400.0  # seconds
    # At most this many other runs' staging tables are kept per load; the oldest go first.
    max_kept: int = Field(default=3, ge=0)

    @field_validator("stale_after", mode="before")
    @classmethod
    def _stale_after(cls, value: Any) -> float:
        return parse_duration(value)


class ReplaceSpec(_Strict):
    """What ``replace`` deletes before inserting the batch: a predicate or a bounded window."""

    where: str | None = None
    window: WindowSpec | None = None

    @model_validator(mode="after")
    def _one(self) -> ReplaceSpec:
        if bool(self.where) == bool(self.window):
            raise ValueError("give exactly one of 'where' (a SQL predicate) or 'window' (column, start, end)")
        return self


class SinkSpec(_Strict):
    connector: str
    conn_id: str
    table: str | None = None
    topic: str | None = None  # message sinks (Kafka)
    strategy: Strategy = Strategy.FULL_REFRESH
    unique_key: list[str] | None = None
    on_duplicate_keys: Literal["fail", "keep_last"] = "fail"
    replace: ReplaceSpec | None = None
    partition_by: list[str] | None = None
    staging: StagingSpec = Field(default_factory=StagingSpec)
    # A full refresh (or replace) that read 0 rows while the target holds rows fails unless set.
    allow_empty: bool = False

    _table = field_validator("table")(classmethod(lambda cls, v: _check_table(v)))
    _connector = field_validator("connector")(classmethod(lambda cls, v: _check_connector(v)))

    @model_validator(mode="before")
    @classmethod
    def _duplicate_keys_default(cls, data: Any) -> Any:
        """Not given: ``fail``, or the one policy a connector that cannot fail on duplicates has
        (a topic keeps the last message per key)."""
        connector = data.get("connector") if isinstance(data, dict) else None
        if isinstance(connector, str) and "on_duplicate_keys" not in data:
            info = CONNECTORS.get(connector)
            if info is not None and "fail" not in info.duplicate_keys:
                return {**data, "on_duplicate_keys": min(info.duplicate_keys)}
        return data

    @property
    def target(self) -> str:
        """The table or topic written to."""
        return self.table or self.topic or ""

    @model_validator(mode="after")
    def _keys(self) -> SinkSpec:
        if bool(self.table) == bool(self.topic):
            raise ValueError("give exactly one of 'table' or 'topic'")
        if self.strategy in STRATEGIES_NEEDING_UNIQUE_KEY and not self.unique_key:
            raise ValueError(f"strategy '{self.strategy.value}' needs 'unique_key: [<column>, ...]'")
        if (self.strategy is Strategy.REPLACE) != (self.replace is not None):
            raise ValueError(
                "strategy 'replace' needs 'replace: {where: ...}' or 'replace: {window: ...}'"
                if self.replace is None
                else f"'replace' only applies to strategy 'replace', not '{self.strategy.value}'"
            )
        if (self.strategy is Strategy.PARTITION_REPLACE) != bool(self.partition_by):
            raise ValueError(
                "strategy 'partition_replace' needs 'partition_by: [<column>, ...]'"
                if not self.partition_by
                else f"'partition_by' only applies to strategy 'partition_replace', not '{self.strategy.value}'"
            )
        return self


class SchemaEvolutionSpec(_Strict):
    mode: Literal["safe", "strict", "fail", "plan_only"] = "safe"
    on_type_change: Literal["fail", "new_column"] = "fail"


class ReconciliationSpec(_Strict):
    """Opt-in deletes of target rows whose key the source no longer has (staging-first)."""

    deletes: Literal["none", "soft", "hard"] = "none"
    max_delete_fraction: float = Field(default=0.05, ge=0, le=1)
    soft_delete_column: str = "_dpone_deleted_at"


class LoadSpec(_Strict):
    name: str
    description: str | None = None
    depends_on: list[str] = Field(default_factory=list)
    source: SourceSpec
    sink: SinkSpec
    schema_evolution: SchemaEvolutionSpec = Field(default_factory=SchemaEvolutionSpec)
    reconciliation: ReconciliationSpec = Field(default_factory=ReconciliationSpec)
    quality: list[QualityCheck] = Field(default_factory=list)
    retries: int | None = Field(default=None, ge=0)

    @property
    def rewrites_whole_target(self) -> bool:
        """Whether each run writes every target row (a full extract into a strategy that
        rewrites or merges the whole table); otherwise rows outside the batch stay as they are."""
        return self.source.incremental is None and self.sink.strategy in _WHOLE_TARGET

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("use letters, digits, '_', '.', '-' (it becomes the Airflow task id)")
        return value

    @model_validator(mode="after")
    def _capabilities(self) -> LoadSpec:
        problems = load_problems(self)
        if problems:  # one per line: each becomes its own issue, at the path it starts with
            raise ValueError("\n".join(problems))
        return self


class StateSpec(_Strict):
    backend: Literal["variable", "table"] = "variable"
    conn_id: str | None = None
    table: str = "dpone.state"
    # backend table: the connector of conn_id, which must be able to host the state table
    connector: str = "postgres"

    _table = field_validator("table")(classmethod(lambda cls, v: _check_table(v)))
    _connector = field_validator("connector")(classmethod(lambda cls, v: _check_connector(v)))

    @model_validator(mode="after")
    def _conn(self) -> StateSpec:
        if self.backend == "table" and not self.conn_id:
            raise ValueError("backend 'table' needs 'conn_id' (the database holding the state table)")
        return self


class Manifest(_Strict):
    pipeline: str
    description: str | None = None
    schedule: str | None = None
    start_date: dt.date = dt.date(2026, 1, 1)
    catchup: bool = False
    tags: list[str] = Field(default_factory=list)
    retries: int = Field(default=2, ge=0)
    retry_delay: float = 300.0  # seconds
    state: StateSpec = Field(default_factory=StateSpec)
    defaults: dict[str, Any] = Field(default_factory=dict)
    loads: list[LoadSpec] = Field(min_length=1)
    source_file: str = Field(default="<memory>", exclude=True)

    @field_validator("pipeline")
    @classmethod
    def _pipeline(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("use letters, digits, '_', '.', '-' (it becomes the DAG id)")
        return value

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str | None) -> str | None:
        if value is not None:
            validate_schedule(value)
        return value

    @field_validator("retry_delay", mode="before")
    @classmethod
    def _retry_delay(cls, value: Any) -> float:
        return parse_duration(value)

    def load(self, name: str) -> LoadSpec:
        for spec in self.loads:
            if spec.name == name:
                return spec
        raise KeyError(name)


_LOAD_KEYS = frozenset(LoadSpec.model_fields)


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``override`` wins; nested mappings merge key by key; lists replace."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _model_at(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The pydantic model that owns the field at ``loc`` (for listing allowed keys)."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if isinstance(part, str) and part.startswith(_TAG):  # the union member validated
            current = _SOURCE_KINDS.get(part.removeprefix(_TAG))
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = current.model_fields.get(part) or next(
            (f for f in current.model_fields.values() if f.alias == part), None
        )
        if field is None:
            return None
        annotation = field.annotation
        args = getattr(annotation, "__args__", ()) or (annotation,)
        current = next((a for a in args if isinstance(a, type) and issubclass(a, BaseModel)), None)
    return current if isinstance(current, type) else None


def _field_names(model: type[BaseModel]) -> list[str]:
    return sorted(f.alias or n for n, f in model.model_fields.items() if not f.exclude)


def _issues_from(exc: ValidationError, file: str, raw_loads: list[Any]) -> list[ValidationIssue]:
    issues = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        load_name = None
        if len(loc) >= 2 and loc[0] == "loads" and isinstance(loc[1], int):
            raw = raw_loads[loc[1]] if loc[1] < len(raw_loads) else None
            load_name = raw.get("name") if isinstance(raw, dict) else None
            path_parts = loc[2:] if load_name else loc
            if not load_name:
                path_parts = (f"loads[{loc[1]}]", *loc[2:])
        else:
            path_parts = loc
        path = ".".join(str(p) for p in path_parts if not str(p).startswith(("function-", "tagged")))
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            owner = _model_at(Manifest, loc[:-1])
            allowed = f"; allowed keys: {', '.join(_field_names(owner))}" if owner else ""
            message = f"unknown key '{loc[-1]}'{allowed}"
            kind = next((k for k, keys in _KIND_KEYS.items() if loc[-1] in keys), None)
            if kind is not None and owner is not None and issubclass(owner, _SourceBase):
                message = _misplaced(str(loc[-1]), kind, owner.kind, _raw_connector(raw_loads, loc))
        elif err["type"] == "missing":
            message = "required key is missing"
        elif err["type"] in ("enum", "literal_error"):
            message = f"invalid value {err.get('input')!r}; {message[0].lower()}{message[1:]}"
        if not path and _PATH_PREFIX.match(message.split("\n")[0]):
            for line in message.split("\n"):
                match = _PATH_PREFIX.match(line)
                field, text = (match.group(1), match.group(2)) if match else ("", line)
                issues.append(ValidationIssue(file=file, field=field, message=text, load=load_name))
            continue
        issues.append(ValidationIssue(file=file, field=path, message=message, load=load_name))
    return issues


def _raw_connector(raw_loads: list[Any], loc: tuple[Any, ...]) -> str | None:
    """The source connector the load at ``loc`` names, as written."""
    if len(loc) < 2 or loc[0] != "loads" or not isinstance(loc[1], int) or loc[1] >= len(raw_loads):
        return None
    source = raw_loads[loc[1]].get("source") if isinstance(raw_loads[loc[1]], dict) else None
    connector = source.get("connector") if isinstance(source, dict) else None
    return connector if isinstance(connector, str) else None


def _misplaced(key: str, kind: str, this: str, connector: str | None) -> str:
    """A key of another kind of source, named as such (with who reads that kind)."""
    objects = "table" if kind == "query" else kind
    readers = ", ".join(sorted(n for n, c in CONNECTORS.items() if c.objects == objects)) or "none"
    of = f" of connector '{connector}'" if connector in CONNECTORS else ""
    return f"'{key}' applies to '{kind}' sources (connectors: {readers}); this is a '{this}' source{of}"


_PATH_PREFIX = re.compile(r"^([a-z_]+(?:\.[a-z_]+)*): (.+)$", re.S)


def _graph_issues(manifest: Manifest, file: str) -> list[ValidationIssue]:
    names = [spec.name for spec in manifest.loads]
    issues = []
    seen: set[str] = set()
    for spec in manifest.loads:
        if spec.name in seen:
            issues.append(
                ValidationIssue(file, "name", "duplicate load name; names must be unique", spec.name)
            )
        seen.add(spec.name)
        for dep in spec.depends_on:
            if dep not in names:
                issues.append(
                    ValidationIssue(
                        file, "depends_on", f"unknown load '{dep}'; loads here: {', '.join(names)}", spec.name
                    )
                )
            elif dep == spec.name:
                issues.append(
                    ValidationIssue(file, "depends_on", "a load cannot depend on itself", spec.name)
                )
    if issues:
        return issues
    graph = {spec.name: list(spec.depends_on) for spec in manifest.loads}
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> list[str] | None:
        state[node] = 1
        for dep in graph[node]:
            if state.get(dep) == 1:
                return [*trail, node, dep]
            if state.get(dep) is None and (cycle := visit(dep, [*trail, node])):
                return cycle
        state[node] = 2
        return None

    for name in graph:
        if state.get(name) is None and (cycle := visit(name, [])):
            start = cycle.index(cycle[-1])
            loop = " -> ".join(cycle[start:])
            return [ValidationIssue(file, "depends_on", f"dependency cycle: {loop}", cycle[start])]
    return []


def parse_manifest(data: Any, file: str = "<memory>") -> Manifest:
    """Validate already-loaded YAML data; raises :class:`ManifestError`."""
    if data is None:
        raise ManifestError(
            [ValidationIssue(file, "", "the file is empty; a manifest needs 'pipeline' and 'loads'")]
        )
    if not isinstance(data, dict):
        raise ManifestError(
            [ValidationIssue(file, "", f"a manifest is a mapping, got {type(data).__name__}")]
        )
    data = dict(data)
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise ManifestError([ValidationIssue(file, "defaults", "must be a mapping of load keys")])
    unknown = sorted(set(defaults) - _LOAD_KEYS - {"name"})
    if unknown or "name" in defaults:
        bad = unknown[0] if unknown else "name"
        raise ManifestError(
            [
                ValidationIssue(
                    file,
                    f"defaults.{bad}",
                    f"not a load key; allowed: {', '.join(sorted(_LOAD_KEYS - {'name'}))}",
                )
            ]
        )
    raw_loads = data.get("loads")
    if isinstance(raw_loads, list):
        data["loads"] = [deep_merge(defaults, ld) if isinstance(ld, dict) else ld for ld in raw_loads]
    else:
        raw_loads = []
    try:
        manifest = Manifest.model_validate({**data, "source_file": file})
    except ValidationError as exc:
        raise ManifestError(_issues_from(exc, file, raw_loads)) from None
    if issues := _graph_issues(manifest, file) + state_problems(manifest, file):
        raise ManifestError(issues)
    return manifest


_SOURCE_ADAPTER: TypeAdapter[SourceSpec] = TypeAdapter(SourceSpec)
