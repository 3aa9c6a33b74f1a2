"""Find a PostgreSQL to use: ``DPONE_POSTGRES_URI``, else a local server, else an embedded one.

The embedded server is pgserver (PostgreSQL in a wheel, ``pip install pgserver``); its data
lives under ``.dpone/pgdata`` and it stops when the process that started it exits.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

LOCAL_URI = "postgresql://postgres@127.0.0.1:5432/postgres"
_embedded: Any = None


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def resolve_postgres_uri(data_dir: str | Path = ".dpone/pgdata") -> tuple[str, str]:
    """(admin URI, where it came from). The URI points at a maintenance database."""
    global _embedded
    if uri := os.environ.get("DPONE_POSTGRES_URI"):
        return uri, "DPONE_POSTGRES_URI"
    if _reachable("127.0.0.1", 5432):
        import psycopg

        try:
            psycopg.connect(LOCAL_URI, connect_timeout=3).close()
            return LOCAL_URI, "local server 127.0.0.1:5432"
        except psycopg.Error:
            pass
    try:
        import pgserver
    except ImportError as exc:
        raise RuntimeError(
            "no PostgreSQL reachable and pgserver is not installed (pip install pgserver)"
        ) from exc
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    _embedded = pgserver.get_server(str(Path(data_dir).resolve()), cleanup_mode="stop")
    return _embedded.get_uri(), "embedded pgserver"


def database_uri(admin_uri: str, dbname: str) -> str:
    """The same server, another database."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params: dict[str, Any] = conninfo_to_dict(admin_uri)
    params["dbname"] = dbname
    return make_conninfo("", **params)


def airflow_conn_uri(libpq_uri: str) -> str:
    """An Airflow connection URI (``postgres://user:pw@host:port/db``) for a libpq URI/DSN."""
    from urllib.parse import quote

    from psycopg.conninfo import conninfo_to_dict

    p = {k: str(v) for k, v in conninfo_to_dict(libpq_uri).items() if v is not None}
    auth = quote(p.get("user", "postgres"), safe="")
    if p.get("password"):
        auth += ":" + quote(p["password"], safe="")
    host = p.get("host", "127.0.0.1")
    if host.startswith("/"):  # unix socket directory
        return f"postgres://{auth}@/{p.get('dbname', 'postgres')}?host={quote(host, safe='')}"
    return f"postgres://{auth}@{host}:{p.get('port', 5432)}/{p.get('dbname', 'postgres')}"


def recreate_database(admin_uri: str, dbname: str) -> str:
    import psycopg

    with psycopg.connect(admin_uri, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{dbname}" with (force)')
        conn.execute(f'create database "{dbname}"')
    return database_uri(admin_uri, dbname)
