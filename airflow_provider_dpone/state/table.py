"""State in a schema-qualified table, created on first use, in any database whose connector
declares it can host state (PostgreSQL, SQL Server): the statements are its hook's dialect's.

When the table lives in the sink database, the state row is written inside the sink's
finalize transaction, so data and state commit together.
"""

from __future__ import annotations

import builtins
import json
from typing import Any

from ..contracts.manifest import STATE_SCHEMA
from ..contracts.state import StateRecord, decode_state, state_to_dict
from ..hooks.dbapi import fetch, run
from ..runtime.protocols import StateHost, Statement
from ..sql.dialect import TableRef
from . import listed


class TableStateBackend:
    name = "table"

    def __init__(
        self,
        conn_id: str,
        table: str = "dpone.state",
        connector: str = "postgres",
        *,
        standalone: bool = False,
    ) -> None:
        self.conn_id, self.connector, self.standalone = conn_id, connector, standalone
        self._table_name = table
        schema, _, name = table.rpartition(".")
        self._label = f"{schema or 'dpone'}.{name}"  # the table as messages name it
        self._hook: Any = None
        self._ensured = False

    @property
    def hook(self) -> Any:
        """The hook of the connection holding the table, built by its connector (validation
        allows only connectors that declare they can host state)."""
        if self._hook is None:
            from ..hooks.registry import build_hook

            self._hook = build_hook(self.connector, self.conn_id, standalone=self.standalone)
        return self._hook

    @property
    def dialect(self) -> Any:
        """The SQL of the database holding the table (its hook's dialect)."""
        return self.hook.sql_dialect

    @property
    def table(self) -> TableRef:
        return self.dialect.parse_table(self._table_name, default_schema=STATE_SCHEMA)  # type: ignore[no-any-return]

    def _ensure(self, conn: Any) -> None:
        if self._ensured:
            return
        if not self._exists(conn):
            cur = conn.cursor()
            for statement in self.dialect.create_state_table(self.table):
                run(cur, statement)
            conn.commit()
        self._ensured = True

    def _exists(self, conn: Any) -> bool:
        asked = getattr(self.hook, "has_table", None)
        if asked is not None:  # a hook that asks its API (BigQuery: no catalog query for a missing dataset)
            return bool(asked(self.table))
        query, params = self.dialect.table_exists(self.table)
        return bool(fetch(conn.cursor(), query, params)[0][0])

    def where(self, pipeline: str, load: str) -> str:
        """The row's key, for messages."""
        return f"{self._label} (pipeline={pipeline!r}, load={load!r})"

    def get(self, pipeline: str, load: str) -> StateRecord | None:
        """Read state; never creates the table (``dpone plan`` must touch nothing). None for no
        row (or JSON null); ``StateError`` when the row is unreadable."""
        with self.hook.session() as conn:
            if not self._ensured and not self._exists(conn):
                return None
            rows = fetch(conn.cursor(), self.dialect.select_state(self.table), (pipeline, load))
        return decode_state(rows[0][0], self.where(pipeline, load), load) if rows else None

    def _payload(self, record: StateRecord) -> str:
        return json.dumps(state_to_dict(record))

    def commit(self, pipeline: str, load: str, record: StateRecord, run_id: str) -> None:
        with self.hook.session() as conn:
            self._ensure(conn)
            params = (pipeline, load, self._payload(record), run_id)
            run(conn.cursor(), self.dialect.upsert_state(self.table), params)

    def reset(self, pipeline: str, load: str) -> bool:
        with self.hook.session() as conn:
            if not self._exists(conn):
                return False
            return run(conn.cursor(), self.dialect.delete_state(self.table), (pipeline, load)) > 0

    def list(self, pipeline: str, loads: list[str]) -> list[dict[str, Any]]:
        with self.hook.session() as conn:
            rows = (
                []
                if not self._exists(conn)
                else fetch(conn.cursor(), self.dialect.list_state(self.table), (pipeline,))
            )
        found = {r[1]: r for r in rows}
        out = []
        for load in sorted(set(loads) | set(found)):
            r = found.get(load)
            out.append(
                {
                    "pipeline": pipeline,
                    "load": load,
                    **(listed(r[2], self.where(pipeline, load), load) if r else {"state": None}),
                    "run_id": r[3] if r else None,
                    "updated_at": r[4] if r else None,
                }
            )
        return out

    def colocated_statements(
        self, sink: object, pipeline: str, load: str, record: StateRecord, run_id: str
    ) -> builtins.list[Statement] | None:
        """The upsert to run inside the sink's transaction, when the sink says the state table's
        connection is its own database."""
        if not isinstance(sink, StateHost) or not sink.hosts_state(self.conn_id):
            return None
        with self.hook.session() as conn:  # make sure the table exists before the sink's txn
            self._ensure(conn)
        return [(self.dialect.upsert_state(self.table), (pipeline, load, self._payload(record), run_id))]
