"""Canonical artifacts a source hands to a sink, and the ExtractResult that carries them.

In row artifacts, JSON values travel as JSON text (``str``), so JSON ``null`` stays apart from
SQL NULL.

Iterators are consumed once by the sink; memory stays bounded by one batch or one chunk.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from .staging_manifest import StagingManifest
from .state import StateRecord
from .table import TableSchema

Row = Sequence[Any]

# Formats shared across connectors. TSV is tab-separated text with ``\N`` for NULL and
# backslash escapes, as PostgreSQL's text COPY writes it and ClickHouse's TabSeparated reads it.
TSV = "tsv"
ARROW = "arrow"
# CSV as PostgreSQL's CSV COPY writes it: NULL unquoted and empty, an empty string quoted (""),
# booleans t/f, ISO dates; what the file staging step parses with pyarrow into Parquet.
CSV = "csv"


@dataclass
class InMemoryRows:
    """A small, fully materialised row set (fixtures, tiny lookups)."""

    rows: list[Row]
    kind = "in_memory_rows"


@dataclass
class StreamingBatches:
    """Lazily produced batches of rows in ``schema`` column order."""

    batches: Iterable[list[Row]]
    kind = "streaming_batches"


@dataclass
class CheckpointedBatches:
    """Row batches, each with the checkpoint to resume from once it is staged: ``(rows, checkpoint)``.

    The engine stages them batch by batch and saves each checkpoint after its batch committed,
    so a retry of the run resumes after the last staged batch instead of starting over.
    """

    batches: Iterable[tuple[list[Row], dict[str, Any]]]
    kind = "checkpointed_batches"


@dataclass
class ArrowBatches:
    """Lazily produced Arrow record batches (pyarrow objects), columns in ``schema`` order."""

    batches: Iterable[Any]
    kind = "arrow_batches"


@dataclass
class FileExport:
    """A native export, as a lazy stream of byte chunks, in a named format.

    ``format`` says how a sink may load it, e.g. ``postgres_binary`` (COPY BINARY) or ``csv``.
    A sink accepts it only if it lists the format in ``accepted_formats``.
    """

    format: str
    chunks: Iterable[bytes]
    kind = "file_export"


@dataclass
class PartitionedFileExport:
    """Several independent exports that may be loaded in parallel."""

    format: str
    partitions: list[FileExport]
    kind = "partitioned_file_export"


@dataclass
class ObjectStorageStagingManifest:
    """Files already staged in object storage, with sizes and checksums as load evidence
    (``contracts.staging_manifest``): a sink verifies every file before it loads any."""

    manifest: StagingManifest
    conn_id: str | None = None  # the official provider's connection of its store
    kind = "object_storage_staging_manifest"

    @property
    def format(self) -> str:
        return self.manifest.format


Artifact = (
    InMemoryRows
    | StreamingBatches
    | CheckpointedBatches
    | ArrowBatches
    | FileExport
    | PartitionedFileExport
    | ObjectStorageStagingManifest
)


def iter_row_batches(artifact: Artifact) -> Iterator[list[Row]]:
    """Row batches from a row-shaped artifact."""
    if isinstance(artifact, InMemoryRows):
        yield artifact.rows
    elif isinstance(artifact, StreamingBatches):
        yield from artifact.batches
    else:
        raise TypeError(f"{artifact.kind} does not carry rows")


@dataclass
class StreamStats:
    """What a source learns only once its stream is drained: the stream fills it, the engine
    reads it after staging. ``source_rows`` stays None until the stream was read to its end."""

    source_rows: int | None = None


@dataclass
class ExtractResult:
    """What a source returns: the artifact, the source schema and the state candidate.

    The state candidate is committed only after the sink has committed the data (a source whose
    end is known only by reading, a topic or an API, moves it when its stream is drained).
    ``more`` says a chunked backfill has rows past this window: the engine runs the next chunk.
    ``details`` holds JSON-safe facts for the run report (bounds used, snapshot, query); the
    engine adds ``stats.source_rows`` to them. ``ledger``: a record committed under another key
    of the load (``(key, record)``) with the data, even when the load keeps no state (a
    partitioned load's plan); in the sink's transaction where the state table lives there.
    """

    artifact: Artifact
    schema: TableSchema
    state_candidate: StateRecord | None = None
    details: dict[str, Any] = field(default_factory=dict)
    more: bool = False
    stats: StreamStats = field(default_factory=StreamStats)
    ledger: tuple[str, StateRecord] | None = None

    def report_details(self) -> dict[str, Any]:
        """``details`` as the run report shows them: with the rows sent once they are known."""
        rows = self.stats.source_rows
        return self.details if rows is None else {**self.details, "source_rows": rows}
