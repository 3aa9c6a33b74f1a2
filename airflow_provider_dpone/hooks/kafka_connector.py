"""The Kafka connector: source (``kafka_source``) and transactional sink, on confluent-kafka;
the connection is described in ``kafka_client``. ``KafkaConnector`` is the whole connector without
its connection: ``hooks.kafka`` puts it on the official provider's KafkaBaseHook (the Airflow
hook), and ``KafkaEngine`` here is the same connector standing alone (no Airflow import), for
the command line.

Sink: one Kafka transaction per load. Staging produces every row (keyed by ``unique_key``,
idempotent producer) inside the open transaction; finalize commits it, so read_committed
consumers see the whole batch or nothing, and a killed run's transaction is aborted by the
next run (same ``transactional.id``). Every delivery is confirmed before the commit.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from ..contracts.errors import MissingExtraError

try:
    from confluent_kafka import OFFSET_BEGINNING, KafkaError, KafkaException, Producer, TopicPartition
except ImportError as _exc:  # pragma: no cover - exercised by the missing-extra test
    raise MissingExtraError(_exc.name or "confluent-kafka", "kafka") from None

from ..contracts.artifacts import ExtractResult, InMemoryRows, StreamingBatches, iter_row_batches
from ..contracts.errors import BadInputError, TransientError, UnsupportedError
from ..contracts.quality import Measurement
from ..contracts.table import TableSchema
from ..dialects import kafka as codec
from ..runtime.failpoints import failpoint
from ..runtime.protocols import LoadContext, StagedData, Statement
from ..schema.planner import SchemaPlan, plan_schema
from .connection import StandaloneConnection
from .kafka_client import TIMEOUT
from .kafka_source import KafkaSource

log = logging.getLogger(__name__)


class KafkaConnector(KafkaSource):
    """Source and sink for Kafka topics, over the connection of the class it is mixed into."""

    accepted_formats: tuple[str, ...] = ()  # rows

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._producer: Any = None  # the open transaction's, from stage to finalize or cleanup
        self._in_transaction = False

    def schema_plan(self, ctx: LoadContext, schema: TableSchema) -> SchemaPlan:
        return plan_schema(schema, None)  # a topic has no schema to evolve

    def target_rows(self, ctx: LoadContext, *, exact: bool = False) -> int | None:
        """None when the sink's topic does not exist; else 1 when a committed message is there to
        read, 0 when none is (aborted transactions use offsets but hold no message). ``exact`` is
        not offered: a topic's message count is not known without reading it."""
        if exact:
            raise UnsupportedError("a topic's message count is not known without reading every message")
        topic = ctx.load.sink.topic or ""
        consumer = self._consumer("dpone.target_probe")
        try:
            info = consumer.list_topics(topic, timeout=TIMEOUT).topics.get(topic)
            if info is None or (
                info.error is not None and info.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART
            ):
                return None
            if info.error is not None or not info.partitions:
                raise TransientError(f"kafka sink: cannot read the metadata of topic '{topic}': {info.error}")
            return self._any_committed(consumer, topic, sorted(info.partitions))
        finally:
            consumer.close()

    @staticmethod
    def _any_committed(consumer: Any, topic: str, partitions: list[int]) -> int:
        """1 when a read_committed consumer finds a message in ``topic``, 0 at the end of every
        partition."""
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        ended: set[int] = set()
        deadline = time.monotonic() + TIMEOUT
        while len(ended) < len(partitions):
            if time.monotonic() > deadline:
                raise TransientError(
                    f"kafka sink: could not tell within {TIMEOUT:.0f}s whether '{topic}' holds messages"
                )
            message = consumer.poll(0.5)
            if message is None:
                continue
            error = message.error()
            if error is None:
                return 1
            if error.code() != KafkaError._PARTITION_EOF:
                raise TransientError(f"kafka sink: reading topic '{topic}' failed: {error}")
            ended.add(message.partition())
        return 0

    def target_watermark(self, ctx: LoadContext, column: str) -> tuple[str, str] | None:
        raise UnsupportedError("a topic has no column to read a watermark from (validation refuses this)")

    def _producer_for(self, ctx: LoadContext) -> Any:
        config = {
            "acks": "all",
            "linger.ms": 20,
            "batch.num.messages": 10_000,
            "partitioner": "murmur2_random",  # the Java client's: keys land where Kafka Streams expects
            **self.client_config(),
            "enable.idempotence": True,
            "transactional.id": f"dpone.{ctx.key}",
        }
        producer = Producer(config)
        # Fences (and aborts) a transaction a killed run of this load left open.
        producer.init_transactions(TIMEOUT)
        return producer

    def stage(self, ctx: LoadContext, extract: ExtractResult) -> StagedData:
        """Produce every row inside a new transaction; consumers see nothing until finalize."""
        topic = ctx.load.sink.topic or ""
        keys = list(ctx.load.sink.unique_key or ())
        schema = extract.schema
        missing = [k for k in keys if not schema.has(k)]
        if missing:
            raise BadInputError(f"sink.unique_key: {missing} not in the source columns {schema.names}")
        tombstone_at = self._tombstone_column(ctx, schema)
        encoder = codec.RowEncoder(schema, keys)
        producer = self._producer = self._producer_for(ctx)
        produce, poll = producer.produce, producer.poll
        producer.begin_transaction()
        self._in_transaction = True
        rows = size = tombstones = 0
        artifact = extract.artifact
        if not isinstance(artifact, InMemoryRows | StreamingBatches):
            raise BadInputError(f"kafka sink cannot load a {artifact.kind} artifact")
        # No per-message callback: a transactional producer's commit fails if any message of
        # the transaction failed, so the commit in finalize is the delivery confirmation.
        for batch in iter_row_batches(artifact):
            for row in batch:
                if tombstone_at is not None and row[tombstone_at] is not None:
                    value = None
                    tombstones += 1
                else:
                    value = encoder.value(row)
                    size += len(value)
                key = encoder.key(row)
                try:
                    produce(topic, value, key)
                except BufferError:  # the local queue is full: let deliveries drain, then retry
                    while True:
                        poll(0.05)
                        try:
                            produce(topic, value, key)
                            break
                        except BufferError:
                            continue
                rows += 1
                if rows % 10_000 == 0:
                    poll(0)
            failpoint("mid_copy")
        remaining = producer.flush(TIMEOUT)
        if remaining:
            raise TransientError(
                f"kafka sink: {remaining} message(s) not delivered within {TIMEOUT:.0f}s; "
                "the transaction is aborted"
            )
        log.info(
            "produced %s messages (%s bytes, %s tombstones) to %s, not yet committed",
            f"{rows:,}",
            f"{size:,}",
            tombstones,
            topic,
        )
        return StagedData(
            staging=f"transaction dpone.{ctx.key}",
            schema=schema,
            rows=rows,
            bytes=size,
            format="kafka_transaction",
            details={"tombstones": tombstones},
        )

    @staticmethod
    def _tombstone_column(ctx: LoadContext, schema: TableSchema) -> int | None:
        """With deletes on, a row whose soft-delete column is set is sent as a tombstone; a batch
        without that column could send none, so it fails before anything is produced."""
        rec = ctx.load.reconciliation
        if rec.deletes == "none":
            return None
        if not schema.has(rec.soft_delete_column):
            raise BadInputError(
                f"reconciliation.soft_delete_column: '{rec.soft_delete_column}' is not a source column "
                f"({', '.join(schema.names)}); the kafka sink sends a tombstone for each row whose "
                "column is set, so without it no delete would reach the topic"
            )
        return schema.names.index(rec.soft_delete_column)

    def stage_key_set(self, ctx: LoadContext, extract: ExtractResult) -> StagedData:
        raise UnsupportedError("the kafka sink takes deletes as tombstones, not as a staged key set")

    def measure_quality(self, ctx: LoadContext, staged: StagedData, checks: list[Any]) -> list[Measurement]:
        raise UnsupportedError("quality gates need a queryable staging table; the kafka sink has none")

    def finalize(self, ctx: LoadContext, staged: StagedData, extra: list[Statement]) -> dict[str, Any]:
        if extra:
            raise UnsupportedError("state cannot be committed inside a Kafka transaction")
        failpoint("mid_finalize")
        try:
            self._producer.commit_transaction(TIMEOUT)
        except KafkaException as exc:
            raise TransientError(f"kafka sink: commit failed: {exc}") from None
        self._in_transaction = False
        return {
            "target": ctx.load.sink.topic,
            "method": "transaction",
            "rows_inserted": staged.rows,
            "tombstones": staged.details.get("tombstones", 0),
        }

    def cleanup(self, ctx: LoadContext, staged: StagedData | None, succeeded: bool) -> None:
        if self._producer is not None and self._in_transaction:
            try:
                self._producer.abort_transaction(TIMEOUT)
                log.info("aborted the open transaction of %s: nothing was published", ctx.key)
            finally:
                self._in_transaction = False
        self._producer = None

    def plan_load(
        self, ctx: LoadContext, schema: TableSchema | None, binary: bool = True, schema_plan: Any = None
    ) -> dict[str, Any]:
        """What a run would do: a topic has no schema plan and no SQL."""
        sink = ctx.load.sink
        return {
            "target": sink.topic,
            "staging": f"transaction dpone.{ctx.key}",
            "statements": [
                f"init_transactions(transactional.id=dpone.{ctx.key})  -- aborts a transaction a killed run left open",
                "begin_transaction()",
                f"produce(topic={sink.topic}, key={sink.unique_key or 'none'}, value=JSON row) for each row",
                "flush()  -- every delivery confirmed",
                "commit_transaction()",
            ],
            "schema_plan": None,
        }


