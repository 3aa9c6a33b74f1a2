"""What every SQL sink does the same way around its staging table: the run's staging name,
the sweep of other runs' leftovers, cleanup (kept and labelled on failure), and quality gates
measured on staging. A SQL sink supplies its dialect and two primitives, ``_read`` and
``_write``; it keeps only connection handling, byte movement and its engine's finalize.
"""

from __future__ import annotations

import hashlib
import logging
from abc import ABC, abstractmethod
from typing import Any, ClassVar

from ..contracts.quality import Measurement
from ..runtime.protocols import LoadContext, StagedData
from ..runtime.staging_label import KeptStaging, failed_label, kept_staging, to_sweep
from .dialect import SqlDialect, TableRef
from .quality import measure_checks

log = logging.getLogger(__name__)

# Staging roles a run may create: its batch and, for reconciliation, the source's key set.
ROLES = ("", "keys")
_NAME_KEEP = 34  # characters of the target's name kept in a staging name (identifier limits)


class StagingSink(ABC):
    """The staging half of a SQL sink, over the sink's own ``_read`` / ``_write``."""

    sql_dialect: ClassVar[SqlDialect]

    @abstractmethod
    def _read(self, statement: str, params: Any = None) -> list[tuple[Any, ...]]:
        """Rows a read-only statement answers."""

    @abstractmethod
    def _write(self, statement: str, params: Any = None) -> None:
        """Run one statement, committed on its own."""

    def target_table(self, ctx: LoadContext) -> TableRef:
        """The load's target (a sink whose connection names a default schema overrides this)."""
        return self.sql_dialect.parse_table(ctx.load.sink.target)

    def staging_table(self, ctx: LoadContext, role: str = "") -> TableRef:
        """The run's staging table; ``role`` "keys" names the reconciliation key set."""
        target = self.target_table(ctx)
        digest = hashlib.sha1(f"{ctx.key}|{target}|{ctx.run_id}".encode()).hexdigest()[:12]
        suffix = f"__{role}" if role else ""
        name = f"{target.name[:_NAME_KEEP]}__{digest}{suffix}"
        return self.sql_dialect.table(ctx.load.sink.staging.schema_name, name)

    def _now(self) -> float:
        return float(self._read(self.sql_dialect.now_epoch())[0][0])

    def kept_staging(self, ctx: LoadContext) -> list[KeptStaging]:
        """Staging tables other runs of this load left behind (killed, or kept on failure)."""
        query, params = self.sql_dialect.staging_tables(ctx.load.sink.staging.schema_name)
        rows = [(r[0], r[1]) for r in self._read(query, params)]
        return kept_staging(rows, ctx, self._now())

    def _drop_stale(self, table: TableRef) -> bool:
        """Drop another run's staging; False when it is in use and was left (a sink that can
        tell overrides this)."""
        self._write(self.sql_dialect.drop_table(table))
        return True

    def sweep_stale_staging(self, ctx: LoadContext) -> list[str]:
        """Drop this load's staging left by other runs more than ``stale_after`` ago, and failed
        runs' beyond the newest ``max_kept``. Killed runs leave theirs behind (a retry of the
        same run reuses its name and recreates it)."""
        dropped: list[str] = []
        for kept, why in to_sweep(self.kept_staging(ctx), ctx):
            table = self.sql_dialect.table(ctx.load.sink.staging.schema_name, kept.name)
            if not self._drop_stale(table):
                log.info("stale staging %s is in use; left for a later run", table)
                continue
            dropped.append(str(table))
            log.info("dropped staging %s of run %s: %s", table, kept.run_id, why)
        return dropped

    def cleanup(self, ctx: LoadContext, staged: StagedData | None, succeeded: bool) -> None:
        """Drop the run's staging, or keep it as ``staging.keep`` says (labelled when failed)."""
        keep = ctx.load.sink.staging.keep
        if keep == "always" or (keep == "on_failure" and not succeeded):
            if staged is not None:
                log.info("keeping staging table %s (staging.keep=%s)", staged.staging, keep)
            if not succeeded:
                self._mark_failed(ctx)
            return
        for role in ROLES:
            self._write(self.sql_dialect.drop_table(self.staging_table(ctx, role)))

    def _mark_failed(self, ctx: LoadContext) -> None:
        """Label the run's kept staging as a failed run's (``staging.max_kept`` caps those)."""
        for role in ROLES:
            table = self.staging_table(ctx, role)
            query, params = self.sql_dialect.table_comment(table)
            found = self._read(query, params)
            label = failed_label(found[0][0] if found else None)
            if label is not None:
                self._write(self.sql_dialect.set_comment(table, label))

    def _checked_staging(self, staged: StagedData) -> TableRef:
        """Staging as the quality checks read it (a sink that stages other types than its
        target's gives a relation of the target's types)."""
        return self.sql_dialect.parse_table(staged.staging)

    def measure_quality(self, ctx: LoadContext, staged: StagedData, checks: list[Any]) -> list[Measurement]:
        """Measure each quality check on staging, read-only; samples carry key columns only."""
        return measure_checks(
            self.sql_dialect,
            lambda query, params: next(iter(self._read(query, params)), None),
            self._read,
            staging=self._checked_staging(staged),
            target=self.target_table(ctx),
            schema=staged.schema,
            keys=list(ctx.load.sink.unique_key or staged.schema.primary_key),
            staged_rows=staged.rows,
            checks=checks,
        )
