"""The certification declarations of every connector (seed 002): the level each claims and,
per requirement, its evidence. ``ConnectorInfo.certified`` (contracts/connectors.py) points here;
the forms and rules are in contracts/certification.py, the matrix in docs/certification.md
(``dpone certify``). Pure data: the SaaS catalogues (``apis/``) are never imported.

Claim only what the evidence earns: ``dpone certify`` (and its test) refuses a claim above it.
"""

from __future__ import annotations

from dataclasses import dataclass

from .certification import Certification, Level, LiveProfile

UNDECLARED = Certification(Level.EXPERIMENTAL)  # no evidence: a claim certify refuses

# Evidence shared by the certification declarations below.
_IMPORT = "tests/contracts/test_certification.py::test_a_connector_imports_without_its_driver"
_LIGHT = "tests/test_import_light.py::test_import_pulls_no_driver_or_airflow"
_CRASH = "tests/runtime/test_crash_safety.py::test_sigkill_at_every_phase_then_retry_converges"
_DRIFT = ("docs/schema-evolution.md#Schema evolution",)
_TAXONOMY = ("docs/troubleshooting.md#Error codes",)
_COMPAT = ("docs/compatibility.md#Compatibility policy",)
_FIELDS = "tests/runtime/test_report_fields.py"  # every report field of a real load, per route
_MSSQL_LIVE = "tests/hooks/test_mssql_live.py"
_PG_LIVE = "tests/hooks/test_postgres_live.py"
_CH_LIVE = "tests/hooks/test_clickhouse_live.py"


