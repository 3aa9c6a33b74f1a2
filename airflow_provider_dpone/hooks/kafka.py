"""The Kafka hook: source and transactional sink (``kafka_connector``) on confluent-kafka, on the
official Kafka provider's hook and connection.

The connector's code needs no Airflow class (``kafka_connector.KafkaConnector``); this module puts it on
KafkaBaseHook, so the hook is a proper Airflow hook: ``Connection.get_hook()`` builds it, its
connection and client configuration are the provider's. The command line uses the same
connector standing alone (``kafka_connector.KafkaEngine``), without importing Airflow.
"""

from __future__ import annotations

from ..contracts.errors import MissingExtraError

try:
    from airflow.providers.apache.kafka.hooks.base import KafkaBaseHook
except ImportError as _exc:  # pragma: no cover - exercised by the missing-extra test
    raise MissingExtraError(_exc.name or "confluent-kafka", "kafka") from None

from .connection import conn_id_of
from .kafka_connector import KafkaConnector


class DponeKafkaHook(KafkaConnector, KafkaBaseHook):
    """Source and sink for Kafka topics. Accepts ``kafka`` and ``dpone_kafka`` connections."""

    conn_type = "dpone_kafka"
    hook_name = "dpone Kafka"

    def __init__(self, kafka_config_id: str | None = None, *, conn_id: str | None = None) -> None:
        """``kafka_config_id`` (what Airflow passes) or its alias ``conn_id``."""
        super().__init__(kafka_config_id=conn_id_of(self, kafka_config_id, conn_id))

    @property
    def dpone_conn_id(self) -> str:
        return self.kafka_config_id  # type: ignore[no-any-return]
