"""scripts/bootstrap.sh on a stock Debian/Ubuntu: the system Python refuses ``pip install``.

The test builds that machine the way CI can: a scratch HOME, a PATH without ``uv``, and a
"system" Python of its own (a copy of this interpreter whose prefix is a scratch directory)
whose standard library carries an ``EXTERNALLY-MANAGED`` marker (PEP 668), which has pip (as
with Debian's python3-pip) but no ensurepip (as without python3-venv). It first checks that
``pip install`` into that Python really is refused, then runs the real script from a copy of
the repository with ``PYTHON`` pointing at it, and checks that the script succeeded, that
nothing was installed into that Python or the scratch HOME, and that the new
``.venv/bin/python`` imports the provider.

It is an ``integration`` test: it creates a virtualenv and installs Airflow from the package
index with an empty uv cache (``DPONE_EXTRAS=""``: the package and Airflow, without the dev
extra's drivers and tools, to keep it near a minute).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import time
import zipfile
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[1]
VERSION = f"{sys.version_info.major}.{sys.version_info.minor}"


def _pip_wheel() -> Path | None:
    """The pip wheel this Python's ensurepip bundles (Debian keeps it in /usr/share/python-wheels)."""
    stdlib = Path(sysconfig.get_path("stdlib"))
    for pattern in (stdlib / "ensurepip" / "_bundled", Path("/usr/share/python-wheels")):
        wheels = sorted(pattern.glob("pip-*-py3-none-any.whl"))
        if wheels:
            return wheels[-1]
    return None


def _files(root: Path) -> set[str]:
    """Every real file and directory under root (symlinks listed, not followed)."""
    found: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            found.add(os.path.relpath(os.path.join(dirpath, name), root))
    return found


def make_system_python(root: Path) -> Path:
    """A Python whose prefix is ``root``: its binary copied, its standard library symlinked
    entry by entry (without ensurepip), an empty site-packages with pip in it, and the
    PEP 668 marker in the place ``sysconfig.get_path('stdlib')`` points."""
    binary = Path(os.path.realpath(getattr(sys, "_base_executable", sys.executable)))
    real_stdlib = Path(sysconfig.get_path("stdlib"))
    (root / "bin").mkdir(parents=True)
    python = root / "bin" / f"python{VERSION}"
    shutil.copy2(binary, python)
    (root / "bin" / "python3").symlink_to(python.name)
    lib = root / "lib"
    stdlib = lib / f"python{VERSION}"
    stdlib.mkdir(parents=True)
    for so in real_stdlib.parent.glob("libpython*"):  # a shared build finds it via $ORIGIN/../lib
        (lib / so.name).symlink_to(so)
    for entry in real_stdlib.iterdir():
        if entry.name not in ("site-packages", "dist-packages", "ensurepip", "EXTERNALLY-MANAGED"):
            (stdlib / entry.name).symlink_to(entry)
    (stdlib / "EXTERNALLY-MANAGED").write_text(
        "[externally-managed]\nError=This Python is managed by the test's package manager.\n"
    )
    paths = subprocess.run(
        [
            str(python),
            "-c",
            "import sysconfig; print(sysconfig.get_path('stdlib')); print(sysconfig.get_path('purelib'))",
        ],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": os.environ["PATH"]},
    ).stdout.split()
    assert paths[0] == str(stdlib), f"the scratch Python's stdlib is {paths[0]}, not {stdlib}"
    purelib = Path(paths[1])
    assert root in purelib.parents, purelib
    purelib.mkdir(parents=True, exist_ok=True)
    wheel = _pip_wheel()
    if wheel is None:
        pytest.skip("no bundled pip wheel to give the scratch system Python a pip")
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(purelib)
    return python


def _scratch_env(home: Path) -> dict[str, str]:
    """A login-like environment: scratch HOME, PATH without uv, proxies and CA settings kept."""
    path = [
        d
        for d in os.environ["PATH"].split(os.pathsep)
        if d and not os.access(os.path.join(d, "uv"), os.X_OK) and ".venv" not in Path(d).parts
    ]
    env = {
        "HOME": str(home),
        "PATH": os.pathsep.join(path),
        "LANG": "C.UTF-8",
        **{
            k: v
            for k, v in os.environ.items()
            if k.lower() in ("http_proxy", "https_proxy", "no_proxy", "ssl_cert_file", "ssl_cert_dir")
        },
    }
    assert shutil.which("uv", path=env["PATH"]) is None
    if shutil.which("bash", path=env["PATH"]) is None:
        pytest.skip("bash is only on a PATH directory that also holds uv")
    return env


def _repo_copy(dest: Path) -> Path:
    """What `pip install -e .` and the scripts need, without .venv (others use the real one)."""
    dest.mkdir()
    for name in ("pyproject.toml", "README.md", "CHANGELOG.md", "LICENSE"):
        if (ROOT / name).exists():
            shutil.copy2(ROOT / name, dest / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("airflow_provider_dpone", "scripts", "docs"):  # docs: the wheel ships them (pyproject)
        shutil.copytree(ROOT / name, dest / name, ignore=ignore)
    return dest


def test_bootstrap_on_a_pep668_python_without_uv(tmp_path: Path) -> None:
    system = tmp_path / "system-python"
    python = make_system_python(system)
    home = tmp_path / "home"
    home.mkdir()
    env = _scratch_env(home)

    # The scratch Python really refuses installs, the way Debian's does.
    refused = subprocess.run(
        [str(python), "-m", "pip", "install", "--no-index", "uv"], env=env, capture_output=True, text=True
    )
    assert refused.returncode != 0
    assert "externally-managed-environment" in refused.stdout + refused.stderr
    no_venv = subprocess.run([str(python), "-m", "ensurepip", "--help"], env=env, capture_output=True)
    assert no_venv.returncode != 0  # like Debian/Ubuntu without python3-venv
    before = _files(system)

    repo = _repo_copy(tmp_path / "repo")
    started = time.monotonic()
    run = subprocess.run(
        ["bash", "scripts/bootstrap.sh"],
        cwd=repo,
        env={**env, "PYTHON": str(python), "DPONE_EXTRAS": ""},
        capture_output=True,
        text=True,
        timeout=840,
    )
    first = time.monotonic() - started
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    assert "fetching pip from the package index" in run.stderr  # no pip, no ensurepip: the hard path
    print(f"first bootstrap: {first:.1f}s")

    assert _files(system) == before, "bootstrap installed into the system Python"
    assert not (home / ".local").exists(), "bootstrap installed into the user site"
    venv_python = repo / ".venv" / "bin" / "python"
    imported = subprocess.run(
        [
            str(venv_python),
            "-c",
            "import sys, airflow, airflow_provider_dpone; print(sys.prefix); print(airflow_provider_dpone.__file__)",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert imported.returncode == 0, imported.stderr[-4000:]
    prefix, module = imported.stdout.split()
    assert Path(prefix) == repo / ".venv"
    assert Path(module).is_relative_to(repo / "airflow_provider_dpone")  # the editable install

    # Idempotent, and a no-op the second time.
    started = time.monotonic()
    again = subprocess.run(
        ["bash", "scripts/bootstrap.sh"],
        cwd=repo,
        env={**env, "PYTHON": str(python), "DPONE_EXTRAS": ""},
        capture_output=True,
        text=True,
        timeout=300,
    )
    second = time.monotonic() - started
    assert again.returncode == 0, again.stderr[-4000:]
    assert second < 5, f"second run took {second:.1f}s (first {first:.1f}s)"
    assert _files(system) == before
    print(f"second bootstrap: {second:.2f}s")
