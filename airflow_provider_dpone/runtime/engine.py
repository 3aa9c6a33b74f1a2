"""Run one load: extract -> stage -> finalize (+ colocated state) -> commit state -> report.

The same engine runs inside ``StagedLoadOperator`` and from ``dpone run``. State advances only
after the sink has committed; a failure at any step leaves the target and the state as they were.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

from ..contracts.artifacts import (
    CheckpointedBatches,
    ExtractResult,
    FileExport,
    ObjectStorageStagingManifest,
    StreamingBatches,
)
from ..contracts.connectors import CONNECTORS
from ..contracts.errors import DponeError, ResumeExpiredError, TransientError, scrub
from ..contracts.manifest import LoadSpec
from ..contracts.quality import enforce as enforce_quality
from ..contracts.quality import judge
from ..contracts.redaction import Redactor
from ..contracts.run_request import RunRequest
from ..contracts.sources import SourceSpec, TableSource
from ..contracts.state import (
    RESUME_SUFFIX,
    ResumeState,
    StateRecord,
    state_to_dict,
)
from ..contracts.strategies import Strategy
from ..schema.planner import EvolutionMode, enforce_schema_plan
from .failpoints import AFTER_CHECKPOINT, AFTER_STATE, failpoint
from .file_staging import files_report, finish_files, stage_files, staged_formats
from .guards import check_change_feed, check_full_refresh, skipped_keys_warning, starting_state
from .protocols import (
    AcknowledgingSource,
    BatchStagingSink,
    Closeable,
    HookedBackend,
    JournalingSink,
    LoadContext,
    Redacting,
    Releasable,
    ResumableSource,
    RunAware,
    SinkHook,
    SourceHook,
    StagedData,
    StateBackend,
)
from .recovery import plain_state, recover_state
from .report import RunReport, rows_written

log = logging.getLogger("airflow_provider_dpone.runtime")


@dataclass
class LoadRuntime:
    """The three parts a load needs, resolved by the caller (operator or CLI)."""

    source: SourceHook
    sink: SinkHook
    state: StateBackend


@contextmanager
def _timed(report: RunReport, name: str) -> Iterator[Any]:
    phase = report.phase(name)
    start = time.perf_counter()
    try:
        yield phase
    finally:
        phase.seconds = round(time.perf_counter() - start, 4)


def close_artifact(artifact: object) -> None:
    """Close a lazy artifact that the sink did not exhaust (releases the source snapshot)."""
    iterable: object = None
    if isinstance(artifact, FileExport):
        iterable = artifact.chunks
    elif isinstance(artifact, StreamingBatches):
        iterable = artifact.batches
    if isinstance(iterable, Closeable):
        iterable.close()


def effective_source(load: LoadSpec) -> SourceSpec:
    """The source spec as extracted: a ``replace`` window is read from a table source as is."""
    window = load.sink.replace.window if load.sink.replace else None
    if window and isinstance(load.source, TableSource) and load.source.window is None:
        return load.source.model_copy(update={"window": window})
    return load.source


def needs_key_set(load: LoadSpec) -> bool:
    """Reconciling an incremental load needs the source's full key set staged beside the batch,
    unless the sink takes its deletes from the source's own flag column (a Kafka topic)."""
    sink = CONNECTORS.get(load.sink.connector)
    return (
        load.reconciliation.deletes != "none"
        and load.source.incremental is not None
        and load.sink.strategy is not Strategy.CDC_APPLY  # a change feed carries its deletes
        and not (sink is not None and sink.deletes_by_flag)
    )


def _hooks(parts: LoadRuntime) -> tuple[object, ...]:
    """Every hook the load uses: source, sink, and the state table's if any."""
    state_hook = parts.state.hook if isinstance(parts.state, HookedBackend) else None
    return (parts.source, parts.sink, state_hook)


def release_hooks(parts: LoadRuntime) -> None:
    """Close the connections the hooks kept open between the steps of the load."""
    for hook in _hooks(parts):
        if isinstance(hook, Releasable):
            with suppress(Exception):
                hook.release()


def _redactor(parts: LoadRuntime) -> Redactor:
    """One redactor for every connection the load uses (source, sink, state table)."""
    redactor = Redactor()
    for hook in _hooks(parts):
        if isinstance(hook, Redacting):
            with suppress(Exception):
                redactor.merge(hook.redactor())
    return redactor


