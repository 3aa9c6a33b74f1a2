"""Provider metadata read by Airflow's ProvidersManager."""

from __future__ import annotations

from typing import Any

from .connection_forms import choice, fasttrack_form, field, rest_tuning, saas_form


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
                "integration-name": "dpone SQL Server",
                "external-doc-url": "https://learn.microsoft.com/sql/connect/python/mssql-python/python-sql-driver-mssql-python",
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
                "integration-name": "dpone BigQuery",
                "external-doc-url": "https://cloud.google.com/bigquery/docs/loading-data-cloud-storage-parquet",
                "tags": ["gcp"],
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
                "integration-name": "dpone SQL Server",
                "python-modules": ["airflow_provider_dpone.hooks.mssql"],
            },
            {
                "integration-name": "dpone ClickHouse",
                "python-modules": ["airflow_provider_dpone.hooks.clickhouse"],
            },
            {"integration-name": "dpone Kafka", "python-modules": ["airflow_provider_dpone.hooks.kafka"]},
            {
                "integration-name": "dpone BigQuery",
                "python-modules": ["airflow_provider_dpone.hooks.bigquery"],
            },
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
                    "airflow_provider_dpone.apis.fasttrack",
                ],
            },
        ],
        "sensors": [
            {
                "integration-name": "dpone PostgreSQL",
                "python-modules": ["airflow_provider_dpone.sensors.postgres"],
            },
            {
                "integration-name": "dpone SQL Server",
                "python-modules": ["airflow_provider_dpone.sensors.mssql"],
            },
            {
                "integration-name": "dpone ClickHouse",
                "python-modules": ["airflow_provider_dpone.sensors.clickhouse"],
            },
            {"integration-name": "dpone Kafka", "python-modules": ["airflow_provider_dpone.sensors.kafka"]},
            {
                "integration-name": "dpone BigQuery",
                "python-modules": ["airflow_provider_dpone.sensors.bigquery"],
            },
            {"integration-name": "dpone REST API", "python-modules": ["airflow_provider_dpone.sensors.rest"]},
        ],
        "triggers": [
            {
                "integration-name": "dpone PostgreSQL",
                "python-modules": ["airflow_provider_dpone.triggers.postgres"],
            },
            {"integration-name": "dpone Kafka", "python-modules": ["airflow_provider_dpone.triggers.kafka"]},
            *(  # the sensors' own check in a worker thread: their clients have no async API
                {"integration-name": name, "python-modules": ["airflow_provider_dpone.triggers.polling"]}
                for name in ("dpone ClickHouse", "dpone SQL Server", "dpone BigQuery")
            ),
        ],
        "operators": [
            {
                "integration-name": "dpone PostgreSQL",
                "python-modules": ["airflow_provider_dpone.operators.staged_load"],
            }
        ],
        # How Airflow 3.3 builds the form (providers_manager._load_ui_metadata and the UI's
        # /ui/connections/hook_meta): ``conn-fields`` become the "Extra Fields" section, one
        # input per field, stored as a top-level key of the extras; ``label`` is the field's
        # label, ``description`` the hint under it, and the JSON schema picks the widget (enum:
        # a select whose options ``values_display`` names, ``null`` included; boolean: a checkbox;
        # integer: a number input; ``format: password``: a masked input; ``examples``: the
        # suggestions of a text input). ``ui-field-behaviour`` hides, relabels and hints only
        # host, port, login, password and schema (the UI's "Schema"); the Extra JSON box
        # takes neither a label nor a placeholder: with conn-fields it starts from their keys.
        # ``postgres``, ``kafka`` and ``http`` belong to the official providers: our hooks
        # accept those connections too.
        "connection-types": [
            {
                "connection-type": "dpone_postgres",
                "hook-class-name": "airflow_provider_dpone.hooks.postgres.DponePostgresHook",
                "hook-name": "dpone PostgreSQL",
                "ui-field-behaviour": {
                    "hidden-fields": [],
                    "relabeling": {"schema": "Database"},
                    "placeholders": {
                        "host": "db.example.com",
                        "port": "5432",
                        "schema": "postgres",
                        "login": "postgres",
                    },
                },
                "conn-fields": {
                    "sslmode": choice(
                        "SSL mode",
                        "libpq sslmode: require encrypts, verify-ca / verify-full also check the "
                        "server's certificate.",
                        {
                            None: "(libpq default: prefer)",
                            "disable": "disable",
                            "allow": "allow",
                            "prefer": "prefer",
                            "require": "require",
                            "verify-ca": "verify-ca",
                            "verify-full": "verify-full",
                        },
                    ),
                },
            },
            {
                # The official provider owns "mssql" (MsSqlHook, pymssql); this type is the same
                # connection read by mssql-python, whose bulk copy is the fast path.
                "connection-type": "dpone_mssql",
                "hook-class-name": "airflow_provider_dpone.hooks.mssql.DponeMsSqlHook",
                "hook-name": "dpone SQL Server",
                "ui-field-behaviour": {
                    "hidden-fields": [],
                    "relabeling": {"schema": "Database"},
                    "placeholders": {
                        "host": "sql.example.com, host\\instance or x.database.windows.net",
                        "port": "1433 (empty: the named instance's port)",
                        "schema": "the database",
                        "login": "dpone_loader",
                    },
                },
                "conn-fields": {
                    "encrypt": choice(
                        "Encrypt",
                        "TLS for the connection: yes (the driver's default), no, or strict (TDS 8).",
                        {None: "(driver default: yes)", "yes": "yes", "no": "no", "strict": "strict"},
                    ),
                    "trust_server_certificate": choice(
                        "Trust server certificate",
                        "yes accepts a self-signed certificate without checking it (development only).",
                        {None: "(no)", "yes": "yes", "no": "no"},
                    ),
                    "authentication": choice(
                        "Authentication",
                        "Microsoft Entra ID methods for Azure SQL; empty: SQL login and password.",
                        {
                            None: "(SQL login)",
                            "ActiveDirectoryPassword": "ActiveDirectoryPassword",
                            "ActiveDirectoryServicePrincipal": "ActiveDirectoryServicePrincipal",
                            "ActiveDirectoryMsi": "ActiveDirectoryMsi",
                            "ActiveDirectoryDefault": "ActiveDirectoryDefault",
                        },
                    ),
                    "application_intent": choice(
                        "Application intent",
                        "ReadOnly routes a source's reads to a readable secondary (Always On).",
                        {None: "(ReadWrite)", "ReadWrite": "ReadWrite", "ReadOnly": "ReadOnly"},
                    ),
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
                    "secure": field(
                        "Secure (HTTPS)", "Connect over TLS; the port defaults to 8443.", "boolean"
                    ),
                    "compress": field("Compress", "Compress the HTTP transfers (default: on).", "boolean"),
                    "dsn": field(
                        "DSN",
                        "Instead of host and port: chdb:///path/to/data for the in-process engine.",
                        examples=["chdb:///var/lib/dpone/chdb"],
                    ),
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
                    "bootstrap.servers": field(
                        "Bootstrap servers",
                        "Comma-separated host:port list, e.g. broker1:9092,broker2:9092.",
                        examples=["localhost:9092"],
                    ),
                    "security.protocol": choice(
                        "Security protocol",
                        "SSL encrypts; SASL_* also authenticates with the SASL fields below.",
                        {
                            None: "(PLAINTEXT)",
                            "PLAINTEXT": "PLAINTEXT",
                            "SSL": "SSL",
                            "SASL_PLAINTEXT": "SASL_PLAINTEXT",
                            "SASL_SSL": "SASL_SSL",
                        },
                    ),
                    "sasl.mechanism": choice(
                        "SASL mechanism",
                        "With SASL_PLAINTEXT or SASL_SSL; PLAIN and SCRAM use the username and "
                        "password below.",
                        {
                            None: "(librdkafka default: GSSAPI)",
                            "PLAIN": "PLAIN",
                            "SCRAM-SHA-256": "SCRAM-SHA-256",
                            "SCRAM-SHA-512": "SCRAM-SHA-512",
                            "OAUTHBEARER": "OAUTHBEARER",
                            "GSSAPI": "GSSAPI",
                        },
                    ),
                    "sasl.username": field("SASL username", "For PLAIN and SCRAM."),
                    "sasl.password": field(
                        "SASL password", "For PLAIN and SCRAM; masked like a password.", secret=True
                    ),
                    "dpone.schema_registry_url": field(
                        "Schema Registry URL",
                        "For Avro, JSON Schema and Protobuf values, e.g. http://registry:8081. With "
                        'credentials, use the Extra JSON key "dpone.schema_registry": {"url": ..., '
                        '"basic.auth.user.info": "user:secret"}.',
                        examples=["http://localhost:8081"],
                    ),
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
                        "schema": "URL scheme",
                        "login": "Login / client id",
                        "password": "Password / token / API key",
                    },
                    "placeholders": {
                        "host": "https://api.example.com/v1/",
                        "schema": "https (when the base URL has none)",
                        "port": "(in the base URL)",
                        "login": "basic and oauth2 only",
                    },
                },
                "conn-fields": {
                    "auth": choice(
                        "Authentication",
                        "How the login and password are sent.",
                        {
                            None: "(none)",
                            "none": "none",
                            "bearer": "bearer: the password is a Bearer token",
                            "basic": "basic: login and password (HTTP basic)",
                            "api_key": "api_key: the password in a header or query parameter",
                            "oauth2": "oauth2: login and password are a client id and secret",
                        },
                    ),
                    "api_key_header": field(
                        "API key header",
                        "api_key: the header carrying the key (default X-API-Key).",
                        examples=["X-API-Key", "Authorization"],
                    ),
                    "api_key_prefix": field(
                        "API key prefix",
                        'api_key: text put before the key in the header, e.g. "Token " (with its space).',
                    ),
                    "api_key_param": field(
                        "API key query parameter",
                        "api_key: send the key as this query parameter instead of a header.",
                        examples=["api_key", "apikey", "key"],
                    ),
                    "token_url": field(
                        "OAuth2 token URL",
                        "oauth2: where the client credentials are exchanged for a token (on any host).",
                        examples=["https://auth.example.com/oauth/token"],
                    ),
                    "scope": field("OAuth2 scope", "oauth2: space-separated scopes; empty: none sent."),
                    "headers": field(
                        "HTTP headers",
                        'Sent with every request to the base URL\'s origin, e.g. {"Accept-Language": "en"}.',
                        "object",
                    ),
                    **rest_tuning(
                        "What the Test button requests, relative to the base URL (default: the base "
                        "URL itself). Pick a cheap authenticated endpoint.",
                        [],
                    ),
                },
            },
            saas_form(
                "cbr",
                "CbrHook",
                "Central Bank of Russia",
                "https://www.cbr.ru/",
                None,
                test_paths=["scripts/XML_valFull.asp"],
            ),
            saas_form(
                "openexchangerates",
                "OpenExchangeRatesHook",
                "Open Exchange Rates",
                "https://openexchangerates.org/api/",
                "App ID",
                test_paths=["usage.json"],
            ),
            saas_form(
                "yandex_webmaster",
                "YandexWebmasterHook",
                "Yandex Webmaster",
                "https://api.webmaster.yandex.net/v4/",
                "OAuth token",
                test_paths=["user"],
            ),
            saas_form(
                "similarweb",
                "SimilarwebHook",
                "Similarweb",
                "https://api.similarweb.com/",
                "API key",
                test_paths=["user-capabilities"],
            ),
            saas_form(
                "google_sheets",
                "GoogleSheetsHook",
                "Google Sheets",
                "https://sheets.googleapis.com/",
                "OAuth client secret (refresh-token auth only)",
                login="OAuth client ID (refresh-token auth only)",
                service_account="The default auth: share the spreadsheet with the account's client_email.",
                refresh_token=True,
                test_paths=[],
                test_hint="v4/spreadsheets/<id of a spreadsheet the grant can read>",
            ),
            saas_form(
                "appsflyer",
                "AppsFlyerHook",
                "AppsFlyer",
                "https://hq1.appsflyer.com/",
                "API V2 token",
                test_paths=[],
            ),
            saas_form(
                "google_ads",
                "GoogleAdsHook",
                "Google Ads",
                "https://googleads.googleapis.com/",
                "OAuth client secret (refresh-token auth only)",
                login="OAuth client ID (refresh-token auth only)",
                service_account="Instead of the refresh token: add the account's client_email as a user of "
                "the Google Ads account (or set the subject below for domain-wide delegation).",
                refresh_token=True,
                test_paths=["v21/customers:listAccessibleCustomers"],
                headers_hint='{"developer-token": "...", "login-customer-id": "..."} (the last '
                "only for a manager account).",
            ),
            saas_form(
                "omnidesk",
                "OmnideskHook",
                "Omnidesk",
                "https://<domain>.omnidesk.ru/api/",
                "API key",
                login="Staff e-mail",
                host_required=True,
                test_paths=["staff.json"],
            ),
            saas_form(
                "mindbox", "MindboxHook", "Mindbox", "https://api.mindbox.ru/", "Secret key", test_paths=[]
            ),
            fasttrack_form(),
        ],
    }
