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
        # Airflow 3's connection form renders ``conn-fields`` (stored as top-level keys of the
        # extras) and relabels or hints only host, schema, port, login and password; the Extra
        # JSON box takes neither a label nor a placeholder. ``postgres``, ``kafka`` and ``http``
        # belong to the official providers: our hooks accept those connections too.
        "connection-types": [
            {
                "connection-type": "dpone_postgres",
                "hook-class-name": "airflow_provider_dpone.hooks.postgres.DponePostgresHook",
                "hook-name": "dpone PostgreSQL",
                "ui-field-behaviour": {
                    "hidden-fields": [],
                    "relabeling": {"schema": "Database"},
                    "placeholders": {"host": "db.example.com", "port": "5432", "schema": "postgres"},
                },
                "conn-fields": {
                    "sslmode": {
                        "label": "SSL mode",
                        "description": "libpq sslmode; empty: the server's default (prefer).",
                        "schema": {
                            "type": ["string", "null"],
                            "enum": [
                                None,
                                "disable",
                                "allow",
                                "prefer",
                                "require",
                                "verify-ca",
                                "verify-full",
                            ],
                        },
                    },
                },
            },
            {
                # No official ClickHouse provider exists.
                "connection-type": "dpone_clickhouse",
                "hook-class-name": "airflow_provider_dpone.hooks.clickhouse.DponeClickHouseHook",
                "hook-name": "dpone ClickHouse",
                "ui-field-behaviour": {
                    "hidden-fields": [],
                    "relabeling": {"schema": "Database"},
                    "placeholders": {
                        "host": "clickhouse.example.com",
                        "port": "8123 (8443 with Secure)",
                        "schema": "default",
                        "login": "default",
                    },
                },
                "conn-fields": {
                    "secure": {
                        "label": "Secure (HTTPS)",
                        "description": "Connect over TLS; the port defaults to 8443.",
                        "schema": {"type": ["boolean", "null"]},
                    },
                    "compress": {
                        "label": "Compress",
                        "description": "Compress the HTTP transfers (default: on).",
                        "schema": {"type": ["boolean", "null"]},
                    },
                    "dsn": {
                        "label": "DSN",
                        "description": "Instead of host and port: chdb:///path/to/data for the "
                        "in-process engine.",
                        "schema": {"type": ["string", "null"]},
                    },
                },
            },
            {
                "connection-type": "dpone_kafka",
                "hook-class-name": "airflow_provider_dpone.hooks.kafka.DponeKafkaHook",
                "hook-name": "dpone Kafka",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "login", "password", "port", "host"],
                    "relabeling": {},
                    "placeholders": {},
                },
                # librdkafka configuration keys as they are; any other librdkafka key goes in the
                # Extra JSON.
                "conn-fields": {
                    "bootstrap.servers": {
                        "label": "Bootstrap servers",
                        "description": "Comma-separated host:port list, e.g. broker1:9092,broker2:9092.",
                        "schema": {"type": ["string", "null"]},
                    },
                    "security.protocol": {
                        "label": "Security protocol",
                        "description": "Empty: PLAINTEXT.",
                        "schema": {
                            "type": ["string", "null"],
                            "enum": [None, "PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"],
                        },
                    },
                    "sasl.mechanism": {
                        "label": "SASL mechanism",
                        "schema": {
                            "type": ["string", "null"],
                            "enum": [
                                None,
                                "PLAIN",
                                "SCRAM-SHA-256",
                                "SCRAM-SHA-512",
                                "OAUTHBEARER",
                                "GSSAPI",
                            ],
                        },
                    },
                    "sasl.username": {"label": "SASL username", "schema": {"type": ["string", "null"]}},
                    "sasl.password": {
                        "label": "SASL password",
                        "schema": {"type": ["string", "null"], "format": "password"},
                    },
                    "dpone.schema_registry_url": {
                        "label": "Schema Registry URL",
                        "description": "For Avro, JSON Schema and Protobuf values, e.g. "
                        'http://registry:8081. With credentials, use the Extra JSON key "dpone.schema_registry": '
                        '{"url": ..., "basic.auth.user.info": "user:secret"}.',
                        "schema": {"type": ["string", "null"]},
                    },
                },
            },
            {
                "connection-type": "dpone_rest",
                "hook-class-name": "airflow_provider_dpone.hooks.rest.DponeRestHook",
                "hook-name": "dpone REST API",
                "ui-field-behaviour": {
                    "hidden-fields": [],
                    "relabeling": {
                        "host": "Base URL",
                        "login": "Login / client id",
                        "password": "Password / token / API key",
                    },
                    "placeholders": {"host": "https://api.example.com/v1/", "port": "(in the base URL)"},
                },
                "conn-fields": {
                    "auth": {
                        "label": "Authentication",
                        "description": "bearer: password as a Bearer token; basic: login and password; "
                        "api_key: password in a header or query parameter; oauth2: client credentials "
                        "(login, password) exchanged at the token URL. Empty: none.",
                        "schema": {
                            "type": ["string", "null"],
                            "enum": [None, "none", "bearer", "basic", "api_key", "oauth2"],
                        },
                    },
                    "api_key_header": {
                        "label": "API key header",
                        "description": "api_key: the header carrying the key (default X-API-Key).",
                        "schema": {"type": ["string", "null"]},
                    },
                    "api_key_param": {
                        "label": "API key query parameter",
                        "description": "api_key: send the key as this query parameter instead of a header.",
                        "schema": {"type": ["string", "null"]},
                    },
                    "token_url": {
                        "label": "OAuth2 token URL",
                        "schema": {"type": ["string", "null"]},
                    },
                    "scope": {"label": "OAuth2 scope", "schema": {"type": ["string", "null"]}},
                    "timeout": {
                        "label": "Timeout (seconds)",
                        "description": "Per request; default 60.",
                        "schema": {"type": ["integer", "null"]},
                    },
                    "max_retries": {
                        "label": "Max retries",
                        "description": "On transport errors, 429 and 5xx; default 5.",
                        "schema": {"type": ["integer", "null"]},
                    },
                    "test_path": {
                        "label": "Test path",
                        "description": "What the Test button requests, relative to the base URL "
                        "(default: the base URL itself). Pick a cheap authenticated endpoint.",
                        "schema": {"type": ["string", "null"]},
                    },
                },
            },
            _saas("cbr", "CbrHook", "Central Bank of Russia", "https://www.cbr.ru/", None),
            _saas(
                "openexchangerates",
                "OpenExchangeRatesHook",
                "Open Exchange Rates",
                "https://openexchangerates.org/api/",
                "App ID",
            ),
            _saas(
                "yandex_webmaster",
                "YandexWebmasterHook",
                "Yandex Webmaster",
                "https://api.webmaster.yandex.net/v4/",
                "OAuth token",
            ),
            _saas("similarweb", "SimilarwebHook", "Similarweb", "https://api.similarweb.com/", "API key"),
            _saas(
                "google_sheets",
                "GoogleSheetsHook",
                "Google Sheets",
                "https://sheets.googleapis.com/",
                "OAuth client secret",
                login="OAuth client ID",
                refresh_token=True,
            ),
            _saas("appsflyer", "AppsFlyerHook", "AppsFlyer", "https://hq1.appsflyer.com/", "API V2 token"),
            _saas(
                "google_ads",
                "GoogleAdsHook",
                "Google Ads",
                "https://googleads.googleapis.com/",
                "OAuth client secret",
                login="OAuth client ID",
                refresh_token=True,
            ),
            _saas(
                "omnidesk",
                "OmnideskHook",
                "Omnidesk",
                "https://<domain>.omnidesk.ru/api/",
                "API key",
                login="Staff e-mail",
                host_required=True,
            ),
            _saas("mindbox", "MindboxHook", "Mindbox", "https://api.mindbox.ru/", "Secret key"),
        ],
    }