def _lineage(parts: LoadRuntime, load: LoadSpec, extract: ExtractResult, report: RunReport) -> dict[str, Any]:
    """OpenLineage-shaped input and output datasets with schema, row count and quality facets.

    Lineage is best effort: a failure here is logged and never fails the load.
    """
    try:
        fields = [{"name": c.name, "type": c.native_type or c.type.value} for c in extract.schema.columns]
        inputs, outputs = [], []
        name = load.source.dataset_name
        source = parts.source.dataset(name) if name else None
        if source:
            inputs.append({**source, "schema": fields})
        sink = parts.sink.dataset(load.sink.target)
        if sink:
            stage = report.find_phase("stage")
            outputs.append(
                {
                    **sink,
                    "schema": fields,
                    "rows": stage.rows if stage else None,
                    "bytes": stage.bytes if stage else None,
                    "quality": report.quality,
                }
            )
        return {"inputs": inputs, "outputs": outputs}
    except Exception as exc:
        log.warning("dpone %s.%s: lineage not recorded: %s", report.pipeline, report.load, exc)
        return {}


def _quality_gates(
    ctx: LoadContext, sink: SinkHook, staged: StagedData, source_rows: int | None, report: RunReport
) -> None:
    """Measure the load's checks on staging; a failed ``error`` check stops before finalize."""
    checks = ctx.load.quality
    with _timed(report, "quality") as phase:
        measured = sink.measure_quality(ctx, staged, checks)
        phase.rows = staged.rows
    results = [judge(check, m, source_rows) for check, m in zip(checks, measured, strict=True)]
    report.quality = [r.to_dict() for r in results]
    for r in results:
        level = logging.INFO if r.passed else logging.ERROR if r.severity == "error" else logging.WARNING
        log.log(
            level, "dpone %s: quality %s %s: %s", ctx.key, r.name, "ok" if r.passed else "FAILED", r.message
        )
    enforce_quality(ctx.load.name, results)


def _batch_staging(parts: LoadRuntime) -> bool:
    source = parts.source
    return (
        isinstance(source, ResumableSource) and source.resumable and isinstance(parts.sink, BatchStagingSink)
    )


def _resume_point(ctx: LoadContext, parts: LoadRuntime) -> ResumeState | None:
    """The checkpoint a failed try of this same run left, if its staging is still there."""
    if not _batch_staging(parts):
        return None
    saved = parts.state.get(ctx.pipeline, ctx.load.name + RESUME_SUFFIX)
    if not isinstance(saved, ResumeState) or saved.run_id != ctx.run_id:
        return None
    if not isinstance(parts.sink, BatchStagingSink) or not parts.sink.has_staging(ctx):
        log.warning("dpone %s: run %s left a checkpoint but no staging; starting over", ctx.key, ctx.run_id)
        return None
    log.info("dpone %s: resuming after %d staged rows at %s", ctx.key, saved.staged_rows, saved.checkpoint)
    return saved


def _stage_checkpointed(
    ctx: LoadContext, parts: LoadRuntime, extract: Any, resume: ResumeState | None
) -> StagedData:
    """Stage batch by batch; after each committed batch, save where to resume from."""
    sink = parts.sink
    assert isinstance(sink, BatchStagingSink)  # checkpointed batches only go to such a sink
    kept = sink.open_staging(ctx, extract.schema, resume=resume is not None)
    if resume is not None and not kept:
        raise TransientError(f"staging of run {ctx.run_id} vanished while resuming; the next try starts over")
    key = ctx.load.name + RESUME_SUFFIX
    total = resume.staged_rows if resume else 0
    try:
        for rows, checkpoint in extract.artifact.batches:
            if rows:
                total += sink.append_batch(ctx, extract.schema, rows)
            parts.state.commit(ctx.pipeline, key, ResumeState(ctx.run_id, checkpoint, total), ctx.run_id)
            failpoint(AFTER_CHECKPOINT)
    except ResumeExpiredError as exc:
        # What was staged came from a position that is gone: the next try restages from scratch.
        parts.state.reset(ctx.pipeline, key)
        log.warning(
            "dpone %s: %s; dropped the saved position, the next try starts over", ctx.key, exc.message
        )
        raise ResumeExpiredError(f"{exc.message}; the next try starts the run over") from None
    staged = sink.staged(ctx, extract.schema)
    log.info("dpone %s: staged %s rows batch by batch", ctx.key, f"{staged.rows:,}")
    return staged


