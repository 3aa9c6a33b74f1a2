"""The Kafka source: a bounded batch read of a topic, value decoding (JSON, or Avro, JSON
Schema and Protobuf through the schema registry) and the consumer group's offsets commit.

Each partition is read from the offsets in the state (or the earliest) up to the high
watermark seen when the extract starts, with ``read_committed``, then the read stops. The
offsets are the state candidate: they advance only after the sink commits. With
``source.commit_offsets`` the consumer group's offsets are committed after that.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

from ..contracts.errors import MissingExtraError

try:
    from confluent_kafka import Consumer, KafkaError, TopicPartition
except ImportError as _exc:  # pragma: no cover - exercised by the missing-extra test
    raise MissingExtraError(_exc.name or "confluent-kafka", "kafka") from None

from ..contracts import records
from ..contracts.artifacts import ExtractResult, StreamingBatches
from ..contracts.errors import BadInputError, TransientError, UnsupportedError
from ..contracts.sources import SourceSpec, TopicSource, source_of
from ..contracts.state import OffsetsState, StateRecord
from ..contracts.table import TableSchema
from ..dialects import debezium
from ..dialects import kafka as codec
from ..runtime.protocols import LoadContext
from ..sql.targets import with_op
from .kafka_client import TIMEOUT, KafkaClient

log = logging.getLogger(__name__)

_IDLE = 5.0  # a partition that makes no progress this long (an open transaction) stops there


class KafkaSource(KafkaClient):
    """Extracts for the Kafka hook (the sink builds on this class)."""

    def _value_schema(self, spec: TopicSource) -> tuple[TableSchema, Any]:
        """The value columns and a decoder of message values into dicts (of Debezium events:
        the row's columns, and a decoder of events into ``(operation, row)`` or None)."""
        topic = spec.topic
        if spec.envelope == "debezium":
            return self._debezium(spec)
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

    def _debezium(self, spec: TopicSource) -> tuple[TableSchema, Any]:
        """Debezium change events: the row's declared ``fields`` (JSON), or its record in the
        registry's value schema (Avro); events decode into ``(operation, row)``."""
        import json

        if spec.value_format == "json":
            assert spec.fields is not None  # validation: a Debezium JSON topic declares its fields
            envelope = debezium.Envelope(spec.topic, records.declared_schema(spec.fields))
            return envelope.schema, lambda raw, key: envelope.change(json.loads(raw), key)
        from confluent_kafka.schema_registry.avro import AvroDeserializer
        from confluent_kafka.serialization import MessageField, SerializationContext

        registry = self.registry()
        subject = f"{spec.topic}-value"
        try:
            latest = registry.get_latest_version(subject)
        except Exception as exc:
            raise BadInputError(f"schema registry: no schema for subject '{subject}': {exc}") from None
        schema, converters = debezium.avro_row_schema(latest.schema.schema_str)
        envelope = debezium.Envelope(spec.topic, schema, converters)
        deserializer, context = (
            AvroDeserializer(registry),
            SerializationContext(spec.topic, MessageField.VALUE),
        )
        return schema, lambda raw, key: envelope.change(deserializer(raw, context), key)

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
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=TIMEOUT)
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
        feed = spec.envelope == "debezium"  # a change batch: the row's columns and the operation
        schema = (
            with_op(value_schema, ordered=True)
            if feed
            else TableSchema(codec.ENVELOPE + value_schema.columns)
        )
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
        if feed:
            details["envelope"] = "debezium"
        if skipped:
            details["lost_to_retention"] = skipped
            log.warning("topic %s: messages removed by retention before they were read: %s", topic, skipped)
        result = ExtractResult(StreamingBatches(()), schema, candidate, details)
        # The reader moves the candidate to where it really stopped (it may stop short of the end).
        result.artifact = StreamingBatches(
            self._read(consumer, topic, bounds, value_schema, decode, spec.batch_size, result, feed)
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
        feed: bool = False,
    ) -> Iterator[list]:
        """Messages of each partition from its first offset up to its end, in row batches."""
        todo = {p: b for p, b in bounds.items() if b[0] < b[1]}
        reached = {p: first for p, (first, _) in bounds.items()}
        sent = tombstones = sequence = 0
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
                    if feed:  # a Debezium event: the row, its operation and its place in the batch
                        change = decode(raw, msg.key())
                        if change is not None:
                            sequence += 1
                            batch.append([*records.row_of(value_schema, change[1]), change[0], sequence])
                        if len(batch) >= batch_size:
                            sent += len(batch)
                            yield batch
                            batch = []
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
        feed = spec.envelope == "debezium"
        schema = (
            with_op(value_schema, ordered=True)
            if feed
            else TableSchema(codec.ENVELOPE + value_schema.columns)
        )
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
