"""What dpone's SQL hooks share on top of the common-sql ``DbApiHook``: the connection id
under dpone's name, a redactor of the connection's credentials, and the UI's Test button."""

from __future__ import annotations

from airflow.providers.common.sql.hooks.sql import DbApiHook

from ..contracts.redaction import Redactor
from .connection import probe


class DponeDbApiHook(DbApiHook):
    """Mixed in before the database's own DbApiHook subclass (e.g. PostgresHook)."""

    @property
    def dpone_conn_id(self) -> str:
        return self.get_conn_id()

    def redactor(self) -> Redactor:
        """A redactor knowing this connection's credentials."""
        return Redactor.of_connection(lambda: self.get_connection(self.dpone_conn_id))

    def test_connection(self) -> tuple[bool, str]:  # type: ignore[override]  # common-sql's stub says None
        """The UI's Test button: ``select 1`` on a new connection; no credential in the message."""
        return probe(self.redactor(), lambda: f"select 1 returned {self.get_first('select 1')}")