def run_load(
    pipeline: str, load: LoadSpec, parts: LoadRuntime, run_id: str, request: RunRequest | None = None
) -> RunReport:
    """Run ``load``; a chunked backfill runs chunk after chunk, each committing its own state.

    A failure stops at the failing chunk with the state at the end of the previous one, so a
    retry resumes at the first unfinished chunk. ``request``: what a manual trigger asked for
    (recorded in the report); a ``full_reload`` extracts from scratch, not from the state.
    """
    try:
        report, more = _run_once(pipeline, load, parts, run_id, request)
        chunks = [report]
        while (
            report.status == "success"
            and more
            and report.state_after != report.state_before  # a chunk that does not advance would loop
            and report.request is None  # a reload or backfill is one read (a next chunk would not be)
        ):
            log.info("dpone %s.%s: chunk %d done, next chunk", pipeline, load.name, len(chunks))
            report, more = _run_once(pipeline, load, parts, f"{run_id}.chunk{len(chunks) + 1}")
            chunks.append(report)
    finally:
        release_hooks(parts)
    return chunks[0] if len(chunks) == 1 else RunReport.combine(chunks)


def _run_once(
    pipeline: str, load: LoadSpec, parts: LoadRuntime, run_id: str, request: RunRequest | None = None
) -> tuple[RunReport, bool]:
    """Run ``load`` once: its report, and whether a chunked backfill has rows past this chunk.
    Raises the original error after recording it in the report."""
    fresh = request is not None and request.mode == "full_reload"
    ctx = LoadContext(pipeline=pipeline, load=load, run_id=run_id)
    report = RunReport(
        pipeline=pipeline,
        load=load.name,
        run_id=run_id,
        strategy=load.sink.strategy.value,
        source={
            "connector": load.source.connector,
            "conn_id": load.source.conn_id,
            "object": load.source.object_name,
        },
        sink={"connector": load.sink.connector, "conn_id": load.sink.conn_id, "table": load.sink.target},
        request=request.to_dict() if request and request.mode != "scheduled" else None,
    )
    for part in (parts.source, parts.sink):
        if isinstance(part, RunAware):
            part.bind_run(ctx)
    started = time.perf_counter()
    staged: StagedData | None = None
    succeeded = False
    extract = None
    try:
        before = recover_state(ctx, parts, parts.state.get(pipeline, load.name))
        report.state_before = state_to_dict(before) if before else None
        log.info("dpone %s: state before %s", ctx.key, report.state_before)
        # ``start`` is where this run extracts from; ``before`` stays what the backend holds (the
        # journal compares it with the backend after a crash).
        if fresh:  # a full reload reads from scratch; ``before`` stays for the journal
            start: StateRecord | None = None
            note: str | None = "full reload: read from scratch, the stored watermark ignored"
        else:
            ctx, start, note = starting_state(ctx, parts.sink, parts.state, before)
        if note:
            report.warnings.append(note)
        resume = None if fresh else _resume_point(ctx, parts)
        with _timed(report, "extract"):
            source, files = parts.source, load.sink.staging.files  # staged files are written from rows
            accepted = staged_formats(parts.sink, files) if files else parts.sink.accepted_formats
            if isinstance(source, ResumableSource) and _batch_staging(parts) and not files:
                extract = source.extract(
                    effective_source(load),
                    start,
                    accepted_formats=(*parts.sink.accepted_formats, CheckpointedBatches.kind),
                    resume=resume.checkpoint if resume else None,
                )
            else:
                extract = parts.source.extract(effective_source(load), start, accepted_formats=accepted)
        failpoint("after_extract")
        report.source["window"] = extract.details
        artifact = extract.artifact
        report.fast_path = artifact.format if isinstance(artifact, FileExport) else artifact.kind
        log.info("dpone %s: extracting with %s, window %s", ctx.key, report.fast_path, extract.details)
        with _timed(report, "schema"):
            plan = parts.sink.schema_plan(ctx, extract.schema)
        report.schema = plan.to_dict()
        log.info("dpone %s: schema plan: %s", ctx.key, plan.summary())
        for warning in plan.warnings:
            log.warning("dpone %s: schema: %s", ctx.key, warning)
            report.warnings.append(warning)
        if plan.mode is EvolutionMode.PLAN_ONLY and plan.needs_ddl:
            # Report what would change; touch neither the target nor the state.
            log.warning(
                "dpone %s: schema_evolution.mode is plan_only; not loading: %s", ctx.key, plan.summary()
            )
            report.status = "plan_only"
            report.state_after = report.state_before
            succeeded = True
            return report, False
        enforce_schema_plan(plan, load.sink.target)  # breaking changes fail here, before staging
        check_change_feed(load, extract.details)
        if files is not None and not isinstance(extract.artifact, ObjectStorageStagingManifest):
            with _timed(report, "files"):
                extract = stage_files(files, ctx, extract)
            report.sink["files"] = files_report(extract.artifact)
        with _timed(report, "stage") as phase:
            if isinstance(extract.artifact, CheckpointedBatches):
                staged = _stage_checkpointed(ctx, parts, extract, resume)
            else:
                staged = parts.sink.stage(ctx, extract)
            phase.rows, phase.bytes = staged.rows, staged.bytes
        if extract.details.get("snapshot"):  # a change feed's full read: cdc_apply deletes the keys it lacks
            staged.details["snapshot"] = True
        if load.quality:
            _quality_gates(ctx, parts.sink, staged, extract.stats.source_rows, report)
        if needs_key_set(load):
            with _timed(report, "key_set") as phase:
                keys = parts.source.extract_keys(
                    load.source,
                    list(load.sink.unique_key or ()),
                    accepted_formats=parts.sink.accepted_formats,
                )
                try:
                    key_set = parts.sink.stage_key_set(ctx, keys)
                finally:
                    close_artifact(keys.artifact)
                staged.key_set = key_set.staging
                phase.rows, phase.bytes = key_set.rows, key_set.bytes
        failpoint("after_stage")
        check_full_refresh(ctx, parts.sink, staged)
        candidate = extract.state_candidate
        extra = []
        colocated = journaled = False
        if candidate is not None:
            statements = parts.state.colocated_statements(parts.sink, pipeline, load.name, candidate, run_id)
            if statements:
                extra, colocated = statements, True
            elif isinstance(parts.sink, JournalingSink):
                after = plain_state(candidate)
                assert after is not None  # a candidate is a record
                extra = parts.sink.journal_statements(ctx, plain_state(before), after)
                journaled = True
        ledger, ledger_with_data = extract.ledger, False
        if ledger is not None:  # committed with the data where the state table lives in the sink
            with_data = parts.state.colocated_statements(parts.sink, pipeline, *ledger, run_id)
            if with_data:
                extra, ledger_with_data = [*extra, *with_data], True
        with _timed(report, "finalize") as phase:
            result = parts.sink.finalize(ctx, staged, extra)
            phase.rows = rows_written(result, staged.rows)
            report.sink["finalize"] = result
            if (skipped := skipped_keys_warning(load, result)) is not None:
                log.warning("dpone %s.%s: %s", pipeline, load.name, skipped)
                report.warnings.append(skipped)
        failpoint("after_finalize")
        if candidate is not None:
            if colocated:
                report.state_committed = "with_data"
            else:
                with _timed(report, "state"):
                    parts.state.commit(pipeline, load.name, candidate, run_id)
                    if journaled and isinstance(parts.sink, JournalingSink):
                        parts.sink.acknowledge_journal(ctx, run_id)
                report.state_committed = "after_data"
            report.state_after = state_to_dict(candidate)
            if isinstance(parts.source, AcknowledgingSource):
                failpoint(AFTER_STATE)
                try:  # the data and the state are safe; a failed acknowledgement is only logged
                    parts.source.acknowledge(ctx, candidate)
                except Exception as exc:
                    log.warning("dpone %s: source acknowledgement failed: %s", ctx.key, exc)
        else:
            report.state_after = report.state_before
        if ledger is not None and not ledger_with_data:  # after the state: a lost one fails the retry loudly
            parts.state.commit(pipeline, *ledger, run_id)
        if isinstance(extract.artifact, CheckpointedBatches):
            parts.state.reset(pipeline, load.name + RESUME_SUFFIX)  # the run is done: nothing to resume
        finish_files(extract.artifact, succeeded=True)  # a failed load keeps its files as evidence
        succeeded = True
        report.status = "success"
        return report, extract.more
    except Exception as exc:
        clean = scrub(exc, _redactor(parts).redact)
        report.status = "failed"
        report.error = str(clean) if isinstance(clean, DponeError) else f"{type(clean).__name__}: {clean}"
        with suppress(AttributeError, TypeError):  # callers save the failed run's report too
            vars(clean)["run_report"] = report
        if clean is exc:
            raise
        raise clean from None
    except BaseException:  # KeyboardInterrupt, SystemExit: record and re-raise untouched
        report.status = "failed"
        raise
    finally:
        if extract is not None:
            close_artifact(extract.artifact)
            report.source["window"] = extract.report_details()
            report.lineage = _lineage(parts, load, extract, report)
        try:
            with _timed(report, "cleanup"):
                parts.sink.cleanup(ctx, staged, succeeded)
        except Exception as cleanup_exc:  # cleanup never masks the load's own outcome
            log.warning("dpone %s: staging cleanup failed: %s", ctx.key, cleanup_exc)
        report.seconds = round(time.perf_counter() - started, 4)
        log.info("%s", report.to_table())
