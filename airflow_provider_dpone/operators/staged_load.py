"""StagedLoadOperator: one load (a source, a sink, state) as one Airflow task."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from ..contracts.errors import DponeError

_VALIDATED: ContextVar[bool] = ContextVar("dpone_validated", default=False)


@contextmanager
def validated_loads() -> Iterator[None]:
    """Operators built inside were validated with their whole manifest (the DAG factory): their
    own parse-time check would only do that work again."""
    token = _VALIDATED.set(True)
    try:
        yield
    finally:
        _VALIDATED.reset(token)


def _digest(value: Any) -> str:
    import hashlib

    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:10]


def mapped_identity(source: Mapping[str, Any], sink: Mapping[str, Any]) -> str:
    """What a mapped instance loads, as the rest of its load name: the source (connection,
    object, a query by a hash of its text, a resource's options by a hash) and the sink's
    target. Taken from the arguments as written (before templating), so a templated query
    keeps its name from run to run; two instances share state only when they read the same
    thing into the same target."""
    obj = next((str(source[k]) for k in ("table", "topic", "resource") if source.get(k)), None)
    if obj is None:
        obj = "q" + _digest(source.get("query") or source.get("endpoint"))
    if source.get("options"):
        obj += "-o" + _digest(source["options"])
    target = str(sink.get("table") or sink.get("topic") or "")
    raw = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{source.get('conn_id')}.{obj}-{sink.get('conn_id')}.{target}")
    return raw if len(raw) <= 150 else f"{raw[:130]}-{_digest(raw)}"


class StagedLoadOperator(BaseOperator):
    """Extract from a source, stage and finalize into a sink, then advance state.

    :param source: the load's source: a typed spec (``PostgresSource(...)``, ``KafkaSource(...)``,
        ``FastTrackSource(...)``, see :mod:`airflow_provider_dpone.specs`) or the same mapping a
        manifest holds. Strings inside it are Jinja-templated, e.g. ``{{ ds }}``.
    :param sink: the load's sink (``PostgresSink(...)``, ``ClickHouseSink(...)`` or a mapping).
    :param state: where watermarks live (``TableState(conn_id)``, ``VariableState()`` or a
        mapping); Airflow Variables when not given.
    :param pipeline: the first part of the state key; the DAG id when not given.
    :param load_name: the second part of the state key; the task id when not given (a mapped
        task instance: ``<task_id>.<source conn>.<object>-<sink conn>.<target>``).
    :param quality: quality checks run on staging before finalize (docs/quality-gates.md).
    :param schema_evolution: ``{mode, on_type_change}`` (docs/schema-evolution.md).
    :param reconciliation: ``{deletes, max_delete_fraction, ...}`` (docs/strategies.md).
    :param parallel: ``{partitions, by}``: the load is split into key ranges (docs/parallel.md).
        Given alone, this task runs the ranges one after another; :func:`partitioned_load` maps
        them over Airflow's workers and passes their results as ``partitions``.
    :param partitions: the mapped extract tasks' results (``extract.output``) this task verifies
        and loads together.

    The arguments are checked when the DAG file is parsed, by the manifest's rules and with the
    messages of ``dpone validate`` (templated strings and XComArgs are checked when the task
    runs). Hooks are resolved from Airflow Connections only when the task runs. The run report is
    returned, so it lands in XCom as ``return_value``. Errors a retry cannot fix (bad input,
    duplicate keys, schema mismatch) fail the task without retrying.
    """

    template_fields: Sequence[str] = ("source", "sink", "state", "quality", "partitions")
    template_fields_renderers = {"source": "json", "sink": "json", "state": "json", "quality": "json"}
    ui_color = "#d9ecf2"

    def __init__(
        self,
        *,
        source: Mapping[str, Any],
        sink: Mapping[str, Any],
        state: Mapping[str, Any] | None = None,
        pipeline: str | None = None,
        load_name: str | None = None,
        quality: Sequence[Mapping[str, Any]] | None = None,
        schema_evolution: Mapping[str, Any] | None = None,
        reconciliation: Mapping[str, Any] | None = None,
        parallel: Mapping[str, Any] | None = None,
        partitions: Any = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.source = source
        self.sink = sink
        self.state = state or {}
        self.pipeline = pipeline
        self.load_name = load_name
        self.quality = list(quality or [])
        self.schema_evolution = schema_evolution
        self.reconciliation = reconciliation
        self.parallel = parallel
        self.partitions = partitions
        # a mapped instance's state key, from its arguments as written (templates unrendered)
        self._identity = (
            mapped_identity(source, sink)
            if isinstance(source, Mapping) and isinstance(sink, Mapping)
            else None
        )
        self._check_arguments()

    def _check_arguments(self) -> None:
        """Fail the DAG file's parse on a load ``dpone validate`` would refuse."""
        if _VALIDATED.get():
            return
        from ..contracts.load_args import check_load, unrendered

        parts = (
            self.source,
            self.sink,
            self.state,
            self.schema_evolution,
            self.reconciliation,
            self.parallel,
        )
        if not all(p is None or isinstance(p, Mapping) for p in parts):
            return  # a whole part comes from an XComArg: checked when the task runs
        pipeline = self.pipeline or (self.dag_id if self.has_dag() else "dpone")
        check_load(
            pipeline,
            unrendered(self._load(self.load_name or self.task_id)),
            unrendered(self.state),
            self._file,
        )

    @property
    def _file(self) -> str:
        return str(self.dag.fileloc) if self.has_dag() else f"<task {self.task_id}>"

    def _load(self, name: str) -> dict[str, Any]:
        from ..contracts.load_args import load_mapping

        return load_mapping(
            name,
            self.source,
            self.sink,
            quality=self.quality or None,
            schema_evolution=self.schema_evolution,
            reconciliation=self.reconciliation,
            parallel=self.parallel,
        )

    def _known_loads(self) -> set[str]:
        """The task ids and load names of this DAG's loads (what a request may name)."""
        tasks = self.dag.tasks if self.has_dag() else [self]
        return {t.task_id for t in tasks} | {n for t in tasks if (n := getattr(t, "load_name", None))}

    def _name(self, context: Any) -> str:
        if self.load_name:
            return self.load_name
        map_index = getattr(context.get("ti"), "map_index", -1)
        if map_index is None or map_index < 0:
            return self.task_id
        return f"{self.task_id}.{self._identity or mapped_identity(self.source, self.sink)}"

    def execute(self, context: Any) -> Any:
        from ..contracts.load_args import check_load
        from ..contracts.run_request import run_request
        from .manual_run import check_selection, requested_load
        from .wiring import assemble

        pipeline = self.pipeline or self.dag_id
        try:
            spec, state = check_load(pipeline, self._load(self._name(context)), self.state, self._file)
            request = run_request(dict(context.get("params") or {}))
            if request.mode != "scheduled":
                check_selection(request, self._known_loads())
                if not (request.applies_to(spec.name) or request.applies_to(self.task_id)):
                    # not skipped: a skip would also skip the selected loads downstream of it
                    self.log.info(
                        "dpone %s.%s: not selected by this %s run", pipeline, spec.name, request.mode
                    )
                    return self._skip(
                        {
                            "pipeline": pipeline,
                            "load": spec.name,
                            "status": "not_selected",
                            "request": request.to_dict(),
                        }
                    )
                if request.mode == "reset_state":
                    return self._reset(pipeline, spec, state, request)
            parts = assemble(spec, state)
            check_writable = getattr(parts.state, "check_writable", None)
            if check_writable is not None:  # a state its end could not write: refuse before any data moves
                check_writable(pipeline, spec.name)
            if request.mode != "scheduled":
                spec = requested_load(spec, request, parts.state.get(pipeline, spec.name))
            report = self._run(pipeline, spec, parts, context["run_id"], request)
        except Exception as exc:
            self._keep(getattr(exc, "run_report", None))
            if not isinstance(exc, DponeError) or exc.retryable:
                raise
            raise AirflowFailException(str(exc)) from exc
        return self._finish(report)

    def _skip(self, outcome: dict[str, Any]) -> Any:
        """What a run that does not select this load returns."""
        return outcome

    def _reset(self, pipeline: str, spec: Any, state: Any, request: Any) -> Any:
        """A ``reset_state`` run: forget the load's state (confirmed by the request)."""
        from .manual_run import reset_state

        done = reset_state(pipeline, spec, state, request)
        self.log.info("dpone %s.%s: state reset (%s)", pipeline, spec.name, done)
        return done

    def _finish(self, report: Any) -> Any:
        """The task's return value (XCom) from what ``_run`` returned."""
        self._keep(report)
        return report.to_dict()

    def _run(self, pipeline: str, spec: Any, parts: Any, run_id: str, request: Any) -> Any:
        """The load itself: one engine run; a partitioned one from its mapped partitions'
        files, or range after range here when it was given none."""
        from ..runtime.partitioned import finalize_partitions, run_any_load

        if self.partitions is None:
            return run_any_load(pipeline, spec, parts, run_id, request)
        from ..contracts.partitions import PartitionResult

        results = [
            PartitionResult.from_dict(r, f"partition result {i}") for i, r in enumerate(self.partitions)
        ]
        return finalize_partitions(pipeline, spec, parts, run_id, results, request)

    def _keep(self, report: Any) -> None:
        """Remember the lineage for OpenLineage; save the report where DPONE_REPORT_DIR says."""
        if report is None:
            return
        self._lineage = report.lineage
        from ..runtime.report_store import report_dir, save_report

        directory = report_dir(default=None)
        if directory is not None:
            path = save_report(report, directory)
            self.log.info("run report saved to %s", path)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """Input and output datasets of the load, for Airflow's OpenLineage provider."""
        from ..runtime.openlineage import operator_lineage

        return operator_lineage(getattr(self, "_lineage", None) or {})

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> Any:
        return self.get_openlineage_facets_on_complete(task_instance)


class InvalidManifestOperator(BaseOperator):
    """Stands in for a manifest that failed validation: running it shows the error."""

    ui_color = "#f4c7c3"

    def __init__(self, *, errors: str, **kwargs: Any):
        super().__init__(**kwargs)
        self.errors = errors

    def execute(self, context: Any) -> None:
        raise AirflowFailException(f"invalid dpone manifest:\n{self.errors}")
