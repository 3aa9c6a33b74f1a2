"""Evidence looked up in a repository checkout: test functions (``tests/x.py::test_y``), docs
sections (``docs/x.md#Heading``) and the recorded live runs (``certification/live-results.json``).

tests/ and docs/ are not in the wheel, so this needs the checkout: the one containing the
installed package when it has both, or the one ``--root`` names. Tests are read with ``ast``,
never imported. :func:`resolve_test` is the one resolver of test ids (the capability matrix's
evidence uses the same form).
"""

from __future__ import annotations

import ast
import datetime as dt
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..contracts.certification import (
    TEST_ID,
    Evidence,
    Found,
    Kind,
    LiveProfile,
    judge_live_run,
    record_problems,
)
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
    """A test pytest collects (a ``test*`` function, or a ``test*`` method of a ``Test*`` class
    without ``__init__``), with the pytest markers written on it, its class or its module
    (``pytestmark``); ``never_runs`` says why it can never run, when it cannot. Markers added at
    collection time (conftest) are not seen."""

    path: str
    name: str
    markers: frozenset[str]
    never_runs: str | None = None


_Mark = tuple[str, ast.Call | None]  # pytest.mark.<name>, with its call when it has arguments


def _mark(node: ast.expr) -> _Mark | None:
    """``pytest.mark.x`` or ``mark.x`` (``from pytest import mark``), called or not."""
    call = node if isinstance(node, ast.Call) else None
    target = call.func if call is not None else node
    if not isinstance(target, ast.Attribute):
        return None
    base = target.value
    if (isinstance(base, ast.Name) and base.id == "mark") or (
        isinstance(base, ast.Attribute)
        and base.attr == "mark"
        and isinstance(base.value, ast.Name)
        and base.value.id == "pytest"
    ):
        return target.attr, call
    return None


def _applied(exprs: list[ast.expr]) -> list[_Mark]:
    """The marks applied by decorators or a ``pytestmark`` value (one mark, a list or tuple)."""
    found: list[_Mark] = []
    for expr in exprs:
        items = expr.elts if isinstance(expr, ast.List | ast.Tuple) else [expr]
        found += [m for m in map(_mark, items) if m is not None]
    return found


def _pytestmark(body: list[ast.stmt]) -> list[_Mark]:
    return _applied(
        [
            stmt.value
            for stmt in body
            if isinstance(stmt, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "pytestmark" for t in stmt.targets)
        ]
    )


def _true(node: ast.expr | None) -> bool:
    """A condition written as a constant that is always true (``True``, ``1``, ``"True"``)."""
    if not isinstance(node, ast.Constant):
        return False
    return node.value.strip() in ("True", "1") if isinstance(node.value, str) else bool(node.value)


def _condition(call: ast.Call | None) -> tuple[bool, ast.expr | None]:
    """Whether a skipif / xfail mark has a condition, and the first one."""
    if call is None:
        return False, None
    given = list(call.args) + [k.value for k in call.keywords if k.arg == "condition"]
    return bool(given), given[0] if given else None


def _never_runs(marks: list[_Mark]) -> str | None:
    """Why a test with ``marks`` can never run (or its outcome is never checked), if so: a
    ``skip``; a ``skipif`` without a condition or with one that is always true; an ``xfail``
    without a condition, with one always true, or with ``run=False``. A conditional skip (a
    missing service, variable or platform) is fine: the test runs where the condition holds."""
    for name, call in marks:
        has, first = _condition(call)
        if name == "skip":
            return "marked skip"
        if name == "skipif" and (not has or _true(first)):
            return "marked skipif with a condition that is always true"
        if name == "xfail":
            if call is not None and any(
                k.arg == "run" and isinstance(k.value, ast.Constant) and k.value.value is False
                for k in call.keywords
            ):
                return "marked xfail(run=False)"
            if not has or _true(first):
                return "marked xfail unconditionally: its outcome is never checked"
    return None


def _skips_itself(body: list[ast.stmt]) -> str | None:
    """A body whose own statement (not under an ``if``) is ``pytest.skip(...)`` / ``xfail``."""
    for stmt in body:
        if (
            isinstance(stmt, ast.Expr)
            and isinstance(stmt.value, ast.Call)
            and isinstance(fn := stmt.value.func, ast.Attribute)
            and fn.attr in ("skip", "xfail")
            and isinstance(fn.value, ast.Name)
            and fn.value.id == "pytest"
        ):
            return f"calls pytest.{fn.attr}() unconditionally"
    return None


