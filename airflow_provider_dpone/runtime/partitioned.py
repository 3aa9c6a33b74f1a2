"""A partitioned load in three steps, each one Airflow task (or run one after another by
``dpone run``): plan the ranges, extract each range to files, finalize them all at once.

1. ``plan_partitions`` recovers a lost state commit, fixes the window from the stored state and
   measures the key ranges in one snapshot of the source; every partition gets the same window,
   state and directory (a new one per plan, so a re-planned run never mixes with an old one).
2. ``extract_partition`` stages one range as Parquet files with their manifest under
   ``<directory>/p<index>/<try>``: a retried partition writes its own files and reports them.
3. ``finalize_partitions`` checks that exactly the planned partitions arrived (one per index, the
   same plan, each manifest as reported), gathers them into one manifest that the sink verifies
   file by file and loads in one finalize, and only then commits the plan's state. A finalize
   retried after its data committed finds the state already advanced and loads nothing again.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from dataclasses import replace
from typing import Any

from ..contracts.artifacts import ExtractResult, ObjectStorageStagingManifest, StreamStats
from ..contracts.errors import BadInputError, StagingEvidenceError, StateError, UnsupportedError
from ..contracts.manifest import FileStagingSpec, LoadSpec
from ..contracts.partitions import PartitionResult, PartitionTask
from ..contracts.redaction import Redactor
from ..contracts.run_request import RunRequest
from ..contracts.sources import SourceSpec
from ..contracts.staging_manifest import StagedFile, StagingManifest
from ..contracts.state import PLAN_SUFFIX, PlanState, StateRecord, state_from_dict
from ..contracts.table import TableSchema
from .engine import LoadRuntime, close_artifact, effective_source, run_load
from .failpoints import PARTITION_FILES, failpoint
from .file_staging import run_path, stage_files, staged_formats
from .guards import starting_state
from .protocols import LoadContext
from .recovery import plain_state, recover_state
from .report import RunReport

log = logging.getLogger("airflow_provider_dpone.runtime")


def _files(load: LoadSpec) -> FileStagingSpec:
    if load.parallel is None or load.sink.staging.files is None:  # dpone validate refuses it first
        raise BadInputError(f"load '{load.name}': parallel needs sink.staging.files")
    return load.sink.staging.files


def plan_partitions(
    pipeline: str,
    load: LoadSpec,
    parts: LoadRuntime,
    run_id: str,
    request: RunRequest | None = None,
) -> list[PartitionTask]:
    """The partitions of this run: ranges, shared window and state, and their directory."""
    files, parallel = _files(load), load.parallel
    assert parallel is not None
    planner = getattr(parts.source, "plan_partitions", None)
    if planner is None:
        raise UnsupportedError(f"parallel: the {load.source.connector} source cannot split into ranges")
    ctx = LoadContext(pipeline=pipeline, load=load, run_id=run_id)
    before = recover_state(ctx, parts, parts.state.get(pipeline, load.name))
    start: StateRecord | None = None
    if request is None or request.mode != "full_reload":
        ctx, start, note = starting_state(ctx, parts.sink, parts.state, before)
        if note:
            log.warning("dpone %s: %s", ctx.key, note)
    planned_at = dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds")
    plan = planner(effective_source(load), start, parallel)
    plan_id = uuid.uuid4().hex[:12]
    directory = f"{run_path(files, ctx)}/plan-{plan_id}"
    tasks = [
        PartitionTask(
            plan_id=plan_id,
            planned_at=planned_at,
            range=r,
            directory=directory,
            state_before=plain_state(before),
            start=plain_state(start),
            candidate=plain_state(plan.candidate),
            window=_json_safe(plan.details),
            cursor_upper=plan.cursor_upper,
            pinned=plan.pinned,
        )
        for r in plan.ranges
    ]
    log.info(
        "dpone %s: %d partition(s) of %s, window %s, files under %s",
        ctx.key,
        len(tasks),
        parallel.by,
        plan.details,
        directory,
    )
    for task in tasks:
        log.info("dpone %s: partition %d: %s", ctx.key, task.range.index, task.range.describe())
    return tasks


def _json_safe(details: dict[str, Any]) -> dict[str, Any]:
    import json

    return dict(json.loads(json.dumps(details, default=str)))


def noop_partition(reason: str) -> PartitionTask:
    """The one partition of a run that loads nothing (a manual run not selecting the load, or a
    state reset): the extract passes it on and the finalize does what the request asks."""
    from ..contracts.partitions import PartitionRange

    return PartitionTask("noop", "", PartitionRange(0, 1, "-"), "", None, None, None, {}, noop=reason)


def extract_partition(
    pipeline: str, load: LoadSpec, parts: LoadRuntime, task: PartitionTask, run_id: str
) -> PartitionResult:
    """Stage one range as files under ``<directory>/p<index>/<try>``; nothing else is written."""
    if task.noop:
        return PartitionResult(task, None)
    files = _files(load)
    extractor = parts.source
    ctx = LoadContext(pipeline=pipeline, load=load, run_id=run_id)
    where = f"{task.directory}/p{task.range.index:03d}/{uuid.uuid4().hex[:12]}"
    log.info(
        "dpone %s: partition %d of %d (%s) to %s",
        ctx.key,
        task.range.index + 1,
        task.range.count,
        task.range.describe(),
        where,
    )
    extract = extractor.extract(  # type: ignore[call-arg]  # sources that split take a partition
        effective_source(load),
        state_from_dict(task.start),
        accepted_formats=staged_formats(parts.sink, files),
        partition=task,
    )
    try:
        staged = stage_files(files, ctx, extract, directory=where)
    finally:
        close_artifact(extract.artifact)
    failpoint(PARTITION_FILES)
    artifact = staged.artifact
    assert isinstance(artifact, ObjectStorageStagingManifest)
    m = artifact.manifest
    return PartitionResult(task, m.uri, m.rows, len(m.files), m.bytes)


def gather(
    results: list[PartitionResult], files: FileStagingSpec, pipeline: str, load: str
) -> StagingManifest:
    """The partitions' manifests as one, after checking that exactly the planned partitions of
    one plan arrived and that each manifest is the one its task reported; names the problem."""
    from ..staging.files import MANIFEST, load_manifest
    from ..staging.store import store_for

    conn_id = files.conn_id
    if not results:
        raise StagingEvidenceError("no partition reported its files; nothing was loaded")
    first = results[0].task
    count = first.range.count
    indexes = sorted(r.task.range.index for r in results)
    if {r.task.plan_id for r in results} != {first.plan_id} or indexes != list(range(count)):
        raise StagingEvidenceError(
            f"the partitions reported are not one whole plan (plans {sorted({r.task.plan_id for r in results})}, "
            f"indexes {indexes} of {count}); nothing was loaded. Clear the whole run to plan it again"
        )
    staged: list[StagedFile] = []
    schema: TableSchema | None = None
    formats: set[str] = set()
    for result in sorted(results, key=lambda r: r.task.range.index):
        uri, index = result.manifest_uri, result.task.range.index
        if uri is None or not uri.startswith(first.directory + "/"):
            raise StagingEvidenceError(f"partition {index} reported files outside {first.directory}")
        manifest = load_manifest(store_for(uri, conn_id))
        origin = dict(manifest.origin)
        if manifest.uri.rstrip("/") != uri.rstrip("/") or manifest.rows != result.rows:
            raise StagingEvidenceError(
                f"{uri}/{MANIFEST} is not what partition {index} reported ({manifest.rows:,} rows, "
                f"it reported {result.rows:,}); nothing was loaded"
            )
        if origin.get("pipeline") != pipeline or origin.get("load") != load:
            raise StagingEvidenceError(
                f"{uri} holds an export of another load ({origin}); nothing was loaded"
            )
        if manifest.window.get("partition") != result.task.range.describe():
            raise StagingEvidenceError(
                f"{uri} holds {manifest.window.get('partition')!r}, not partition {index}'s "
                f"{result.task.range.describe()!r}; nothing was loaded"
            )
        if schema is not None and manifest.schema.columns != schema.columns:
            raise StagingEvidenceError(
                f"partition {index} was staged with other columns than partition 0 (the source "
                "table changed during the run); clear the whole run to plan it again"
            )
        schema = manifest.schema
        formats.add(manifest.format)
        prefix = uri[len(first.directory) + 1 :]
        staged += [replace(f, name=f"{prefix}/{f.name}") for f in manifest.files]
    assert schema is not None
    window = {
        **first.window,
        "partitions": count,
        "plan": first.plan_id,
        "by": first.range.by,
    }
    window.pop("partition", None)
    if len(formats) != 1:
        raise StagingEvidenceError(
            f"the partitions were staged in several formats ({sorted(formats)}); nothing was loaded"
        )
    gathered = StagingManifest(
        first.directory,
        formats.pop(),
        schema,
        tuple(staged),
        window,
        files.retention,
        {"pipeline": pipeline, "load": load, "plan": first.plan_id},
    )
    # written last, beside the partitions: the directory then replays as one export
    store_for(first.directory, conn_id).write(MANIFEST, [gathered.to_json().encode()])
    return gathered


class PartitionedExport:
    """The finalize's source: the gathered partitions, their window and the plan's state
    candidate. The key set (reconciliation) and lineage still come from the real source."""

    def __init__(
        self, source: Any, manifest: StagingManifest, task: PartitionTask, conn_id: str | None, load: str
    ):
        self.source, self.manifest, self.task, self.conn_id = source, manifest, task, conn_id
        self.ledger = (load + PLAN_SUFFIX, PlanState(task.plan_id, task.planned_at))

    def extract(
        self, spec: SourceSpec, state: StateRecord | None, *, accepted_formats: tuple[str, ...] = ()
    ) -> ExtractResult:
        if plain_state(state) != self.task.start:
            raise StateError(
                f"the run would now start from state {plain_state(state)}, but its partitions were read "
                f"from {self.task.start}; nothing was loaded. Clear the whole run to plan it again"
            )
        m = self.manifest
        details = {**m.window, "files": len(m.files), "rows": m.rows}
        stats = StreamStats()
        stats.source_rows = m.rows
        artifact = ObjectStorageStagingManifest(m, self.conn_id)
        candidate = state_from_dict(self.task.candidate)
        return ExtractResult(artifact, m.schema, candidate, details, stats=stats, ledger=self.ledger)

    def plan_extract(self, spec: SourceSpec, state: StateRecord | None) -> tuple[dict[str, Any], TableSchema]:
        result: tuple[dict[str, Any], TableSchema] = self.source.plan_extract(spec, state)
        return result

    def dataset(self, table: str) -> dict[str, str] | None:
        found: dict[str, str] | None = self.source.dataset(table)
        return found

    def redactor(self) -> Redactor:
        own = getattr(self.source, "redactor", None)
        return own() if own is not None else Redactor()

    def extract_keys(
        self, spec: SourceSpec, keys: list[str], *, accepted_formats: tuple[str, ...] = ()
    ) -> ExtractResult:
        result: ExtractResult = self.source.extract_keys(spec, keys, accepted_formats=accepted_formats)
        return result

    def release(self) -> None:
        release = getattr(self.source, "release", None)
        if release is not None:
            release()


def finalize_partitions(
    pipeline: str,
    load: LoadSpec,
    parts: LoadRuntime,
    run_id: str,
    results: list[PartitionResult],
    request: RunRequest | None = None,
) -> RunReport:
    """Load every partition's files in one finalize, then commit the plan's state. A retry after
    the data and state committed loads nothing again; a state changed by anything else since the
    plan fails, naming it."""
    files = _files(load)
    ctx = LoadContext(pipeline=pipeline, load=load, run_id=run_id)
    live = [r for r in results if not r.task.noop]
    if not live:
        raise StateError(
            f"{ctx.key}: the run's partitions loaded nothing ({results[0].task.noop if results else 'none'})"
        )
    task = live[0].task
    current = plain_state(recover_state(ctx, parts, parts.state.get(pipeline, load.name)))
    loaded = parts.state.get(pipeline, load.name + PLAN_SUFFIX)
    if isinstance(loaded, PlanState) and loaded.plan_id == task.plan_id:
        log.info("dpone %s: plan %s was loaded by an earlier try; nothing to load", ctx.key, task.plan_id)
        report = RunReport(
            pipeline=pipeline, load=load.name, run_id=run_id, strategy=load.sink.strategy.value
        )
        report.status, report.state_before, report.state_after = "success", current, current
        report.warnings.append(
            f"partition plan {task.plan_id} was already loaded (an earlier try committed it)"
        )
        return report
    if isinstance(loaded, PlanState) and loaded.planned_at > task.planned_at:
        raise StateError(
            f"{ctx.key}: plan {loaded.plan_id}, made at {loaded.planned_at}, was loaded after this run's "
            f"plan {task.plan_id} was made (at {task.planned_at}); loading it would put older rows over "
            "newer ones, so nothing was loaded. Clear the whole run to plan it again"
        )
    if current != task.state_before:
        raise StateError(
            f"{ctx.key}: the state is {current}, not {task.state_before} as when the partitions were "
            "planned (a reset or another run changed it); nothing was loaded. Clear the whole run to "
            "plan it again"
        )
    manifest = gather(live, files, pipeline, load.name)
    log.info(
        "dpone %s: %d partition(s) verified: %s rows in %d file(s) at %s",
        ctx.key,
        len(live),
        f"{manifest.rows:,}",
        len(manifest.files),
        manifest.uri,
    )
    source = PartitionedExport(parts.source, manifest, task, files.conn_id, load.name)
    runtime = LoadRuntime(source=source, sink=parts.sink, state=parts.state)  # type: ignore[arg-type]
    report = run_load(pipeline, load, runtime, run_id, request)
    if report.status == "success" and files.retention == "delete":
        _drop_partition_manifests(live, files.conn_id)  # an empty range's manifest lists no file
    return report


def _drop_partition_manifests(results: list[PartitionResult], conn_id: str | None) -> None:
    from ..staging.files import MANIFEST
    from ..staging.store import store_for

    for result in results:
        if result.manifest_uri is not None:
            try:  # the data and the state are committed: a file left behind is only logged
                store_for(result.manifest_uri, conn_id).delete(MANIFEST)
            except Exception as exc:
                log.warning("%s/%s was not deleted: %s", result.manifest_uri, MANIFEST, exc)


def run_partitioned(
    pipeline: str, load: LoadSpec, parts: LoadRuntime, run_id: str, request: RunRequest | None = None
) -> RunReport:
    """The three steps one after another in this process (``dpone run``, or an operator given no
    mapped partitions): the same files, checks and state as on Airflow's workers."""
    tasks = plan_partitions(pipeline, load, parts, run_id, request)
    results = [extract_partition(pipeline, load, parts, task, run_id) for task in tasks]
    return finalize_partitions(pipeline, load, parts, run_id, results, request)


def run_any_load(
    pipeline: str, load: LoadSpec, parts: LoadRuntime, run_id: str, request: RunRequest | None = None
) -> RunReport:
    """A load run in this process, partitioned or not (``dpone run``, one operator alone)."""
    if load.parallel is None:
        return run_load(pipeline, load, parts, run_id, request)
    return run_partitioned(pipeline, load, parts, run_id, request)


def plan_entry_partitions(ctx: LoadContext, source: Any, start: StateRecord | None) -> dict[str, Any]:
    """What ``dpone plan`` shows of a partitioned load: the ranges the plan task would make now
    and where their files would go (read-only)."""
    load = ctx.load
    files, parallel = _files(load), load.parallel
    assert parallel is not None
    plan = source.plan_partitions(effective_source(load), start, parallel)
    return {
        "by": parallel.by,
        "ranges": [r.describe() for r in plan.ranges],
        "cursor_upper": plan.cursor_upper if plan.pinned else None,
        "files": f"{run_path(files, replace(ctx, run_id=''))}<run_id>/plan-<id>/p<index>/<try>",
        "tasks": f"{load.name}__plan >> {load.name}__extract (mapped, {len(plan.ranges)}) >> {load.name}",
    }
