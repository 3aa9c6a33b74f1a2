"""The live PostgreSQL profile: source, sink and state host against an operator-provided
server. ``DPONE_LIVE_POSTGRES_URI`` is a libpq URI of a database in which the tests may create
and drop their own schemas (``dpone_live_<random>_src`` / ``_dst`` / ``_stg``, dropped after
each test); without it every test skips, naming the variable (docs/postgres.md). The tests
read the server only through the Airflow connection ``pg_live`` built from the variable.
"""

from __future__ import annotations

import json
import os
import signal
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_provider_dpone.contracts.manifest import Manifest, parse_manifest
from tests.helpers import run_first_load as run
from tests.helpers import run_killed

pytestmark = pytest.mark.integration_live

ENV = "DPONE_LIVE_POSTGRES_URI"
SKIP = (
    f"{ENV} is not set: a libpq URI of a PostgreSQL database the test may create and drop its "
    "own schemas in (docs/postgres.md#Live certification profile)"
)
CONN_ID = "pg_live"


def airflow_connection(uri: str) -> str:
    """The Airflow connection (JSON) for a libpq URI; every other libpq parameter (sslmode,
    sslrootcert...) goes into the extras, which the connector passes on to libpq."""
    from psycopg.conninfo import conninfo_to_dict

    params = {k: str(v) for k, v in conninfo_to_dict(uri).items() if v is not None}
    conn: dict[str, Any] = {"conn_type": "postgres"}
    for field, key in (("host", "host"), ("login", "user"), ("password", "password"), ("schema", "dbname")):
        if key in params:
            conn[field] = params.pop(key)
    if "port" in params:
        conn["port"] = int(params.pop("port"))
    if params:
        conn["extra"] = params
    return json.dumps(conn)


class LivePg:
    """The live database, with this test's own schema names."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        prefix = f"dpone_live_{uuid.uuid4().hex[:8]}"
        self.src, self.dst, self.stg = f"{prefix}_src", f"{prefix}_dst", f"{prefix}_stg"

    def query(self, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        import psycopg

        with psycopg.connect(self.uri, autocommit=True) as conn:
            cur = conn.execute(statement, params or None)
            return cur.fetchall() if cur.description else []

    def schemas(self) -> list[str]:
        """This test's schemas that exist now."""
        prefix = self.src[: -len("_src")]
        rows = self.query("select nspname from pg_namespace where starts_with(nspname, %s)", (prefix,))
        return sorted(r[0] for r in rows)

    def drop(self) -> None:
        self.query(f'drop schema if exists "{self.src}", "{self.dst}", "{self.stg}" cascade')


@pytest.fixture
def live_pg(monkeypatch: pytest.MonkeyPatch) -> Iterator[LivePg]:
    uri = os.environ.get(ENV)
    if not uri:
        pytest.skip(SKIP)
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", airflow_connection(uri))
    env = LivePg(uri)
    env.query(f'create schema "{env.src}"')
    try:
        yield env
    finally:
        env.drop()
        assert env.schemas() == [], "the test's schemas were not dropped"


def orders(pg: LivePg) -> str:
    return f"""
create table "{pg.src}".orders (id bigint primary key, amount numeric(12,2) not null, note text,
                                updated_at timestamptz not null);
insert into "{pg.src}".orders
select g, g * 1.5, 'n' || g, timestamptz '2026-01-01 00:00+00' + g * interval '1 second'
from generate_series(1, 2000) g;
"""


def manifest(pg: LivePg, source: dict[str, Any], sink: dict[str, Any]) -> Manifest:
    """One load from the source schema to the sink schema, staged and stateful in the same
    database (the state table in the sink schema: committed with the data)."""
    return parse_manifest(
        {
            "pipeline": "pg_live",
            "state": {"backend": "table", "conn_id": CONN_ID, "table": f"{pg.dst}.dpone_state"},
            "loads": [
                {
                    "name": "orders",
                    "source": {"connector": "postgres", "conn_id": CONN_ID, "table": f"{pg.src}.orders", **source},
                    "sink": {"connector": "postgres", "conn_id": CONN_ID, "table": f"{pg.dst}.orders",
                             "staging": {"schema": pg.stg}, **sink},
                }
            ],
        }
    )  # fmt: skip


def checksum(pg: LivePg, schema: str) -> tuple[Any, ...]:
    return pg.query(f'select count(*), coalesce(sum(hashtext(t::text)), 0) from "{schema}".orders t')[0]


