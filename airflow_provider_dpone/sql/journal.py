"""The crash journal of a transactional SQL sink: when state lives elsewhere (Airflow
Variables), finalize commits the new state in a journal row together with the data, and the
next run finishes the state commit if the process died in between (``runtime.engine``)."""

from __future__ import annotations

import json
from typing import Any, ClassVar

from ..runtime.protocols import LoadContext, Statement
from .dialect import TableRef
from .finalize_dialect import SetBasedDialect
from .staging_sink import StagingSink

JOURNAL_TABLE = "dpone_journal"


class JournalingStagingSink(StagingSink):
    """A staging sink whose finalize transaction can also hold the journal row."""

    sql_dialect: ClassVar[SetBasedDialect]

    def _journal(self, ctx: LoadContext) -> TableRef:
        return self.sql_dialect.table(ctx.load.sink.staging.schema_name, JOURNAL_TABLE)

    def _journal_exists(self, table: TableRef) -> bool:
        query, params = self.sql_dialect.table_exists(table)
        return bool(self._read(query, params)[0][0])

    def journal_statements(
        self, ctx: LoadContext, before: dict[str, Any] | None, after: dict[str, Any]
    ) -> list[Statement]:
        """The journal row finalize commits with the data, when state lives elsewhere."""
        table = self._journal(ctx)
        if not self._journal_exists(table):  # created before the finalize transaction takes its locks
            for statement in self.sql_dialect.create_journal_table(table):
                self._write(statement)
        params = (
            ctx.pipeline,
            ctx.load.name,
            ctx.run_id,
            None if before is None else json.dumps(before),
            json.dumps(after),
        )
        return [(self.sql_dialect.upsert_journal(table), params)]

    def pending_journal(self, ctx: LoadContext) -> dict[str, Any] | None:
        """The last finalize whose state the state backend has not acknowledged, if any."""
        table = self._journal(ctx)
        if not self._journal_exists(table):
            return None
        rows = self._read(self.sql_dialect.select_pending_journal(table), (ctx.pipeline, ctx.load.name))
        if not rows:
            return None
        run_id, before, after = rows[0]
        return {
            "run_id": run_id,
            "state_before": None if before is None else json.loads(before),
            "state_after": json.loads(after),
        }

    def acknowledge_journal(self, ctx: LoadContext, run_id: str) -> None:
        statement = self.sql_dialect.acknowledge_journal(self._journal(ctx))
        self._write(statement, (ctx.pipeline, ctx.load.name, run_id))
