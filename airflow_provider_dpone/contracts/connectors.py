"""What each implemented connector can do. Used by validation and by hook resolution.

Only connectors that really work are listed; the others land with their issues.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .certification import Certification, Level
from .certifications import CERTIFIED, UNDECLARED, saas_certification
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
    # source: reads a cursor range in resumable chunks (incremental.chunk)
    chunk: bool = False
    # source: reads a fixed range of a table (source.window)
    window: bool = False
    # sink: the on_duplicate_keys values it honours
    duplicate_keys: frozenset[str] = frozenset({"fail"})
    # sink: the reconciliation.deletes kinds it applies
    deletes: frozenset[str] = frozenset({"none"})
    # sink: stages the source's key set beside an incremental batch (deletes on incremental loads)
    key_set: bool = False
    # sink: can keep the state table in its database, committed in its finalize transaction
    hosts_state: bool = False
    # sink: can read max(cursor) from its target (incremental.on_state_missing: from_target)
    target_watermark: bool = False
    # sink: its deletes come from the source's own flag (reconciliation.soft_delete_column set on
    # a row), not from comparing key sets, so an incremental load needs no staged key set
    deletes_by_flag: bool = False
    # sink: runs quality gates on its staged batch (a queryable staging object)
    quality_gates: bool = True
    # sink: an incremental_append skips the rows whose sink.unique_key its target already holds,
    # so an extract that re-reads rows (lookback, xmin's overlap) never adds them twice
    append_skips_known_keys: bool = True
    # source (API catalogs): per resource, the sink strategy and unique key a load gets when
    # its sink names no strategy (the vendor's rows are re-read and merged by these keys)
    resource_defaults: dict[str, tuple[Strategy, tuple[str, ...]]] = field(default_factory=dict)
    # source (API catalogs): seconds a merged cursor load re-reads before its watermark when the
    # manifest sets no incremental.lookback (late data), per resource, "*" for the others
    default_lookback: dict[str, float] = field(default_factory=dict)
    # sink: loads a staging manifest of verified files (sink.staging.files)
    file_staging: bool = False
    # source: splits a table into key ranges read by parallel tasks (parallel: {partitions, by})
    partitions: bool = False
    # source: the incremental keys its cdc mode takes (the change feed's own names)
    cdc_options: frozenset[str] = frozenset()
    # source: the sinks its cdc mode's change batches load into (None: any cdc_apply sink)
    cdc_sinks: frozenset[str] | None = None
    # seed 002's level with its evidence per requirement (``dpone certify`` checks it earns it);
    # undeclared: an experimental claim with no evidence, which certify refuses
    certified: Certification = UNDECLARED

    @property
    def certification(self) -> Level:
        """The claimed level (equal to its name: ``info.certification == "beta"``)."""
        return self.certified.level


CONNECTORS: dict[str, ConnectorInfo] = {
    "postgres": ConnectorInfo(
        name="postgres",
        hook="airflow_provider_dpone.hooks.postgres:DponePostgresHook",
        extra="postgres",
        source_modes=frozenset({None, IncrementalMode.CURSOR, IncrementalMode.XMIN, IncrementalMode.CDC}),
        sink_strategies=frozenset(
            {
                Strategy.FULL_REFRESH,
                Strategy.INCREMENTAL_APPEND,
                Strategy.INCREMENTAL_MERGE,
                Strategy.REPLACE,
                Strategy.PARTITION_REPLACE,
                Strategy.SNAPSHOT_DIFF,
                Strategy.SCD2,
                Strategy.CDC_APPLY,
            }
        ),
        table_only_modes=frozenset({IncrementalMode.XMIN, IncrementalMode.CDC}),
        cdc_options=frozenset({"slot", "publication", "max_retained_wal"}),
        # text COPY into PostgreSQL, TSV into ClickHouse (typed rows when a column is an array or
        # bytes), typed rows into SQL Server and BigQuery
        cdc_sinks=frozenset({"postgres", "mssql", "clickhouse", "bigquery"}),
        chunk=True,
        window=True,
        duplicate_keys=frozenset({"fail", "keep_last"}),
        deletes=frozenset({"none", "soft", "hard"}),
        key_set=True,
        hosts_state=True,
        target_watermark=True,
        file_staging=True,
        partitions=True,
        certified=CERTIFIED["postgres"],
    ),
    # Experimental until the live suite (DPONE_MSSQL_URI, docs/mssql.md) has run green: no SQL
    # Server can run where CI runs.
    "mssql": ConnectorInfo(
        name="mssql",
        hook="airflow_provider_dpone.hooks.mssql:DponeMsSqlHook",
        extra="mssql",
        source_modes=frozenset(
            {None, IncrementalMode.CURSOR, IncrementalMode.CHANGE_TRACKING, IncrementalMode.CDC}
        ),
        table_only_modes=frozenset({IncrementalMode.CHANGE_TRACKING, IncrementalMode.CDC}),
        cdc_options=frozenset({"capture_instance"}),
        sink_strategies=frozenset(
            {
                Strategy.FULL_REFRESH,
                Strategy.INCREMENTAL_APPEND,
                Strategy.INCREMENTAL_MERGE,
                Strategy.REPLACE,
                Strategy.PARTITION_REPLACE,
                Strategy.SNAPSHOT_DIFF,
                Strategy.SCD2,
                Strategy.CDC_APPLY,
            }
        ),
        chunk=True,
        window=True,
        duplicate_keys=frozenset({"fail", "keep_last"}),
        deletes=frozenset({"none", "soft", "hard"}),
        key_set=True,
        hosts_state=True,
        target_watermark=True,
        file_staging=True,
        partitions=True,
        # its local service (docker compose's SQL Server) is a live profile: it counts once a run of
        # it is recorded green; the retry behaviour is not documented yet
        certified=CERTIFIED["mssql"],
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
                Strategy.CDC_APPLY,  # a change feed's last change per key, by its order column
            }
        ),
        window=True,
        # no row order to keep the last by; reconciliation is not implemented (refused)
        target_watermark=True,
        file_staging=True,
        certified=CERTIFIED["clickhouse"],
    ),
    "kafka": ConnectorInfo(
        name="kafka",
        hook="airflow_provider_dpone.hooks.kafka:DponeKafkaHook",
        extra="kafka",
        source_modes=frozenset({IncrementalMode.OFFSETS}),
        sink_strategies=frozenset({Strategy.INCREMENTAL_APPEND, Strategy.INCREMENTAL_MERGE}),
        objects="topic",
        # every message of a batch is produced in order, so the last per key wins (compaction);
        # it does not look for duplicates, so only keep_last is honest (and its default)
        duplicate_keys=frozenset({"keep_last"}),
        # hard: a row whose soft_delete_column is set is sent as a tombstone (the source's own
        # flag). No soft: a topic keeps such a row as a message with the flag set, which is what
        # deletes: none already does (a tombstone is no soft delete: compaction removes the key)
        deletes=frozenset({"none", "hard"}),
        deletes_by_flag=True,
        # a topic cannot be searched for a record it already holds: a re-read is produced again
        append_skips_known_keys=False,
        # a batch is produced into a transaction, not staged where it could be queried
        quality_gates=False,
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
        certified=CERTIFIED["kafka"],
    ),
    # Experimental until the live profile (DPONE_BIGQUERY_PROJECT, docs/bigquery.md) has run
    # green: the emulator CI runs cannot show partition decorators, isolation or DML counts.
    "bigquery": ConnectorInfo(
        name="bigquery",
        hook="airflow_provider_dpone.hooks.bigquery:DponeBigQueryHook",
        extra="bigquery",
        source_modes=frozenset(),  # a sink (and state host) only
        sink_strategies=frozenset(
            {
                Strategy.FULL_REFRESH,
                Strategy.INCREMENTAL_APPEND,
                Strategy.INCREMENTAL_MERGE,
                Strategy.REPLACE,
                Strategy.PARTITION_REPLACE,
                Strategy.SNAPSHOT_DIFF,
                Strategy.CDC_APPLY,
            }
        ),
        # a load job keeps no row order to keep the last row of a key by
        deletes=frozenset({"none", "soft", "hard"}),
        key_set=True,
        hosts_state=True,
        target_watermark=True,
        file_staging=True,
        # no test loads BigQuery credentials through a fake provider yet (the emulator is anonymous)
        certified=CERTIFIED["bigquery"],
    ),
    "rest": ConnectorInfo(
        name="rest",
        hook="airflow_provider_dpone.hooks.rest:DponeRestHook",
        extra="rest",
        source_modes=frozenset({None, IncrementalMode.CURSOR}),
        sink_strategies=frozenset(),
        objects="endpoint",
        certified=CERTIFIED["rest"],
    ),
}

# SaaS API sources: a catalog of resources each (``source.resource``), read over HTTP. Cursor
# mode where some resource of the catalog filters on the server (each resource that does not
# refuses it when the load starts).
_FULL_AND_CURSOR = frozenset({None, IncrementalMode.CURSOR})
_DAY = 86400.0
# The vendors' late data: how far back a merged load re-reads by default.
_DEFAULT_LOOKBACK: dict[str, dict[str, float]] = {
    "appsflyer": {
        "*": 10 * _DAY,
        "uninstall_events": 14 * _DAY,
        "organic_uninstall_events": 14 * _DAY,
        "daily_report": 14 * _DAY,
    },
    "cbr": {"*": 3 * _DAY},
    "google_ads": {"*": 3 * _DAY},
    "omnidesk": {"*": 3 * _DAY},
    "mindbox": {"*": 2 * _DAY},
    "yandex_webmaster": {"*": 14 * _DAY},
}
_RESOURCE_DEFAULTS: dict[str, dict[str, tuple[Strategy, tuple[str, ...]]]] = {
    "fasttrack": {  # reports are re-read whole and merged; the flex ticket list is replaced
        "cascade_transactions": (Strategy.INCREMENTAL_MERGE, ("transaction_uuid",)),
        "chat_sessions": (Strategy.INCREMENTAL_MERGE, ("uuid_polzovatelya", "data_nachala")),
        "flex_cms_ratings": (Strategy.FULL_REFRESH, ()),
    },
}
for _name, _module, _hook, _modes in (
    ("cbr", "cbr", "CbrHook", _FULL_AND_CURSOR),
    ("openexchangerates", "openexchangerates", "OpenExchangeRatesHook", _FULL_AND_CURSOR),
    ("yandex_webmaster", "yandex_webmaster", "YandexWebmasterHook", _FULL_AND_CURSOR),
    ("similarweb", "similarweb", "SimilarwebHook", _FULL_AND_CURSOR),
    ("google_sheets", "google_sheets", "GoogleSheetsHook", frozenset({None})),  # a sheet has no filter
    ("appsflyer", "appsflyer", "AppsFlyerHook", _FULL_AND_CURSOR),
    ("google_ads", "google_ads", "GoogleAdsHook", _FULL_AND_CURSOR),
    ("omnidesk", "omnidesk", "OmnideskHook", _FULL_AND_CURSOR),
    ("mindbox", "mindbox", "MindboxHook", _FULL_AND_CURSOR),
    ("fasttrack", "fasttrack", "FastTrackHook", frozenset({None})),  # reports re-read, merged by key
):
    CONNECTORS[_name] = ConnectorInfo(
        name=_name,
        hook=f"airflow_provider_dpone.apis.{_module}:{_hook}",
        extra="rest",
        source_modes=_modes,
        sink_strategies=frozenset(),
        objects="resource",
        resource_defaults=_RESOURCE_DEFAULTS.get(_name, {}),
        default_lookback=_DEFAULT_LOOKBACK.get(_name, {}),
        certified=saas_certification(_name, _module),
    )
