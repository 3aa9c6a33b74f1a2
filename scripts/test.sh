#!/usr/bin/env bash
# The tests: set up, make sure PostgreSQL runs, then lint, type-check and run every test layer
# that can run here (unit + integration). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
# Azurite (npm, into .azurite/) for the Azure staging tests; they skip, saying why, without it.
bash scripts/azurite.sh || echo "test.sh: Azurite could not be installed: the Azure staging tests will skip" >&2
# bqemulator (PyPI, into its own venv .bqemu/) for the BigQuery emulator tests; they skip, saying why, without it.
bash scripts/bqemulator.sh || echo "test.sh: bqemulator could not be installed: the BigQuery emulator tests will skip" >&2
# The browser test of the UI (tests/operators/test_ui_demo.py) drives Debian's chromium with
# playwright: playwright into .venv from the `browser` extra (never `playwright install`, which
# downloads a browser), chromium from apt when it is missing and we are root.
if ! .venv/bin/python -c 'import playwright.sync_api' >/dev/null 2>&1; then
  echo "test.sh: installing playwright (the browser extra) into .venv" >&2
  if command -v uv >/dev/null 2>&1; then
    uv pip install --quiet --python .venv/bin/python -e ".[browser]"
  elif [ -x .venv/bin/uv ]; then
    .venv/bin/uv pip install --quiet --python .venv/bin/python -e ".[browser]"
  else
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[browser]"
  fi
fi
if [ -z "${DPONE_CHROMIUM:-}" ] && [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "test.sh: installing Debian's chromium for the UI test (apt-get install chromium)" >&2
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -qq chromium >/dev/null; then  # no package lists yet: update first
      apt-get update -qq && apt-get install -y -qq chromium >/dev/null ||
        { echo "test.sh: apt-get could not install chromium, which the UI test needs" >&2; exit 1; }
    fi
  else
    echo "test.sh: no /usr/bin/chromium, and installing it needs root: the UI test will skip." >&2
    echo "test.sh: install it with 'sudo apt-get install chromium' (or set DPONE_CHROMIUM to a chromium)." >&2
  fi
fi
if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null && command -v pg_ctlcluster >/dev/null 2>&1; then
  for v in $(ls /etc/postgresql 2>/dev/null); do pg_ctlcluster --skip-systemctl-redirect "$v" main start || true; done
fi
# Logical decoding for the CDC tests: wal_level=logical (a restart, once, where this machine manages the server).
bash scripts/pg_logical.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/python -m mypy
exec .venv/bin/python -m pytest -m "not integration_live and not nightly" "$@"
