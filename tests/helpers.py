"""Small helpers shared by the integration tests."""

from __future__ import annotations

from airflow_provider_dpone.contracts.manifest import Manifest
from airflow_provider_dpone.runtime.assemble import assemble
from airflow_provider_dpone.runtime.engine import run_load
from airflow_provider_dpone.runtime.report import RunReport


def run_first_load(m: Manifest, run_id: str = "r1") -> RunReport:
    """Run the manifest's first load through the real engine, as the operator does."""
    load = m.loads[0]
    return run_load(m.pipeline, load, assemble(load, m.state), run_id)
