"""What every set-based SQL sink (PostgreSQL, SQL Server) does the same way inside its finalize
transaction, once the target is locked: re-plan the schema from the catalog, check the target
still exists when the state says it was loaded, read the target's facts, run the planned steps
and report. A sink supplies its catalog reads (``_describe_target``, ``_facts``), its
transaction and its executor; ``dpone plan`` renders the same steps from the same ``_job``.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable
from typing import Any

from ..contracts.strategies import CHANGE_SEQ, Strategy
from ..contracts.table import TableSchema
from ..runtime.guards import missing_target_error
from ..runtime.protocols import LoadContext, StagedData
from ..schema.planner import SchemaPlan, enforce_schema_plan, plan_schema
from .dialect import TableRef
from .finalize import FinalizeJob, TargetFacts, plan_finalize
from .finalize_result import finalize_result
from .journal import JournalingStagingSink
from .staging_sink import StagingSink
from .steps import Outcome, Step, run_steps
from .targets import data_schema, managed_columns


def finalize_job(
    sink: StagingSink, ctx: LoadContext, schema: TableSchema | None, plan: SchemaPlan | None, **kw: Any
) -> FinalizeJob:
    """What a sink's finalize planner is given: the load, its target and staging (the run's, or
    ``staging``), the batch's data columns and the schema plan's mapping and changes."""
    return FinalizeJob(
        key=ctx.key,
        load=ctx.load,
        target=sink.target_table(ctx),
        staging=kw.pop("staging", None) or sink.staging_table(ctx),
        schema=data_schema(schema) if schema is not None else None,
        change_order=schema is not None and schema.has(CHANGE_SEQ),
        mapping=plan.column_map if plan else {},
        schema_changes=tuple(plan.to_apply) if plan else (),
        **kw,
    )


def staged_job(
    sink: StagingSink, ctx: LoadContext, staged: StagedData, plan: SchemaPlan, d: Any
) -> FinalizeJob:
    """The finalize job of a staged batch: its staging (and key set) as dialect ``d`` names
    them, its row count, and whether it is a change feed's full snapshot."""
    return finalize_job(
        sink,
        ctx,
        staged.schema,
        plan,
        staging=d.parse_table(staged.staging),
        key_set=d.parse_table(staged.key_set) if staged.key_set else None,
        staged_rows=staged.rows,
        snapshot=bool(staged.details.get("snapshot")),
    )


class SetBasedSink(JournalingStagingSink):
    """The finalize of a staging sink whose strategies are set-based statements in one transaction."""

    @abstractmethod
    def _describe_target(self, cur: Any, target: TableRef) -> tuple[TableSchema | None, list[str]]:
        """The target's columns and primary key (None when it does not exist), and the columns
        that have a default."""

    @abstractmethod
    def _facts(self, cur: Any, ctx: LoadContext, target: TableRef, schema: TableSchema | None) -> TargetFacts:
        """The target as finalize finds it (after the lock in a run, read-only in a plan)."""

    def _plan_schema(self, cur: Any, ctx: LoadContext, target: TableRef, schema: TableSchema) -> SchemaPlan:
        """The schema plan of the batch's data columns into ``target``, from its catalog now."""
        evolution = ctx.load.schema_evolution
        current, defaults = self._describe_target(cur, target)
        return plan_schema(
            data_schema(schema),
            current,
            mode=evolution.mode,
            on_type_change=evolution.on_type_change,
            ignore_target_columns=[c.name for c in managed_columns(ctx.load)],
            rewrites_all_rows=ctx.load.rewrites_whole_target,
            target_defaults=defaults,
        )

    def _job(
        self, ctx: LoadContext, schema: TableSchema | None, plan: SchemaPlan | None, **kw: Any
    ) -> FinalizeJob:
        return finalize_job(self, ctx, schema, plan, **kw)

    def _finalize_locked(
        self, cur: Any, ctx: LoadContext, staged: StagedData, execute: Callable[[Step], Outcome]
    ) -> dict[str, Any]:
        """The finalize after its locks, on the transaction's cursor: the result it reports."""
        target, d = self.target_table(ctx), self.sql_dialect
        plan = self._plan_schema(cur, ctx, target, staged.schema)
        enforce_schema_plan(plan, str(target))
        if not plan.target_exists and ctx.expects_target:
            raise missing_target_error(ctx, during_load=True)
        facts = self._facts(cur, ctx, target, staged.schema)
        job = staged_job(self, ctx, staged, plan, d)
        outcomes = run_steps(plan_finalize(d, job, facts), execute)
        result: dict[str, Any] = {
            "target": str(target),
            "schema_changes": [c.describe() for c in plan.to_apply],
            **finalize_result(job, facts, outcomes),
        }
        if not facts.exists and ctx.load.sink.strategy is not Strategy.FULL_REFRESH:
            result["created"] = True
        return result
