"""``dpone plan`` for one load: the extract, the schema plan and every statement the sink would
run, computed the way a run starts (the same state checks), touching nothing."""

from __future__ import annotations

from typing import Any

from ..contracts.errors import DponeError
from .engine import LoadRuntime, effective_source
from .file_staging import POSTGRES_BINARY, staged_formats
from .guards import check_change_feed, starting_state
from .protocols import LoadContext, RunAware


def plan_load(pipeline: str, load: Any, parts: LoadRuntime) -> dict[str, Any]:
    """The plan of ``load`` as ``dpone plan`` prints it (``--format json`` shape)."""
    entry: dict[str, Any] = {"load": load.name, "strategy": load.sink.strategy.value}
    schema = None
    ctx = LoadContext(pipeline, load, run_id="<run_id>")
    for part in (parts.source, parts.sink):  # as a run does: a change feed's slot is named by its load
        if isinstance(part, RunAware):
            part.bind_run(ctx)
    try:
        state = parts.state.get(pipeline, load.name)
        entry["state"] = None if state is None else state.__dict__
        ctx, start, note = starting_state(ctx, parts.sink, parts.state, state)  # as the run does
        if note:
            entry["warning"] = note
        entry["extract"], schema = parts.source.plan_extract(effective_source(load), start)
        details = entry["extract"].get("window") or {}
        check_change_feed(load, details)  # the run refuses it before staging: so does the plan
        if details.get("snapshot"):
            entry["note"] = (
                "this read is a full snapshot: the steps 'only when the batch is a full snapshot' run"
            )
        if load.parallel is not None:
            from .partitioned import plan_entry_partitions

            entry["partitions"] = plan_entry_partitions(ctx, parts.source, start)
    except DponeError as exc:
        entry["extract_error"] = str(exc)
    files = load.sink.staging.files
    if files is not None:
        native = POSTGRES_BINARY in staged_formats(parts.sink, files)
        kind = (
            "PostgreSQL's binary COPY as one file (Parquet when the source cannot write it)"
            if native
            else f"Parquet files of at most {files.rows_per_file:,} rows"
        )
        entry["staged_files"] = (
            f"{files.uri}/{pipeline}/{load.name}/<run_id>/<try>: {kind} and manifest.json, each file "
            f"verified as the sink loads it; retention {files.retention}"
        )
    extract_sql = entry.get("extract", {}).get("sql", "format binary")
    native_files = files is not None and POSTGRES_BINARY in staged_formats(parts.sink, files)
    binary = "format binary" in extract_sql and (files is None or native_files)
    schema_plan = parts.sink.schema_plan(ctx, schema) if schema is not None else None
    if schema_plan is not None:
        entry["schema_plan"] = schema_plan.to_dict()
    entry["load_sql"] = parts.sink.plan_load(ctx, schema, binary=binary, schema_plan=schema_plan)
    return entry
