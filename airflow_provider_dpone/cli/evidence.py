"""Evidence looked up in a repository checkout: test functions (``tests/x.py::test_y``), docs
sections (``docs/x.md#Heading``) and the recorded live runs (``certification/live-results.json``).

tests/ and docs/ are not in the wheel, so this needs the checkout: the one containing the
installed package when it has both, or the one ``--root`` names. Tests are read with ``ast``,
never imported. :func:`resolve_test` is the one resolver of test ids (the capability matrix's
evidence uses the same form).
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..contracts.certification import Evidence, Found, Kind, LiveProfile
from ..contracts.errors import BadInputError

RESULTS = "certification/live-results.json"  # relative to the root unless --results says otherwise


def find_root(explicit: str | None = None) -> Path:
    """The repository checkout: ``explicit``, else the one this package is installed from."""
    candidates = [Path(explicit)] if explicit else [Path(__file__).resolve().parents[2]]
    for root in candidates:
        if (root / "tests").is_dir() and (root / "docs").is_dir():
            return root.resolve()
    where = explicit or f"{candidates[0]} (the checkout holding the package)"
    raise BadInputError(
        f"no repository checkout with tests/ and docs/ at {where}: certification reads the tests and "
        "docs of a source checkout; pass --root PATH"
    )


@dataclass(frozen=True)
class TestRef:
    """A test function found in a file, with the pytest markers written on it, its class or
    its module (``pytestmark``). Markers added at collection time (conftest) are not seen."""

    path: str
    name: str
    markers: frozenset[str]


def _marks(node: ast.AST | None) -> set[str]:
    """The names ``x`` of every ``pytest.mark.x`` in an expression."""
    found: set[str] = set()
    for sub in ast.walk(node) if node is not None else ():
        if (
            isinstance(sub, ast.Attribute)
            and isinstance(sub.value, ast.Attribute)
            and sub.value.attr == "mark"
            and isinstance(sub.value.value, ast.Name)
            and sub.value.value.id == "pytest"
        ):
            found.add(sub.attr)
    return found


def _pytestmark(body: list[ast.stmt]) -> set[str]:
    marks: set[str] = set()
    for stmt in body:
        if isinstance(stmt, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "pytestmark" for t in stmt.targets
        ):
            marks |= _marks(stmt.value)
    return marks


@lru_cache(maxsize=256)
def _tests_of(path: Path, mtime: float) -> dict[str, frozenset[str]]:
    """``name`` / ``Class::name`` -> markers, for every test function defined in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    module = _pytestmark(tree.body)
    out: dict[str, frozenset[str]] = {}
    funcs = (ast.FunctionDef, ast.AsyncFunctionDef)
    for node in tree.body:
        if isinstance(node, funcs):
            out[node.name] = frozenset(module | set().union(*(_marks(d) for d in node.decorator_list)))
        elif isinstance(node, ast.ClassDef):
            cls = module | _pytestmark(node.body) | set().union(*(_marks(d) for d in node.decorator_list))
            for item in node.body:
                if isinstance(item, funcs):
                    marks = set().union(*(_marks(d) for d in item.decorator_list))
                    out[f"{node.name}::{item.name}"] = frozenset(cls | marks)
    return out


def resolve_test(root: Path, test_id: str) -> TestRef | None:
    """The test ``path::name`` (or ``path::Class::name``) under ``root``, or None when the file
    or the function does not exist."""
    path, sep, name = test_id.partition("::")
    file = root / path
    if not sep or not name or not file.is_file():
        return None
    try:
        tests = _tests_of(file, file.stat().st_mtime)
    except SyntaxError:
        return None
    return TestRef(path, name, tests[name]) if name in tests else None


_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")


def docs_section(root: Path, ref: str) -> str | None:
    """The text of section ``docs/x.md#Heading`` (the heading to the next heading of its level
    or above, code blocks skipped when looking for headings), or None when it is not there."""
    path, _, heading = ref.partition("#")
    file = root / path
    if not file.is_file():
        return None
    lines, start, depth, fence = file.read_text(encoding="utf-8").splitlines(), None, 0, False
    for i, line in enumerate(lines):
        if line.lstrip().startswith(("```", "~~~")):
            fence = not fence
        m = None if fence else _HEADING.match(line)
        if m is None:
            continue
        if start is not None and len(m.group(1)) <= depth:
            return "\n".join(lines[start:i])
        if start is None and m.group(2).strip() == heading.strip():
            start, depth = i, len(m.group(1))
    return "\n".join(lines[start:]) if start is not None else None


def load_results(path: Path) -> list[dict[str, Any]]:
    """The recorded live runs (oldest first); none when the file does not exist."""
    if not path.exists():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BadInputError(f"{path}: not a live results file ({exc})") from None
    runs = data.get("runs") if isinstance(data, dict) else None
    if not isinstance(runs, list) or not all(
        isinstance(r, dict) and "connector" in r and "result" in r for r in runs
    ):
        raise BadInputError(f"{path}: expected {{'runs': [{{'connector', 'result', ...}}]}}")
    return runs


def latest_run(runs: list[dict[str, Any]], connector: str) -> dict[str, Any] | None:
    """The connector's last run in the file (runs are appended in the order they ran)."""
    mine = [r for r in runs if r.get("connector") == connector]
    return mine[-1] if mine else None


def describe_run(run: dict[str, Any]) -> str:
    """One line: result, date, versions, and why it did not pass."""
    versions = ", ".join(f"{k} {v}" for k, v in sorted((run.get("drivers") or {}).items()))
    head = f"{run['result']} {run.get('date', '?')} (dpone {run.get('dpone', '?')}, python {run.get('python', '?')}"
    head += f", {versions})" if versions else ")"
    why = run.get("reasons") or []
    return head + (": " + "; ".join(str(w) for w in why[:3]) if why and run["result"] != "passed" else "")


class Finder:
    """Looks evidence up in ``root`` for one connector (its live profile and recorded runs)."""

    def __init__(
        self, root: Path, runs: list[dict[str, Any]], connector: str, live: LiveProfile | None
    ) -> None:
        self.root, self.runs, self.connector, self.live = root, runs, connector, live

    def __call__(self, ev: Evidence) -> Found:
        if ev.kind is Kind.TEST:
            return self._test(ev.ref)
        if ev.kind is Kind.DOCS:
            text = docs_section(self.root, ev.ref)
            if text is None:
                page = ev.ref.partition("#")[0]
                why = "no such page" if not (self.root / page).is_file() else "no such heading"
                return Found(False, why)
            return Found(True, "section exists", text)
        if ev.kind is Kind.LIVE:
            return self._live()
        return Found(False, f"{ev.kind} is not looked up")

    def _test(self, test_id: str, marker: str | None = None) -> Found:
        ref = resolve_test(self.root, test_id)
        if ref is None:
            file = self.root / test_id.partition("::")[0]
            return Found(False, "no such file" if not file.is_file() else "no such test function")
        if marker and marker not in ref.markers:
            return Found(False, f"not marked {marker}")
        return Found(True, "defined")

    def _live(self) -> Found:
        assert self.live is not None  # judged before (a connector without a profile)
        for test_id in self.live.tests:
            found = self._test(test_id, self.live.marker)
            if not found.ok:
                return Found(False, f"{test_id}: {found.detail}")
        if not self.live.tests:
            return Found(False, "the profile names no test")
        run = latest_run(self.runs, self.connector)
        if run is None:
            return Found(False, "no recorded live run (dpone certify --live)")
        return Found(run["result"] == "passed", "latest run " + describe_run(run))
