"""Change feeds from SQL Server applied by ``cdc_apply`` into the real PostgreSQL, through the
real engine. SQL Server itself cannot run here: the source is the hook on the driver fake
(``tests/mssql_fake.py``), answering as SQL Server documents CHANGETABLE and CDC's net-change
functions answer. The same loads run against a real server in ``test_mssql_live.py``."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from airflow_provider_dpone.contracts.errors import BadInputError, MassDeleteError, StateError
from airflow_provider_dpone.contracts.manifest import parse_manifest
from airflow_provider_dpone.hooks import mssql_session
from airflow_provider_dpone.hooks.mssql_feeds import CHANGES
from airflow_provider_dpone.sql import mssql_catalog as catalog
from airflow_provider_dpone.sql.mssql import MSSQL
from tests.helpers import run_first_load as run
from tests.mssql_fake import FakeServer

pytestmark = pytest.mark.integration

TABLE = MSSQL.parse_table("src.items")
COLUMNS = [
    ("id", "bigint", 8, 19, 0, False, None, False, False),
    ("name", "nvarchar", 200, 0, 0, False, "Latin1_General_CI_AS", False, False),  # NOT NULL
    ("amount", "decimal", 9, 12, 2, True, None, False, False),
]
LSN = "0x{:020X}".format


class Feed:
    """A tracked table as SQL Server answers for it: its rows, and the changes after a position."""

    def __init__(self) -> None:
        self.rows = [(1, "a", Decimal("1.00")), (2, "b", Decimal("2.00")), (3, "c", Decimal("3.00"))]
        self.version, self.min_valid = 10, 0
        self.changes: list[tuple[Any, ...]] = []
        self.asked: list[tuple[Any, ...]] = []

    def __call__(self, sql: str, params: tuple[Any, ...]) -> Any:
        if sql.endswith("where 1 = 0"):
            return [], ["id", "name", "amount", "op"]
        if sql == catalog.INTROSPECT_COLUMNS:
            return (COLUMNS if params == (TABLE.sql,) else []), ["name"]
        if sql == catalog.INTROSPECT_PRIMARY_KEY:
            return [("id",)], ["name"]
        if sql == CHANGES.ct_versions():
            return [(self.version, self.min_valid, 1)], ["current", "min_valid", "tracked"]
        if sql == CHANGES.cdc_positions():
            return [(LSN(1), LSN(self.version))], ["lowest", "highest"]
        if sql == CHANGES.cdc_captured_columns():
            return [("id",), ("name",), ("amount",)], ["column_name"]
        if sql == CHANGES.cdc_next_lsn():
            return [(LSN(int(params[0], 16) + 1),)], ["next"]
        if sql.startswith("select [id], [name], [amount], N'S'") or sql.startswith(
            "select [id], [name], N'S'"
        ):
            return [(*r, "S") for r in self.rows], ["id", "name", "amount", "op"]
        if "changetable(changes" in sql or "fn_cdc_get_all_changes" in sql:
            self.asked.append(params)
            return self.changes, ["id", "name", "amount", "op"]
        return None


@pytest.fixture
def feed(monkeypatch: pytest.MonkeyPatch) -> Feed:
    answers = Feed()
    server = FakeServer(answer=answers)
    monkeypatch.setattr(mssql_session.mssql_python, "connect", server.connect)
    monkeypatch.setenv("AIRFLOW_CONN_MSSQL_SRC", "mssql://reader:pw@sql.example.com:1433/shop")
    return answers


def manifest(
    mode: dict[str, Any], fraction: float = 0.05, key: tuple[str, ...] = ("id",), **source: Any
) -> Any:
    body = {
        "name": "items",
        "source": {"connector": "mssql", "conn_id": "mssql_src", "table": "src.items", "incremental": mode, **source},
        "sink": {"connector": "postgres", "conn_id": "dst", "table": "raw.items", "strategy": "cdc_apply", "unique_key": list(key)},
        "reconciliation": {"max_delete_fraction": fraction},
    }  # fmt: skip
    return parse_manifest(
        {"pipeline": "feeds", "state": {"backend": "table", "conn_id": "dst"}, "loads": [body]}
    )


def target(pg: Any) -> list[tuple]:
    return pg.query("dst", "select id, name, amount from raw.items order by id")


def test_change_tracking_snapshot_then_changes_into_postgres(clean_pg: Any, feed: Feed) -> None:
    m = manifest({"mode": "change_tracking"})
    first = run(m, "r1")
    assert first.status == "success" and first.rows == 3
    assert target(clean_pg) == [
        (1, "a", Decimal("1.00")),
        (2, "b", Decimal("2.00")),
        (3, "c", Decimal("3.00")),
    ]
    assert clean_pg.query("dst", "select state->>'version' from dpone.state") == [("10",)]
    assert "_dpone_op" not in [
        r[0]
        for r in clean_pg.query(
            "dst", "select column_name from information_schema.columns where table_name = 'items'"
        )
    ]

    feed.version = 12
    feed.changes = [(2, "B", Decimal("2.50"), "U"), (3, None, None, "D"), (4, "d", Decimal("4.00"), "I")]
    second = run(m, "r2")
    assert feed.asked[-1] == (10, 12)  # (stored version, current version)
    assert target(clean_pg) == [
        (1, "a", Decimal("1.00")),
        (2, "B", Decimal("2.50")),
        (4, "d", Decimal("4.00")),
    ]
    done = second.sink["finalize"]
    assert (done["rows_updated"], done["rows_inserted"], done["rows_deleted"]) == (1, 1, 1)
    assert clean_pg.query("dst", "select state->>'version' from dpone.state") == [("12",)]

    feed.min_valid, feed.version = 20, 25  # the server cleaned up changes past the stored version
    with pytest.raises(StateError, match="older than its minimum valid version 20"):
        run(m, "r3")
    assert clean_pg.query("dst", "select state->>'version' from dpone.state") == [("12",)]
    assert len(target(clean_pg)) == 3


def test_a_snapshot_after_a_reset_removes_keys_the_source_no_longer_has(clean_pg: Any, feed: Feed) -> None:
    m = manifest({"mode": "change_tracking"}, fraction=0.5)
    run(m, "r1")
    clean_pg.execute("dst", "insert into raw.items values (99, 'stale', 0)")
    clean_pg.execute("dst", "delete from dpone.state")  # reset: the next read is a full snapshot
    report = run(m, "r2")
    assert report.sink["finalize"]["rows_deleted"] == 1
    assert [r[0] for r in target(clean_pg)] == [1, 2, 3]


def test_cdc_net_changes_into_postgres(clean_pg: Any, feed: Feed) -> None:
    m = manifest({"mode": "cdc", "capture_instance": "src_items"})
    run(m, "r1")
    assert clean_pg.query("dst", "select state->>'lsn', state->>'stream' from dpone.state") == [
        (LSN(10), "src_items")
    ]
    feed.version = 14
    feed.changes = [(1, None, None, "D"), (5, "e", Decimal("5.00"), "I")]
    run(m, "r2")
    assert feed.asked[-1] == (LSN(11), LSN(14))  # (the LSN after the stored one, the highest)
    assert [r[0] for r in target(clean_pg)] == [2, 3, 5]
    run(m, "r3")  # nothing new: the position stays, no change is read
    assert len(feed.asked) == 1
    assert clean_pg.query("dst", "select state->>'lsn' from dpone.state") == [(LSN(14),)]


def test_an_empty_snapshot_is_still_a_snapshot(clean_pg: Any, feed: Feed) -> None:
    m = manifest({"mode": "change_tracking"})
    run(m, "r1")
    clean_pg.execute("dst", "delete from dpone.state")  # reset, while the source table is now empty
    feed.rows = []
    with pytest.raises(MassDeleteError, match="full snapshot would delete 3 of 3"):
        run(m, "r2")
    assert len(target(clean_pg)) == 3 and clean_pg.query("dst", "select count(*) from dpone.state") == [(0,)]


def test_a_change_feed_is_keyed_by_the_whole_primary_key(clean_pg: Any, feed: Feed) -> None:
    with pytest.raises(
        BadInputError, match=r"sink.unique_key: \['name'\] must be the source table's primary key \['id'\]"
    ):
        run(manifest({"mode": "change_tracking"}, key=("name",)), "r1")
    with pytest.raises(
        BadInputError, match=r"needs the whole primary key \['id'\] of src.items; add \['id'\]"
    ):
        run(manifest({"mode": "change_tracking"}, key=("name",), columns=["name", "amount"]), "r1")
    assert clean_pg.query("dst", "select to_regclass('raw.items') is null") == [(True,)]
    from airflow_provider_dpone.operators.wiring import assemble
    from airflow_provider_dpone.runtime.planning import plan_load

    m = manifest({"mode": "change_tracking"}, key=("name",))
    planned = plan_load(m.pipeline, m.loads[0], assemble(m.loads[0], m.state))
    assert "must be the source table's primary key ['id']" in planned["extract_error"]
    m = manifest({"mode": "change_tracking"})
    assert "full snapshot" in plan_load(m.pipeline, m.loads[0], assemble(m.loads[0], m.state))["note"]


def test_a_cdc_position_past_the_highest_lsn_fails(clean_pg: Any, feed: Feed) -> None:
    m = manifest({"mode": "cdc"})
    run(m, "r1")
    feed.version = 5  # the database was restored to an earlier point
    with pytest.raises(StateError, match="past the database's highest LSN"):
        run(m, "r2")
    assert clean_pg.query("dst", "select state->>'lsn' from dpone.state") == [(LSN(10),)]
