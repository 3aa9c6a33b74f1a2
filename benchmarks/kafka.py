"""Benchmark: the Kafka sink against a raw confluent-kafka producer loop, same rows, same broker.

    .venv/bin/python benchmarks/kafka.py --rows 1000000

The broker is noida-db (a Kafka-protocol broker from the `dev` extra), started here.
In one run and alternately (best of ``--repeat``):

- raw loop: ``for row: producer.produce(topic, key, json.dumps(row))``, then ``flush()``: the
  loop an engineer writes by hand (idempotent producer, acks=all, linger 20 ms, no transaction);
- raw loop, values pre-encoded: the same without the JSON encoding, the producer's own limit;
- dpone sink: ``stage`` (keyed produce of every row inside a transaction, every delivery
  confirmed) + ``finalize`` (the transaction commit).

Target (issue 4): the sink reaches at least 0.8x the raw loop's messages/s. Prints a table and
writes JSON to benchmarks/results/kafka.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import decimal
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def start_broker() -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    exe = str(Path(sys.executable).with_name("noida-db"))
    data = tempfile.mkdtemp(prefix="dpone-bench-kafka-")
    broker = subprocess.Popen(
        [exe, "start", "--data-dir", data, "--only", "kafka", "--kafka-port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return broker, f"127.0.0.1:{port}"
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def make_rows(n: int) -> list[tuple]:
    base = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    return [
        (
            i,
            i % 17,
            f"event-{i}",
            decimal.Decimal(i % 100000) / 100,
            i % 2 == 0,
            base + dt.timedelta(seconds=i),
            None if i % 5 == 0 else f"n{i}",
        )
        for i in range(1, n + 1)
    ]


NAMES = ("id", "kind", "name", "amount", "flag", "created_at", "note")
CONFIG = {"acks": "all", "linger.ms": 20, "batch.num.messages": 10_000, "enable.idempotence": True}


def raw_loop(bootstrap: str, topic: str, rows: list[tuple], encoded: list[bytes] | None) -> float:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random", **CONFIG})
    start = time.perf_counter()
    for i, row in enumerate(rows):
        if encoded is None:
            value = json.dumps(dict(zip(NAMES, row, strict=True)), default=str).encode()
        else:
            value = encoded[i]
        while True:
            try:
                producer.produce(topic, key=str(row[0]).encode(), value=value)
                break
            except BufferError:
                producer.poll(0.1)
        if i % 10_000 == 0:
            producer.poll(0)
    assert producer.flush(60) == 0
    return time.perf_counter() - start


def dpone_sink(topic: str, rows: list[tuple], run: int) -> float:
    from airflow_provider_dpone.contracts.artifacts import ExtractResult, StreamingBatches
    from airflow_provider_dpone.contracts.manifest import parse_manifest
    from airflow_provider_dpone.contracts.table import CanonicalType as T
    from airflow_provider_dpone.contracts.table import Column, TableSchema
    from airflow_provider_dpone.hooks.kafka import DponeKafkaHook
    from airflow_provider_dpone.runtime.protocols import LoadContext

    schema = TableSchema(
        (
            Column("id", T.INT64, False),
            Column("kind", T.INT32, False),
            Column("name", T.STRING, False),
            Column("amount", T.DECIMAL, False, precision=12, scale=2),
            Column("flag", T.BOOLEAN, False),
            Column("created_at", T.TIMESTAMPTZ, False),
            Column("note", T.STRING, True),
        )
    )
    m = parse_manifest(
        {
            "pipeline": "bench",
            "loads": [
                {
                    "name": "events",
                    "source": {"connector": "postgres", "conn_id": "unused", "table": "events"},
                    "sink": {
                        "connector": "kafka",
                        "conn_id": "bench_kafka",
                        "topic": topic,
                        "strategy": "incremental_merge",
                        "unique_key": ["id"],
                    },
                }
            ],
        }
    )
    ctx = LoadContext("bench", m.loads[0], f"bench-{run}")
    hook = DponeKafkaHook(conn_id="bench_kafka")
    batches = (rows[i : i + 50_000] for i in range(0, len(rows), 50_000))
    start = time.perf_counter()
    staged = hook.stage(ctx, ExtractResult(StreamingBatches(batches), schema))
    hook.finalize(ctx, staged, [])
    seconds = time.perf_counter() - start
    hook.cleanup(ctx, staged, True)
    assert staged.rows == len(rows)
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "kafka.json"))
    args = parser.parse_args()
    from confluent_kafka.admin import AdminClient, NewTopic

    broker, bootstrap = start_broker()
    try:
        os.environ["AIRFLOW_CONN_BENCH_KAFKA"] = json.dumps(
            {"conn_type": "kafka", "extra": {"bootstrap.servers": bootstrap}}
        )
        rows = make_rows(args.rows)
        encoded = [json.dumps(dict(zip(NAMES, r, strict=True)), default=str).encode() for r in rows]
        admin = AdminClient({"bootstrap.servers": bootstrap})
        times: dict[str, list[float]] = {"raw": [], "raw_pre_encoded": [], "dpone": []}
        for i in range(args.repeat):
            topics = {k: f"bench_{k}_{i}" for k in times}
            for f in admin.create_topics(
                [NewTopic(t, num_partitions=6, replication_factor=1) for t in topics.values()]
            ).values():
                f.result(30)
            times["raw"].append(raw_loop(bootstrap, topics["raw"], rows, None))
            times["raw_pre_encoded"].append(raw_loop(bootstrap, topics["raw_pre_encoded"], rows, encoded))
            times["dpone"].append(dpone_sink(topics["dpone"], rows, i))
    finally:
        broker.terminate()
        broker.wait(10)
    best = {k: min(v) for k, v in times.items()}
    result = {
        "measured_at": dt.datetime.now(dt.timezone.utc).isoformat(),
        "rows": args.rows,
        "best_seconds": best,
        "all_seconds": times,
        "messages_per_s": {k: args.rows / v for k, v in best.items()},
        "dpone_vs_raw_loop": best["raw"] / best["dpone"],
        "dpone_vs_raw_pre_encoded": best["raw_pre_encoded"] / best["dpone"],
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"\n{'producer':<44} {'messages':>10} {'seconds':>8} {'msgs/s':>10} {'dpone/raw':>9}")
    labels = {
        "raw": "raw confluent-kafka loop (json.dumps per row)",
        "raw_pre_encoded": "raw loop, values pre-encoded",
        "dpone": "dpone Kafka sink (transaction, keyed)",
    }
    for key, label in labels.items():
        ratio = "" if key == "dpone" else f"{best[key] / best['dpone']:.2f}x"
        print(f"{label:<44} {args.rows:>10,} {best[key]:>8.2f} {args.rows / best[key]:>10,.0f} {ratio:>9}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
