"""Manifest contract v1: the YAML a data engineer writes, parsed and validated.

Every problem becomes a :class:`ValidationIssue` naming the file, the load and the field
path, with the allowed values where there is a closed set.
"""

from __future__ import annotations

import copy
import datetime as dt
import re
from typing import Any, Literal

from pydantic import (
    BaseModel,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from .capabilities import load_problems, state_problems
from .connectors import CONNECTORS
from .durations import parse_duration, validate_schedule
from .errors import ManifestError, ValidationIssue
from .partitions import ParallelSpec
from .quality import QualityCheck
from .sources import KIND_KEYS, SOURCE_KINDS, TAG, SourceBase, SourceSpec, WindowSpec
from .spec_base import Strict, check_connector, check_table
from .strategies import STRATEGIES_NEEDING_UNIQUE_KEY, Strategy

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,249}$")
_WHOLE_TARGET = frozenset(
    {Strategy.FULL_REFRESH, Strategy.INCREMENTAL_MERGE, Strategy.SNAPSHOT_DIFF, Strategy.SCD2}
)


class FileStagingSpec(Strict):
    """Stage the extract as files first (docs/object-storage.md): Parquet files and their
    manifest under ``<uri>/<pipeline>/<load>/<run>``, which the sink verifies and loads."""

    uri: str
    conn_id: str | None = None  # the official provider's connection (aws for s3://)
    rows_per_file: int = Field(default=1_000_000, ge=1)
    retention: Literal["delete", "keep"] = "delete"
    # auto: the sink's own format where it has one (PostgreSQL's binary COPY into PostgreSQL),
    # else Parquet; parquet: Parquet always (files any sink can load or replay)
    format: Literal["auto", "parquet"] = "auto"

    @field_validator("uri")
    @classmethod
    def _uri(cls, value: str) -> str:
        from .errors import BadInputError
        from .staging_uri import parse_staging_uri

        try:
            parse_staging_uri(value.rstrip("/"))  # the forms: docs/object-storage.md
        except BadInputError as exc:
            raise ValueError(str(exc)) from None
        return value.rstrip("/")


class StagingSpec(Strict):
    schema_name: str = Field(default="dpone_staging", alias="schema")
    # Stage the extract as files in object storage (or a local directory) before the sink loads it.
    files: FileStagingSpec | None = None
    keep: Literal["always", "never", "on_failure"] = "on_failure"
    # Staging left by other runs of the load (killed, or kept on failure) is dropped once older.
    stale_after: float = 86400.0  # seconds
    # At most this many other runs' staging tables are kept per load; the oldest go first.
    max_kept: int = Field(default=3, ge=0)

    @field_validator("stale_after", mode="before")
    @classmethod
    def _stale_after(cls, value: Any) -> float:
        return parse_duration(value)


class ReplaceSpec(Strict):
    """What ``replace`` deletes before inserting the batch: a predicate or a bounded window."""

    where: str | None = None
    window: WindowSpec | None = None

    @model_validator(mode="after")
    def _one(self) -> ReplaceSpec:
        if bool(self.where) == bool(self.window):
            raise ValueError("give exactly one of 'where' (a SQL predicate) or 'window' (column, start, end)")
        return self


class SinkSpec(Strict):
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

    _table = field_validator("table")(classmethod(lambda cls, v: check_table(v)))
    _connector = field_validator("connector")(classmethod(lambda cls, v: check_connector(v)))

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


class SchemaEvolutionSpec(Strict):
    mode: Literal["safe", "strict", "fail", "plan_only"] = "safe"
    on_type_change: Literal["fail", "new_column"] = "fail"


class ReconciliationSpec(Strict):
    """Opt-in deletes of target rows whose key the source no longer has (staging-first)."""

    deletes: Literal["none", "soft", "hard"] = "none"
    max_delete_fraction: float = Field(default=0.05, ge=0, le=1)
    soft_delete_column: str = "_dpone_deleted_at"


