"""Kafka as a bounded batch source and a transactional sink (confluent-kafka).

Built on the official Kafka provider's hook and connection: the connection's extras are the
librdkafka configuration (``bootstrap.servers``, security settings...). dpone's own keys in
the extras start with ``dpone.``: ``dpone.schema_registry`` (``{"url": ..., "basic.auth.user.info":
...}``, or just the URL in ``dpone.schema_registry_url``) for Avro, JSON Schema and Protobuf
values.

Source: reads each partition from the offsets in the state (or the earliest) up to the high
watermark seen when the extract starts, with ``read_committed``, then stops. The offsets are
the state candidate: they advance only after the sink commits. With ``source.commit_offsets``
the consumer group's offsets are committed after that.

Sink: one Kafka transaction per load. Staging produces every row (keyed by ``unique_key``,
idempotent producer) inside the open transaction; finalize commits it, so read_committed
consumers see the whole batch or nothing, and a killed run's transaction is aborted by the
next run (same ``transactional.id``). Every delivery is confirmed before the commit.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

from ..contracts.errors import MissingExtraError

try:
    from airflow.providers.apache.kafka.hooks.base import KafkaBaseHook
    from confluent_kafka import (
        OFFSET_BEGINNING,
        Consumer,
        KafkaError,
        KafkaException,
        Producer,
        TopicPartition,
    )
    from confluent_kafka.admin import AdminClient
except ImportError as _exc:  # pragma: no cover - exercised by the missing-extra test
    raise MissingExtraError(_exc.name or "confluent-kafka", "kafka") from None

from ..contracts import records
from ..contracts.artifacts import ExtractResult, InMemoryRows, StreamingBatches, iter_row_batches
from ..contracts.errors import BadInputError, TransientError, UnsupportedError
from ..contracts.manifest import SourceSpec, TopicSource, source_of
from ..contracts.quality import Measurement
from ..contracts.redaction import Redactor
from ..contracts.state import OffsetsState, StateRecord
from ..contracts.table import TableSchema
from ..dialects import kafka as codec
from ..runtime.failpoints import failpoint
from ..runtime.protocols import LoadContext, StagedData, Statement
from ..schema.planner import SchemaPlan, plan_schema
from .connection import conn_id_of, probe

log = logging.getLogger(__name__)

_TIMEOUT = 30.0
_IDLE = 5.0  # a partition that makes no progress this long (an open transaction) stops there


class DponeKafkaHook(KafkaBaseHook):
    """Source and sink for Kafka topics. Accepts ``kafka`` and ``dpone_kafka`` connections."""

    conn_type = "dpone_kafka"
    hook_name = "dpone Kafka"
    accepted_formats: tuple[str, ...] = ()  # rows

    def __init__(self, kafka_config_id: str | None = None, *, conn_id: str | None = None) -> None:
        """``kafka_config_id`` (what Airflow passes) or its alias ``conn_id``."""
        super().__init__(kafka_config_id=conn_id_of(self, kafka_config_id, conn_id))
        self._producer: Any = None
        self._in_transaction = False

    @property
    def dpone_conn_id(self) -> str:
        return self.kafka_config_id

    # --- connections ---------------------------------------------------------------------

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

    # --- offsets (sensors) ---------------------------------------------------------------

    def high_watermarks(self, topic: str) -> dict[int, int]:
        """The next offset each partition of ``topic`` will write."""
        consumer = self._consumer("dpone.watermarks")
        try:
            return {
                p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=_TIMEOUT)[1]
                for p in self._partitions(consumer, topic)
            }
        finally:
            consumer.close()

    def committed_offsets(self, topic: str, group: str) -> dict[int, int]:
        """The offsets consumer group ``group`` has committed (partitions without one: 0)."""
        consumer = self._consumer(group)
        try:
            parts = [TopicPartition(topic, p) for p in self._partitions(consumer, topic)]
            return {tp.partition: max(tp.offset, 0) for tp in consumer.committed(parts, timeout=_TIMEOUT)}
        finally:
            consumer.close()

    # --- source --------------------------------------------------------------------------

    def _value_schema(self, spec: TopicSource) -> tuple[TableSchema, Any]:
        """The value columns and a decoder of message values into dicts."""
        topic = spec.topic
        if spec.value_format == "json":
            if spec.fields:
                schema = records.declared_schema(spec.fields)
            else:
                from ..contracts.table import CanonicalType, Column

                schema = TableSchema((Column("value", CanonicalType.JSON, True),))
            import json

            def decode_json(raw: bytes) -> dict[str, Any]:
                parsed = json.loads(raw)
                if spec.fields:
                    if not isinstance(parsed, dict):
                        raise BadInputError(f"topic {topic}: a message value is not a JSON object")
                    return parsed
                return {"value": raw.decode()}

            return schema, decode_json
        from confluent_kafka.serialization import MessageField, SerializationContext

        registry = self.registry()
        subject = f"{topic}-value"
        try:  # protobuf schemas as a serialized FileDescriptorProto, as the deserializer reads them
            latest = registry.get_latest_version(
                subject, fmt="serialized" if spec.value_format == "protobuf" else None
            )
        except Exception as exc:
            raise BadInputError(f"schema registry: no schema for subject '{subject}': {exc}") from None
        text = latest.schema.schema_str
        context = SerializationContext(topic, MessageField.VALUE)
        if spec.value_format == "protobuf":
            return self._protobuf(registry, text, context)
        if spec.value_format == "avro":
            from confluent_kafka.schema_registry.avro import AvroDeserializer

            schema = codec.avro_schema(text)
            deserializer = AvroDeserializer(registry)
        else:
            from confluent_kafka.schema_registry.json_schema import JSONDeserializer

            schema = codec.json_schema(text)
            deserializer = JSONDeserializer(text, schema_registry_client=registry)
        return schema, lambda raw: deserializer(raw, context)

    @staticmethod
    def _protobuf(registry: Any, serialized: str, context: Any) -> tuple[TableSchema, Any]:
        """Columns and decoder for protobuf values: the first message of the subject's schema."""
        import base64

        from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer
        from google.protobuf import (
            any_pb2,
            descriptor_pb2,
            descriptor_pool,
            duration_pb2,
            empty_pb2,
            json_format,
            message_factory,
            struct_pb2,
            timestamp_pb2,
            wrappers_pb2,
        )

        proto = descriptor_pb2.FileDescriptorProto()
        try:
            proto.ParseFromString(base64.standard_b64decode(serialized))
        except Exception as exc:
            raise BadInputError(f"schema registry: the protobuf schema cannot be read: {exc}") from None
        pool = descriptor_pool.DescriptorPool()
        for known in (any_pb2, duration_pb2, empty_pb2, struct_pb2, timestamp_pb2, wrappers_pb2):
            pool.AddSerializedFile(known.DESCRIPTOR.serialized_pb)
        pool.Add(proto)
        file = pool.FindFileByName(proto.name)
        if not file.message_types_by_name:
            raise BadInputError("schema registry: the protobuf schema defines no message")
        message = next(iter(file.message_types_by_name.values()))
        deserializer = ProtobufDeserializer(
            message_factory.GetMessageClass(message),
            {"use.deprecated.format": False},
            schema_registry_client=registry,
        )

        def decode(raw: bytes) -> dict[str, Any]:
            return json_format.MessageToDict(
                deserializer(raw, context),
                always_print_fields_with_no_presence=True,
                preserving_proto_field_name=True,
            )

        return codec.protobuf_schema(message), decode

    def _partitions(self, consumer: Any, topic: str) -> list[int]:
        metadata = consumer.list_topics(topic, timeout=_TIMEOUT)
        info = metadata.topics.get(topic)
        if info is None or info.error is not None or not info.partitions:
            raise BadInputError(f"source.topic: topic '{topic}' does not exist")
        return sorted(info.partitions)

    def _plan(self, spec: TopicSource, state: StateRecord | None, consumer: Any) -> tuple[dict, dict]:
        """Per partition: (first offset to read, high watermark now)."""
        topic = spec.topic
        if state is not None and (not isinstance(state, OffsetsState) or state.topic != topic):
            raise BadInputError(
                f"stored state is {state.kind!r} (not offsets of topic '{topic}'); reset it with dpone state reset"
            )
        inc = spec.incremental
        start_at = (inc.initial_value if inc else None) or "earliest"
        if start_at not in ("earliest", "latest"):
            raise BadInputError("source.incremental.initial_value: 'earliest' or 'latest' for Kafka offsets")
        bounds, skipped = {}, {}
        for p in self._partitions(consumer, topic):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=_TIMEOUT)
            stored = state.next_offset(p) if isinstance(state, OffsetsState) else None
            first = stored if stored is not None else (low if start_at == "earliest" else high)
            if first < low:  # retention removed messages never read: say so, start at what is left
                skipped[str(p)] = low - first
                first = low
            bounds[p] = (first, high)
        return bounds, skipped

    def extract(
        self, spec: SourceSpec, state: StateRecord | None, *, accepted_formats: tuple[str, ...] = ()
    ) -> ExtractResult:
        """Fix each partition's end (its high watermark now); stream its messages up to it."""
        spec = source_of(spec, TopicSource, "kafka")
        value_schema, decode = self._value_schema(spec)
        schema = TableSchema(codec.ENVELOPE + value_schema.columns)
        consumer = self._consumer(self.group_id(None, f"{spec.conn_id}.{spec.topic}"))
        try:
            bounds, skipped = self._plan(spec, state, consumer)
        except BaseException:
            consumer.close()
            raise
        topic = spec.topic
        candidate = OffsetsState(topic, {str(p): high for p, (_, high) in bounds.items()})
        details: dict[str, Any] = {
            "mode": "offsets",
            "topic": topic,
            "from": {str(p): first for p, (first, _) in bounds.items()},
            "to": {str(p): high for p, (_, high) in bounds.items()},
            "pending_messages": sum(max(0, high - first) for first, high in bounds.values()),
        }
        if skipped:
            details["lost_to_retention"] = skipped
            log.warning("topic %s: messages removed by retention before they were read: %s", topic, skipped)
        result = ExtractResult(StreamingBatches(()), schema, candidate, details)
        # The reader moves the candidate to where it really stopped (it may stop short of the end).
        result.artifact = StreamingBatches(
            self._read(consumer, topic, bounds, value_schema, decode, spec.batch_size, result)
        )
        return result

    def _read(
        self,
        consumer: Any,
        topic: str,
        bounds: dict[int, tuple[int, int]],
        value_schema: TableSchema,
        decode: Any,
        batch_size: int,
        result: ExtractResult,
    ) -> Iterator[list]:
        """Messages of each partition from its first offset up to its end, in row batches."""
        todo = {p: b for p, b in bounds.items() if b[0] < b[1]}
        reached = {p: first for p, (first, _) in bounds.items()}
        sent = tombstones = 0
        try:
            if todo:
                consumer.assign([TopicPartition(topic, p, first) for p, (first, _) in todo.items()])
            batch: list = []
            last_progress = time.monotonic()
            while todo:
                messages = consumer.consume(num_messages=min(batch_size, 10_000), timeout=1.0)
                progressed = False
                for msg in messages:
                    err = msg.error()
                    if err is not None:
                        if err.code() == KafkaError._PARTITION_EOF:
                            continue
                        raise TransientError(f"reading {topic}: {err}")
                    p, offset = msg.partition(), msg.offset()
                    if p not in todo or offset >= todo[p][1]:
                        continue  # past this run's end: the next run reads it
                    reached[p] = offset + 1
                    progressed = True
                    raw = msg.value()
                    if raw is None:
                        tombstones += 1
                        continue
                    value = decode(raw)
                    _, stamp = msg.timestamp()
                    envelope = [
                        topic,
                        p,
                        offset,
                        records.coerce(codec.ENVELOPE[3], stamp),
                        codec.decode_key(msg.key()),
                    ]
                    batch.append(envelope + records.row_of(value_schema, value))
                    if len(batch) >= batch_size:
                        sent += len(batch)
                        yield batch
                        batch = []
                positions = consumer.position([TopicPartition(topic, p) for p in todo])
                for tp in positions:
                    if tp.offset >= 0:
                        reached[tp.partition] = max(reached[tp.partition], tp.offset)
                for p in [p for p in todo if reached[p] >= todo[p][1]]:
                    del todo[p]
                if progressed:
                    last_progress = time.monotonic()
                elif todo and time.monotonic() - last_progress > _IDLE:
                    # e.g. an open transaction holds the last stable offset below the end
                    log.warning("topic %s: no progress for %.0fs; stopping at %s", topic, _IDLE, reached)
                    break
            if batch:
                sent += len(batch)
                yield batch
        finally:
            consumer.close()
        final = {str(p): min(reached[p], high) for p, (_, high) in bounds.items()}
        result.state_candidate = OffsetsState(topic, final)
        result.stats.source_rows = sent
        result.details.update(tombstones_skipped=tombstones, read_to=final)

    def plan_extract(self, spec: SourceSpec, state: StateRecord | None) -> tuple[dict[str, Any], TableSchema]:
        spec = source_of(spec, TopicSource, "kafka")
        value_schema, _ = self._value_schema(spec)
        consumer = self._consumer(self.group_id(None, f"{spec.conn_id}.{spec.topic}"))
        try:
            bounds, skipped = self._plan(spec, state, consumer)
        finally:
            consumer.close()
        schema = TableSchema(codec.ENVELOPE + value_schema.columns)
        plan = {
            "topic": spec.topic,
            "value_format": spec.value_format,
            "partitions": {str(p): {"from": f, "to": h} for p, (f, h) in bounds.items()},
            "window": {"mode": "offsets", "pending_messages": sum(max(0, h - f) for f, h in bounds.values())},
            "lost_to_retention": skipped,
            "schema": [
                {"name": c.name, "type": c.type.value, "nullable": c.nullable} for c in schema.columns
            ],
        }
        return plan, schema

    def extract_keys(
        self, spec: SourceSpec, keys: list[str], *, accepted_formats: tuple[str, ...] = ()
    ) -> ExtractResult:
        raise UnsupportedError("reconciliation needs a full key set; a topic has none (use tombstones)")

    def acknowledge(self, ctx: LoadContext, state: StateRecord) -> None:
        """After the sink and the state committed: commit the consumer group's offsets (opt-in)."""
        spec = source_of(ctx.load.source, TopicSource, "kafka")
        if not spec.commit_offsets or not isinstance(state, OffsetsState):
            return
        consumer = Consumer({"group.id": self.group_id(None, ctx.key), **self.client_config()})
        try:
            offsets = [TopicPartition(state.topic, int(p), o) for p, o in state.offsets.items()]
            consumer.commit(offsets=offsets, asynchronous=False)
            log.info("committed consumer group offsets %s", state.offsets)
        finally:
            consumer.close()

    # --- sink ----------------------------------------------------------------------------

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
            info = consumer.list_topics(topic, timeout=_TIMEOUT).topics.get(topic)
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
        deadline = time.monotonic() + _TIMEOUT
        while len(ended) < len(partitions):
            if time.monotonic() > deadline:
                raise TransientError(
                    f"kafka sink: could not tell within {_TIMEOUT:.0f}s whether '{topic}' holds messages"
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
        producer.init_transactions(_TIMEOUT)
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
        remaining = producer.flush(_TIMEOUT)
        if remaining:
            raise TransientError(
                f"kafka sink: {remaining} message(s) not delivered within {_TIMEOUT:.0f}s; "
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
        """With deletes on, a row whose soft-delete column is set is sent as a tombstone."""
        rec = ctx.load.reconciliation
        if rec.deletes == "none" or not schema.has(rec.soft_delete_column):
            return None
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
            self._producer.commit_transaction(_TIMEOUT)
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
                self._producer.abort_transaction(_TIMEOUT)
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
