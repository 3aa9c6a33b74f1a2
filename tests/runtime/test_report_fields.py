"""The observability fields of a real load, per connector (seed 002: "Observability fields
verified"): the run report's phases with their seconds, rows and bytes, the fast path, state
before and after and how it was committed (and that the state table holds the reported state),
the task-log table, the JSON that goes to XCom and to ``dpone report`` (read back unchanged),
and the OpenLineage datasets built from the report.

Each test runs a load of one connector (as source or sink) through the real engine, then a
second run that reads only what is new, and checks every field with :func:`check_report`.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from airflow_provider_dpone.contracts.manifest import Manifest, parse_manifest
from airflow_provider_dpone.runtime.report import RunReport
from tests.helpers import run_first_load

pytestmark = pytest.mark.integration

STATE = {"backend": "table", "conn_id": "dst", "table": "dpone.state"}  # PostgreSQL, for every route
CREATE = """create table orders (id bigint primary key, amount numeric(12,2) not null, note text,
                                updated_at timestamptz not null)"""
INSERT = """insert into orders select g, g * 1.5, 'n' || g, timestamptz '2026-01-01 00:00+00' + g * interval '1 s'
            from generate_series({first}, {last}) g"""
COLUMNS = ("id", "amount", "note", "updated_at")
# The phases every successful load records, in this order; ``state`` between finalize and
# cleanup when the state is committed after the data (a state table outside the sink).
PHASES = ("extract", "schema", "stage", "finalize")


@dataclass(frozen=True)
class Route:
    """What every run of one source -> sink route reports the same way."""

    source: str | None  # the OpenLineage namespace of the input starts with this; None: no input
    sink: str  # and that of the output
    target: str  # the output dataset's name ends with this
    fast_path: str
    committed: str  # with_data (state table in the sink) or after_data
    columns: tuple[str, ...] = COLUMNS
    # whether the sink measures the staged bytes on this path (None in the report when not)
    measures_bytes: bool = True


class TaskLog(logging.Handler):
    """What the engine logs during one run, on its own logger (Airflow, imported during a run,
    reconfigures the root logger's handlers)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


@pytest.fixture
def log() -> TaskLog:
    return TaskLog()


def run(m: Manifest, run_id: str, log: TaskLog) -> RunReport:
    engine = logging.getLogger("airflow_provider_dpone.runtime")
    log.lines.clear()
    level = engine.level
    engine.addHandler(log)
    engine.setLevel(logging.INFO)
    try:
        return run_first_load(m, run_id)
    finally:
        engine.removeHandler(log)
        engine.setLevel(level)


def stored_state(pg: Any) -> dict[str, Any]:
    ((text,),) = pg.query("dst", "select state::text from dpone.state where load = 'orders'")
    return json.loads(text)  # type: ignore[no-any-return]


def check_report(
    report: RunReport,
    log: TaskLog,
    route: Route,
    *,
    rows: int,
    before: dict[str, Any] | None,
    stored: dict[str, Any],
) -> None:
    """Every observability field of one successful run, as the operator and the CLI emit it;
    ``stored`` is the state the state table holds after the run."""
    assert report.status == "success" and report.error is None, report.error
    names = [p.name for p in report.phases]
    assert tuple(n for n in names if n in PHASES) == PHASES, names
    assert names[-1] == "cleanup" and ("state" in names) == (route.committed == "after_data"), names
    assert all(p.seconds >= 0 for p in report.phases)
    assert sum(p.seconds for p in report.phases) <= report.seconds + 0.01
    stage = report.find_phase("stage")
    assert stage is not None and stage.rows == rows == report.rows
    if route.measures_bytes:
        assert stage.bytes is not None and (stage.bytes > 0) == (rows > 0), stage
    else:
        assert stage.bytes is None, stage
    finalize = report.find_phase("finalize")
    assert finalize is not None and finalize.rows == rows and report.sink["finalize"]["method"]
    assert report.fast_path == route.fast_path
    assert report.state_before == before
    assert report.state_after == stored != before and report.state_committed == route.committed

    # The task log: the report's table, with the staged rows and bytes and the state line.
    table = report.to_table()
    assert table in log.text
    assert table.startswith(f"dpone {report.pipeline}.{report.load} [success]")
    assert f"fast_path={route.fast_path}" in table
    stage_line = next(line for line in table.splitlines() if line.startswith("stage "))
    shown = [f"{rows:,}"] + ([f"{stage.bytes:,}"] if stage.bytes is not None else [])
    assert stage_line.split()[2:] == shown, stage_line
    assert f"-> {json.dumps(report.state_after, default=str)} (committed {route.committed})" in table

    # XCom (the operator returns ``to_dict()``) and ``dpone report`` (the saved JSON, read back).
    data = json.loads(report.to_json())
    assert data["rows"] == rows and data["fast_path"] == route.fast_path
    assert data["state_before"] == before and data["state_after"] == stored
    assert data["phases"][names.index("stage")] == {
        "name": "stage",
        "seconds": stage.seconds,
        "rows": rows,
        "bytes": stage.bytes,
    }
    assert RunReport.from_dict(data).to_dict() == data

    # Lineage: the source and the target, the schema, and the output's rows and bytes.
    (output,) = report.lineage["outputs"]
    if route.source is None:
        assert report.lineage["inputs"] == []
    else:
        (source,) = report.lineage["inputs"]
        assert source["namespace"].startswith(route.source) and source["name"]
    assert output["namespace"].startswith(route.sink) and output["name"].endswith(route.target)
    assert tuple(f["name"] for f in output["schema"]) == route.columns
    assert output["rows"] == rows and output["bytes"] == stage.bytes
    from airflow_provider_dpone.runtime.openlineage import operator_lineage

    lineage = operator_lineage(report.lineage)
    inputs = [(d.namespace, d.name) for d in lineage.inputs]
    assert inputs == [(d["namespace"], d["name"]) for d in report.lineage["inputs"]]
    assert (lineage.outputs[0].namespace, lineage.outputs[0].name) == (output["namespace"], output["name"])
    statistics = lineage.outputs[0].outputFacets["outputStatistics"]
    assert (statistics.rowCount, statistics.size) == (rows, stage.bytes)
    assert tuple(f.name for f in lineage.outputs[0].facets["schema"].fields) == route.columns


def manifest(source: dict[str, Any], sink: dict[str, Any]) -> Manifest:
    load = {"name": "orders", "source": source, "sink": sink}
    return parse_manifest({"pipeline": "obs", "state": STATE, "loads": [load]})


PG_SOURCE = {
    "connector": "postgres",
    "conn_id": "src",
    "table": "orders",
    "incremental": {"mode": "cursor", "cursor": "id"},
}
MERGE = {"strategy": "incremental_merge", "unique_key": ["id"]}


def cursor(column: str, value: str, value_type: str) -> dict[str, Any]:
    return {"kind": "cursor", "cursor": column, "value": value, "value_type": value_type}


def test_postgres_to_postgres_report_fields(clean_pg, log) -> None:
    pg = clean_pg
    pg.execute("src", CREATE)
    pg.execute("src", INSERT.format(first=1, last=200))
    m = manifest(PG_SOURCE, {"connector": "postgres", "conn_id": "dst", "table": "raw.orders", **MERGE})
    # The state table is in the sink database: state and data commit in one transaction.
    route = Route("postgres://", "postgres://", ".raw.orders", "postgres_binary", "with_data")
    first = run(m, "r1", log)
    check_report(first, log, route, rows=200, before=None, stored=stored_state(pg))
    assert first.state_after == cursor("id", "200", "int64")
    pg.execute("src", INSERT.format(first=201, last=205))
    second = run(m, "r2", log)
    check_report(second, log, route, rows=5, before=first.state_after, stored=stored_state(pg))
    assert second.state_after == cursor("id", "205", "int64")


def test_postgres_to_clickhouse_report_fields(clean_pg, clean_ch, log) -> None:
    pg = clean_pg
    pg.execute("src", CREATE)
    pg.execute("src", INSERT.format(first=1, last=300))
    m = manifest(PG_SOURCE, {"connector": "clickhouse", "conn_id": "ch", "table": "raw.orders", **MERGE})
    # PostgreSQL's text COPY parsed by ClickHouse; the state is committed after the data.
    route = Route("postgres://", "chdb://", "raw.orders", "tsv", "after_data")
    first = run(m, "r1", log)
    check_report(first, log, route, rows=300, before=None, stored=stored_state(pg))
    pg.execute("src", INSERT.format(first=301, last=307))
    second = run(m, "r2", log)
    check_report(second, log, route, rows=7, before=first.state_after, stored=stored_state(pg))
    assert second.state_after == cursor("id", "307", "int64")


def test_clickhouse_to_postgres_report_fields(clean_pg, clean_ch, log) -> None:
    pg, ch = clean_pg, clean_ch
    ch.command(
        "create table src.orders (id Int64, amount Decimal(12, 2), note Nullable(String), "
        "updated_at DateTime64(6, 'UTC')) engine = MergeTree order by id"
    )
    insert = (
        "insert into src.orders select number, toDecimal64(number, 2) * 1.5, concat('n', toString(number)), "
        "toDateTime64('2026-01-01 00:00:00', 6, 'UTC') + toIntervalSecond(number) from numbers({}, {})"
    )
    ch.command(insert.format(1, 250))
    source = {
        "connector": "clickhouse",
        "conn_id": "ch",
        "table": "src.orders",
        "incremental": {"mode": "cursor", "cursor": "id"},
    }
    m = manifest(source, {"connector": "postgres", "conn_id": "dst", "table": "raw.orders", **MERGE})
    # Row batches into PostgreSQL: the sink counts rows, not bytes.
    route = Route(
        "chdb://", "postgres://", ".raw.orders", "streaming_batches", "with_data", measures_bytes=False
    )
    first = run(m, "r1", log)
    check_report(first, log, route, rows=250, before=None, stored=stored_state(pg))
    ch.command(insert.format(251, 4))  # ids 251..254
    second = run(m, "r2", log)
    check_report(second, log, route, rows=4, before=first.state_after, stored=stored_state(pg))
    assert second.state_after == cursor("id", "254", "int64")


def test_postgres_to_kafka_report_fields(clean_pg, kafka, log) -> None:
    pg = clean_pg
    pg.execute("src", CREATE)
    pg.execute("src", INSERT.format(first=1, last=120))
    topic = f"obs_{uuid.uuid4().hex[:8]}"
    kafka.create_topic(topic, 2)
    m = manifest(PG_SOURCE, {"connector": "kafka", "conn_id": "kafka", "topic": topic, **MERGE})
    # One transaction of messages; the state table is in PostgreSQL, committed after it.
    route = Route("postgres://", "kafka://", topic, "streaming_batches", "after_data")
    first = run(m, "r1", log)
    check_report(first, log, route, rows=120, before=None, stored=stored_state(pg))
    pg.execute("src", INSERT.format(first=121, last=123))
    second = run(m, "r2", log)
    check_report(second, log, route, rows=3, before=first.state_after, stored=stored_state(pg))
    assert len(kafka.consume_all(topic)) == 123


def _events(first: int, last: int) -> list[tuple[bytes | None, bytes | None]]:
    at = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    return [
        (
            str(i).encode(),
            json.dumps(
                {
                    "id": i,
                    "amount": f"{i}.50",
                    "note": f"n{i}",
                    "updated_at": (at + dt.timedelta(seconds=i)).isoformat(),
                }
            ).encode(),
        )
        for i in range(first, last + 1)
    ]


def test_kafka_to_postgres_report_fields(clean_pg, kafka, log) -> None:
    pg = clean_pg
    topic = f"obs_{uuid.uuid4().hex[:8]}"
    kafka.create_topic(topic, 3)
    kafka.produce(topic, _events(1, 90))
    source = {
        "connector": "kafka",
        "conn_id": "kafka",
        "topic": topic,
        "incremental": {"mode": "offsets"},
        "fields": {"id": "int64", "amount": "decimal(12,2)", "note": "string", "updated_at": "timestamptz"},
    }
    sink = {
        "connector": "postgres",
        "conn_id": "dst",
        "table": "raw.orders",
        "strategy": "incremental_append",
    }
    m = manifest(source, sink)
    first = run(m, "r1", log)
    # The message's coordinates come with the declared fields.
    columns = tuple(f["name"] for f in first.lineage["outputs"][0]["schema"])
    assert set(COLUMNS) | {"_partition", "_offset", "_key"} <= set(columns), columns
    route = Route(
        "kafka://",
        "postgres://",
        ".raw.orders",
        "streaming_batches",
        "with_data",
        columns,
        measures_bytes=False,
    )
    check_report(first, log, route, rows=90, before=None, stored=stored_state(pg))
    assert first.state_after is not None and first.state_after["kind"] == "offsets"
    assert sum(first.state_after["offsets"].values()) == 90
    kafka.produce(topic, _events(91, 96))
    second = run(m, "r2", log)
    check_report(second, log, route, rows=6, before=first.state_after, stored=stored_state(pg))
    assert second.state_after is not None and sum(second.state_after["offsets"].values()) == 96


@pytest.fixture
def api() -> Iterator[Any]:
    from tests.fake_api import TOKEN, FakeApi

    at = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    records = [
        {
            "id": i,
            "amount": f"{i}.50",
            "note": f"n{i}",
            "updated_at": (at + dt.timedelta(minutes=i)).isoformat(),
        }
        for i in range(1, 42)
    ]
    server = FakeApi(records)
    os.environ["AIRFLOW_CONN_OBS_API"] = json.dumps(
        {"conn_type": "http", "host": server.url, "password": TOKEN, "extra": {"auth": "bearer"}}
    )
    yield server
    server.close()
    os.environ.pop("AIRFLOW_CONN_OBS_API", None)


def test_rest_to_postgres_report_fields(api, clean_pg, log) -> None:
    pg = clean_pg
    endpoint = {
        "path": "/offset",
        "record_selector": "data",
        "pagination": {"type": "offset", "page_size": 10},
        "primary_key": ["id"],
        "server_filter": {"param": "updated_since", "field": "updated_at"},
    }
    source = {
        "connector": "rest",
        "conn_id": "obs_api",
        "endpoint": endpoint,
        "fields": {"id": "int64", "amount": "decimal(10,2)", "note": "string", "updated_at": "timestamptz"},
        "incremental": {"mode": "cursor", "cursor": "updated_at"},
    }
    m = manifest(source, {"connector": "postgres", "conn_id": "dst", "table": "raw.orders", **MERGE})
    # The endpoint is the input dataset: the API's base URL and the endpoint's path.
    route = Route(
        api.url, "postgres://", ".raw.orders", "checkpointed_batches", "with_data", measures_bytes=False
    )
    first = run(m, "r1", log)
    check_report(first, log, route, rows=41, before=None, stored=stored_state(pg))
    newest = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(minutes=41)
    assert first.state_after == cursor("updated_at", newest.isoformat(), "timestamptz")
    api.records[0]["updated_at"] = (newest + dt.timedelta(hours=1)).isoformat()
    second = run(m, "r2", log)
    # the changed record, and the one at the watermark the inclusive filter hands back (merged)
    check_report(second, log, route, rows=2, before=first.state_after, stored=stored_state(pg))


def test_postgres_to_bigquery_report_fields(clean_pg, clean_bq, log) -> None:
    pg = clean_pg
    pg.execute("src", CREATE)
    pg.execute("src", INSERT.format(first=1, last=150))
    m = manifest(PG_SOURCE, {"connector": "bigquery", "conn_id": "bq", "table": "raw.orders", **MERGE})
    # PostgreSQL COPY as CSV into a load job; the state table is in PostgreSQL, committed after the data.
    route = Route("postgres://", "bigquery", ".raw.orders", "csv", "after_data")
    first = run(m, "r1", log)
    check_report(first, log, route, rows=150, before=None, stored=stored_state(pg))
    pg.execute("src", INSERT.format(first=151, last=158))
    second = run(m, "r2", log)
    check_report(second, log, route, rows=8, before=first.state_after, stored=stored_state(pg))
    assert clean_bq.query("select count(*), max(id) from raw.orders") == [(158, 158)]
