"""What the engine needs from sources, sinks and state backends."""

from __future__ import annotations

import builtins
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from ..contracts.artifacts import ExtractResult
from ..contracts.manifest import LoadSpec
from ..contracts.quality import Measurement
from ..contracts.redaction import Redactor
from ..contracts.sources import SourceSpec
from ..contracts.state import StateRecord
from ..contracts.table import TableSchema
from ..schema.planner import SchemaPlan

Statement = tuple[str, tuple]


@dataclass(frozen=True)
class LoadContext:
    pipeline: str
    load: LoadSpec
    run_id: str
    # The run extracts from stored state, so the target must exist: finalize fails rather than
    # create it from a delta (it was dropped, or the sink points at another database).
    expects_target: bool = False

    @property
    def key(self) -> str:
        return f"{self.pipeline}.{self.load.name}"


@dataclass
class StagedData:
    """Where a sink staged a batch and what it cost."""

    staging: str
    schema: TableSchema
    rows: int
    bytes: int | None
    format: str
    details: dict[str, Any] = field(default_factory=dict)
    key_set: str | None = None  # where the source's full key set is staged (reconciliation)


@runtime_checkable
class SourceHook(Protocol):
    def extract(
        self, spec: SourceSpec, state: StateRecord | None, *, accepted_formats: tuple[str, ...]
    ) -> ExtractResult: ...

    def plan_extract(
        self, spec: SourceSpec, state: StateRecord | None
    ) -> tuple[dict[str, Any], TableSchema]: ...

    def dataset(self, table: str) -> dict[str, str] | None:
        """The OpenLineage ``namespace`` and ``name`` of ``table`` (never credentials)."""
        ...

    def redactor(self) -> Redactor:
        """A redactor that knows this connection's credentials."""
        ...

    def extract_keys(
        self, spec: SourceSpec, keys: list[str], *, accepted_formats: tuple[str, ...]
    ) -> ExtractResult:
        """The source's full set of ``keys`` (reconciliation of incremental loads)."""
        ...


@runtime_checkable
class SinkHook(Protocol):
    accepted_formats: tuple[str, ...]

    def schema_plan(self, ctx: LoadContext, schema: TableSchema) -> SchemaPlan:
        """The schema plan for loading ``schema`` into the target, read-only."""
        ...

    def dataset(self, table: str) -> dict[str, str] | None:
        """The OpenLineage ``namespace`` and ``name`` of ``table`` (never credentials)."""
        ...

    def redactor(self) -> Redactor:
        """A redactor that knows this connection's credentials."""
        ...

    def stage(self, ctx: LoadContext, extract: ExtractResult) -> StagedData: ...

    def stage_key_set(self, ctx: LoadContext, extract: ExtractResult) -> StagedData:
        """Stage the source's key set next to the batch; finalize reads it for deletes."""
        ...

    def measure_quality(self, ctx: LoadContext, staged: StagedData, checks: list[Any]) -> list[Measurement]:
        """One measurement per check, read from staging without changing anything."""
        ...

    def finalize(self, ctx: LoadContext, staged: StagedData, extra: list[Statement]) -> dict[str, Any]: ...

    def cleanup(self, ctx: LoadContext, staged: StagedData | None, succeeded: bool) -> None: ...

    def plan_load(
        self,
        ctx: LoadContext,
        schema: TableSchema | None,
        binary: bool = True,
        schema_plan: SchemaPlan | None = None,
    ) -> dict[str, Any]:
        """The statements a run would issue (``target``, ``staging``, ``statements``), touching nothing."""
        ...


@runtime_checkable
class BatchStagingSink(Protocol):
    """A sink that can stage batch by batch, each committed, for resumable extracts."""

    def has_staging(self, ctx: LoadContext) -> bool: ...

    def open_staging(self, ctx: LoadContext, schema: TableSchema, *, resume: bool) -> bool: ...

    def append_batch(self, ctx: LoadContext, schema: TableSchema, rows: list) -> int: ...

    def staged(self, ctx: LoadContext, schema: TableSchema) -> StagedData: ...


@runtime_checkable
class TargetProbe(Protocol):
    """A sink that can say what its target holds before a load (state/target agreement)."""

    def target_rows(self, ctx: LoadContext, *, exact: bool = False) -> int | None:
        """None when the target does not exist; else its row count (``exact``) or 0/1 (any rows)."""
        ...

    def target_watermark(self, ctx: LoadContext, column: str) -> tuple[str, str] | None:
        """(max of ``column`` in the target as text, its canonical type), None when empty."""
        ...


@runtime_checkable
class StateHost(Protocol):
    """A sink that can keep the state table in its own database and commit a load's state in
    its finalize transaction (connectors declare it: ``ConnectorInfo.hosts_state``)."""

    def hosts_state(self, conn_id: str) -> bool:
        """Whether a state table on connection ``conn_id`` is in this sink's database."""
        ...


@runtime_checkable
class ResumableSource(Protocol):
    """A source whose extract can continue from a checkpoint a failed try saved."""

    resumable: bool

    def extract(
        self,
        spec: SourceSpec,
        state: StateRecord | None,
        *,
        accepted_formats: tuple[str, ...],
        resume: dict[str, Any] | None = None,
    ) -> ExtractResult: ...


@runtime_checkable
class Releasable(Protocol):
    """A hook that keeps a connection between the steps of a load; released after it."""

    def release(self) -> None: ...


@runtime_checkable
class Redacting(Protocol):
    """A hook that knows its connection's credentials (to mask them in errors)."""

    def redactor(self) -> Redactor: ...


@runtime_checkable
class HookedBackend(Protocol):
    """A state backend that talks to a database through a hook of its own."""

    @property
    def hook(self) -> Any: ...


@runtime_checkable
class Closeable(Protocol):
    def close(self) -> None: ...


@runtime_checkable
class RunAware(Protocol):
    """A hook that tags its logs with the run (e.g. every API request with the run ids)."""

    def bind_run(self, ctx: LoadContext) -> None: ...


@runtime_checkable
class AcknowledgingSource(Protocol):
    """A source told when a load's state has committed (e.g. Kafka commits its consumer group)."""

    def acknowledge(self, ctx: LoadContext, state: StateRecord) -> None: ...


@runtime_checkable
class JournalingSink(Protocol):
    """A transactional sink that journals a load's new state inside its finalize transaction.

    With the state backend outside the sink, this closes the window between the data commit
    and the state commit: a crash there is rolled forward by the next run, not re-applied.
    """

    def journal_statements(
        self, ctx: LoadContext, before: dict[str, Any] | None, after: dict[str, Any]
    ) -> list[Statement]: ...

    def pending_journal(self, ctx: LoadContext) -> dict[str, Any] | None: ...

    def acknowledge_journal(self, ctx: LoadContext, run_id: str) -> None: ...


@runtime_checkable
class StateBackend(Protocol):
    name: str

    def get(self, pipeline: str, load: str) -> StateRecord | None: ...

    def commit(self, pipeline: str, load: str, record: StateRecord, run_id: str) -> None: ...

    def reset(self, pipeline: str, load: str) -> bool: ...

    def list(self, pipeline: str, loads: list[str]) -> list[dict[str, Any]]: ...

    def colocated_statements(
        self, sink: object, pipeline: str, load: str, record: StateRecord, run_id: str
    ) -> builtins.list[Statement] | None:
        """Statements the sink runs in its finalize transaction, or None if not colocated."""
        ...
