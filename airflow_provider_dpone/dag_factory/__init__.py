"""Manifest files -> DAGs, parse-safe: validation only, no network, secrets or database.

``files`` reads and validates manifests without Airflow (the CLI uses it); the DAG builders
import Airflow, so they load on first use.
"""

from __future__ import annotations

from typing import Any

__all__ = ["build_dag", "build_dags", "register_manifest_dags"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import builder

        return getattr(builder, name)
    raise AttributeError(name)
