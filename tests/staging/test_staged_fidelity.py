"""Every PostgreSQL value that crosses staged Parquet files arrives as it left: the sink writes
each file back as CSV with Arrow for COPY, and the CSV rules (an empty string is not NULL, quotes
and newlines inside values, special floats, time zones) must hold for each type. A column Arrow
cannot write as CSV (bytes, arrays) takes the row path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from airflow_provider_dpone.contracts.manifest import parse_manifest
from tests.helpers import run_first_load as run

pytestmark = pytest.mark.integration

VALUES = """
create table odd (id int primary key, s text, s2 varchar(20), f float8, r real, n numeric, d numeric(12,3),
                  b boolean, dt date, ts timestamp, tz timestamptz, t time, iv interval, j jsonb, u uuid);
insert into odd values
  (1, '', 'a"b', 0.1, 1.5, 12345678901234567890.123456789, -1.5, true, '2026-01-01', '2026-01-01 10:00:00.123456',
   '2026-01-01 10:00:00+05', '23:59:59.5', '1 day 02:00:00', '{"a": [1, "x\\ny"]}', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'),
  (2, null, E'line\\nbreak, "comma"', 'NaN', '-Infinity', null, null, false, null, null, null, null, null, null, null),
  (3, 'ünïcødé ✓', ' ', 1e308, 3.4e38, 0, 0.001, null, '0001-01-01', '1999-12-31 23:59:59', '2038-01-19 03:14:08+00',
   '00:00', '-3 hours', 'null', null),
  (4, '\\N', 'NULL', 'Infinity', 0.3333333, -0.5, 999999999.999, true, '9999-12-31', null, now(), null, '1 year', '[]', null);
"""
COLUMNS = "id, s, s2, f, r, n, d, b, dt, ts, tz, t, iv, j, u"


def load(tmp_path: Path, table: str, fmt: str = "parquet") -> Any:
    body = {
        "name": table,
        "source": {"connector": "postgres", "conn_id": "src", "table": table},
        "sink": {"connector": "postgres", "conn_id": "dst", "table": f"raw.{table}", "strategy": "full_refresh",
                 "staging": {"files": {"uri": tmp_path.as_uri(), "format": fmt}}},
    }  # fmt: skip
    return parse_manifest({"pipeline": "fidelity", "loads": [body]})


@pytest.mark.parametrize("fmt", ["parquet", "auto"])  # Arrow's CSV into COPY; the binary COPY kept as it is
def test_every_value_arrives_as_it_left_through_arrow_csv(clean_pg: Any, tmp_path: Path, fmt: str) -> None:
    clean_pg.execute("src", VALUES)
    report = run(load(tmp_path, "odd", fmt))
    assert report.fast_path == ("csv" if fmt == "parquet" else "postgres_binary")
    assert report.status == "success" and report.rows == 4
    every = f"select row({COLUMNS})::text from odd order by id"  # as text: NaN equals NaN
    assert clean_pg.query("dst", every.replace(" odd ", " raw.odd ")) == clean_pg.query("src", every)
    assert clean_pg.query("dst", "select count(*) from raw.odd where s = '' and s2 = 'a\"b'") == [(1,)]


def test_bytes_and_arrays_take_the_row_path(clean_pg: Any, tmp_path: Path) -> None:
    clean_pg.execute(
        "src",
        "create table blobs (id int primary key, b bytea, a int[], s text, iv interval, tt timetz);"
        "insert into blobs values (1, '\\x00ff', '{1,2}', '', '1 year 2 mons 3 days', '10:00:00+05'),"
        " (2, null, '{}', null, '1 mon', null), (3, '', null, 'x', '-1 mon +02:00:00.5', '23:59:59.999999-03:30')",
    )
    report = run(load(tmp_path, "blobs"))
    assert report.status == "success" and report.rows == 3
    every = "select row(id, b, a, s, iv, tt)::text from blobs order by id"  # months and offsets kept
    assert clean_pg.query("dst", every.replace(" blobs ", " raw.blobs ")) == clean_pg.query("src", every)


def test_times_with_zone_keep_their_instant_whatever_the_sinks_time_zone(
    clean_pg: Any, tmp_path: Path
) -> None:
    clean_pg.execute("src", VALUES)
    db = f'"{clean_pg.dst_db}"'
    clean_pg.execute("dst", f"alter database {db} set timezone to 'America/New_York'")
    try:
        run(load(tmp_path, "odd"))
    finally:
        clean_pg.execute("dst", f"alter database {db} reset timezone")
    instants = "select id, extract(epoch from tz) from odd order by id"
    assert clean_pg.query("dst", instants.replace(" odd ", " raw.odd ")) == clean_pg.query("src", instants)


@pytest.mark.parametrize("files", [False, True], ids=["direct", "staged"])
def test_text_of_a_latin1_database_arrives_as_the_same_characters(
    clean_pg: Any, tmp_path: Path, files: bool
) -> None:
    import psycopg

    from airflow_provider_dpone.demo.postgres_server import database_uri, resolve_postgres_uri

    admin, _ = resolve_postgres_uri()
    name = f"{clean_pg.src_db}_latin1"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}"')
        conn.execute(
            f"create database \"{name}\" encoding 'LATIN1' lc_collate 'C' lc_ctype 'C' template template0"
        )
    try:
        with psycopg.connect(database_uri(admin, name), autocommit=True) as conn:
            conn.execute("create table words (id int primary key, w text)")
            conn.execute("insert into words values (1, 'café'), (2, 'Ãé naïve ÿ')")
        import json
        import os

        from psycopg.conninfo import conninfo_to_dict

        p = conninfo_to_dict(database_uri(admin, name))
        conn_json = {"conn_type": "postgres", "host": p.get("host") or "127.0.0.1", "port": int(p.get("port") or 5432),
                     "login": p.get("user"), "password": p.get("password"), "schema": name}  # fmt: skip
        os.environ["AIRFLOW_CONN_LATIN"] = json.dumps(conn_json)
        sink = {"connector": "postgres", "conn_id": "dst", "table": "raw.words", "strategy": "full_refresh"}
        if files:
            sink["staging"] = {"files": {"uri": tmp_path.as_uri()}}
        body = {
            "name": "words",
            "source": {"connector": "postgres", "conn_id": "latin", "table": "words"},
            "sink": sink,
        }
        report = run(parse_manifest({"pipeline": "enc", "loads": [body]}))
        assert report.fast_path == "postgres_binary"
        assert clean_pg.query("dst", "select w from raw.words order by id") == [("café",), ("Ãé naïve ÿ",)]
    finally:
        os.environ.pop("AIRFLOW_CONN_LATIN", None)
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'drop database if exists "{name}" with (force)')
