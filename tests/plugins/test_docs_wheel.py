"""The wheel carries the docs the plugin serves, and the plugin finds them there."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def test_the_built_wheel_serves_its_own_docs(tmp_path: Path) -> None:
    uv = Path(sys.executable).with_name("uv")
    if not uv.exists():
        print(f"SKIPPED: no uv beside {sys.executable} to build the wheel", file=sys.stderr)
        pytest.skip(f"no uv beside {sys.executable} to build the wheel (scripts/bootstrap.sh installs it)")
    subprocess.run(
        [str(uv), "build", "--wheel", "--quiet", "-o", str(tmp_path / "dist"), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = (tmp_path / "dist").glob("airflow_provider_dpone-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        zf.extractall(tmp_path / "site")
    docs = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").rglob("*.md"))
    assert {f"airflow_provider_dpone/_docs/{d}" for d in ["README.md", "CHANGELOG.md", *docs]} <= names
    code = (  # the extracted wheel first on the path, ahead of the editable checkout
        f"import sys; sys.path.insert(0, {str(tmp_path / 'site')!r})\n"
        "from airflow_provider_dpone.plugins import docs_pages as dp\n"
        "root = dp.find_root(); print(root.relative_to(dp.PACKAGE_DIR).as_posix())\n"
        "print(dp.doc_page(root, 'docs/cli.md').title)"
    )
    found = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, check=True)
    assert found.stdout.split("\n")[:2] == ["_docs", "The dpone command"], found.stdout + found.stderr