# Options the official hook turns from a dotted path (text) into the callable it names.
CALLBACK_KEYS = ("error_cb", "throttle_cb", "stats_cb", "log_cb", "oauth_cb", "on_commit")


class KafkaEngine(KafkaConnector, StandaloneConnection):
    """The Kafka connector standing alone, without Airflow's classes: what ``dpone run``,
    ``plan`` and ``state`` use; its connection comes from ``resolve_connection``."""

    def __init__(self, conn_id: str) -> None:
        super().__init__(conn_id)

    def _build_config(self) -> dict[str, Any]:
        """The connection's extras, as the official KafkaBaseHook builds its configuration. One
        that needs the official hook's own work (a callback named by its dotted path, the token
        callback of Google Managed Kafka or Amazon MSK IAM) is built by that hook."""
        config: dict[str, Any] = self.get_connection(self.conn_id).extra_dejson
        servers = str(config.get("bootstrap.servers") or "")
        if (
            any(isinstance(config.get(key), str) for key in CALLBACK_KEYS)
            or "amazonaws.com" in servers
            or ("cloud.goog" in servers and "managedkafka" in servers)
        ):
            from airflow.providers.apache.kafka.hooks.base import KafkaBaseHook

            return KafkaBaseHook(kafka_config_id=self.conn_id)._build_config()  # type: ignore[no-any-return]
        if not servers:
            raise ValueError("config['bootstrap.servers'] must be provided.")
        return config
