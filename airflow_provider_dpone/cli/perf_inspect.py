"""The PostgreSQL tables of a load as ``dpone perf advise`` looks at them: the sink's target
(unique indexes, fillfactor, size, dead rows, HOT updates) and a source table (its primary key,
for ``parallel.by``). Read-only, through the standalone engine; an unreachable database is
reported, never raised."""

from __future__ import annotations

from typing import Any

from ..contracts.manifest import LoadSpec
from ..runtime.perf_model import Inspection, TableFacts

_TABLE = """
select c.oid, c.relkind = 'p', case when c.reltuples < 0 then null else c.reltuples::bigint end,
       pg_total_relation_size(c.oid),
       (select option_value from pg_options_to_table(c.reloptions) where option_name = 'fillfactor'),
       s.n_live_tup, s.n_dead_tup, s.n_tup_upd, s.n_tup_hot_upd,
       greatest(s.last_vacuum, s.last_autovacuum)::text
from pg_class c
join pg_namespace n on n.oid = c.relnamespace
left join pg_stat_user_tables s on s.relid = c.oid
where n.nspname = %s and c.relname = %s and c.relkind in ('r', 'p')
"""
# Unique indexes on plain columns (no expression, no predicate) that are valid, primary key first.
_UNIQUE = """
select i.indisprimary,
       array(select a.attname::text from unnest(i.indkey::int2[]) with ordinality k(attnum, ord)
             join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum order by k.ord),
       array(select format_type(a.atttypid, a.atttypmod)
             from unnest(i.indkey::int2[]) with ordinality k(attnum, ord)
             join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum order by k.ord)
from pg_index i
where i.indrelid = %s and i.indisunique and i.indisvalid and i.indpred is null and i.indexprs is null
order by i.indisprimary desc
"""


def inspect_load(load: LoadSpec) -> list[Inspection]:
    """The sink's target when it is PostgreSQL, and the source table when it is one."""
    out = []
    if load.sink.connector == "postgres" and load.sink.table:
        out.append(inspect_table("sink", load.sink.conn_id, load.sink.table))
    table = getattr(load.source, "table", None)
    if load.source.connector == "postgres" and isinstance(table, str):
        out.append(inspect_table("source", load.source.conn_id, table))
    return out


def inspect_table(role: str, conn_id: str, table: str) -> Inspection:
    """The facts of ``table`` over ``conn_id``, or the (masked) reason they could not be read."""
    from ..hooks.connection import known_credentials
    from ..sql.postgres import POSTGRES

    ref = POSTGRES.parse_table(table)
    name = str(ref)
    hook: Any = None
    try:
        from ..hooks.registry import build_hook

        hook = build_hook("postgres", conn_id, standalone=True)
        with hook.session() as conn:
            conn.read_only = True
            try:
                facts = _facts(conn, name, ref.schema, ref.name)
            finally:
                conn.rollback()
        return Inspection(role, name, facts=facts)
    except Exception as exc:
        redact = hook.redactor().redact if hook is not None else known_credentials().redact
        return Inspection(
            role, name, error=f"not reachable through '{conn_id}': {redact(f'{type(exc).__name__}: {exc}')}"
        )
    finally:
        if hook is not None:
            hook.release()


def _facts(conn: Any, name: str, schema: str, table: str) -> TableFacts:
    row = conn.execute(_TABLE, (schema, table)).fetchone()
    if row is None:
        return TableFacts(name, exists=False)
    oid, partitioned, estimated, size, fillfactor, live, dead, updates, hot, vacuumed = row
    unique = conn.execute(_UNIQUE, (oid,)).fetchall()
    primary = next(
        ((tuple(cols), dict(zip(cols, types, strict=True))) for is_pk, cols, types in unique if is_pk),
        ((), {}),
    )
    return TableFacts(
        table=name,
        exists=True,
        primary_key=primary[0],
        key_types=primary[1],
        unique_indexes=tuple(tuple(cols) for _, cols, _ in unique),
        fillfactor=int(fillfactor) if fillfactor is not None else None,
        total_bytes=size,
        estimated_rows=estimated,
        live_rows=live,
        dead_rows=dead,
        updates=updates,
        hot_updates=hot,
        last_vacuum=vacuumed,
        partitioned=bool(partitioned),
    )
