"""Airflow discovers the provider and its hook through the entry point."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def _airflow_json(*args: str) -> list[dict]:
    exe = str(Path(sys.executable).with_name("airflow"))
    out = subprocess.run(
        [exe, *args, "-o", "json"], check=True, capture_output=True, text=True, env=os.environ.copy()
    )
    return json.loads(out.stdout[out.stdout.index("[") :])


def test_providers_list_and_hooks(airflow_db) -> None:
    from airflow_provider_dpone.get_provider_info import get_provider_info

    assert "airflow-provider-dpone" in {p["package_name"] for p in _airflow_json("providers", "list")}
    hooks = {h["connection_type"]: h for h in _airflow_json("providers", "hooks")}
    assert hooks["dpone_postgres"]["class"] == "airflow_provider_dpone.hooks.postgres.DponePostgresHook"
    ch = hooks["dpone_clickhouse"]
    assert ch["class"] == "airflow_provider_dpone.hooks.clickhouse.DponeClickHouseHook"
    assert hooks["dpone_kafka"]["class"] == "airflow_provider_dpone.hooks.kafka.DponeKafkaHook"
    assert hooks["dpone_kafka"]["conn_id_attribute_name"] == "kafka_config_id"
    for entry in get_provider_info()["connection-types"]:  # the SaaS types too
        listed = hooks[entry["connection-type"]]
        assert listed["class"] == entry["hook-class-name"] and listed["hook_name"] == entry["hook-name"]
    assert hooks["dpone_cbr"]["class"] == "airflow_provider_dpone.apis.cbr.CbrHook"
