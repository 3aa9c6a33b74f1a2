#!/usr/bin/env bash
# Set up everything on a fresh machine: a virtualenv in .venv with the provider, Airflow,
# the postgres extra and the dev tools. Idempotent; safe to run again, and a no-op (well
# under a second) while pyproject.toml and this script are unchanged.
#
# Nothing is installed outside .venv, so a system Python that refuses `pip install`
# (PEP 668, "externally-managed-environment", as on Debian 12+ and Ubuntu 23.04+) is fine,
# and so is a stock Debian/Ubuntu python3 without the python3-venv and python3-pip packages.
# uv is used when it is on PATH; otherwise pip and uv are installed into .venv.
#
#   PYTHON=/path/to/python3   the interpreter .venv is made from (default: python3; 3.10+)
#   DPONE_EXTRAS=dev          the extras to install (empty: the package and Airflow only)
#   PIP_INDEX_URL=...         where pip itself is fetched from when .venv has no pip and
#                             the Python has no ensurepip (default: https://pypi.org/simple)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
EXTRAS=${DPONE_EXTRAS-dev}
VENV=.venv

die() {
  echo "bootstrap: $*" >&2
  exit 1
}

# What .venv was last set up from; when it matches, there is nothing to do.
stamp_key() {
  { cat pyproject.toml scripts/bootstrap.sh; printf '%s\n' "extras=$EXTRAS" "root=$PWD"; } |
    "$VENV/bin/python" -c 'import hashlib, sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())'
}
if [ -x "$VENV/bin/python" ] && [ -f "$VENV/.dpone-bootstrap" ] &&
  [ "$(cat "$VENV/.dpone-bootstrap")" = "$(stamp_key 2>/dev/null)" ]; then
  exit 0
fi

# 1. The virtualenv: `uv venv` when uv is on PATH, else the standard library's venv module
#    without pip. Debian and Ubuntu ship the venv module with every python3; only ensurepip
#    (which `python3 -m venv` needs to add pip) is split off into the python3-venv package.
if [ -e "$VENV" ] && ! "$VENV/bin/python" -c '' >/dev/null 2>&1; then
  echo "bootstrap: $VENV has no working Python (its base interpreter moved?); recreating it" >&2
  rm -rf "$VENV"
fi
if [ ! -x "$VENV/bin/python" ]; then
  command -v "$PY" >/dev/null 2>&1 ||
    die "no '$PY' found. Install Python 3.10+ (Debian/Ubuntu: sudo apt-get install python3) or set PYTHON=/path/to/python3"
  "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 10))' ||
    die "$PY is Python $("$PY" -c 'import platform; print(platform.python_version())'); 3.10+ is needed (set PYTHON=/path/to/python3)"
  if command -v uv >/dev/null 2>&1; then
    uv venv --quiet --python "$PY" "$VENV"
  else
    "$PY" -m venv --without-pip "$VENV" ||
      die "'$PY -m venv' failed. On Debian/Ubuntu: sudo apt-get install python3-venv (or set PYTHON to another Python 3.10+)"
  fi
fi

# 2. An installer: uv from PATH, else uv inside .venv, installed there by .venv's own pip.
#    When .venv has no pip: ensurepip (Python's bundled pip wheel), and when the Python has no
#    ensurepip (Debian/Ubuntu without python3-venv), the pip wheel from the package index,
#    checked against the index's sha256 and run from the wheel file itself.
if command -v uv >/dev/null 2>&1; then
  UV=(uv)
else
  if [ ! -x "$VENV/bin/uv" ]; then
    if "$VENV/bin/python" -m pip --version >/dev/null 2>&1 ||
      "$VENV/bin/python" -m ensurepip --default-pip >/dev/null 2>&1; then
      "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check uv
    else
      echo "bootstrap: no pip and no ensurepip in $PY; fetching pip from the package index into $VENV" >&2
      "$VENV/bin/python" - <<'EOF'
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import urllib.request
from urllib.parse import urljoin

index = (os.environ.get("PIP_INDEX_URL") or "https://pypi.org/simple").rstrip("/") + "/"
request = urllib.request.Request(
    urljoin(index, "pip/"), headers={"Accept": "application/vnd.pypi.simple.v1+json"}
)
with urllib.request.urlopen(request, timeout=60) as response:
    page, base = json.load(response), response.geturl()
releases = []
for f in page["files"]:
    m = re.fullmatch(r"pip-(\d+)\.(\d+)(?:\.(\d+))?-py3-none-any\.whl", f["filename"])
    if m and not f.get("yanked") and "sha256" in f.get("hashes", {}):
        releases.append((tuple(int(p or 0) for p in m.groups()), f))
if not releases:
    sys.exit(f"bootstrap: no pip wheel listed at {urljoin(index, 'pip/')}")
wheel = max(releases, key=lambda r: r[0])[1]
with urllib.request.urlopen(urljoin(base, wheel["url"]), timeout=120) as response:
    data = response.read()
if hashlib.sha256(data).hexdigest() != wheel["hashes"]["sha256"]:
    sys.exit(f"bootstrap: {wheel['filename']} does not match the index's sha256")
with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, wheel["filename"])
    with open(path, "wb") as out:
        out.write(data)
    # pip runs from its own wheel (`python pip.whl/pip`); it installs into this venv.
    cmd = [sys.executable, os.path.join(path, "pip"), "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*cmd, path, "uv"], check=True)
EOF
    fi
  fi
  UV=("$VENV/bin/uv")
fi

# 3. The project, editable, with its extras.
"${UV[@]}" pip install --quiet --python "$VENV/bin/python" -e ".${EXTRAS:+[$EXTRAS]}"
# Write .pyc files for the installed packages (pip does this on install, uv does not), so
# processes started with PYTHONDONTWRITEBYTECODE do not recompile Airflow on every start.
"$VENV/bin/python" -m compileall -q -j 0 "$VENV"/lib/python*/site-packages >/dev/null || true
stamp_key >"$VENV/.dpone-bootstrap"
