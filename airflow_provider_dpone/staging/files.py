"""An export staged as Parquet files with its manifest, and read back only as the manifest vouches.

``stage_parquet`` writes row batches as Parquet files of at most ``rows_per_file`` rows (memory:
one file's rows), each with its size, row count and SHA-256, then the manifest itself
(``manifest.json``) last: a directory without one holds no complete export. ``read_parquet``
hashes the very bytes it parses and fails on the first missing or altered file, before yielding
anything of it; the caller loads into staging, so a failure leaves the target untouched.
"""

from __future__ import annotations

import io
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


def _parquet_bytes(table: Any) -> bytes:
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    return buffer.getvalue()


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
    """Write ``batches`` as Parquet files into ``store``, then their manifest; returns it."""
    files: list[StagedFile] = []
    pending: list[Sequence[Any]] = []

    def flush() -> None:
        if not pending:
            return
        data = _parquet_bytes(rows_to_arrow(schema, schema.names, pending, unbounded=None))
        digest = Digest()
        digest.update(data)
        name = f"{prefix}-{len(files):05d}.parquet"
        store.write(name, [data])
        files.append(StagedFile(name, digest.bytes, len(pending), digest.sha256))
        pending.clear()

    for batch in batches:
        for row in batch:
            pending.append(row)
            if len(pending) >= rows_per_file:
                flush()
    flush()
    manifest = StagingManifest(
        store.uri, "parquet", schema, tuple(files), dict(window or {}), retention, dict(origin or {})
    )
    store.write(MANIFEST, [manifest.to_json().encode()])
    return manifest


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
    into Parquet files of ``rows_per_file`` rows, then their manifest; memory stays one file."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    from .arrow import arrow_type

    types = {c.name: arrow_type(c, unbounded=None) for c in schema.columns}
    reader = pcsv.open_csv(
        io.BufferedReader(_ChunkReader(chunks), buffer_size=1 << 20),
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
    files: list[StagedFile] = []
    pending: list[Any] = []
    count = 0

    def flush(upto: int) -> None:
        nonlocal pending, count
        table = pa.Table.from_batches(pending, schema=reader.schema)
        head, rest = table.slice(0, upto), table.slice(upto)
        data = _parquet_bytes(head)
        digest = Digest()
        digest.update(data)
        name = f"part-{len(files):05d}.parquet"
        store.write(name, [data])
        files.append(StagedFile(name, digest.bytes, head.num_rows, digest.sha256))
        pending = rest.to_batches() if rest.num_rows else []
        count = rest.num_rows

    for batch in reader:
        pending.append(batch)
        count += batch.num_rows
        while count >= rows_per_file:
            flush(rows_per_file)
    if count:
        flush(count)
    manifest = StagingManifest(
        store.uri, "parquet", schema, tuple(files), dict(window or {}), retention, dict(origin or {})
    )
    store.write(MANIFEST, [manifest.to_json().encode()])
    return manifest


def load_manifest(store: ObjectStore) -> StagingManifest:
    """The manifest staged in ``store`` (a directory without one holds no complete export)."""
    from ..contracts.errors import StagingEvidenceError

    chunks = store.read(MANIFEST)
    if chunks is None:
        raise StagingEvidenceError(f"{store.uri} has no {MANIFEST}: the export there never completed")
    return manifest_from_json(b"".join(chunks).decode())


def read_parquet(store: ObjectStore, manifest: StagingManifest) -> Iterator[Any]:
    """Each file as an Arrow table, its bytes checked against the manifest before it is parsed."""
    import pyarrow.parquet as pq

    from ..contracts.errors import StagingEvidenceError

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
