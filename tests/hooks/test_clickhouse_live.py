"""The live ClickHouse profile: the sink over HTTP(S) (clickhouse-connect) against an
operator-provided server. ``DPONE_LIVE_CLICKHOUSE_URI`` is its HTTP interface with the
credentials, ``https://user:password@host:8443`` (or ``http://...:8123``; a path names the
connection's default database, query parameters become the connection's extras); without it
every test skips, naming the variable (docs/clickhouse.md). Each test creates its own
databases (``dpone_live_<random>`` and ``..._stg`` for staging) and drops them afterwards. The
source and the state are the local PostgreSQL the tests start (tests/conftest.py).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import pytest

from airflow_provider_dpone.contracts.manifest import Manifest, parse_manifest
from tests.conftest import PgEnv
from tests.helpers import run_first_load as run
from tests.hooks.test_clickhouse import ORDERS, _canonical_json, pg_rows

pytestmark = pytest.mark.integration_live

ENV = "DPONE_LIVE_CLICKHOUSE_URI"
SKIP = (
    f"{ENV} is not set: the HTTP(S) interface of a ClickHouse server, with credentials, on which "
    "the test may create and drop databases (docs/clickhouse.md#Live certification profile)"
)
CONN_ID = "ch_live"


def connection_fields(uri: str) -> dict[str, Any]:
    """The Airflow connection for ``http(s)://user:password@host:port/database?extras``."""
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{ENV} must be http(s)://user:password@host:port (the value is not shown)")
    secure = parts.scheme == "https"
    return {
        "conn_type": "dpone_clickhouse",
        "host": parts.hostname,
        "port": parts.port or (8443 if secure else 8123),
        "login": unquote(parts.username or "default"),
        "password": unquote(parts.password or ""),
        "schema": parts.path.strip("/") or "default",
        "extra": {**dict(parse_qsl(parts.query)), "secure": secure},
    }


class LiveCh:
    """The live server through its own client, with this test's database names."""

    def __init__(self, conn: dict[str, Any]) -> None:
        import clickhouse_connect

        extra = conn["extra"]
        self.client = clickhouse_connect.get_client(
            host=conn["host"], port=conn["port"], username=conn["login"], password=conn["password"],
            database=conn["schema"], secure=extra["secure"], tz_mode="schema",
        )  # fmt: skip
        self.db = f"dpone_live_{uuid.uuid4().hex[:8]}"
        self.stg = f"{self.db}_stg"

    def query(self, statement: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in self.client.query(statement, parameters=params or {}).result_rows]

    def databases(self) -> list[str]:
        """This test's databases that exist now."""
        rows = self.query(
            "select name from system.databases where startsWith(name, {p:String})", {"p": self.db}
        )
        return sorted(r[0] for r in rows)

    def drop(self) -> None:
        for db in (self.db, self.stg):
            self.client.command(f"drop database if exists `{db}` sync")


@pytest.fixture
def live_ch(monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveCh]:
    uri = os.environ.get(ENV)
    if not uri:
        pytest.skip(SKIP)
    conn = connection_fields(uri)
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(conn))
    env = LiveCh(conn)
    try:
        yield env
    finally:
        env.drop()
        assert env.databases() == [], "the test's databases were not dropped"
        env.client.close()


def manifest(ch: LiveCh, sink: dict[str, Any], source: dict[str, Any] | None = None) -> Manifest:
    """PostgreSQL ``orders`` into the live server; the state in PostgreSQL (ClickHouse cannot
    commit it with the data)."""
    return parse_manifest(
        {
            "pipeline": "ch_live",
            "state": {"backend": "table", "conn_id": "dst"},
            "loads": [
                {
                    "name": "orders",
                    "source": {"connector": "postgres", "conn_id": "src", "table": "orders", **(source or {})},
                    "sink": {"connector": "clickhouse", "conn_id": CONN_ID, "table": f"{ch.db}.orders",
                             "staging": {"schema": ch.stg}, **sink},
                }
            ],
        }
    )  # fmt: skip


def same(pg: PgEnv, ch: LiveCh) -> bool:
    """The target holds exactly the source's rows (json compared parsed)."""
    got = ch.query(
        f"select id, customer, note, paid, amount, placed, updated_at, toString(ref), doc "
        f"from `{ch.db}`.orders order by id"
    )
    want = [(*r[:8], _canonical_json(r[8])) for r in pg_rows(pg)]
    return [(*r[:8], _canonical_json(r[8])) for r in got] == want


def staged_tables(ch: LiveCh) -> list[tuple[Any, ...]]:
    """Tables left in the staging database (the finalize journal excepted)."""
    return ch.query(
        "select name from system.tables where database = {d:String} and name != 'dpone_journal'",
        {"d": ch.stg},
    )


def stored_state(pg: PgEnv) -> list[tuple[Any, ...]]:
    return pg.query("dst", "select state::text, run_id from dpone.state where pipeline = 'ch_live'")


def test_live_full_refresh_replaces_the_target_and_a_rerun_converges(
    clean_pg: PgEnv, live_ch: LiveCh
) -> None:
    pg, ch = clean_pg, live_ch
    pg.execute("src", ORDERS)
    m = manifest(ch, {"strategy": "full_refresh"})
    first = run(m, "r1")
    assert first.status == "success" and first.rows == 3000 and same(pg, ch)
    created = ch.query(f"show create table `{ch.db}`.orders")[0][0]
    assert "`id` Int64" in created and "`note` Nullable(String)" in created
    pg.execute(
        "src", "update orders set customer = 'changed' where id <= 10; delete from orders where id > 2990"
    )
    second = run(m, "r2")
    assert second.rows == 2990 and same(pg, ch)
    third = run(m, "r3")  # nothing changed: the same rows again
    assert third.status == "success" and third.rows == 2990 and same(pg, ch)
    assert staged_tables(ch) == []


def test_live_incremental_merge_then_a_rerun_reads_nothing(clean_pg: PgEnv, live_ch: LiveCh) -> None:
    pg, ch = clean_pg, live_ch
    pg.execute("src", ORDERS)
    m = manifest(
        ch,
        {"strategy": "incremental_merge", "unique_key": ["id"]},
        {"incremental": {"mode": "cursor", "cursor": "updated_at"}},
    )
    first = run(m, "r1")
    assert first.rows == 3000 and first.state_committed == "after_data" and same(pg, ch)
    assert [r[1] for r in stored_state(pg)] == ["r1"]
    pg.execute(
        "src",
        "update orders set customer = 'moved', updated_at = updated_at + interval '10 days' where id % 100 = 0; "
        "insert into orders select g, 'new', null, true, 1, 1, '2026-02-01', timestamptz '2026-04-01 00:00+00', "
        "null, null from generate_series(3001, 3050) g",
    )
    second = run(m, "r2")
    assert second.rows == 80 and second.state_committed == "after_data" and same(pg, ch)
    assert ch.query(f"select count(), uniqExact(id) from `{ch.db}`.orders") == [(3050, 3050)]
    state = stored_state(pg)
    assert [r[1] for r in state] == ["r2"]
    watermark = json.loads(state[0][0])["value"]  # the newest updated_at (its text follows the TimeZone)
    assert pg.query("dst", "select %s::timestamptz = timestamptz '2026-04-01 00:00+00'", (watermark,)) == [
        (True,)
    ]
    third = run(m, "r3")  # nothing new past the watermark: nothing read, nothing changed
    assert third.status == "success" and third.rows == 0 and same(pg, ch)
    assert stored_state(pg)[0][0] == state[0][0]
    assert staged_tables(ch) == []
