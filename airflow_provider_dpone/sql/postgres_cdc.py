"""PostgreSQL logical decoding for ``incremental.mode: cdc``: the names of a load's slot and
publication, and every statement the CDC source runs. Pure: strings and parameters.

A load reads its own replication slot (``pgoutput``) through the SQL interface: the changes
committed before the WAL position read at run start are peeked, staged and applied, and the
slot is advanced to that position only after the sink and the state committed.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from ..contracts.errors import BadInputError
from ..contracts.sources import SourceSpec
from ..contracts.strategies import CHANGE_OP, CHANGE_SEQ, IncrementalMode
from .dialect import TableRef
from .pgoutput import lsn_int
from .postgres import POSTGRES as dialect

PLUGIN = "pgoutput"
_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

# Output functions run in the session that peeks: the text they write must not depend on it.
# pgoutput sends text converted to the session's client encoding: UTF-8, what the sink reads.
DECODE_SESSION = (
    "set client_encoding to 'UTF8'; set datestyle to 'ISO, YMD'; set intervalstyle to 'postgres'; "
    "set extra_float_digits to 3; set bytea_output to 'hex'; set timezone to 'UTC'"
)

SERVER = (
    "select current_setting('wal_level'), current_setting('server_version_num')::int, current_database(), "
    "r.rolsuper or r.rolreplication, current_setting('max_replication_slots')::int, "
    "(select count(*) from pg_replication_slots)::int "
    "from pg_roles as r where r.rolname = current_user"
)

# replica identity, kind (r table, p partitioned), inheritance children, a deferrable primary key
TABLE = (
    "select c.relreplident, c.relkind, exists (select 1 from pg_inherits as i where i.inhparent = c.oid), "
    "exists (select 1 from pg_constraint as k where k.conrelid = c.oid and k.contype in ('p', 'u') "
    "and k.condeferrable) from pg_class as c where c.oid = to_regclass(%s)"
)

COLUMNS = (
    "select a.attname, a.atttypid::int, a.atthasdef or a.atthasmissing, a.attgenerated <> '' "
    "from pg_attribute as a where a.attrelid = to_regclass(%s) and a.attnum > 0 "
    "and not a.attisdropped order by a.attnum"
)


def publication(version: int) -> str:
    """One row of publication ``%s``: whether it publishes inserts, updates, deletes and
    truncates, through the partition root, and the table (``%s``, ``%s``) with its column list
    and row filter (servers before 15 have neither: null)."""
    filters = "t.attnames, t.rowfilter" if version >= 150000 else "null::name[], null::text"
    return (
        "select p.pubinsert and p.pubupdate and p.pubdelete, p.pubtruncate, p.pubviaroot, "
        f"t.tablename is not null, {filters} from pg_publication as p "
        "left join pg_publication_tables as t on t.pubname = p.pubname and t.schemaname = %s "
        "and t.tablename = %s where p.pubname = %s"
    )


SLOT = (
    "select s.plugin, s.slot_type, s.database, s.confirmed_flush_lsn::text, s.active, "
    "coalesce(s.wal_status, ''), pg_current_wal_flush_lsn()::text, "
    "pg_wal_lsn_diff(pg_current_wal_flush_lsn(), s.restart_lsn)::bigint "
    "from pg_replication_slots as s where s.slot_name = %s"
)

# Where a run reads up to: the WAL flushed to disk, all of which a peek decodes (the write
# position may be ahead of it, and what lies between would be skipped by the next run).
CURRENT_LSN = "select pg_current_wal_flush_lsn()::text"
DROP_SLOT = "select pg_drop_replication_slot(%s)"
ADVANCE = "select pg_replication_slot_advance(%s, %s::pg_lsn)::text"
PEEK = (
    "select data from pg_logical_slot_peek_binary_changes(%s, %s::pg_lsn, null, "
    "'proto_version', '1', 'publication_names', %s)"
)


def check_name(field: str, name: str) -> str:
    """A slot or publication name: lowercase letters, digits and underscores, at most 63."""
    if not _NAME.match(name):
        raise BadInputError(
            f"{field}: {name!r} is not a valid name; use lowercase letters, digits and underscores "
            "(at most 63, not starting with a digit)"
        )
    return name


def default_name(key: str) -> str:
    """The slot (and publication) of load ``pipeline.load``: ``dpone_`` and its name, cut to fit
    with a hash of the whole so that two loads never share one."""
    clean = re.sub(r"[^a-z0-9_]+", "_", key.lower()).strip("_")
    digest = hashlib.sha256(key.encode()).hexdigest()[:8]
    return f"dpone_{clean[:48]}_{digest}"


def create_publication(name: str, table: TableRef) -> str:
    """A publication of every change of ``table``; a partitioned table's changes published as
    the table's own (the snapshot reads the partitions through it)."""
    return (
        f"create publication {dialect.quote_ident(name)} for table {table.sql} "
        "with (publish_via_partition_root = true)"
    )


