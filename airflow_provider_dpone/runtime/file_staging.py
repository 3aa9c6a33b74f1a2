"""``sink.staging.files``: the extract staged as Parquet files with their manifest before the sink
loads it (the sink verifies every file first), and the files dropped or kept after the load."""

from __future__ import annotations

import logging
import re
import uuid
from typing import Any

from ..contracts.artifacts import (
    CSV,
    ExtractResult,
    FileExport,
    ObjectStorageStagingManifest,
    iter_row_batches,
)
from ..contracts.errors import StagingEvidenceError
from ..contracts.manifest import FileStagingSpec
from .protocols import LoadContext

log = logging.getLogger(__name__)
_UNSAFE = re.compile(r"[^A-Za-z0-9._=-]+")


def run_path(spec: FileStagingSpec, ctx: LoadContext) -> str:
    """The run's directory, ``<uri>/<pipeline>/<load>/<run id>``, each part safe in a URI."""
    parts = [_UNSAFE.sub("_", p) for p in (ctx.pipeline, ctx.load.name, ctx.run_id)]
    return "/".join([spec.uri, *parts])


def run_directory(spec: FileStagingSpec, ctx: LoadContext) -> str:
    """Where one try's files go: ``<run path>/<try>``: a retry writes its own, so a failed
    try's files stay as they were (its evidence) and never mix with the next."""
    return f"{run_path(spec, ctx)}/{uuid.uuid4().hex[:12]}"


def stage_files(
    spec: FileStagingSpec, ctx: LoadContext, extract: ExtractResult, directory: str | None = None
) -> ExtractResult:
    """Write the extract's rows as files (memory: one file's rows) under ``directory`` (the
    try's own by default); the result carries their manifest instead of the rows."""
    from ..staging.files import stage_csv, stage_parquet, stage_stream
    from ..staging.store import store_for

    store = store_for(directory or run_directory(spec, ctx), spec.conn_id)
    artifact, n, keep = extract.artifact, spec.rows_per_file, spec.retention
    options: dict[str, Any] = {
        "rows_per_file": n,
        "window": extract.details,
        "retention": keep,
        "origin": {"pipeline": ctx.pipeline, "load": ctx.load.name, "run_id": ctx.run_id},
    }
    if isinstance(artifact, FileExport) and artifact.format == CSV:  # parsed by pyarrow, not in Python
        manifest = stage_csv(store, extract.schema, artifact.chunks, **options)
    elif isinstance(artifact, FileExport) and artifact.format == POSTGRES_BINARY:  # kept as it streams
        options.pop("rows_per_file")
        if "rows_per_file" in spec.model_fields_set:
            log.warning(
                "dpone %s: rows_per_file applies to Parquet; a binary COPY export is one file "
                "(set files.format: parquet to split it)",
                ctx.key,
            )
        stats = extract.stats
        manifest = stage_stream(
            store, extract.schema, artifact.chunks, lambda: stats.source_rows, fmt=artifact.format, **options
        )
    else:
        manifest = stage_parquet(store, extract.schema, iter_row_batches(artifact), **options)
    sent = extract.stats.source_rows
    if sent is not None and sent != manifest.rows:
        raise StagingEvidenceError(
            f"the source sent {sent:,} rows but {manifest.rows:,} were staged at {manifest.uri}; nothing was loaded"
        )
    log.info(
        "dpone %s: staged %s rows in %d file(s), %s bytes, at %s",
        ctx.key,
        f"{manifest.rows:,}",
        len(manifest.files),
        f"{manifest.bytes:,}",
        manifest.uri,
    )
    return ExtractResult(
        ObjectStorageStagingManifest(manifest, spec.conn_id),
        extract.schema,
        extract.state_candidate,
        extract.details,
        more=extract.more,
        stats=extract.stats,
    )


POSTGRES_BINARY = "postgres_binary"  # PostgreSQL's binary COPY, staged as it is for a PostgreSQL sink


def staged_formats(sink: Any, spec: FileStagingSpec) -> tuple[str, ...]:
    """The export formats to ask the source for when staging files: Parquet written from CSV or
    rows for every sink; with ``format: auto``, PostgreSQL's own binary COPY first for a
    PostgreSQL sink (no row decoded at all)."""
    if spec.format == "parquet":
        return (CSV,)
    return tuple(getattr(sink, "staged_formats", (CSV,)))


def files_report(artifact: Any) -> dict[str, Any] | None:
    """What the run report says of the staged files (None when the load staged none)."""
    if not isinstance(artifact, ObjectStorageStagingManifest):
        return None
    m = artifact.manifest
    return {"uri": m.uri, "files": len(m.files), "rows": m.rows, "bytes": m.bytes, "retention": m.retention}


def finish_files(artifact: Any, *, succeeded: bool) -> None:
    """After the load: delete the files when it succeeded and retention is ``delete``."""
    if not isinstance(artifact, ObjectStorageStagingManifest):
        return
    from ..staging.files import clean_up
    from ..staging.store import store_for

    try:  # the data and the state are committed: a file left behind is only logged
        clean_up(store_for(artifact.manifest.uri, artifact.conn_id), artifact.manifest, succeeded=succeeded)
    except Exception as exc:
        log.warning("staged files at %s were not deleted: %s", artifact.manifest.uri, exc)
