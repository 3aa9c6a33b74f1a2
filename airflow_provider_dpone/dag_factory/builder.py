"""Build one DAG per manifest. A broken manifest becomes a visible placeholder DAG.

Airflow records an import error per DAG file, which would hide every manifest behind one
file; instead each invalid manifest yields a ``dpone_invalid__<file>`` DAG whose description
and docs carry the validation errors (file, load, field) and whose task fails with them.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any

from airflow.sdk import DAG

from ..contracts.errors import ValidationIssue
from ..contracts.manifest import Manifest
from ..operators.manual_run import run_params
from ..operators.partitioned_load import partitioned_load
from ..operators.staged_load import InvalidManifestOperator, StagedLoadOperator, validated_loads
from .files import broken_dag_id, files_for_dag, validate_paths

log = logging.getLogger(__name__)


def _start(value: dt.date) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
    return dt.datetime(value.year, value.month, value.day, tzinfo=dt.timezone.utc)


def build_dag(manifest: Manifest) -> DAG:
    dag = DAG(
        dag_id=manifest.pipeline,
        description=manifest.description,
        schedule=manifest.schedule,
        start_date=_start(manifest.start_date),
        catchup=manifest.catchup,
        max_active_runs=1,
        tags=sorted({"dpone", *manifest.tags}),
        doc_md=_manifest_docs(manifest),
        default_args={
            "retries": manifest.retries,
            "retry_delay": dt.timedelta(seconds=manifest.retry_delay),
        },
        params=run_params(),
    )
    state = manifest.state.model_dump(by_alias=True)
    tasks: dict[str, StagedLoadOperator] = {}
    first: dict[str, Any] = {}  # where a load starts: its plan task when partitioned
    with dag, validated_loads():  # validated with the manifest: not again per operator
        for load in manifest.loads:
            extra: dict[str, Any] = {}
            if load.retries is not None:
                extra["retries"] = load.retries
            dumped = load.model_dump(mode="json", by_alias=True)
            args: dict[str, Any] = {
                "pipeline": manifest.pipeline,
                "load_name": load.name,
                "source": dumped["source"],
                "sink": dumped["sink"],
                "state": state,
                "quality": dumped["quality"],
                "schema_evolution": dumped["schema_evolution"],
                "reconciliation": dumped["reconciliation"],
                "doc_md": load.description,
                **extra,
            }
            if load.parallel is not None:  # plan >> extract (mapped, one per range) >> this load
                first[load.name], _, tasks[load.name] = partitioned_load(
                    task_id=load.name, parallel=dumped["parallel"], **args
                )
            else:
                tasks[load.name] = first[load.name] = StagedLoadOperator(task_id=load.name, **args)
    for load in manifest.loads:
        for dep in load.depends_on:
            tasks[dep] >> first[load.name]
    return dag


def _manifest_docs(manifest: Manifest) -> str:
    """The DAG's docs: where it comes from and the manifest's YAML as written."""
    head = f"Built by airflow-provider-dpone from `{manifest.source_file}`."
    try:
        text = Path(manifest.source_file).read_text(encoding="utf-8")
    except OSError:
        return head
    return f"{head}\n\n```yaml\n{text.rstrip()}\n```"


def build_broken_dag(file: str, issues: list[ValidationIssue]) -> DAG:
    errors = "\n".join(str(i) for i in issues)
    first = issues[0]
    where = f"load '{first.load}': " if first.load else ""
    dag = DAG(
        dag_id=broken_dag_id(file),
        dag_display_name=f"INVALID MANIFEST {Path(file).name}",
        description=f"{len(issues)} error(s); first: {where}{first.field or '<root>'}: {first.message}"[:500],
        schedule=None,
        start_date=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
        tags=["dpone", "dpone-invalid"],
        doc_md=f"### Invalid dpone manifest `{file}`\n\n```\n{errors}\n```\n\nRun `dpone validate {file}`.",
    )
    with dag:
        InvalidManifestOperator(task_id="manifest_error", errors=errors, retries=0)
    return dag


def build_dags(directory: str | Path, only: str | None = None) -> dict[str, DAG]:
    """Every manifest in ``directory`` as a DAG, keyed by dag id; broken ones as placeholders.
    ``only``: just the DAG with that id (what a task run needs)."""
    paths: list[str | Path] = [directory]
    manifests, issues = validate_paths(paths if only is None else list(files_for_dag(paths, only)))
    dags = {m.pipeline: build_dag(m) for m in manifests}
    by_file: dict[str, list[ValidationIssue]] = {}
    for issue in issues:
        by_file.setdefault(issue.file, []).append(issue)
    for file, file_issues in by_file.items():
        log.error("dpone: invalid manifest %s:\n%s", file, "\n".join(map(str, file_issues)))
        dags[broken_dag_id(file)] = build_broken_dag(file, file_issues)
    return dags


def register_manifest_dags(namespace: dict[str, Any], directory: str | Path) -> dict[str, DAG]:
    """Put the DAGs into a DAG file's ``globals()`` so Airflow's DagBag finds them. Inside a task
    run (Airflow's parsing context names its DAG) only that DAG's manifest is read."""
    from airflow.sdk import get_parsing_context

    dags = build_dags(directory, only=get_parsing_context().dag_id)
    namespace.update({f"dpone_dag__{dag_id}": dag for dag_id, dag in dags.items()})
    return dags
