"""A partitioned load as Airflow tasks: one plan task, one mapped extract task per key range
(dynamic task mapping, so the ranges spread over whatever executor runs the DAG: Local,
Celery, Kubernetes) and the load's own ``StagedLoadOperator``, which verifies every range's
files and loads them together, then commits state (docs/parallel.md).

Only bounds, names and counts cross the task boundaries (XCom); the rows travel as files in
the load's ``sink.staging.files`` store.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .staged_load import StagedLoadOperator


class PartitionPlanOperator(StagedLoadOperator):
    """Plan a partitioned load: fix its window and split its source into key ranges; returns one
    partition task per range, which the extract task is mapped over."""

    ui_color = "#e8f1d9"

    def _skip(self, outcome: dict[str, Any]) -> Any:
        from ..runtime.partitioned import noop_partition

        return [noop_partition(f"not selected by this {outcome['request']['mode']} run").to_dict()]

    def _reset(self, pipeline: str, spec: Any, state: Any, request: Any) -> Any:
        from ..runtime.partitioned import noop_partition

        return [noop_partition("state reset: done by the load's own task").to_dict()]

    def _run(self, pipeline: str, spec: Any, parts: Any, run_id: str, request: Any) -> Any:
        from ..runtime.engine import release_hooks
        from ..runtime.partitioned import plan_partitions

        try:
            return [t.to_dict() for t in plan_partitions(pipeline, spec, parts, run_id, request)]
        finally:
            release_hooks(parts)

    def _finish(self, report: Any) -> Any:
        return report


class PartitionExtractOperator(StagedLoadOperator):
    """Extract one key range of a partitioned load (``partition``: one of the plan task's
    results) to files; returns where they are and their counts. Mapped with
    ``.expand(partition=plan.output)``; a failed range retries alone."""

    ui_color = "#e8f1d9"

    def __init__(self, *, partition: Mapping[str, Any], **kwargs: Any):
        super().__init__(**kwargs)
        self.partition = partition

    def execute(self, context: Any) -> Any:
        from ..contracts.partitions import PartitionResult, PartitionTask

        task = PartitionTask.from_dict(self.partition)
        if task.noop:
            self.log.info("dpone: partition not extracted: %s", task.noop)
            return PartitionResult(task, None).to_dict()
        return super().execute(context)

    def _name(self, context: Any) -> str:
        return self.load_name or self.task_id  # mapped over ranges of one load, not over loads

    def _run(self, pipeline: str, spec: Any, parts: Any, run_id: str, request: Any) -> Any:
        from ..contracts.partitions import PartitionTask
        from ..runtime.engine import release_hooks
        from ..runtime.partitioned import extract_partition

        try:
            return extract_partition(pipeline, spec, parts, PartitionTask.from_dict(self.partition), run_id)
        finally:
            release_hooks(parts)

    def _finish(self, report: Any) -> Any:
        return report.to_dict()


def partitioned_load(
    *, task_id: str, parallel: Mapping[str, Any], **load: Any
) -> tuple[PartitionPlanOperator, Any, StagedLoadOperator]:
    """The three tasks of a partitioned load, wired: ``<task_id>__plan`` >> ``<task_id>__extract``
    (mapped, one per range) >> ``<task_id>`` (verify, load, commit state). ``load``: the
    arguments of :class:`StagedLoadOperator` (source, sink, state, pipeline, quality...). Put
    upstream dependencies on the first task and downstream ones on the last."""
    name = load.pop("load_name", None) or task_id
    plan = PartitionPlanOperator(task_id=f"{task_id}__plan", load_name=name, parallel=parallel, **load)
    extract = PartitionExtractOperator.partial(
        task_id=f"{task_id}__extract", load_name=name, parallel=parallel, **load
    ).expand(partition=plan.output)
    final = StagedLoadOperator(
        task_id=task_id, load_name=name, parallel=parallel, partitions=extract.output, **load
    )
    return plan, extract, final
