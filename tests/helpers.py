"""Small helpers shared by the integration tests."""

from __future__ import annotations

from airflow_provider_dpone.contracts.manifest import Manifest
from airflow_provider_dpone.operators.wiring import assemble
from airflow_provider_dpone.runtime.engine import run_load
from airflow_provider_dpone.runtime.report import RunReport


def run_first_load(m: Manifest, run_id: str = "r1") -> RunReport:
    """Run the manifest's first load through the real engine, as the operator does."""
    load = m.loads[0]
    return run_load(m.pipeline, load, assemble(load, m.state), run_id)


def run_killed(m: Manifest, run_id: str, point: str, timeout: float = 120) -> int | None:
    """Run the first load in a forked worker that SIGKILLs itself at failpoint ``point``
    (``name`` or ``name:N``); the worker's exit code (``-SIGKILL`` when the point was reached)."""
    import multiprocessing
    import os

    from airflow_provider_dpone.runtime.failpoints import ENV

    def worker() -> None:
        os.environ[ENV] = point
        run_first_load(m, run_id)

    process = multiprocessing.get_context("fork").Process(target=worker)
    process.start()
    process.join(timeout)
    return process.exitcode