def _saas(
    name: str,
    class_name: str,
    title: str,
    base_url: str,
    password: str | None,
    *,
    login: str | None = None,
    refresh_token: bool = False,
    host_required: bool = False,
) -> dict[str, Any]:
    """The connection type of one SaaS API: the base URL defaults to the API's (hidden fields
    are those the API does not use; the auth kind is the catalogue's, not the form's)."""
    hidden = (
        ["schema", "port"] + (["login"] if login is None else []) + (["password"] if password is None else [])
    )
    relabeling = (
        {"host": "Base URL"}
        | ({"login": login} if login else {})
        | ({"password": password} if password else {})
    )
    entry: dict[str, Any] = {
        "connection-type": f"dpone_{name}",
        "hook-class-name": f"airflow_provider_dpone.apis.{name}.{class_name}",
        "hook-name": f"dpone {title}",
        "ui-field-behaviour": {
            "hidden-fields": hidden,
            "relabeling": relabeling,
            "placeholders": {"host": base_url if host_required else f"{base_url} (default)"},
        },
    }
    if refresh_token:
        entry["conn-fields"] = {
            "refresh_token": {
                "label": "OAuth refresh token",
                "description": "The user's offline grant for this client."
                + (
                    ' Also set the Extra JSON key "headers": {"developer-token": ..., "login-customer-id": ...}.'
                    if name == "google_ads"
                    else ""
                ),
                "schema": {"type": ["string", "null"], "format": "password"},
            }
        }
    return entry
