"""Provider metadata read by Airflow's ProvidersManager."""

from __future__ import annotations

from typing import Any


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-provider-dpone",
        "name": "dpone",
        "description": "Staged, state-safe data movement from YAML manifests.",
        "versions": ["0.1.0"],
        "integrations": [
            {
                "integration-name": "dpone PostgreSQL",
                "external-doc-url": "https://www.postgresql.org/docs/current/sql-copy.html",
                "tags": ["software"],
            },
            {
                "integration-name": "dpone ClickHouse",
                "external-doc-url": "https://clickhouse.com/docs/integrations/python",
                "tags": ["software"],
            },
            {
                "integration-name": "dpone Kafka",
                "external-doc-url": "https://docs.confluent.io/kafka-clients/python/current/overview.html",
                "tags": ["software"],
            },
            {
                "integration-name": "dpone REST API",
                "external-doc-url": "https://www.python-httpx.org/",
                "tags": ["protocol"],
            },
        ],
        "hooks": [
            {
                "integration-name": "dpone PostgreSQL",
                "python-modules": ["airflow_provider_dpone.hooks.postgres"],
            },
            {
                "integration-name": "dpone ClickHouse",
                "python-modules": ["airflow_provider_dpone.hooks.clickhouse"],
            },
            {"integration-name": "dpone Kafka", "python-modules": ["airflow_provider_dpone.hooks.kafka"]},
            {"integration-name": "dpone REST API", "python-modules": ["airflow_provider_dpone.hooks.rest"]},
            {
                "integration-name": "dpone REST API",
                "python-modules": [
                    "airflow_provider_dpone.apis.cbr",
                    "airflow_provider_dpone.apis.openexchangerates",
                    "airflow_provider_dpone.apis.yandex_webmaster",
                    "airflow_provider_dpone.apis.similarweb",
                    "airflow_provider_dpone.apis.google_sheets",
                    "airflow_provider_dpone.apis.appsflyer",
                    "airflow_provider_dpone.apis.google_ads",
                    "airflow_provider_dpone.apis.omnidesk",
                    "airflow_provider_dpone.apis.mindbox",
                ],
            },
        ],
        "sensors": [
            {
                "integration-name": "dpone ClickHouse",
                "python-modules": ["airflow_provider_dpone.sensors.clickhouse"],
            },
            {"integration-name": "dpone Kafka", "python-modules": ["airflow_provider_dpone.sensors.kafka"]},
            {"integration-name": "dpone REST API", "python-modules": ["airflow_provider_dpone.sensors.rest"]},
        ],
        "triggers": [
            {"integration-name": "dpone Kafka", "python-modules": ["airflow_provider_dpone.triggers.kafka"]},
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
            },
            {
                # No official ClickHouse provider exists; this type carries host, port, login,
                # password, database and the clickhouse-connect extras (or a chdb:// dsn).
                "connection-type": "dpone_clickhouse",
                "hook-class-name": "airflow_provider_dpone.hooks.clickhouse.DponeClickHouseHook",
                "ui-field-behaviour": {
                    "hidden-fields": [],
                    "relabeling": {"schema": "Database"},
                    "placeholders": {
                        "host": "clickhouse.example.com",
                        "port": "8123 (8443 with secure)",
                        "extra": '{"secure": true, "compress": true, "settings": {}} or {"dsn": "chdb:///path"}',
                    },
                },
            },
            {
                # The official Kafka provider owns the ``kafka`` type (librdkafka config in the
                # extras); our hook accepts those connections. This type lists our hook.
                "connection-type": "dpone_kafka",
                "hook-class-name": "airflow_provider_dpone.hooks.kafka.DponeKafkaHook",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "login", "password", "port", "host"],
                    "relabeling": {"extra": "Config Dict"},
                    "placeholders": {
                        "extra": '{"bootstrap.servers": "broker:9092", "dpone.schema_registry": {"url": "http://registry:8081"}}'
                    },
                },
            },
            {
                # REST sources also accept the HTTP provider's ``http`` connections.
                "connection-type": "dpone_rest",
                "hook-class-name": "airflow_provider_dpone.hooks.rest.DponeRestHook",
                "ui-field-behaviour": {
                    "hidden-fields": [],
                    "relabeling": {"password": "Password / token / API key", "login": "Login / client id"},
                    "placeholders": {
                        "host": "https://api.example.com",
                        "extra": '{"auth": "bearer | basic | api_key | oauth2 | none", "api_key_header": '
                        '"X-API-Key", "token_url": "https://...", "max_retries": 5, "timeout": 60}',
                    },
                },
            },
        ],
    }