# The databases, the stream and the generic REST source.
CERTIFIED: dict[str, Certification] = {
    "postgres": Certification(
        Level.BETA,
        {
            "import": (
                _LIGHT,
                "tests/test_import_light.py::test_missing_driver_names_the_extra",
                _IMPORT,
            ),
            "extras_docs": ("docs/postgres.md#PostgreSQL connector",),
            "config_examples": ("docs/cdc.md#PostgreSQL",),
            "offline_tests": (
                "tests/sql/test_postgres_sql.py::test_merge_statements",
                "tests/sql/test_postgres_sql.py::test_cursor_predicate_uses_parameters_only",
            ),
            "credentials": (
                "tests/hooks/test_connection_env.py::test_a_configured_secrets_backend_is_asked_first",
                "tests/hooks/test_hook_airflow_surface.py::test_postgres_refused_login_fails_without_the_credentials",
            ),
            "retry_docs": ("docs/postgres.md#Sink",),
            "type_mapping": (
                "tests/sql/test_postgres_sql.py::test_canonical_from_native",
                "tests/hooks/test_postgres_integration.py::test_awkward_types_round_trip",
            ),
            "incremental": (
                "tests/hooks/test_postgres_integration.py::test_cursor_incremental_merge_with_lookback",
                "tests/hooks/test_postgres_integration.py::test_xmin_incremental_append",
            ),
            "local_integration": (
                "tests/hooks/test_postgres_integration.py::test_full_refresh_swaps_then_keeps_target_shape",
            ),
            "idempotent_rerun": ("docs/crash-safety.md#Why each phase is safe", _CRASH),
            "checkpoint_recovery": (
                "tests/hooks/test_backfill_chunks.py::test_a_backfill_runs_in_chunks_and_a_retry_resumes_at_the_failed_chunk",
            ),
            "live_profile": ("live",),
            "schema_drift_docs": _DRIFT,
            "failure_taxonomy_docs": _TAXONOMY,
            "observability": (
                f"{_FIELDS}::test_postgres_to_postgres_report_fields",
                "tests/operators/test_airflow_e2e.py::test_dags_test_full_then_incremental",
                "tests/cli/test_cli.py::test_openlineage_facets_from_the_report",
            ),
            "compat_policy_docs": _COMPAT,
        },
        live=LiveProfile(
            env=("DPONE_LIVE_POSTGRES_URI",),
            tests=tuple(
                f"{_PG_LIVE}::{t}"
                for t in (
                    "test_live_full_refresh_replaces_the_target_and_a_rerun_converges",
                    "test_live_incremental_merge_commits_the_state_with_the_data",
                    "test_live_a_run_killed_in_finalize_changes_nothing_and_the_retry_converges",
                )
            ),
            drivers=("psycopg", "apache-airflow-providers-postgres"),
            note="a libpq URI of a database the tests may create and drop their own schemas in "
            "(docs/postgres.md)",
        ),
    ),
    "mssql": Certification(
        Level.EXPERIMENTAL,
        {
            "import": (_IMPORT,),
            "extras_docs": ("docs/mssql.md#Connection",),
            "config_examples": ("docs/mssql.md#Change Tracking and CDC",),
            "offline_tests": (
                "tests/sql/test_mssql_dialect.py::test_cursor_window_takes_postgres_parameter_order",
                "tests/hooks/test_mssql_connector.py::test_staging_is_created_labelled_then_bulk_copied_batch_by_batch",
            ),
            "credentials": (
                "tests/hooks/test_mssql_connector.py::test_the_connection_string_comes_from_the_official_connection_fields",
                "tests/hooks/test_mssql_connector.py::test_errors_a_retry_resolves_are_transient_and_redacted",
            ),
            "type_mapping": (
                "tests/sql/test_mssql_dialect.py::test_canonical_from_native",
                "tests/sql/test_mssql_dialect.py::test_values_round_trip_through_text",
            ),
            "incremental": (
                "tests/hooks/test_mssql_connector.py::test_a_cursor_extract_fixes_its_upper_bound_then_streams_batches",
            ),
            "local_integration": ("live",),
            "schema_drift_docs": _DRIFT,
            "failure_taxonomy_docs": _TAXONOMY,
            "compat_policy_docs": _COMPAT,
        },
        live=LiveProfile(
            env=("DPONE_MSSQL_URI",),
            tests=tuple(
                f"{_MSSQL_LIVE}::{t}"
                for t in (
                    "test_a_full_extract_lands_in_postgres",
                    "test_a_cursor_extract_with_lookback_merges_only_new_rows",
                    "test_state_on_sql_server_commits_with_the_data",
                    "test_change_tracking_into_sql_server_applies_deletes",
                    "test_sigkill_at_every_phase_into_sql_server_converges",
                )
            ),
            marker="integration",
            drivers=("mssql-python", "apache-airflow-providers-microsoft-mssql"),
            note="a SQL Server 2022: bash scripts/test-mssql-live.sh starts docker compose's (docs/mssql.md)",
        ),
    ),
    "clickhouse": Certification(
        Level.BETA,
        {
            "import": (
                _LIGHT,
                "tests/test_import_light.py::test_missing_clickhouse_driver_names_the_extra",
                _IMPORT,
            ),
            "extras_docs": ("docs/clickhouse.md#ClickHouse",),
            "config_examples": ("docs/clickhouse.md#Example manifests",),
            "offline_tests": (
                "tests/sql/test_clickhouse_sql.py::test_partition_and_delete_statements",
                "tests/sql/test_clickhouse_sql.py::test_cursor_predicate_binds_values_server_side",
            ),
            "credentials": (
                "tests/hooks/test_clickhouse_http.py::test_a_wrong_password_fails_clearly_without_the_secret",
                "tests/hooks/test_hook_airflow_surface.py::test_clickhouse_closed_port_fails_without_the_secret",
            ),
            "retry_docs": ("docs/clickhouse.md#Connection",),
            "type_mapping": (
                "tests/sql/test_clickhouse_sql.py::test_clickhouse_to_canonical",
                "tests/sql/test_clickhouse_sql.py::test_canonical_to_clickhouse",
            ),
            "incremental": ("tests/hooks/test_clickhouse.py::test_incremental_append_by_cursor",),
            "local_integration": (
                "tests/hooks/test_clickhouse.py::test_full_refresh_through_tsv_then_an_atomic_exchange",
            ),
            "live_profile": ("live",),
            "schema_drift_docs": _DRIFT,
            "failure_taxonomy_docs": _TAXONOMY,
            "observability": (
                f"{_FIELDS}::test_postgres_to_clickhouse_report_fields",
                f"{_FIELDS}::test_clickhouse_to_postgres_report_fields",
            ),
            "compat_policy_docs": _COMPAT,
        },
        live=LiveProfile(
            env=("DPONE_LIVE_CLICKHOUSE_URI",),
            tests=tuple(
                f"{_CH_LIVE}::{t}"
                for t in (
                    "test_live_full_refresh_replaces_the_target_and_a_rerun_converges",
                    "test_live_incremental_merge_then_a_rerun_reads_nothing",
                )
            ),
            drivers=("clickhouse-connect", "psycopg"),
            note="a server's HTTP(S) interface with credentials (https://user:password@host:8443); "
            "also needs the local PostgreSQL the tests start (docs/clickhouse.md)",
        ),
    ),
    "kafka": Certification(
        Level.BETA,
        {
            "import": (
                _LIGHT,
                "tests/test_import_light.py::test_missing_kafka_driver_names_the_extra",
                _IMPORT,
            ),
            "extras_docs": ("docs/kafka.md#Kafka",),
            "config_examples": ("docs/kafka.md#As a source: a bounded batch",),
            "offline_tests": (
                "tests/hooks/test_connection_env.py::test_the_kafka_engine_builds_its_configuration_as_the_official_hook",
                "tests/dialects/test_kafka_codec.py::test_rows_encode_exactly",
            ),
            "credentials": (
                "tests/hooks/test_connection_env.py::test_the_kafka_engine_builds_its_configuration_as_the_official_hook",
                "tests/hooks/test_hook_airflow_surface.py::test_kafka_closed_port_fails_without_the_secret",
            ),
            "retry_docs": (
                "docs/kafka.md#As a sink: one transaction per load",
                "docs/kafka.md#Troubleshooting",
            ),
            "type_mapping": (
                "tests/dialects/test_kafka_codec.py::test_avro_record_to_columns",
                "tests/dialects/test_kafka_codec.py::test_values_are_coerced_to_the_declared_types",
            ),
            "incremental": (
                "tests/hooks/test_kafka.py::test_kafka_to_postgres_reads_to_the_high_watermark_and_keeps_offsets",
            ),
            "local_integration": (
                "tests/hooks/test_kafka.py::test_postgres_to_kafka_keyed_upserts_in_one_transaction",
            ),
            "idempotent_rerun": (
                "docs/kafka.md#As a sink: one transaction per load",
                "tests/hooks/test_kafka.py::test_a_failed_load_publishes_nothing_and_the_retry_publishes_once",
            ),
            "checkpoint_recovery": (
                "tests/hooks/test_kafka.py::test_a_failed_load_keeps_the_offsets_and_the_retry_converges",
            ),
            "live_profile": ("live",),
            "failure_taxonomy_docs": _TAXONOMY,
            "observability": (
                f"{_FIELDS}::test_postgres_to_kafka_report_fields",
                f"{_FIELDS}::test_kafka_to_postgres_report_fields",
            ),
            "compat_policy_docs": _COMPAT,
        },
        live=LiveProfile(
            env=(
                "DPONE_LIVE_KAFKA_BOOTSTRAP",
                "DPONE_LIVE_KAFKA_SECURITY_PROTOCOL",
                "DPONE_LIVE_KAFKA_SASL_MECHANISM",
                "DPONE_LIVE_KAFKA_USERNAME",
                "DPONE_LIVE_KAFKA_PASSWORD",
                "DPONE_LIVE_KAFKA_CA_LOCATION",
            ),
            tests=(
                "tests/hooks/test_kafka_live.py::test_live_postgres_to_kafka_and_back_with_offsets_state",
            ),
            drivers=("confluent-kafka", "psycopg"),
            note="a cluster's bootstrap servers (the other variables optional: SASL/TLS); "
            "also needs the local PostgreSQL the tests start (docs/kafka.md)",
        ),
    ),
    "bigquery": Certification(
        Level.EXPERIMENTAL,
        {
            "import": (_IMPORT,),
            "extras_docs": ("docs/bigquery.md#BigQuery",),
            "config_examples": ("docs/bigquery.md#BigQuery",),
            "offline_tests": (
                "tests/sql/test_bigquery_dialect.py::test_create_target_table",
                "tests/sql/test_bigquery_dialect.py::test_script_is_one_transaction_with_the_state_inlined",
            ),
            "retry_docs": ("docs/bigquery.md#How a load runs",),
            "type_mapping": ("tests/sql/test_bigquery_dialect.py::test_target_and_staging_types",),
            "incremental": (
                "tests/sql/test_bigquery_emulator.py::test_merge_updates_inserts_and_deletes_what_the_full_extract_lost",
            ),
            "local_integration": (
                "tests/sql/test_bigquery_emulator.py::test_full_refresh_creates_then_replaces_rows_with_the_state_in_one_transaction",
            ),
            "live_profile": ("live",),
            "idempotent_rerun": (
                "docs/bigquery.md#How a load runs",
                "tests/hooks/test_bigquery.py::test_sigkill_at_every_phase_into_bigquery_converges",
            ),
            "schema_drift_docs": _DRIFT,
            "failure_taxonomy_docs": _TAXONOMY,
            "observability": (f"{_FIELDS}::test_postgres_to_bigquery_report_fields",),
            "compat_policy_docs": _COMPAT,
        },
        live=LiveProfile(
            env=("DPONE_BIGQUERY_PROJECT", "DPONE_BIGQUERY_KEYFILE"),
            tests=(
                "tests/hooks/test_bigquery.py::test_live_merge_and_partition_replace_with_state_in_bigquery",
            ),
            drivers=("google-cloud-bigquery", "apache-airflow-providers-google"),
            note="a real project; DPONE_BIGQUERY_KEYFILE optional (else application default credentials); "
            "also needs the local PostgreSQL the tests start (docs/bigquery.md)",
        ),
    ),
    "rest": Certification(
        Level.BETA,
        {
            "import": (_IMPORT,),
            "extras_docs": ("docs/rest.md#REST APIs",),
            "config_examples": ("docs/rest.md#An endpoint, declared as data",),
            "offline_tests": (
                "tests/hooks/test_rest_paginators.py::test_offset_steps_by_the_page_size_until_a_short_page",
                "tests/hooks/test_rest_auth.py::test_api_key_goes_in_a_header_with_an_optional_prefix_or_in_the_query",
            ),
            "credentials": (
                "tests/hooks/test_rest.py::test_oauth2_client_credentials_with_refresh",
                "tests/hooks/test_rest_auth.py::test_client_credentials_are_fetched_once_and_the_token_masked",
            ),
            "retry_docs": ("docs/rest.md#Retries and errors", "docs/rest.md#Pace"),
            "type_mapping": ("tests/hooks/test_rest.py::test_every_pagination_reads_every_record_once",),
            "incremental": (
                "tests/hooks/test_rest.py::test_incremental_sends_the_server_filter",
                "tests/hooks/test_rest.py::test_every_pagination_reads_every_record_once",
            ),
            "local_integration": ("tests/hooks/test_rest.py::test_rest_to_postgres_merge_then_incremental",),
            "checkpoint_recovery": (
                "tests/hooks/test_rest.py::test_a_run_killed_mid_pagination_resumes_after_the_last_staged_page",
            ),
            "failure_taxonomy_docs": _TAXONOMY,
            "observability": (f"{_FIELDS}::test_rest_to_postgres_report_fields",),
            "compat_policy_docs": _COMPAT,
            "live_profile": ("live",),
        },
        live=LiveProfile(
            env=(
                "DPONE_LIVE_REST_URL",
                "DPONE_LIVE_REST_KEY",
                "DPONE_LIVE_REST_KEY_TYPE",
                "DPONE_LIVE_REST_SELECTOR",
                "DPONE_LIVE_REST_TOKEN",
            ),
            tests=tuple(
                f"tests/hooks/test_rest_live.py::{t}"
                for t in (
                    "test_live_endpoint_lands_every_record_and_a_rerun_converges",
                    "test_live_merge_by_the_key_does_not_duplicate",
                )
            ),
            drivers=("httpx", "apache-airflow-providers-http"),
            note="a JSON endpoint answering a list of records with a key field (docs/rest.md)",
        ),
    ),
}

