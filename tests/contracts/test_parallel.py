"""The ``parallel`` option at validate time, the partition records that cross task boundaries,
and the pure range planner: every key value (and NULL) in exactly one range."""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal

import pytest

from airflow_provider_dpone.contracts.errors import BadInputError, ManifestError
from airflow_provider_dpone.contracts.manifest import parse_manifest
from airflow_provider_dpone.contracts.partitions import PartitionRange, PartitionResult, PartitionTask
from airflow_provider_dpone.contracts.table import CanonicalType, Column, TableSchema
from airflow_provider_dpone.sql.mssql import MSSQL
from airflow_provider_dpone.sql.partition_plan import and_where, range_where, split_column, split_ranges
from airflow_provider_dpone.sql.postgres import POSTGRES

pytestmark = pytest.mark.unit
FILES = {"uri": "s3://bucket/dpone"}


def load(source: dict | None = None, sink: dict | None = None, parallel: dict | None = None) -> dict:
    return {
        "pipeline": "p",
        "loads": [{
            "name": "orders",
            "source": {"connector": "postgres", "conn_id": "s", "table": "orders", **(source or {})},
            "sink": {"connector": "postgres", "conn_id": "d", "table": "raw.orders", "strategy": "full_refresh",
                     "staging": {"files": FILES}, **(sink or {})},
            "parallel": parallel or {"partitions": 4, "by": "id"},
        }],
    }  # fmt: skip