def staged_tables(pg: LivePg) -> list[tuple[Any, ...]]:
    """Tables left in the staging schema (the finalize journal excepted)."""
    return pg.query(
        "select tablename from pg_tables where schemaname = %s and tablename <> 'dpone_journal'", (pg.stg,)
    )


def stored_state(pg: LivePg) -> list[tuple[Any, ...]]:
    return pg.query(f'select state::text, run_id from "{pg.dst}".dpone_state where load = %s', ("orders",))


def at_watermark(pg: LivePg, state: str) -> bool:
    """The stored cursor is the source's highest ``updated_at`` (compared as timestamps: the
    text depends on the server's TimeZone)."""
    value = json.loads(state)["value"]
    return bool(pg.query(f'select %s::timestamptz = max(updated_at) from "{pg.src}".orders', (value,))[0][0])


def test_live_full_refresh_replaces_the_target_and_a_rerun_converges(live_pg: LivePg) -> None:
    pg = live_pg
    pg.query(orders(pg))
    m = manifest(pg, {}, {"strategy": "full_refresh"})
    first = run(m, "r1")
    assert first.status == "success" and first.rows == 2000
    assert first.sink["finalize"]["method"] in ("swap", "truncate_insert")
    assert checksum(pg, pg.dst) == checksum(pg, pg.src)
    pg.query(
        f'delete from "{pg.src}".orders where id > 1950; update "{pg.src}".orders set note = null where id < 10'
    )
    second = run(m, "r2")
    assert second.rows == 1950 and checksum(pg, pg.dst) == checksum(pg, pg.src)
    settled = checksum(pg, pg.dst)
    third = run(m, "r3")  # nothing changed: the same table again
    assert third.status == "success" and third.rows == 1950 and checksum(pg, pg.dst) == settled
    assert staged_tables(pg) == []


def test_live_incremental_merge_commits_the_state_with_the_data(live_pg: LivePg) -> None:
    pg = live_pg
    pg.query(orders(pg))
    m = manifest(
        pg,
        {"incremental": {"mode": "cursor", "cursor": "updated_at"}},
        {"strategy": "incremental_merge", "unique_key": ["id"]},
    )
    first = run(m, "r1")
    assert first.rows == 2000 and first.state_committed == "with_data"
    assert checksum(pg, pg.dst) == checksum(pg, pg.src)
    state = stored_state(pg)
    assert len(state) == 1 and state[0][1] == "r1"
    assert at_watermark(pg, state[0][0])

    later = "2026-02-01 00:00+00"
    pg.query(
        f'update "{pg.src}".orders set note = %s, updated_at = %s where id %% 100 = 0', ("changed", later)
    )
    pg.query(f'insert into "{pg.src}".orders values (5000, 1, %s, %s)', ("new", later))
    second = run(m, "r2")
    assert second.rows == 21 and second.state_committed == "with_data"
    assert second.sink["finalize"]["rows_updated"] == 20 and second.sink["finalize"]["rows_inserted"] == 1
    assert checksum(pg, pg.dst) == checksum(pg, pg.src)
    assert stored_state(pg)[0][1] == "r2" and at_watermark(pg, stored_state(pg)[0][0])

    settled, state = checksum(pg, pg.dst), stored_state(pg)[0][0]
    third = run(m, "r3")  # nothing new past the watermark: nothing read, nothing changed
    assert third.status == "success" and third.rows == 0
    assert checksum(pg, pg.dst) == settled and stored_state(pg)[0][0] == state
    assert staged_tables(pg) == []


def test_live_a_run_killed_in_finalize_changes_nothing_and_the_retry_converges(live_pg: LivePg) -> None:
    pg = live_pg
    pg.query(orders(pg))
    m = manifest(
        pg,
        {"incremental": {"mode": "cursor", "cursor": "updated_at"}},
        {"strategy": "incremental_merge", "unique_key": ["id"]},
    )
    run(m, "r1")
    before, state = checksum(pg, pg.dst), stored_state(pg)
    pg.query(
        f"update \"{pg.src}\".orders set note = 'late', updated_at = timestamptz '2026-03-01 00:00+00' where id <= 5"
    )
    assert run_killed(m, "r2", "mid_finalize") == -signal.SIGKILL
    assert checksum(pg, pg.dst) == before and stored_state(pg) == state  # rolled back together
    retry = run(m, "r2")
    assert retry.rows == 5 and checksum(pg, pg.dst) == checksum(pg, pg.src)
    assert stored_state(pg)[0][1] == "r2"
