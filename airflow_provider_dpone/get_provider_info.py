"""Provider metadata read by Airflow's ProvidersManager."""

from __future__ import annotations

from typing import Any


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-provider-dpone",
        "name": "dpone",
        "description": "Staged, state-safe data movement from YAML manifests (PostgreSQL first).",
        "versions": ["0.1.0"],
        "integrations": [
            {
                "integration-name": "dpone PostgreSQL",
                "external-doc-url": "https://www.postgresql.org/docs/current/sql-copy.html",
                "tags": ["software"],
            }
        ],
        "hooks": [
            {
                "integration-name": "dpone PostgreSQL",
                "python-modules": ["airflow_provider_dpone.hooks.postgres"],
            }
        ],
        "operators": [
            {
                "integration-name": "dpone PostgreSQL",
                "python-modules": ["airflow_provider_dpone.operators.staged_load"],
            }
        ],
        # The official postgres provider owns the ``postgres`` connection type; our hook also
        # accepts those connections. ``dpone_postgres`` only exists so the hook is listed by
        # ``airflow providers hooks`` and can be picked explicitly in the UI.
        "connection-types": [
            {
                "connection-type": "dpone_postgres",
                "hook-class-name": "airflow_provider_dpone.hooks.postgres.DponePostgresHook",
            }
        ],
    }
