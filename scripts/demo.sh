#!/usr/bin/env bash
# The demo: set up, then run the demo_orders pipeline twice under `airflow dags test`
# (first full, then incremental) and print the run reports.
# --ui [--port N] [--host H]: serve the same pipeline with `airflow standalone` instead and
# print the URL and the login; Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/python -m airflow_provider_dpone.demo "$@"
