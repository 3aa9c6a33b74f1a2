"""The Kafka hook's connection: the librdkafka client configuration, the schema registry,
consumers and the offsets the sensors read. No Airflow class: the Airflow hook
(``hooks.kafka``) puts this on the official provider's KafkaBaseHook, which builds the
configuration; the standalone engine (``kafka_connector.KafkaEngine``) builds it the same way.

The connection's extras are the librdkafka configuration (``bootstrap.servers``, security
settings...). dpone's own keys in the extras start with ``dpone.``: ``dpone.schema_registry``
(``{"url": ..., "basic.auth.user.info": ...}``, or just the URL in
``dpone.schema_registry_url``) for Avro, JSON Schema and Protobuf values.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ..contracts.errors import MissingExtraError

try:
    from confluent_kafka import Consumer, TopicPartition
    from confluent_kafka.admin import AdminClient
except ImportError as _exc:  # pragma: no cover - exercised by the missing-extra test
    raise MissingExtraError(_exc.name or "confluent-kafka", "kafka") from None

from ..contracts.errors import BadInputError
from ..contracts.redaction import Redactor
from .connection import probe

log = logging.getLogger(__name__)

TIMEOUT = 30.0


class KafkaClient:
    """dpone's redaction, Test button and consumers, over the class this is mixed into: that
    gives ``dpone_conn_id``, ``get_connection(conn_id)`` and ``_build_config()`` (the
    connection's librdkafka configuration)."""

    if TYPE_CHECKING:  # given by the class this is mixed into

        @property
        def dpone_conn_id(self) -> str: ...

        def get_connection(self, conn_id: str) -> Any: ...

        def _build_config(self) -> dict[str, Any]: ...

    def _extras(self) -> dict[str, Any]:
        """The connection's extras; a key the UI form left empty (null) counts as absent."""
        extra = self.get_connection(self.dpone_conn_id).extra_dejson
        return {k: v for k, v in extra.items() if v is not None}

    def client_config(self) -> dict[str, Any]:
        """The librdkafka configuration: the connection's extras without dpone's own keys."""
        config = self._build_config()
        return {k: v for k, v in config.items() if not k.startswith("dpone.") and v is not None}

    def redactor(self) -> Redactor:
        """A redactor knowing this connection's credentials."""
        return Redactor.of_connection(lambda: self.get_connection(self.dpone_conn_id))

    def test_connection(self, timeout: float = 10.0) -> tuple[bool, str]:
        """The UI's Test button: list the topics (within ``timeout`` seconds); no credential in
        the message."""

        def check() -> str:
            config: dict[str, Any] = {**self.client_config(), "logger": log}  # not librdkafka's stderr
            admin = AdminClient(config)
            metadata = admin.list_topics(timeout=timeout)
            return f"{len(metadata.brokers)} broker(s), {len(metadata.topics)} topic(s) visible"

        return probe(self.redactor(), check)

    def dataset(self, table: str) -> dict[str, str]:
        servers = str(self._extras().get("bootstrap.servers", "")).split(",")[0]
        return {"namespace": f"kafka://{servers}", "name": table}

    def registry(self) -> Any:
        from confluent_kafka.schema_registry import SchemaRegistryClient

        extras = self._extras()
        settings = extras.get("dpone.schema_registry") or extras.get("dpone.schema_registry_url")
        if isinstance(settings, str):
            settings = {"url": settings}
        if not settings or not settings.get("url"):
            raise BadInputError(
                f"connection '{self.dpone_conn_id}': Avro / JSON Schema values need "
                'extra \'dpone.schema_registry\': {"url": "http://registry:8081"} '
                "(or the form's Schema Registry URL)"
            )
        return SchemaRegistryClient(settings)

    def _consumer(self, group: str) -> Any:
        config = {
            "group.id": group,
            **self.client_config(),
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
        }
        return Consumer(config)

    @staticmethod
    def group_id(spec_group: str | None, key: str) -> str:
        return spec_group or f"dpone.{key}"

    def _partitions(self, consumer: Any, topic: str) -> list[int]:
        metadata = consumer.list_topics(topic, timeout=TIMEOUT)
        info = metadata.topics.get(topic)
        if info is None or info.error is not None or not info.partitions:
            raise BadInputError(f"source.topic: topic '{topic}' does not exist")
        return sorted(info.partitions)

    # --- offsets (sensors) ---------------------------------------------------------------

    def high_watermarks(self, topic: str) -> dict[int, int]:
        """The next offset each partition of ``topic`` will write."""
        consumer = self._consumer("dpone.watermarks")
        try:
            return {
                p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=TIMEOUT)[1]
                for p in self._partitions(consumer, topic)
            }
        finally:
            consumer.close()

    def committed_offsets(self, topic: str, group: str) -> dict[int, int]:
        """The offsets consumer group ``group`` has committed (partitions without one: 0)."""
        consumer = self._consumer(group)
        try:
            parts = [TopicPartition(topic, p) for p in self._partitions(consumer, topic)]
            return {tp.partition: max(tp.offset, 0) for tp in consumer.committed(parts, timeout=TIMEOUT)}
        finally:
            consumer.close()
