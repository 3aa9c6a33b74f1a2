"""Crash safety: SIGKILL the worker at every phase boundary of every strategy, then run again.

The crashing run is a forked worker that kills itself with SIGKILL at a named failpoint
(``DPONE_FAILPOINT``): no ``finally`` runs, no rollback is sent, connections just drop, as
when a worker is OOM-killed. The retry reuses the run id, as an Airflow retry does. Afterwards
the target must equal the source (count and checksum), hold no duplicate keys, the state must
match the source, and one more run must change nothing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_provider_dpone.contracts.manifest import parse_manifest
from airflow_provider_dpone.runtime.failpoints import ENV, POINTS
from tests.helpers import run_first_load as run
from tests.helpers import run_killed

pytestmark = pytest.mark.integration

ITEMS = """
create table items (id bigint primary key, grp int not null, name text not null, pad text not null,
                    day date not null, updated_at timestamptz not null);
insert into items select g, g % 4, 'item' || g, repeat(md5(g::text), 4), date '2026-01-01' + (g % 90),
                         now() - interval '2 days' + g * interval '1 second'
from generate_series(1, 12000) g;
"""  # about 2.3 MB of binary COPY: the COPY is written in several chunks
COLS = "id, grp, name, pad, day, updated_at"
UPDATE = "update items set name = name || '+', updated_at = now() where id % 50 = 0;"
INSERT = (
    "insert into items select g, g % 4, 'new' || g, md5(g::text), date '2026-01-01' + (g % 90), now() "
    "from generate_series(12001, 12300) g;"
)
DELETE = "delete from items where id % 97 = 0;"
FEB = "day >= '2026-02-01' and day < '2026-03-01'"

# strategy -> (sink, source, load extras, source changes between runs, rows compared, state cursor)
CASES: dict[str, tuple[dict, dict, dict, str, str, str | None]] = {
    "full_refresh": ({"strategy": "full_refresh"}, {}, {}, UPDATE + INSERT + DELETE, "true", None),
    "incremental_append": (
        {"strategy": "incremental_append"},
        {"incremental": {"mode": "cursor", "cursor": "id"}},
        {},
        INSERT,
        "true",
        "id",
    ),
    "incremental_merge": (
        {"strategy": "incremental_merge", "unique_key": ["id"]},
        {"incremental": {"mode": "cursor", "cursor": "updated_at"}},
        {},
        UPDATE + INSERT,
        "true",
        "updated_at",
    ),
    "snapshot_diff": (
        {"strategy": "snapshot_diff", "unique_key": ["id"]},
        {},
        {"reconciliation": {"deletes": "hard", "max_delete_fraction": 0.5}},
        UPDATE + INSERT + DELETE,
        "true",
        None,
    ),
    "scd2": ({"strategy": "scd2", "unique_key": ["id"]}, {}, {}, UPDATE + INSERT, "is_current", None),
    "replace": (
        {
            "strategy": "replace",
            "replace": {"window": {"column": "day", "start": "2026-02-01", "end": "2026-03-01"}},
        },
        {},
        {},
        UPDATE + INSERT + DELETE,
        FEB,
        None,
    ),
    "partition_replace": (
        {"strategy": "partition_replace", "partition_by": ["grp"]},
        {},
        {},
        UPDATE + INSERT + DELETE,
        "true",
        None,
    ),
}


def manifest(strategy: str, state_conn: str = "src", **staging):
    return parse_manifest(manifest_body(strategy, state_conn, **staging))


def manifest_body(strategy: str, state_conn: str = "src", **staging) -> dict:
    sink, source, extras, *_ = CASES[strategy]
    body = {
        "name": "items",
        "source": {"connector": "postgres", "conn_id": "src", "table": "items", **source},
        "sink": {
            "connector": "postgres",
            "conn_id": "dst",
            "table": "raw.items",
            **sink,
            **({"staging": staging} if staging else {}),
        },
        **extras,
    }
    # State in the source database: not colocated with the sink, so the window between the
    # data commit and the state commit is real (the finalize journal closes it).
    state = {"backend": "table", "conn_id": state_conn}
    return {"pipeline": "crash", "state": state, "loads": [body]}


def digest(pg, which: str, table: str, where: str) -> tuple:
    return pg.query(
        which,
        f"select count(*), md5(coalesce(string_agg(row({COLS})::text, '|' order by id), '')) "
        f"from {table} where {where}",
    )[0]


def assert_converged(pg, strategy: str, state_conn: str, staging_left: int = 0) -> None:
    *_, compared, cursor = CASES[strategy]
    source_where = FEB if strategy == "replace" else "true"
    assert digest(pg, "dst", "raw.items", compared) == digest(pg, "src", "items", source_where)
    dupes = pg.query("dst", f"select count(*) - count(distinct id) from raw.items where {compared}")
    assert dupes == [(0,)]
    if cursor:
        stored = pg.query(state_conn, "select state->>'value' from dpone.state where pipeline = 'crash'")
        expected = pg.query("src", f"select max({cursor})::text from items")
        assert stored and stored[0][0].replace("T", " ") == expected[0][0].replace("T", " ")
    pending = pg.query(
        "dst",
        "select count(*) from dpone_staging.dpone_journal where not acknowledged"
        if pg.query("dst", "select to_regclass('dpone_staging.dpone_journal') is not null")[0][0]
        else "select 0",
    )
    assert pending == [(0,)]
    left = pg.query(
        "dst",
        "select count(*) from pg_tables where schemaname = 'dpone_staging' and tablename <> 'dpone_journal'",
    )
    assert left == [(staging_left,)]  # a retry reuses the killed try's staging, then drops it


@pytest.mark.parametrize("point", POINTS)
@pytest.mark.parametrize("strategy", list(CASES))
def test_sigkill_at_every_phase_then_retry_converges(clean_pg, strategy: str, point: str) -> None:
    pg = clean_pg
    pg.execute("src", ITEMS)
    m = manifest(strategy)
    run(m, "r1")
    pg.execute("src", CASES[strategy][3])
    assert run_killed(m, "r2", point) == -signal.SIGKILL, f"the worker did not reach failpoint {point}"
    report = run(m, "r2")  # the Airflow retry of the killed try
    assert report.status == "success"
    assert_converged(pg, strategy, "src")
    target = digest(pg, "dst", "raw.items", "true")
    again = run(m, "r3").sink["finalize"]  # nothing changed since: nothing is applied twice
    assert digest(pg, "dst", "raw.items", "true") == target
    assert again.get("rows_inserted", 0) in (0, None) or strategy in (
        "full_refresh",
        "replace",
        "partition_replace",
    )


@pytest.mark.parametrize("point", ["mid_finalize", "after_finalize"])
def test_colocated_state_commits_with_the_data(clean_pg, point: str) -> None:
    pg = clean_pg
    pg.execute("src", ITEMS)
    m = manifest("incremental_append", state_conn="dst")
    run(m, "r1")
    pg.execute("src", INSERT)
    assert run_killed(m, "r2", point) == -signal.SIGKILL
    run(m, "r2")
    assert_converged(pg, "incremental_append", "dst")
    # Colocated state needs no journal: it committed in the finalize transaction itself.
    assert pg.query("dst", "select to_regclass('dpone_staging.dpone_journal') is null") == [(True,)]


def test_a_lost_state_commit_is_rolled_forward_not_reapplied(clean_pg) -> None:
    pg = clean_pg
    pg.execute("src", ITEMS)
    m = manifest("incremental_append")
    run(m, "r1")
    pg.execute("src", INSERT)
    assert run_killed(m, "r2", "after_finalize") == -signal.SIGKILL
    # The data committed; the state backend still holds r1's state; the journal holds r2's.
    assert pg.query("dst", "select count(*) from raw.items") == [(12300,)]
    assert pg.query("src", "select state->>'value' from dpone.state") == [("12000",)]
    report = run(m, "r3")  # a new run (e.g. the next schedule), not a retry
    assert report.state_before["value"] == "12300"  # rolled forward from the journal
    assert report.sink["finalize"]["rows_inserted"] == 0
    assert pg.query("dst", "select count(*), count(distinct id) from raw.items") == [(12300, 12300)]


def test_a_state_reset_after_a_crash_wins_over_the_journal(clean_pg) -> None:
    pg = clean_pg
    pg.execute("src", ITEMS)
    m = manifest("incremental_merge")
    run(m, "r1")
    pg.execute("src", UPDATE)
    assert run_killed(m, "r2", "after_finalize") == -signal.SIGKILL
    pg.execute("src", "delete from dpone.state")  # the operator reset the state meanwhile
    report = run(m, "r3")
    assert report.state_before is None  # a full reload, as the reset asked
    # r2's staging stays until it is older than staging.stale_after (r3 is another run).
    assert_converged(pg, "incremental_merge", "src", staging_left=1)


def test_stale_staging_from_killed_runs_is_dropped_after_stale_after(clean_pg) -> None:
    pg = clean_pg
    pg.execute("src", ITEMS)
    kept = manifest("snapshot_diff")
    assert run_killed(kept, "killed", "after_stage") == -signal.SIGKILL
    staged = "select tablename from pg_tables where schemaname = 'dpone_staging' order by 1"
    orphans = pg.query("dst", staged)
    assert len(orphans) == 1
    run(kept, "fresh")  # a new run id: the orphans are younger than the default 24h
    assert pg.query("dst", staged) == orphans
    run(manifest("snapshot_diff", stale_after="0s"), "next")
    assert pg.query("dst", staged) == []
    assert_converged(pg, "snapshot_diff", "src")


def test_dpone_run_killed_mid_copy_then_rerun_converges(clean_pg, tmp_path: Path) -> None:
    """The same crash through the real ``dpone run`` process, with a new run id on the rerun."""
    pg = clean_pg
    pg.execute("src", ITEMS)
    path = tmp_path / "crash.yaml"
    path.write_text(json.dumps(manifest_body("incremental_merge")))  # JSON is YAML
    dpone = str(Path(sys.executable).with_name("dpone"))
    assert subprocess.run([dpone, "run", str(path)], capture_output=True, text=True).returncode == 0
    pg.execute("src", UPDATE + INSERT)
    env = {**os.environ, ENV: "mid_copy"}
    killed = subprocess.run([dpone, "run", str(path)], capture_output=True, text=True, env=env)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    rerun = subprocess.run([dpone, "run", str(path)], capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert_converged(pg, "incremental_merge", "src")