def _ref(path: str, name: str, marks: list[_Mark], body: list[ast.stmt], module: str | None) -> TestRef:
    why = module or _never_runs(marks) or _skips_itself(body)
    return TestRef(path, name, frozenset(m for m, _ in marks), why)


@lru_cache(maxsize=256)
def _tests_of(path: Path, rel: str, mtime: float) -> dict[str, TestRef]:
    """``name`` / ``Class::name`` -> the test, for every test pytest collects in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    module = _pytestmark(tree.body)
    whole = _skips_itself(tree.body)  # pytest.skip(..., allow_module_level=True)
    out: dict[str, TestRef] = {}
    funcs = (ast.FunctionDef, ast.AsyncFunctionDef)
    for node in tree.body:
        if isinstance(node, funcs) and node.name.startswith("test"):
            marks = module + _applied(node.decorator_list)
            out[node.name] = _ref(rel, node.name, marks, node.body, whole)
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            if any(isinstance(i, funcs) and i.name == "__init__" for i in node.body):
                continue  # pytest does not collect a class with __init__
            cls = module + _pytestmark(node.body) + _applied(node.decorator_list)
            for item in node.body:
                if isinstance(item, funcs) and item.name.startswith("test"):
                    name = f"{node.name}::{item.name}"
                    out[name] = _ref(rel, name, cls + _applied(item.decorator_list), item.body, whole)
    return out


def resolve_test(root: Path, test_id: str) -> TestRef | None:
    """The test ``path::name`` (or ``path::Class::name``) under ``root``'s tests/, or None when
    the id is not of that form (``..`` included), or the file or the test does not exist."""
    if not TEST_ID.fullmatch(test_id):
        return None
    path, _, name = test_id.partition("::")
    file = root / path
    if not file.is_file():
        return None
    try:
        return _tests_of(file, path, file.stat().st_mtime).get(name)
    except SyntaxError:
        return None


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


def section_body(section: str) -> str:
    """The text of a section (from :func:`docs_section`) without its headings: what it says."""
    kept, fence = [], False
    for line in section.splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            fence = not fence
        if fence or not _HEADING.match(line):
            kept.append(line)
    return "\n".join(kept).strip()


def load_results(path: Path) -> list[dict[str, Any]]:
    """The recorded live runs (oldest first); none when the file does not exist. A record
    ``dpone certify --live`` could not have written (hand-written, incomplete, contradicting its
    own counts) makes the whole file bad input, each such record named: evidence that cannot be
    vouched for is refused, not skipped."""
    if not path.exists():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BadInputError(f"{path}: not a live results file ({exc})") from None
    runs = data.get("runs") if isinstance(data, dict) else None
    if not isinstance(runs, list) or not all(isinstance(r, dict) for r in runs):
        raise BadInputError(f"{path}: expected {{'runs': [{{'connector', 'result', ...}}]}}")
    now = dt.datetime.now(dt.timezone.utc)
    bad = [
        f"run {i + 1} ({r.get('connector', '?')}): {'; '.join(p)}"
        for i, r in enumerate(runs)
        if (p := record_problems(r, now))
    ]
    if bad:
        raise BadInputError(
            f"{path}: {len(bad)} record(s) not written by `dpone certify --live`: "
            + " | ".join(bad[:5])
            + ("" if len(bad) <= 5 else f" | and {len(bad) - 5} more")
            + "; delete them (or the file) and record runs with `dpone certify --live`"
        )
    return runs


def latest_run(runs: list[dict[str, Any]], connector: str) -> dict[str, Any] | None:
    """The connector's last run in the file (runs are appended in the order they ran)."""
    mine = [r for r in runs if r.get("connector") == connector]
    return mine[-1] if mine else None


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
            if not section_body(text):
                return Found(False, "the section is empty (a heading without text)")
            return Found(True, "section exists", text)
        if ev.kind is Kind.LIVE:
            return self._live()
        return Found(False, f"{ev.kind} is not looked up")

    def _test(self, test_id: str, marker: str | None = None) -> Found:
        ref = resolve_test(self.root, test_id)
        if ref is None:
            file = self.root / test_id.partition("::")[0]
            return Found(False, "no such file" if not file.is_file() else "no such test")
        if ref.never_runs:
            return Found(False, f"can never run: {ref.never_runs}")
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
        return judge_live_run(latest_run(self.runs, self.connector), self.live)
