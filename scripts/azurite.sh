#!/usr/bin/env bash
# Azurite, the Azure Blob Storage emulator the Azure staging tests start
# (airflow_provider_dpone/demo/object_servers.py), from npm into .azurite/ (or DPONE_AZURITE_DIR):
# project-local, never global. Idempotent: a no-op when that version is already there.
# Without node and npm it says so and exits 0: the Azure tests then skip, naming the reason.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=3.35.0  # 3.37 needs Node 22; Debian 12's node is 18 or 20
DIR=${DPONE_AZURITE_DIR:-.azurite}
if grep -qs "\"version\": \"$VERSION\"" "$DIR/node_modules/azurite/package.json"; then
  exit 0
fi
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "azurite.sh: no node/npm on PATH: the Azure staging tests will skip (Debian: apt-get install nodejs npm)" >&2
  exit 0
fi
echo "azurite.sh: installing azurite@$VERSION into $DIR" >&2
mkdir -p "$DIR"
npm install --prefix "$DIR" --no-save --no-package-lock --no-audit --no-fund --loglevel=error "azurite@$VERSION" >&2
