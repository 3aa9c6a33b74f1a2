"""What each implemented connector can do. Used by validation and by hook resolution.

Only connectors that really work are listed; the others land with their issues.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .strategies import IncrementalMode, Strategy


@dataclass(frozen=True)
class ConnectorInfo:
    name: str
    hook: str  # "module:Class", imported only when a load runs
    extra: str  # pip extra that installs its driver
    source_modes: frozenset[IncrementalMode | None]  # None = full extract
    sink_strategies: frozenset[Strategy]
    table_only_modes: frozenset[IncrementalMode] = frozenset()
    objects: str = "table"  # what loads name: "table" (table or query), "topic", "endpoint"
    refused: dict[Strategy, str] = field(default_factory=dict)  # never possible, and why
    # a sink that can read max(cursor) from its target (incremental.on_state_missing: from_target)
    target_watermark: bool = False


CONNECTORS: dict[str, ConnectorInfo] = {
    "postgres": ConnectorInfo(
        name="postgres",
        hook="airflow_provider_dpone.hooks.postgres:DponePostgresHook",
        extra="postgres",
        source_modes=frozenset({None, IncrementalMode.CURSOR, IncrementalMode.XMIN}),
        sink_strategies=frozenset(
            {
                Strategy.FULL_REFRESH,
                Strategy.INCREMENTAL_APPEND,
                Strategy.INCREMENTAL_MERGE,
                Strategy.REPLACE,
                Strategy.PARTITION_REPLACE,
                Strategy.SNAPSHOT_DIFF,
                Strategy.SCD2,
            }
        ),
        table_only_modes=frozenset({IncrementalMode.XMIN}),
        target_watermark=True,
    ),
    "clickhouse": ConnectorInfo(
        name="clickhouse",
        hook="airflow_provider_dpone.hooks.clickhouse:DponeClickHouseHook",
        extra="clickhouse",
        source_modes=frozenset({None, IncrementalMode.CURSOR}),
        sink_strategies=frozenset(
            {
                Strategy.FULL_REFRESH,
                Strategy.INCREMENTAL_APPEND,
                Strategy.INCREMENTAL_MERGE,
                Strategy.PARTITION_REPLACE,
            }
        ),
        target_watermark=True,
    ),
    "kafka": ConnectorInfo(
        name="kafka",
        hook="airflow_provider_dpone.hooks.kafka:DponeKafkaHook",
        extra="kafka",
        source_modes=frozenset({IncrementalMode.OFFSETS}),
        sink_strategies=frozenset({Strategy.INCREMENTAL_APPEND, Strategy.INCREMENTAL_MERGE}),
        objects="topic",
        refused={
            s: "a topic is an append-only log; it cannot be replaced or rewritten (use incremental_append, "
            "or incremental_merge for keyed upserts with tombstones on a compacted topic)"
            for s in (
                Strategy.FULL_REFRESH,
                Strategy.REPLACE,
                Strategy.PARTITION_REPLACE,
                Strategy.SNAPSHOT_DIFF,
                Strategy.SCD2,
            )
        },
    ),
    "rest": ConnectorInfo(
        name="rest",
        hook="airflow_provider_dpone.hooks.rest:DponeRestHook",
        extra="rest",
        source_modes=frozenset({None, IncrementalMode.CURSOR}),
        sink_strategies=frozenset(),
        objects="endpoint",
    ),
}

# SaaS API sources: a catalog of resources each (``source.resource``), read over HTTP.
for _name, _module, _hook in (
    ("cbr", "cbr", "CbrHook"),
    ("openexchangerates", "openexchangerates", "OpenExchangeRatesHook"),
    ("yandex_webmaster", "yandex_webmaster", "YandexWebmasterHook"),
    ("similarweb", "similarweb", "SimilarwebHook"),
    ("google_sheets", "google_sheets", "GoogleSheetsHook"),
    ("appsflyer", "appsflyer", "AppsFlyerHook"),
    ("google_ads", "google_ads", "GoogleAdsHook"),
    ("omnidesk", "omnidesk", "OmnideskHook"),
    ("mindbox", "mindbox", "MindboxHook"),
):
    CONNECTORS[_name] = ConnectorInfo(
        name=_name,
        hook=f"airflow_provider_dpone.apis.{_module}:{_hook}",
        extra="rest",
        source_modes=frozenset({None, IncrementalMode.CURSOR}),
        sink_strategies=frozenset(),
        objects="resource",
    )