# The SaaS API sources: the REST hook's extra and page layout (docs/apis/<vendor>.md); per vendor
# the contract-fake tests, the live tests and the variables they read.


@dataclass(frozen=True)
class _Vendor:
    offline: tuple[str, ...]  # request construction against the vendor fake
    credentials: tuple[str, ...]  # credentials from the connection reach the fake; bad ones fail
    incremental: tuple[str, ...]  # the server-side filter or the pagination
    live_tests: tuple[str, ...]
    env: tuple[str, ...]


_PUBLIC = "n/a: a public API without credentials"
_WHOLE = "n/a: a sheet is read whole in one request: no server-side filter, no pages"
_VENDORS: dict[str, _Vendor] = {
    "cbr": _Vendor(
        ("test_daily_rates_over_a_range_with_a_weekend",), (_PUBLIC,),
        ("test_dynamics_are_incremental_with_the_server_side_date_range",),
        ("test_live_cbr_daily_rates",), ("DPONE_LIVE_CBR",)),
    "openexchangerates": _Vendor(
        ("test_base_is_sent_only_when_the_options_give_one",),
        ("test_an_invalid_app_id_fails_without_retries_or_the_secret",),
        ("test_historical_is_incremental_by_day",), ("test_live_latest",), ("DPONE_LIVE_OXR_APP_ID",)),
    "yandex_webmaster": _Vendor(
        ("test_query_analytics_posts_region_ids_and_pages_in_the_body",),
        ("test_an_invalid_token_fails_without_retries",),
        ("test_indexing_history_is_incremental_on_the_server", "test_popular_queries_fan_out_over_hosts_and_page_by_offset"),
        ("test_live_hosts",), ("DPONE_LIVE_YWM_TOKEN", "DPONE_LIVE_YWM_USER_ID")),
    "similarweb": _Vendor(
        ("test_keywords_send_the_upper_case_url_and_one_month_per_request_in_offset_pages",),
        ("test_an_invalid_key_is_not_retried",),
        ("test_visits_per_domain_and_month_incremental_on_start_date",),
        ("test_live_visits", "test_live_keywords_carry_the_declared_fields"), ("DPONE_LIVE_SIMILARWEB_KEY",)),
    "google_sheets": _Vendor(
        ("test_a_range_with_slash_hash_question_mark_spaces_and_quotes_is_url_encoded",),
        ("test_a_service_account_key_signs_a_jwt_grant_and_its_token_reads_the_sheet",
         "test_a_refused_refresh_token_and_a_forbidden_sheet_fail_without_retries"),
        (_WHOLE,), ("test_live_sheet_with_a_service_account", "test_live_sheet"),
        ("DPONE_LIVE_GS_SPREADSHEET", "DPONE_LIVE_GS_SERVICE_ACCOUNT_KEY", "DPONE_LIVE_GS_CLIENT_ID",
         "DPONE_LIVE_GS_CLIENT_SECRET", "DPONE_LIVE_GS_REFRESH_TOKEN")),
    "appsflyer": _Vendor(
        ("test_reports_are_asked_for_as_csv_with_maximum_rows",), ("test_an_invalid_token_is_not_retried",),
        ("test_installs_day_by_day_incremental_from_the_watermark",),
        ("test_live_installs",), ("DPONE_LIVE_APPSFLYER_TOKEN", "DPONE_LIVE_APPSFLYER_APP_ID")),
    "google_ads": _Vendor(
        ("test_the_standard_reports_query_their_view_and_channel",),
        ("test_a_service_account_reads_with_the_adwords_scope", "test_an_unapproved_developer_token_fails_without_retries"),
        ("test_daily_stats_filter_segments_date_on_the_server",),
        ("test_live_campaigns_with_a_service_account", "test_live_campaigns"),
        ("DPONE_LIVE_ADS_DEVELOPER_TOKEN", "DPONE_LIVE_ADS_CUSTOMER_ID", "DPONE_LIVE_ADS_SERVICE_ACCOUNT_KEY",
         "DPONE_LIVE_ADS_SUBJECT", "DPONE_LIVE_ADS_CLIENT_ID", "DPONE_LIVE_ADS_CLIENT_SECRET",
         "DPONE_LIVE_ADS_REFRESH_TOKEN")),
    "omnidesk": _Vendor(
        ("test_messages_fan_out_over_the_cases_updated_in_the_window",), ("test_wrong_credentials_are_not_retried",),
        ("test_cases_page_through_numbered_bodies_then_filter_on_the_server",),
        ("test_live_cases",), ("DPONE_LIVE_OMNIDESK_HOST", "DPONE_LIVE_OMNIDESK_EMAIL", "DPONE_LIVE_OMNIDESK_KEY")),
    "mindbox": _Vendor(
        ("test_date_period_exports_send_since_date_and_till_date_and_read_gzipped_csv",),
        ("test_a_wrong_key_is_not_retried_and_a_bad_operation_is_named",),
        ("test_period_export_starts_at_the_watermark",),
        ("test_live_export",), ("DPONE_LIVE_MINDBOX_KEY", "DPONE_LIVE_MINDBOX_ENDPOINT", "DPONE_LIVE_MINDBOX_OPERATION")),
    "fasttrack": _Vendor(
        ("test_options_are_query_params_and_dashboard_host_defaults",),
        ("test_auth_failures_are_not_retried_and_show_no_secret", "test_missing_credentials_or_tenant_ids_fail_before_any_call"),
        ("test_flex_ratings_follow_host_relative_next_links",),
        ("test_live_fasttrack_chat_sessions",),
        ("DPONE_LIVE_FASTTRACK_BOT_KEY", "DPONE_LIVE_FASTTRACK_UUID", "DPONE_LIVE_FASTTRACK_HOST")),
}  # fmt: skip


