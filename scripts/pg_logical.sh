#!/usr/bin/env bash
# Logical decoding for the PostgreSQL CDC tests (docs/cdc.md): the local server needs
# wal_level=logical, a setting read only at start. When the server on 127.0.0.1:5432 runs with
# another level and this machine manages it (pg_ctlcluster, a superuser without a password), set
# it with ALTER SYSTEM and restart the cluster once; otherwise say why the CDC tests will skip.
set -uo pipefail
PSQL=(psql -X -q -At -h 127.0.0.1 -p 5432 -U postgres -d postgres)
level=$("${PSQL[@]}" -c 'show wal_level' 2>/dev/null) || {
  echo "pg_logical.sh: PostgreSQL on 127.0.0.1:5432 is not reachable as postgres: the CDC tests will skip" >&2
  exit 0
}
[ "$level" = logical ] && exit 0
if ! command -v pg_ctlcluster >/dev/null 2>&1; then
  echo "pg_logical.sh: wal_level is '$level' and pg_ctlcluster is missing: set wal_level = logical and restart the server, or the CDC tests skip" >&2
  exit 0
fi
version=$("${PSQL[@]}" -c 'show server_version_num' | cut -c1-2)
echo "pg_logical.sh: wal_level is '$level'; setting wal_level = logical and restarting PostgreSQL $version (once)" >&2
"${PSQL[@]}" -c 'alter system set wal_level = logical' || exit 0
pg_ctlcluster --skip-systemctl-redirect "$version" main restart || {
  echo "pg_logical.sh: the restart failed: the CDC tests will skip" >&2
  exit 0
}
for _ in $(seq 1 50); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.2; done
echo "pg_logical.sh: wal_level is now $("${PSQL[@]}" -c 'show wal_level')" >&2
