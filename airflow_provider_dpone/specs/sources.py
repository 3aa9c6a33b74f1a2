"""Typed sources, one per connector: each builds the ``source`` mapping of a manifest load.

``PostgresSource(conn_id="shop", table="public.orders", incremental=Cursor("updated_at",
lookback="10m"))`` is ``{connector: postgres, conn_id: shop, table: public.orders,
incremental: {mode: cursor, ...}}``. Validation is the manifest's, when the operator is built.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from .mapping import SpecMapping, given


class _SqlSource(SpecMapping):
    """A database table (or view) or a query; ``columns``/``window`` apply to a table."""

    def __init__(
        self,
        conn_id: str,
        *,
        table: str | None = None,
        query: str | None = None,
        columns: Sequence[str] | None = None,
        window: Mapping[str, Any] | None = None,
        incremental: Mapping[str, Any] | None = None,
        batch_size: int | None = None,
    ) -> None:
        super().__init__(**given(locals()))


class PostgresSource(_SqlSource):
    """A PostgreSQL table or query (binary COPY out); incremental: ``Cursor`` or ``XMin``."""

    connector = "postgres"


class MsSqlSource(_SqlSource):
    """A SQL Server table or query (streamed batches); incremental: ``Cursor``,
    ``ChangeTracking`` or ``Cdc``."""

    connector = "mssql"


class ClickHouseSource(_SqlSource):
    """A ClickHouse table or query (Arrow stream); incremental: ``Cursor``."""

    connector = "clickhouse"


class KafkaSource(SpecMapping):
    """A Kafka topic; incremental: ``Offsets`` (the stored per-partition offsets).
    ``envelope="debezium"``: Debezium change events, applied with ``cdc_apply``."""

    connector = "kafka"

    def __init__(
        self,
        conn_id: str,
        topic: str,
        *,
        value_format: Literal["json", "avro", "json_schema", "protobuf"] | None = None,
        fields: Mapping[str, str] | None = None,
        commit_offsets: bool | None = None,
        envelope: Literal["none", "debezium"] | None = None,
        incremental: Mapping[str, Any] | None = None,
        batch_size: int | None = None,
    ) -> None:
        super().__init__(**given(locals()))


class Endpoint(SpecMapping):
    """A REST endpoint declared as data (see docs/rest.md for each key)."""

    def __init__(
        self,
        path: str,
        *,
        method: Literal["GET", "POST"] | None = None,
        params: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        record_selector: str | None = None,
        primary_key: Sequence[str] | None = None,
        server_filter: Mapping[str, Any] | None = None,
        pagination: Mapping[str, Any] | None = None,
        parent: Mapping[str, Any] | None = None,
        cross_origin: Literal["fail", "follow_without_credentials"] | None = None,
    ) -> None:
        super().__init__(**given(locals()))


class RestSource(SpecMapping):
    """A REST endpoint of a ``dpone_rest`` connection; incremental: ``Cursor`` on the field the
    endpoint's ``server_filter`` filters on."""

    connector = "rest"

    def __init__(
        self,
        conn_id: str,
        endpoint: Mapping[str, Any],
        *,
        fields: Mapping[str, str] | None = None,
        requests_per_second: float | None = None,
        incremental: Mapping[str, Any] | None = None,
        batch_size: int | None = None,
    ) -> None:
        super().__init__(**given(locals()))


class _ResourceSource(SpecMapping):
    """A resource of a SaaS catalog with its options (see the connector's page in docs/apis/)."""

    def __init__(
        self,
        conn_id: str,
        resource: str,
        *,
        options: Mapping[str, Any] | None = None,
        fields: Mapping[str, str] | None = None,
        requests_per_second: float | None = None,
        incremental: Mapping[str, Any] | None = None,
        batch_size: int | None = None,
    ) -> None:
        super().__init__(**given(locals()))


class AppsFlyerSource(_ResourceSource):
    connector = "appsflyer"


class CbrSource(_ResourceSource):
    connector = "cbr"


class FastTrackSource(_ResourceSource):
    connector = "fasttrack"


class GoogleAdsSource(_ResourceSource):
    connector = "google_ads"


class GoogleSheetsSource(_ResourceSource):
    connector = "google_sheets"


class MindboxSource(_ResourceSource):
    connector = "mindbox"


class OmnideskSource(_ResourceSource):
    connector = "omnidesk"


class OpenExchangeRatesSource(_ResourceSource):
    connector = "openexchangerates"


class SimilarwebSource(_ResourceSource):
    connector = "similarweb"


class YandexWebmasterSource(_ResourceSource):
    connector = "yandex_webmaster"


SOURCES: tuple[type[SpecMapping], ...] = (
    PostgresSource,
    MsSqlSource,
    ClickHouseSource,
    KafkaSource,
    RestSource,
    *_ResourceSource.__subclasses__(),
)
"""Every typed source (a test checks there is one per connector that reads)."""