def saas_certification(name: str, module: str) -> Certification:
    """Beta: tested against a local fake reproducing the vendor's contract; production needs a
    green recorded run of the live test (none yet: no machine here reaches the vendors)."""
    v = _VENDORS.get(name)
    if v is None:
        return UNDECLARED
    tests = f"tests/apis/test_{module}.py"

    def ids(names: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(n if n.startswith("n/a:") else f"{tests}::{n}" for n in names)

    page = f"docs/apis/{module}.md"
    return Certification(
        Level.BETA,
        {
            "import": (_IMPORT,),
            "extras_docs": ("docs/rest.md#REST APIs",),  # the inventory (docs/apis.md) builds on it
            "config_examples": (f"{page}#Example",),
            "offline_tests": ids(v.offline),
            "credentials": ids(v.credentials),
            "retry_docs": (f"{page}#Limits", f"{page}#Pace"),
            "type_mapping": (
                "tests/apis/test_docs_pages.py::test_type_mapping_names_each_field_and_where_its_type_lands",
            ),
            "incremental": ids(v.incremental),
            "local_integration": (
                "n/a: a vendor API has no disposable instance; the contract fake stands in",
            ),
            "live_profile": ("live",),
            "failure_taxonomy_docs": _TAXONOMY,
            "compat_policy_docs": _COMPAT,
        },
        live=LiveProfile(
            env=v.env,
            tests=ids(v.live_tests),
            drivers=("httpx",),
            note=f"the vendor's real API ({page}); a test skips, naming the variables, when they are unset",
        ),
    )
