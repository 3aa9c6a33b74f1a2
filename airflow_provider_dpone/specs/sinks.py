"""Typed sinks, one per connector: each builds the ``sink`` mapping of a manifest load."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from .mapping import SpecMapping, given

Strategy = Literal[
    "full_refresh",
    "incremental_append",
    "incremental_merge",
    "replace",
    "partition_replace",
    "snapshot_diff",
    "scd2",
    "cdc_apply",
]


class _TableSink(SpecMapping):
    """A database table, written through staging and a set-based finalize (docs/strategies.md)."""

    def __init__(
        self,
        conn_id: str,
        table: str,
        *,
        strategy: Strategy | None = None,
        unique_key: Sequence[str] | None = None,
        on_duplicate_keys: Literal["fail", "keep_last"] | None = None,
        replace: Mapping[str, Any] | None = None,
        partition_by: Sequence[str] | None = None,
        staging: Mapping[str, Any] | None = None,
        allow_empty: bool | None = None,
    ) -> None:
        super().__init__(**given(locals()))


class PostgresSink(_TableSink):
    """A PostgreSQL table (binary COPY into staging)."""

    connector = "postgres"


class MsSqlSink(_TableSink):
    """A SQL Server table (bulk copy into staging, one T-SQL finalize transaction)."""

    connector = "mssql"


class ClickHouseSink(_TableSink):
    """A ClickHouse table (Arrow inserts into staging, partition-aware finalize)."""

    connector = "clickhouse"


class BigQuerySink(_TableSink):
    """A BigQuery table, ``dataset.table`` or ``project.dataset.table`` (Parquet load jobs into
    staging, one transaction script to finalize)."""

    connector = "bigquery"


class KafkaSink(SpecMapping):
    """A Kafka topic (transactional produce)."""

    connector = "kafka"

    def __init__(
        self,
        conn_id: str,
        topic: str,
        *,
        strategy: Strategy | None = None,
        unique_key: Sequence[str] | None = None,
        on_duplicate_keys: Literal["fail", "keep_last"] | None = None,
        allow_empty: bool | None = None,
    ) -> None:
        super().__init__(**given(locals()))


SINKS: tuple[type[SpecMapping], ...] = (PostgresSink, MsSqlSink, ClickHouseSink, BigQuerySink, KafkaSink)
"""Every typed sink (a test checks there is one per connector that writes)."""
