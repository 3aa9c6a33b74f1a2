"""StagedLoadOperator: one manifest load as one Airflow task."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from ..contracts.errors import DponeError


class StagedLoadOperator(BaseOperator):
    """Extract from a source hook, stage and finalize into a sink hook, then advance state.

    :param pipeline: the pipeline (DAG) the load belongs to; part of the state key.
    :param load: the load as a manifest mapping (``name``, ``source``, ``sink``, ...). Strings
        inside it are Jinja-templated, e.g. a ``query`` using ``{{ ds }}``.
    :param state: the manifest's ``state`` mapping (backend, conn_id, table).

    Hooks are resolved from Airflow Connections when the task runs, never at parse time. The
    run report is returned, so it lands in XCom as ``return_value``. Errors that a retry cannot
    fix (bad input, duplicate keys, schema mismatch) fail the task without retrying.
    """

    template_fields: Sequence[str] = ("load", "state")
    template_fields_renderers = {"load": "json", "state": "json"}
    ui_color = "#d9ecf2"

    def __init__(
        self, *, pipeline: str, load: dict[str, Any], state: dict[str, Any] | None = None, **kwargs: Any
    ):
        super().__init__(**kwargs)
        self.pipeline = pipeline
        self.load = load
        self.state = state or {}

    def execute(self, context: Any) -> dict[str, Any]:
        from ..contracts.manifest import LoadSpec, StateSpec
        from ..runtime.engine import run_load
        from .wiring import assemble

        try:
            spec = LoadSpec.model_validate(self.load)
            state = StateSpec.model_validate(self.state)
            parts = assemble(spec, state)
            report = run_load(self.pipeline, spec, parts, run_id=context["run_id"])
        except Exception as exc:
            self._keep(getattr(exc, "run_report", None))
            if not isinstance(exc, DponeError) or exc.retryable:
                raise
            raise AirflowFailException(str(exc)) from exc
        self._keep(report)
        return report.to_dict()

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
