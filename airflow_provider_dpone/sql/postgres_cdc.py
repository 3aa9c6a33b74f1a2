"""PostgreSQL logical decoding for ``incremental.mode: cdc``: the names of a load's slot and
publication, and every statement the CDC source runs. Pure: strings and parameters.

A load reads its own replication slot (``pgoutput``) through the SQL interface: the changes
committed before the WAL position read at run start are peeked, staged and applied, and the
slot is advanced to that position only after the sink and the state committed.
"""

from __future__ import annotations

import hashlib
import re

from ..contracts.errors import BadInputError
from ..contracts.sources import SourceSpec
from ..contracts.strategies import CHANGE_OP, IncrementalMode
from .dialect import TableRef
from .postgres import POSTGRES as dialect

PLUGIN = "pgoutput"
_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

# Output functions run in the session that peeks: the text they write must not depend on it.
DECODE_SESSION = (
    "set datestyle to 'ISO, YMD'; set intervalstyle to 'postgres'; set extra_float_digits to 3; "
    "set bytea_output to 'hex'; set timezone to 'UTC'"
)

SERVER = (
    "select current_setting('wal_level'), current_setting('server_encoding'), current_database(), "
    "r.rolsuper or r.rolreplication, current_setting('max_replication_slots')::int, "
    "(select count(*) from pg_replication_slots)::int "
    "from pg_roles as r where r.rolname = current_user"
)

TABLE = (
    "select c.relreplident, pg_has_role(c.relowner, 'USAGE') from pg_class as c where c.oid = to_regclass(%s)"
)

COLUMNS = (
    "select a.attname, a.atttypid::int, a.atthasdef or a.atthasmissing, a.attgenerated <> '' "
    "from pg_attribute as a where a.attrelid = to_regclass(%s) and a.attnum > 0 "
    "and not a.attisdropped order by a.attnum"
)

PUBLICATION = (
    "select p.pubupdate and p.pubdelete and p.pubinsert, exists (select 1 from pg_publication_tables as t "
    "where t.pubname = p.pubname and t.schemaname = %s and t.tablename = %s) "
    "from pg_publication as p where p.pubname = %s"
)

SLOT = (
    "select s.plugin, s.slot_type, s.database, s.confirmed_flush_lsn::text, s.active, "
    "coalesce(s.wal_status, ''), pg_current_wal_lsn()::text, "
    "pg_wal_lsn_diff(pg_current_wal_lsn(), s.restart_lsn)::bigint "
    "from pg_replication_slots as s where s.slot_name = %s"
)

CURRENT_LSN = "select pg_current_wal_lsn()::text"
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
    return f"create publication {dialect.quote_ident(name)} for table {table.sql}"


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
    """``select``'s rows as a change batch's snapshot rows (operation ``S``)."""
    return f"select s.*, 'S'::varchar(1) as {dialect.quote_ident(CHANGE_OP)} from ({select}) as s"
