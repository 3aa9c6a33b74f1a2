"""Typed specs for composing loads in Python: ``StagedLoadOperator(source=PostgresSource(...),
sink=ClickHouseSink(...), state=TableState(...))``. Each spec is the plain mapping a manifest
holds, so a mapping works wherever a spec does. Pure and light: no Airflow, no drivers.
"""

from __future__ import annotations

from .mapping import Cdc, ChangeTracking, Cursor, Offsets, TableState, VariableState, Window, XMin
from .sinks import BigQuerySink, ClickHouseSink, KafkaSink, MsSqlSink, PostgresSink
from .sources import (
    AppsFlyerSource,
    CbrSource,
    ClickHouseSource,
    Endpoint,
    FastTrackSource,
    GoogleAdsSource,
    GoogleSheetsSource,
    KafkaSource,
    MindboxSource,
    MsSqlSource,
    OmnideskSource,
    OpenExchangeRatesSource,
    PostgresSource,
    RestSource,
    SimilarwebSource,
    YandexWebmasterSource,
)

__all__ = [
    "AppsFlyerSource",
    "BigQuerySink",
    "CbrSource",
    "Cdc",
    "ChangeTracking",
    "ClickHouseSink",
    "ClickHouseSource",
    "Cursor",
    "Endpoint",
    "FastTrackSource",
    "GoogleAdsSource",
    "GoogleSheetsSource",
    "KafkaSink",
    "KafkaSource",
    "MindboxSource",
    "MsSqlSink",
    "MsSqlSource",
    "Offsets",
    "OmnideskSource",
    "OpenExchangeRatesSource",
    "PostgresSink",
    "PostgresSource",
    "RestSource",
    "SimilarwebSource",
    "TableState",
    "VariableState",
    "Window",
    "XMin",
    "YandexWebmasterSource",
]
