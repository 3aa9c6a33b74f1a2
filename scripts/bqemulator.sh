#!/usr/bin/env bash
# bqemulator, the BigQuery emulator (BigQuery's REST API over DuckDB) that the BigQuery tests start
# (airflow_provider_dpone/demo/bigquery_server.py), from PyPI into its own virtualenv .bqemu/ (or
# DPONE_BQEMU_DIR): it pins sqlglot<30.12, which .venv cannot share. Project-local, never global.
#
# DuckDB's spatial and avro extensions come from their PyPI wheels and are installed with
# `INSTALL '<file>'` under .bqemu/duckdb-home, which the starter passes to the emulator as HOME:
# without them the emulator downloads them at start, and there is no network but the registries.
# By hand: HOME=$PWD/.bqemu/duckdb-home .bqemu/bin/bqemulator start --project test-proj --ephemeral
#
# Idempotent: a no-op (a few milliseconds) while the marker file names these pins. When it cannot
# install (no Python 3.11+, no installer, the registry unreachable) it says why and exits 0: the
# BigQuery emulator tests then skip, naming the reason.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${DPONE_BQEMU_DIR:-.bqemu}
[[ $DIR = /* ]] || DIR="$PWD/$DIR"  # HOME below must be absolute
DUCKDB=1.5.5
PINS="bqemulator==1.4.0 duckdb==$DUCKDB duckdb-extension-spatial==$DUCKDB duckdb-extension-avro==$DUCKDB numpy==2.4.6"
MARKER="$DIR/.dpone-bqemu"  # written last, holding the pins: a partial install has none
if [ -x "$DIR/bin/bqemulator" ] && [ "$(cat "$MARKER" 2>/dev/null)" = "$PINS" ]; then
  exit 0
fi

give_up() {
  echo "bqemulator.sh: $*: the BigQuery emulator tests will skip" >&2
  exit 0
}

# The interpreter: .venv's (the project's Python) when there, else PYTHON or python3. Only the
# new virtualenv is installed into; bqemulator 1.4 needs Python 3.11+.
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] && PY=.venv/bin/python
command -v "$PY" >/dev/null 2>&1 || give_up "no '$PY' to make $DIR from"
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
  give_up "bqemulator needs Python 3.11+, and $PY is $("$PY" -c 'import platform; print(platform.python_version())')"

# The installer, found as scripts/bootstrap.sh finds it: uv on PATH, else the uv bootstrap put
# into .venv, else the new venv's own pip (python -m venv with ensurepip).
if command -v uv >/dev/null 2>&1; then
  UV=(uv)
elif [ -x .venv/bin/uv ]; then
  UV=(.venv/bin/uv)
else
  UV=()
fi

echo "bqemulator.sh: installing $PINS into $DIR" >&2
rm -rf "$DIR"
if [ ${#UV[@]} -gt 0 ]; then
  "${UV[@]}" venv --quiet --python "$PY" "$DIR" || give_up "'uv venv $DIR' failed"
  "${UV[@]}" pip install --quiet --compile-bytecode --python "$DIR/bin/python" $PINS ||
    give_up "'uv pip install' into $DIR failed (is PyPI reachable?)"
else
  "$PY" -m venv "$DIR" ||
    give_up "'$PY -m venv $DIR' failed and there is no uv (Debian: apt-get install python3-venv)"
  "$DIR/bin/python" -m pip install --quiet --disable-pip-version-check $PINS ||
    give_up "'pip install' into $DIR failed (is PyPI reachable?)"
fi

# The extensions, from the wheels' files into the extension directory of DuckDB's default home.
mkdir -p "$DIR/duckdb-home"
HOME="$DIR/duckdb-home" "$DIR/bin/python" - <<'EOF' || give_up "installing DuckDB's spatial and avro extensions failed"
import duckdb
import duckdb_extension_avro
import duckdb_extension_spatial
from pathlib import Path

connection = duckdb.connect(":memory:")
for package, name in ((duckdb_extension_spatial, "spatial"), (duckdb_extension_avro, "avro")):
    (path,) = Path(package.__path__[0]).glob(f"extensions/v{duckdb.__version__}/{name}.duckdb_extension")
    connection.execute(f"INSTALL '{path}'")
    connection.execute(f"LOAD {name}")
EOF
printf '%s\n' "$PINS" >"$MARKER"
echo "bqemulator.sh: installed into $DIR" >&2
