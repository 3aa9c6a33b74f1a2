"""Importing the package and parsing DAGs stays light; a missing driver names its pip extra."""

from __future__ import annotations

import subprocess
import sys


def _run(code: str) -> str:
    return subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout.strip()


def test_import_pulls_no_driver_or_airflow() -> None:
    out = _run(
        "import sys, airflow_provider_dpone, airflow_provider_dpone.contracts.manifest, "
        "airflow_provider_dpone.sql.postgres, airflow_provider_dpone.sql.clickhouse, airflow_provider_dpone.schema;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('psycopg', 'psycopg2', 'airflow')))"
    )
    assert out == "[]"


def test_dag_factory_does_not_import_drivers_or_hooks() -> None:
    out = _run(
        "import sys, airflow_provider_dpone.dag_factory;"
        "print([m for m in sys.modules if m == 'psycopg' or m.startswith('airflow_provider_dpone.hooks.')])"
    )
    assert out == "[]"


def test_missing_driver_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['psycopg'] = None\n"
        "from airflow_provider_dpone.hooks.registry import hook_class\n"
        "from airflow_provider_dpone.contracts.errors import MissingExtraError\n"
        "try:\n    hook_class('postgres')\nexcept MissingExtraError as e:\n    print(e)\n"
    )
    out = _run(code)
    assert "airflow-provider-dpone[postgres]" in out and "psycopg" in out


def test_missing_clickhouse_driver_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['clickhouse_connect'] = None\n"
        "from airflow_provider_dpone.hooks.registry import hook_class\n"
        "from airflow_provider_dpone.contracts.errors import MissingExtraError\n"
        "try:\n    hook_class('clickhouse')\nexcept MissingExtraError as e:\n    print(e)\n"
    )
    out = _run(code)
    assert "airflow-provider-dpone[clickhouse]" in out and "clickhouse_connect" in out


def test_missing_kafka_driver_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['confluent_kafka'] = None\n"
        "from airflow_provider_dpone.hooks.registry import hook_class\n"
        "from airflow_provider_dpone.contracts.errors import MissingExtraError\n"
        "try:\n    hook_class('kafka')\nexcept MissingExtraError as e:\n    print(e)\n"
    )
    out = _run(code)
    assert "airflow-provider-dpone[kafka]" in out
