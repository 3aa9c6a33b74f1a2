#!/usr/bin/env bash
# Set up everything on a fresh machine: a virtualenv in .venv with the provider, Airflow,
# the postgres extra and the dev tools. Idempotent; safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if ! command -v uv >/dev/null 2>&1; then
  "$PY" -m pip install --quiet --disable-pip-version-check uv
fi
UV=$(command -v uv || echo "$PY -m uv")
[ -x .venv/bin/python ] || $UV venv --quiet --python "$PY" .venv
$UV pip install --quiet --python .venv/bin/python -e ".[dev]"
# Write .pyc files for the installed packages (pip does this on install, uv does not), so
# processes started with PYTHONDONTWRITEBYTECODE do not recompile Airflow on every start.
.venv/bin/python -m compileall -q -j 0 .venv/lib/python*/site-packages >/dev/null || true
