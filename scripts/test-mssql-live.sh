#!/usr/bin/env bash
# The SQL Server live suite in one command, on a machine with Docker:
#   bash scripts/test-mssql-live.sh [pytest args]
# starts docker-compose's SQL Server 2022 (Agent on; scripts/mssql/init.sql enables snapshot
# isolation, Change Tracking and CDC on dpone_test), waits for it, then runs every test that
# needs DPONE_MSSQL_URI (sink contract, routes, change feeds, crash matrix) and the benchmark.
# An already running server is used as is: set DPONE_MSSQL_URI yourself and skip Docker.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -z "${DPONE_MSSQL_URI:-}" ]]; then
  command -v docker >/dev/null || { echo "docker is not installed; set DPONE_MSSQL_URI to a SQL Server instead" >&2; exit 2; }
  docker compose up -d --wait mssql
  docker compose run --rm mssql-init
  export DPONE_MSSQL_URI='mssql://sa:Dpone-Test-1@127.0.0.1:1433/dpone_test?trust_server_certificate=yes'
fi
bash scripts/bootstrap.sh
.venv/bin/pytest -rs -p no:cacheprovider tests/hooks/test_sink_contract.py tests/hooks/test_mssql_live.py -k mssql "$@"
.venv/bin/python benchmarks/mssql.py --rows "${DPONE_BENCH_ROWS:-1000000}"