class LoadSpec(Strict):
    name: str
    description: str | None = None
    depends_on: list[str] = Field(default_factory=list)
    source: SourceSpec
    sink: SinkSpec
    schema_evolution: SchemaEvolutionSpec = Field(default_factory=SchemaEvolutionSpec)
    reconciliation: ReconciliationSpec = Field(default_factory=ReconciliationSpec)
    quality: list[QualityCheck] = Field(default_factory=list)
    retries: int | None = Field(default=None, ge=0)
    # split a table source into key ranges extracted by parallel mapped tasks (docs/parallel.md)
    parallel: ParallelSpec | None = None

    @model_validator(mode="before")
    @classmethod
    def _resource_defaults(cls, data: Any) -> Any:
        """A sink that names no strategy gets its API resource's default strategy and key; a
        merged cursor load of an API that names no lookback gets the vendor's default one."""
        source = data.get("source") if isinstance(data, dict) else None
        sink = data.get("sink") if isinstance(data, dict) else None
        if not isinstance(source, dict) or not isinstance(sink, dict):
            return data
        connector, resource = source.get("connector"), source.get("resource")
        info = CONNECTORS.get(connector) if isinstance(connector, str) else None
        found = None
        if info and isinstance(resource, str) and "strategy" not in sink:
            found = info.resource_defaults.get(resource)
        if found is not None:
            strategy, keys = found
            sink = {**sink, "strategy": strategy.value}
            if keys and "unique_key" not in sink:
                sink["unique_key"] = list(keys)
        inc = source.get("incremental")
        lookback = info.default_lookback if info else {}
        if (
            isinstance(inc, dict)
            and inc.get("mode") == "cursor"
            and "lookback" not in inc
            and sink.get("strategy") in (Strategy.INCREMENTAL_MERGE, Strategy.INCREMENTAL_MERGE.value)
            and (seconds := lookback.get(str(resource), lookback.get("*")))
        ):  # a merge re-reads the vendor's late data by default
            source = {**source, "incremental": {**inc, "lookback": seconds}}
        inc = source.get("incremental")
        if (
            isinstance(inc, dict)
            and ("endpoint" in source or "resource" in source)
            and "at_watermark" not in inc
        ):
            appends = sink.get("strategy") in (Strategy.INCREMENTAL_APPEND, Strategy.INCREMENTAL_APPEND.value)
            sink_info = CONNECTORS.get(str(sink.get("connector")))
            skips_keys = sink.get("unique_key") and (sink_info is None or sink_info.append_skips_known_keys)
            skip = appends and not skips_keys  # re-read records would be added twice
            source = {**source, "incremental": {**inc, "at_watermark": "skip" if skip else "read"}}
        return {**data, "source": source, "sink": sink}

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


STATE_SCHEMA = "dpone"  # where an unqualified state.table lives


class StateSpec(Strict):
    backend: Literal["variable", "table"] = "variable"
    conn_id: str | None = None
    table: str = "dpone.state"
    # backend table: the connector of conn_id, which must be able to host the state table
    connector: str = "postgres"

    _table = field_validator("table")(classmethod(lambda cls, v: check_table(v)))
    _connector = field_validator("connector")(classmethod(lambda cls, v: check_connector(v)))

    @model_validator(mode="after")
    def _conn(self) -> StateSpec:
        if self.backend == "table" and not self.conn_id:
            raise ValueError("backend 'table' needs 'conn_id' (the database holding the state table)")
        return self


class Manifest(Strict):
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
        if isinstance(part, str) and part.startswith(TAG):  # the union member validated
            current = SOURCE_KINDS.get(part.removeprefix(TAG))
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
            kind = next((k for k, keys in KIND_KEYS.items() if loc[-1] in keys), None)
            if kind is not None and owner is not None and issubclass(owner, SourceBase):
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
    readers = (
        ", ".join(sorted(n for n, c in CONNECTORS.items() if c.objects == objects and c.source_modes))
        or "none"
    )
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