def refused(data: dict, message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        parse_manifest(data)


def test_a_partitioned_load_validates() -> None:
    m = parse_manifest(load())
    assert m.loads[0].parallel is not None and m.loads[0].parallel.partitions == 4


def test_what_cannot_be_partitioned_is_refused_at_validate() -> None:
    refused(load(sink={"staging": {}}), r"parallel: needs sink.staging.files")
    refused(load(source={"table": None, "query": "select 1"}), r"parallel: splits a table source")
    refused(load(source={"incremental": {"mode": "xmin"}}, sink={"strategy": "incremental_append"}),
            r"parallel: source.incremental.mode 'xmin' reads one position")  # fmt: skip
    chunked = {"incremental": {"mode": "cursor", "cursor": "id", "chunk": 100}}
    refused(load(source=chunked, sink={"strategy": "incremental_append"}), r"chunk cannot be combined")
    refused(load(source={"connector": "clickhouse"}), r"parallel: connector 'clickhouse' cannot split")
    refused(load(parallel={"partitions": 4, "by": "ctid"}), r"'ctid' page ranges are not offered")
    refused(load(parallel={"partitions": 65, "by": "id"}), r"parallel.partitions")
    refused(load(parallel={"partitions": 4, "by": "id", "threads": 2}), r"parallel.threads")


def test_a_partition_task_round_trips_and_a_wrong_one_is_named() -> None:
    task = PartitionTask("abc", "2026-11-30T08:00:00.000000+00:00", PartitionRange(1, 4, "id", "10", "20"), "s3://b/p", None, None,
                         {"kind": "cursor", "cursor": "id", "value": "20", "value_type": "int64"}, {"mode": "full"})  # fmt: skip
    assert PartitionTask.from_dict(task.to_dict()) == task
    result = PartitionResult(task, "s3://b/p/p001/x", rows=5, files=1, bytes=10)
    assert PartitionResult.from_dict(result.to_dict()) == result
    with pytest.raises(BadInputError, match=r"partition.range: index 4 is not within the 4 partitions"):
        PartitionTask.from_dict({**task.to_dict(), "range": {**task.range.to_dict(), "index": 4}})
    with pytest.raises(BadInputError, match="rows, files and bytes must be non-negative"):
        PartitionResult.from_dict({**result.to_dict(), "rows": -1})


def ranges_cover(column: Column, minimum: str, maximum: str, n: int, values: list) -> list[PartitionRange]:
    ranges = split_ranges(column, minimum, maximum, n)
    assert ranges[0].lower is None and ranges[-1].upper is None and ranges[0].nulls
    for a, b in itertools.pairwise(ranges):
        assert a.upper == b.lower and a.upper is not None
    parse = {CanonicalType.DATE: dt.date.fromisoformat}.get(column.type, Decimal)
    for value in values:  # every value, inside the span or beyond it, in exactly one range
        inside = [
            r for r in ranges
            if (r.lower is None or parse(r.lower) <= value) and (r.upper is None or value < parse(r.upper))
        ]  # fmt: skip
        assert len(inside) == 1, (value, ranges)
    return ranges


def test_integer_keys_split_by_width_and_cover_every_value() -> None:
    col = Column("id", CanonicalType.INT64)
    ranges = ranges_cover(col, "1", "1000", 4, [Decimal(v) for v in (-5, 1, 250, 251, 999, 1000, 5000)])
    assert [(r.lower, r.upper) for r in ranges] == [
        (None, "251"),
        ("251", "501"),
        ("501", "751"),
        ("751", None),
    ]
    assert len(split_ranges(col, "1", "3", 8)) == 3  # only as many ranges as the span has values
    assert len(split_ranges(col, "7", "7", 4)) == 1
    assert split_ranges(col, None, None, 4) == [PartitionRange(0, 1, "id", nulls=True)]  # an empty table


def test_date_and_timestamp_keys_split_by_time() -> None:
    day = Column("d", CanonicalType.DATE)
    ranges = ranges_cover(day, "2026-01-01", "2026-01-09", 4,
                          [dt.date(2025, 1, 1), dt.date(2026, 1, 3), dt.date(2026, 1, 9), dt.date(2027, 1, 1)])  # fmt: skip
    assert [r.lower for r in ranges[1:]] == ["2026-01-04", "2026-01-06", "2026-01-08"]
    ts = split_ranges(
        Column("t", CanonicalType.TIMESTAMPTZ), "2026-01-01 00:00:00+00", "2026-01-01 04:00:00+00", 4
    )
    assert [r.lower for r in ts[1:]] == [
        "2026-01-01T01:00:00.000+00:00",  # to the millisecond: SQL Server's datetime reads it
        "2026-01-01T02:00:00.000+00:00",
        "2026-01-01T03:00:00.000+00:00",
    ]


def test_numeric_keys_split_by_their_scale_and_never_print_an_exponent() -> None:
    whole = Column("n", CanonicalType.DECIMAL, precision=12, scale=0)
    assert [r.lower for r in split_ranges(whole, "1", "8", 4)[1:]] == ["3", "5", "7"]
    fraction = Column("n", CanonicalType.DECIMAL, precision=12, scale=4)
    assert [r.lower for r in split_ranges(fraction, "0", "1", 4)[1:]] == ["0.25", "0.50", "0.75"]
    tiny = split_ranges(Column("n", CanonicalType.DECIMAL), "0.00000001", "0.00000005", 2)
    assert tiny[1].lower == "0.00000003" and "E" not in tiny[1].lower
    with pytest.raises(BadInputError, match="cannot split 'n' between '1' and 'NaN'"):
        split_ranges(Column("n", CanonicalType.DECIMAL), "1", "NaN", 4)


def test_the_split_column_must_be_a_splittable_primary_key_column() -> None:
    schema = TableSchema(
        (
            Column("id", CanonicalType.INT64),
            Column("code", CanonicalType.STRING),
            Column("n", CanonicalType.INT32),
        ),
        ("id", "code"),
    )
    assert split_column(schema, "id", "t").name == "id"
    with pytest.raises(BadInputError, match="'n' is not a primary-key column of t"):
        split_column(schema, "n", "t")
    with pytest.raises(BadInputError, match="split by an integer, numeric, date or timestamp"):
        split_column(schema, "code", "t")
    with pytest.raises(BadInputError, match="column 'x' is not in t"):
        split_column(schema, "x", "t")


def test_a_range_renders_as_a_parameterised_predicate_per_dialect() -> None:
    col = Column("id", CanonicalType.INT64, native_type="bigint", dialect="postgres")
    first, middle = PartitionRange(0, 3, "id", None, "10", True), PartitionRange(1, 3, "id", "10", "20")
    assert range_where(POSTGRES, col, first) == ('"id" < %s::bigint or "id" is null', ("10",))
    assert range_where(POSTGRES, col, middle) == ('"id" >= %s::bigint and "id" < %s::bigint', ("10", "20"))
    assert range_where(POSTGRES, col, PartitionRange(0, 1, "id", nulls=True)) == ("", ())
    assert range_where(MSSQL, Column("id", CanonicalType.INT64), middle) == (
        "[id] >= cast(? as bigint) and [id] < cast(? as bigint)",
        ("10", "20"),
    )
    assert and_where([("a > %s", (1,)), ("", ()), ("b < %s", (2,))]) == ("(a > %s) and (b < %s)", (1, 2))
