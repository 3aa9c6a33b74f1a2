"""Airflow DAG file: one DAG per YAML manifest in ``dags/manifests/`` (airflow-provider-dpone).

Set ``DPONE_MANIFESTS_DIR`` to read manifests from another folder.
"""

from __future__ import annotations

import os
from pathlib import Path

from airflow_provider_dpone.dag_factory import register_manifest_dags

register_manifest_dags(
    globals(), os.environ.get("DPONE_MANIFESTS_DIR") or Path(__file__).parent / "manifests"
)