def drop_publication(name: str) -> str:
    return f"drop publication if exists {dialect.quote_ident(name)}"


def create_slot(slot: str) -> bytes:
    """The replication command that creates ``slot`` and exports the snapshot of its start
    (the form every supported server accepts; run on a replication connection)."""
    return f"CREATE_REPLICATION_SLOT {check_name('slot', slot)} LOGICAL {PLUGIN} EXPORT_SNAPSHOT".encode()


def set_snapshot(snapshot: str) -> str:
    """Import an exported snapshot: the first statement of a REPEATABLE READ transaction."""
    return f"set transaction snapshot {dialect.quote_literal(snapshot)}"


def is_cdc(spec: SourceSpec) -> bool:
    """Whether ``spec`` reads a change feed through logical decoding."""
    return spec.incremental is not None and spec.incremental.mode is IncrementalMode.CDC


def snapshot_rows(select: str) -> str:
    """``select``'s rows as a change batch's snapshot rows (operation ``S``, order 0: a
    snapshot holds each key once)."""
    op, seq = dialect.quote_ident(CHANGE_OP), dialect.quote_ident(CHANGE_SEQ)
    return f"select s.*, 'S'::varchar(1) as {op}, 0::bigint as {seq} from ({select}) as s"


WARN_FRACTION = 0.8  # of max_retained_wal: a warning before the limit
DEFAULT_WARN_BYTES = 1 << 30  # without a limit, a slot holding more WAL than this warns


def slot_health(
    slot: str,
    publication: str,
    row: tuple | None,
    limit: int | None,
) -> dict[str, Any]:
    """What the slot of a load holds back: ``row`` is ``SLOT``'s answer (None: no slot). The
    verdict: ``ok``, ``warn`` (near ``limit``, or above 1 GiB without one), ``over`` (above
    ``limit``), ``lost`` (invalidated: its changes are gone) or ``missing``."""
    health: dict[str, Any] = {"slot": slot, "publication": publication, "max_retained_wal": limit}
    if row is None:
        return health | {"verdict": "missing", "message": f"replication slot '{slot}' does not exist"}
    _plugin, _kind, database, confirmed, active, wal_status, current, retained = row
    lag = None if confirmed is None else lsn_int(current) - lsn_int(confirmed)
    health |= {
        "database": database,
        "active": bool(active),
        "wal_status": wal_status or None,
        "confirmed_lsn": confirmed,
        "current_lsn": current,
        "lag_bytes": lag,
        "retained_wal_bytes": None if retained is None else int(retained),
    }
    held = int(retained or 0)
    if wal_status == "lost":
        verdict, message = "lost", f"replication slot '{slot}' was invalidated: its changes are gone"
    elif limit is not None and held > limit:
        verdict, message = (
            "over",
            f"slot '{slot}' holds {_size(held)} of WAL, over max_retained_wal {_size(limit)}",
        )
    elif held > (limit * WARN_FRACTION if limit is not None else DEFAULT_WARN_BYTES):
        bound = f"max_retained_wal {_size(limit)}" if limit is not None else "no max_retained_wal set"
        verdict, message = "warn", f"slot '{slot}' holds {_size(held)} of WAL ({bound})"
    else:
        verdict, message = "ok", f"slot '{slot}' holds {_size(held)} of WAL, {_size(lag or 0)} behind"
    return health | {"verdict": verdict, "message": message}


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"
