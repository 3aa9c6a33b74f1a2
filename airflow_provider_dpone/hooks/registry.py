"""Resolve a connector name to its hook class, importing the driver only now.

``standalone=True`` (the command line) asks for the connector's standalone engine where it has
one: the same code without Airflow's base classes, whose connection is read from
``AIRFLOW_CONN_<ID>`` without importing Airflow (``hooks.connection``). A connector without an
engine gets its Airflow hook either way.
"""

from __future__ import annotations

import importlib
from typing import Any

from ..contracts.connectors import CONNECTORS
from ..contracts.errors import BadInputError, MissingExtraError

ENGINES = {
    "postgres": "airflow_provider_dpone.hooks.postgres_connector:PostgresEngine",
    "clickhouse": "airflow_provider_dpone.hooks.clickhouse_connector:ClickHouseEngine",
    "kafka": "airflow_provider_dpone.hooks.kafka_connector:KafkaEngine",
    "mssql": "airflow_provider_dpone.hooks.mssql_connector:MsSqlEngine",
    "bigquery": "airflow_provider_dpone.hooks.bigquery_connector:BigQueryEngine",
}


def hook_class(connector: str, *, standalone: bool = False) -> type:
    info = CONNECTORS.get(connector)
    if info is None:
        raise BadInputError(f"unknown connector '{connector}'; allowed: {', '.join(sorted(CONNECTORS))}")
    target = ENGINES.get(connector, info.hook) if standalone else info.hook
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise MissingExtraError(exc.name or connector, info.extra) from None
    return getattr(module, class_name)  # type: ignore[no-any-return]


def build_hook(connector: str, conn_id: str, *, standalone: bool = False) -> Any:
    return hook_class(connector, standalone=standalone)(conn_id=conn_id)
