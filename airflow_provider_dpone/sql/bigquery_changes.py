"""``cdc_apply`` on BigQuery: a change batch applied by one MERGE, in the transaction script
with the state. Pure.

The batch's last change per key (by its order column, where a key may change more than once;
else the batch must hold each key once) is read from staging through the target's types, then:
matched keys deleted (or soft-deleted) for a delete, updated otherwise; new keys inserted
unless deleted; and for a full snapshot (the first read, or after a reset) the target's keys it
lacks deleted too, within ``reconciliation.max_delete_fraction`` (counted before).
"""

from __future__ import annotations

from collections.abc import Sequence

from ..contracts.strategies import CHANGE_OP, CHANGE_SEQ
from ..runtime.protocols import Statement
from .bigquery import BigQueryDialect, Relation
from .bigquery_finalize import BigQueryFacts, _data, _names, prepare_target
from .bigquery_types import from_staging
from .finalize import FinalizeJob, _active, _dedupe, mass_delete_check
from .steps import Check, Condition, Step


def last_changes(d: BigQueryDialect, job: FinalizeJob) -> Relation:
    """Each key's last change, its columns as the target's types, with its operation."""
    data = _data(job.schema)
    columns = data.columns if data is not None else ()
    items = ", ".join(f"{from_staging(c, d.quote_ident(c.name))} as {d.quote_ident(c.name)}" for c in columns)
    op = d.quote_ident(CHANGE_OP)
    source = job.staging.sql
    if job.change_order:
        order = f"partition by {d.column_list(job.keys)} order by {d.quote_ident(CHANGE_SEQ)} desc"
        source = (
            f"(select *, row_number() over ({order}) as dpone_rn from {job.staging.sql}) where dpone_rn = 1"
        )
    query = f"select {items}, {op} from {source}"
    return Relation(job.staging.schema, job.staging.name, quote=job.staging.quote, query=query)


def cdc_merge(d: BigQueryDialect, job: FinalizeJob, source: Relation, names: Sequence[str]) -> str:
    keys, rec = job.keys, job.load.reconciliation
    op, mapping = f"s.{d.quote_ident(CHANGE_OP)}", job.mapping
    soft = rec.soft_delete_column if rec.deletes == "soft" else None
    gone = f"update set {d.quote_ident(soft)} = current_timestamp()" if soft else "delete"
    values = [n for n in names if n not in keys]
    sets = d._merge_sets(values, mapping, soft)
    into = d.column_list([d._target_name(mapping, c) for c in names])
    scols = ", ".join(f"s.{d.quote_ident(c)}" for c in names)
    active = _active(d, job.load)
    sql = f"merge into {job.target.sql} as t using {source.sql} as s on {d._key_match(keys, mapping)}"
    # a soft delete stamps only a row still present; a delete never falls to the update
    sql += f" when matched and {op} = 'D'{f' and {active}' if soft and active else ''} then {gone}"
    if sets:
        sql += f" when matched and {op} != 'D' then update set {', '.join(sets)}"
    sql += f" when not matched by target and {op} != 'D' then insert ({into}) values ({scols})"
    if job.snapshot:
        sql += f" when not matched by source{f' and {active}' if active else ''} then {gone}"
    return sql


def plan_cdc_apply(
    d: BigQueryDialect, job: FinalizeJob, facts: BigQueryFacts, extra: Sequence[Statement] = ()
) -> list[Step]:
    """Guards, the counts, the target's DDL, then one transaction: the MERGE and ``extra``."""
    keys, names = job.keys, _names(job)
    guards = _dedupe(d, job)
    guards = guards[:1] if job.change_order else guards[:2]  # NULL keys; a key twice without an order
    source = last_changes(d, job)
    counted = Check("counted before any change", lambda _o, _all: None)
    present = f"t.{d.quote_ident(d._target_name(job.mapping, keys[0]))} is not null"
    target = job.target.sql if facts.exists else f"(select * from {source.sql} where false)"
    op = f"s.{d.quote_ident(CHANGE_OP)}"
    measure = Step(
        f"select countif({op} = 'D' and {present}), countif({op} != 'D' and {present}), "
        f"countif({op} != 'D' and not {present}) from {source.sql} as s left join {target} as t "
        f"on {d._key_match(keys, job.mapping)}",
        name="changes",
        check=counted,
        note="what the batch does: deletes, updates and inserts of each key's last change",
    )
    snapshot = Condition("the batch is a full snapshot, which holds every key", lambda _: bool(job.snapshot))
    steps = [*guards, measure]
    if facts.exists:
        steps.append(
            Step(
                d.count_missing_keys(job.target, source, keys, job.mapping, _active(d, job.load)),
                name="snapshot_missing",
                when=snapshot,
                check=mass_delete_check(job, "the full snapshot"),
            )
        )
    transaction = Step(
        d.script([cdc_merge(d, job, source, names)], extra),
        name="transaction",
        note="one transaction: the changes"
        + (" and the state commit together" if extra else " commit whole"),
    )
    return [*steps, *prepare_target(d, job, facts), transaction]
