"""An export staged as Parquet files with its manifest, and read back only as the manifest vouches.

``stage_parquet`` writes row batches as Parquet files of at most ``rows_per_file`` rows (memory:
one file's rows), each with its size, row count and SHA-256, then the manifest itself
(``manifest.json``) last: a directory without one holds no complete export. ``read_parquet``
hashes the very bytes it parses and fails on the first missing or altered file, before yielding
anything of it; the caller loads into staging, so a failure leaves the target untouched.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from ..contracts.artifacts import ObjectStorageStagingManifest
from ..contracts.staging_manifest import (
    Digest,
    Retention,
    StagedFile,
    StagingManifest,
    manifest_from_json,
    verify_file,
)
from ..contracts.table import TableSchema
from .arrow import rows_to_arrow
from .store import ObjectStore, store_for

MANIFEST = "manifest.json"
ROWS_PER_FILE = 1_000_000
ROW_GROUP = 1 << 18  # rows per Parquet row group (what a writer holds in memory before writing)


class _Parts:
    """Parquet files of at most ``rows_per_file`` rows, written as Arrow tables arrive, in row
    groups of about ``ROW_GROUP`` rows: memory is a row group and the compressed file in
    progress, not a file's rows."""

    def __init__(self, store: ObjectStore, rows_per_file: int, prefix: str = "part") -> None:
        self.store, self.rows_per_file, self.prefix = store, rows_per_file, prefix
        self.files: list[StagedFile] = []
        self._buffer: io.BytesIO | None = None
        self._writer: Any = None
        self._rows = 0  # rows of the file in progress, written or pending
        self._pending: list[Any] = []
        self._pending_rows = 0

    def add(self, table: Any) -> None:
        while table.num_rows:
            room = self.rows_per_file - self._rows
            head, table = table.slice(0, room), table.slice(room)
            self._pending.append(head)
            self._pending_rows += head.num_rows
            self._rows += head.num_rows
            if self._pending_rows >= ROW_GROUP or self._rows >= self.rows_per_file:
                self._write_group()
            if self._rows >= self.rows_per_file:
                self.close()

    def _write_group(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not self._pending:
            return
        group = pa.concat_tables(self._pending)
        self._pending, self._pending_rows = [], 0
        if self._writer is None:
            self._buffer = io.BytesIO()
            self._writer = pq.ParquetWriter(self._buffer, group.schema, compression="zstd")
        self._writer.write_table(group)

    def close(self) -> None:
        """Finish the file in progress: stored whole, with its size, rows and SHA-256."""
        self._write_group()
        if self._writer is None or self._buffer is None:
            return
        self._writer.close()
        data = self._buffer.getvalue()
        digest = Digest()
        digest.update(data)
        name = f"{self.prefix}-{len(self.files):05d}.parquet"
        self.store.write(name, [data])
        self.files.append(StagedFile(name, digest.bytes, self._rows, digest.sha256))
        self._buffer, self._writer, self._rows = None, None, 0

    def manifest(
        self,
        schema: TableSchema,
        window: Mapping[str, Any] | None,
        retention: Retention,
        origin: Mapping[str, str] | None,
    ) -> StagingManifest:
        """The files' manifest, written last: a directory without one holds no complete export."""
        self.close()
        manifest = StagingManifest(
            self.store.uri,
            "parquet",
            schema,
            tuple(self.files),
            dict(window or {}),
            retention,
            dict(origin or {}),
        )
        self.store.write(MANIFEST, [manifest.to_json().encode()])
        return manifest


def stage_parquet(
    store: ObjectStore,
    schema: TableSchema,
    batches: Iterable[Sequence[Sequence[Any]]],
    *,
    rows_per_file: int = ROWS_PER_FILE,
    window: Mapping[str, Any] | None = None,
    retention: Retention = "delete",
    prefix: str = "part",
    origin: Mapping[str, str] | None = None,
) -> StagingManifest:
    """Write row ``batches`` as Parquet files into ``store``, then their manifest; returns it.
    Memory: one batch of rows and the compressed file in progress."""
    parts = _Parts(store, rows_per_file, prefix)
    for batch in batches:
        if batch:
            parts.add(rows_to_arrow(schema, schema.names, list(batch), unbounded=None))
    return parts.manifest(schema, window, retention, origin)


class _ChunkReader(io.RawIOBase):
    """A byte stream over an iterator of chunks (what pyarrow's CSV reader pulls from)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks, self._rest = iter(chunks), b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._rest:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._rest = bytes(chunk)
        n = min(len(buffer), len(self._rest))
        buffer[:n], self._rest = self._rest[:n], self._rest[n:]
        return n


def stage_csv(
    store: ObjectStore,
    schema: TableSchema,
    chunks: Iterable[bytes],
    *,
    rows_per_file: int = ROWS_PER_FILE,
    window: Mapping[str, Any] | None = None,
    retention: Retention = "delete",
    origin: Mapping[str, str] | None = None,
) -> StagingManifest:
    """PostgreSQL CSV COPY output parsed by pyarrow's streaming reader (no row decoded in Python)
    into Parquet files of ``rows_per_file`` rows, then their manifest; memory: one CSV block and
    the compressed file in progress."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    from .arrow import arrow_type

    parts = _Parts(store, rows_per_file)
    stream = iter(chunks)
    first = next((c for c in stream if c), None)
    if first is None:  # no rows (pyarrow refuses an empty CSV): a manifest of no files
        return parts.manifest(schema, window, retention, origin)
    types = {c.name: arrow_type(c, unbounded=None) for c in schema.columns}
    reader = pcsv.open_csv(
        io.BufferedReader(_ChunkReader(itertools.chain([first], stream)), buffer_size=1 << 20),
        read_options=pcsv.ReadOptions(column_names=schema.names, block_size=1 << 22),
        # a row whose only column is NULL is an empty line: it is a row
        parse_options=pcsv.ParseOptions(newlines_in_values=True, ignore_empty_lines=False),
        convert_options=pcsv.ConvertOptions(
            column_types=types,
            null_values=[""],  # only an unquoted empty field is NULL: "NULL", "NaN", "N/A" are values
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
            true_values=["t"],
            false_values=["f"],
        ),
    )

    for batch in reader:
        parts.add(pa.Table.from_batches([batch]))
    return parts.manifest(schema, window, retention, origin)


def load_manifest(store: ObjectStore) -> StagingManifest:
    """The manifest staged in ``store`` (a directory without one holds no complete export)."""
    from ..contracts.errors import StagingEvidenceError

    chunks = store.read(MANIFEST)
    if chunks is None:
        raise StagingEvidenceError(f"{store.uri} has no {MANIFEST}: the export there never completed")
    return manifest_from_json(b"".join(chunks).decode())


def stage_stream(
    store: ObjectStore,
    schema: TableSchema,
    chunks: Iterable[bytes],
    sent: Any,
    *,
    fmt: str,
    window: Mapping[str, Any] | None = None,
    retention: Retention = "delete",
    origin: Mapping[str, str] | None = None,
) -> StagingManifest:
    """A source's own export format (PostgreSQL's binary COPY) stored as it streams, as one file
    with its size and SHA-256, then the manifest; ``sent()`` is the row count the source reports
    once its stream is complete. Memory: one chunk."""
    from ..contracts.errors import StagingEvidenceError

    digest = Digest()
    name = f"part-00000.{_SUFFIX.get(fmt, fmt)}"
    store.write(name, (digest.update(bytes(chunk)) for chunk in chunks))
    rows = sent()
    if rows is None:
        raise StagingEvidenceError(f"the source did not report how many rows it wrote to {store.uri}/{name}")
    staged = StagedFile(name, digest.bytes, int(rows), digest.sha256)
    manifest = StagingManifest(
        store.uri, fmt, schema, (staged,), dict(window or {}), retention, dict(origin or {})
    )
    store.write(MANIFEST, [manifest.to_json().encode()])
    return manifest


_SUFFIX = {"postgres_binary": "pgcopy"}


def read_verified(store: ObjectStore, manifest: StagingManifest, staged: StagedFile) -> Iterator[bytes]:
    """A file's chunks as they are read, then a check of its size and SHA-256: a sink streams
    them into its staging and fails (before anything reaches its target) on a difference."""
    from ..contracts.errors import StagingEvidenceError

    chunks = store.read(staged.name)
    if chunks is None:
        verify_file(manifest, staged, None)
    assert chunks is not None
    digest = Digest()
    for chunk in chunks:
        yield digest.update(bytes(chunk))
    if digest.bytes != staged.bytes or digest.sha256 != staged.sha256:
        raise StagingEvidenceError(
            f"{manifest.location(staged)} differs from the staging manifest ({digest.bytes:,} bytes, sha256 "
            f"{digest.sha256[:12]}…; the manifest says {staged.bytes:,} bytes, sha256 {staged.sha256[:12]}…); "
            "nothing was loaded"
        )


def read_parquet(store: ObjectStore, manifest: StagingManifest) -> Iterator[Any]:
    """Each file as an Arrow table, its bytes checked against the manifest before it is parsed."""
    import pyarrow.parquet as pq

    from ..contracts.errors import BadInputError, StagingEvidenceError

    if manifest.format != "parquet":
        raise BadInputError(
            f"{manifest.uri} holds {manifest.format} files, which only a PostgreSQL sink loads; this sink "
            "loads Parquet staging"
        )

    for staged in manifest.files:
        chunks = store.read(staged.name)
        data = None if chunks is None else b"".join(chunks)
        verify_file(manifest, staged, None if data is None else [data])
        assert data is not None
        table = pq.read_table(io.BytesIO(data))
        if table.num_rows != staged.rows:
            raise StagingEvidenceError(
                f"{manifest.location(staged)} holds {table.num_rows:,} rows; the manifest says {staged.rows:,}"
            )
        yield table


def clean_up(store: ObjectStore, manifest: StagingManifest, *, succeeded: bool) -> list[str]:
    """After a load: delete the files (and the manifest) when it succeeded and the manifest's
    retention is ``delete``; keep them otherwise (a failed load's files are its evidence, and
    ``keep`` means replayable). The names deleted."""
    if not succeeded or manifest.retention == "keep":
        return []
    names = [MANIFEST] + [f.name for f in manifest.files]  # the manifest first: it never lists a deleted file
    # files gathered from nested exports (a partitioned load's): their own manifests go last
    names += sorted({f"{f.name.rsplit('/', 1)[0]}/{MANIFEST}" for f in manifest.files if "/" in f.name})
    for name in names:
        store.delete(name)
    return names


def manifest_tables(artifact: ObjectStorageStagingManifest) -> Iterator[Any]:
    """The Arrow tables of a staged export, file by file, each verified before it is parsed."""
    yield from read_parquet(store_for(artifact.manifest.uri, artifact.conn_id), artifact.manifest)


def manifest_row_batches(artifact: ObjectStorageStagingManifest) -> Iterator[list[tuple[Any, ...]]]:
    """The rows of a staged export, one batch per file, each file verified before its rows are used."""
    from decimal import Decimal

    import pyarrow as pa

    from ..contracts.table import CanonicalType

    schema = artifact.manifest.schema
    for table in manifest_tables(artifact):
        columns = []
        for column in schema.columns:
            values = table.column(column.name)
            if column.type is CanonicalType.DECIMAL and pa.types.is_string(values.type):
                # a numeric staged as its text comes back as Decimal, with its scale as written
                columns.append([None if v is None else Decimal(v) for v in values.to_pylist()])
            else:
                columns.append(values.to_pylist())
        yield list(zip(*columns, strict=True)) if columns else []
