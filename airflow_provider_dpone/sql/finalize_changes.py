"""Finalize of ``cdc_apply``: a change batch (Change Tracking, CDC) applied set-based. Pure.

The staged batch carries the operation column ``CHANGE_OP`` (I, U, D; S for a full snapshot),
one row per key in change order. In the one finalize transaction:

1. the key guards: NULL keys fail; of a key staged more than once the last change is kept
   (a feed read change by change, PostgreSQL's, stages every change in commit order);
2. a full snapshot (the first read, or after a state reset; the extract says so, so an empty
   one counts too) also deletes the target's keys it does not hold, within
   ``reconciliation.max_delete_fraction`` (the mass-delete guard);
3. the feed's deletes remove their keys from the target, then leave the batch;
4. the rest is merged: matched keys updated, the others inserted.

With ``reconciliation.deletes: soft`` a delete (of the feed, or by a snapshot) sets the
``soft_delete_column`` to now() instead, and a key that comes back is revived by the merge.
"""

from __future__ import annotations

from ..contracts.strategies import CHANGE_OP
from .finalize import LEFT_BATCH, FinalizeJob, TargetFacts, _active, _dedupe, _merge, mass_delete_check
from .finalize_dialect import SetBasedDialect
from .steps import Condition, Step


def cdc_apply(d: SetBasedDialect, job: FinalizeJob, facts: TargetFacts) -> list[Step]:
    """Every step of a ``cdc_apply`` finalize after the locks and the target's creation."""
    op = d.quote_ident(CHANGE_OP)
    deleted = d.quote_literal("D")
    rec = job.load.reconciliation
    soft = {rec.soft_delete_column: "now()"} if rec.deletes == "soft" else None
    active = _active(d, job.load)
    steps = _dedupe(d, job, last_change=True)
    if facts.exists:
        is_snapshot = Condition(
            "the batch is a full snapshot (the first read, or after a reset), which holds every key",
            lambda _: bool(job.snapshot),
        )
        feed_deletes = d.keys_in(job.staging, job.keys, job.mapping, f"s.{op} = {deleted}")
        steps += [
            Step(d.analyze(job.staging, job.keys), note="key statistics: the deletes join the target by key"),
            Step(
                d.count_missing_keys(job.target, job.staging, job.keys, job.mapping, active),
                when=is_snapshot,
                check=mass_delete_check(job, "the full snapshot"),
            ),
            Step(
                d.close_missing_keys(job.target, job.staging, job.keys, soft, active, job.mapping)
                if soft
                else d.delete_missing_keys(job.target, job.staging, job.keys, job.mapping),
                name="deleted_by_snapshot",
                when=is_snapshot,
            ),
            Step(
                d.close_missing_keys(
                    job.target, job.staging, job.keys, soft, active, job.mapping, feed_deletes
                )
                if soft
                else d.delete_keys_in(job.target, job.staging, job.keys, job.mapping, f"s.{op} = {deleted}"),
                name="deleted",
                note="the feed's deletes" + (" (soft)" if soft else ""),
            ),
        ]
    steps.append(
        Step(
            d.delete_where(job.staging, f"{op} = {deleted}"),
            name=LEFT_BATCH,
            note="deleted keys leave the batch before the merge",
        )
    )
    return steps + _merge(d, job, facts, guards=False, reconcile=False)
