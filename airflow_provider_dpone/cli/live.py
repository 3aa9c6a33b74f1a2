"""``dpone certify --live``: run each connector's live profile with pytest (a subprocess of this
interpreter, in the checkout) and record the outcome: UTC date, versions, the marker, each
test's outcome, passed / failed / skipped counts with the reasons. A profile passes only when
every one of its tests passed; some skipped is *partial*, all skipped *skipped*: neither is a
pass."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from importlib import metadata
from pathlib import Path
from typing import Any

from ..contracts.certification import LiveProfile
from ..contracts.redaction import Redactor

KEEP = 30  # runs kept per connector in the results file


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def dpone_version() -> str:
    from .. import __version__

    return _version("airflow-provider-dpone") or __version__


def _case_of(test_id: str) -> tuple[str, str]:
    """The junit ``(classname, name)`` pytest gives ``tests/a/b.py::[Class::]name`` (run with
    ``--rootdir`` the checkout): ``("tests.a.b[.Class]", "name")``, ``name[param]`` when
    parametrized."""
    path, _, rest = test_id.partition("::")
    *cls, name = rest.split("::")
    return ".".join([path.removesuffix(".py").replace("/", "."), *cls]), name


def _junit(path: Path, tests: tuple[str, ...]) -> tuple[dict[str, int], dict[str, str], list[str]]:
    """Counts of passed / failed / skipped cases, the outcome of each test of the profile
    (failed over skipped over passed across its parameters; ``not run`` when pytest ran none of
    it) and the reasons of what did not pass, naming every skipped test."""
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    ids = {_case_of(t): t for t in tests}
    seen: dict[str, set[str]] = {t: set() for t in tests}
    reasons: list[str] = []
    skips: dict[str, list[str]] = {}  # reason -> tests (one line per reason, every test named)
    for case in ElementTree.parse(path).getroot().iter("testcase"):
        cls, name = case.get("classname", ""), case.get("name", "")
        test_id = ids.get((cls, name.partition("[")[0]))
        shown = f"{test_id}{name[len(name.partition('[')[0]) :]}" if test_id else f"{cls}::{name}"
        bad = case.find("failure") if case.find("failure") is not None else case.find("error")
        skipped = case.find("skipped")
        if bad is not None:
            got = "failed"
            message = (bad.get("message") or bad.text or "").strip().splitlines()
            reasons.append(f"failed {shown}: {message[0] if message else 'no message'}")
        elif skipped is not None:
            got = "skipped"
            skips.setdefault((skipped.get("message") or "").strip(), []).append(shown)
        else:
            got = "passed"
        counts[got] += 1
        if test_id:
            seen[test_id].add(got)
    for why, names in skips.items():
        reasons.append(f"skipped {', '.join(names)}: {why or 'no reason given'}")
    outcomes = {
        t: next((o for o in ("failed", "skipped", "passed") if o in got), "not run")
        for t, got in seen.items()
    }
    unrun = [t for t, o in outcomes.items() if o == "not run"]
    if unrun:
        reasons.append(f"not run (not collected, or deselected by -m): {', '.join(unrun)}")
    return counts, outcomes, reasons


def outcome(returncode: int, counts: dict[str, int], outcomes: dict[str, str]) -> str:
    """passed / partial / skipped / failed from pytest's exit code and each test's outcome:
    *passed* only when every test of the profile passed; *partial* when the others skipped;
    *failed* when one failed, was not run, or pytest itself failed."""
    got = set(outcomes.values())
    if counts["failed"] or returncode not in (0, 5) or not got or got & {"failed", "not run"}:
        return "failed"  # exit 1 without a failed case: a collection error, never a pass
    if got == {"passed"}:
        return "passed"
    return "partial" if "passed" in got else "skipped"


def run_profile(root: Path, connector: str, profile: LiveProfile, *, timeout: float) -> dict[str, Any]:
    """Run ``profile``'s tests in ``root`` and return the run's record (no secret in it: the
    values of the profile's variables are masked in every message)."""
    redactor = Redactor()
    redactor.add_secret(*(os.environ[n] for n in profile.env if os.environ.get(n)))
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="dpone-live-") as tmp:
        junit = Path(tmp) / "junit.xml"
        cmd = [sys.executable, "-m", "pytest", "-m", profile.marker, "-p", "no:cacheprovider", "-q", "-rs",
               f"--rootdir={root}", f"--junitxml={junit}", *profile.tests]  # fmt: skip
        try:
            proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=timeout)
            returncode, output = proc.returncode, proc.stdout + proc.stderr
        except subprocess.TimeoutExpired:
            returncode, output = -1, f"timed out after {timeout:g} s"
        if junit.is_file():
            counts, outcomes, reasons = _junit(junit, profile.tests)
        else:
            counts, outcomes, reasons = {"passed": 0, "failed": 0, "skipped": 0}, {}, []
        outcomes = {t: outcomes.get(t, "not run") for t in profile.tests}
    result = outcome(returncode, counts, outcomes)
    if result == "failed" and not counts["failed"] and returncode != 0:  # pytest itself says why
        tail = [ln for ln in output.strip().splitlines() if ln.strip()][-3:]
        reasons.insert(0, f"pytest exited {returncode}: " + (" | ".join(tail) or "no output"))
    return {
        "connector": connector,
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "result": result,
        "dpone": dpone_version(),
        "python": platform.python_version(),
        "drivers": {d: v for d in profile.drivers if (v := _version(d))},
        "marker": profile.marker,
        "tests": counts,
        "outcomes": outcomes,
        "reasons": [str(redactor.redact(r)) for r in reasons],
        "env_missing": [n for n in profile.env if not os.environ.get(n)],
        "seconds": round(time.monotonic() - started, 1),
    }


def record(path: Path, runs: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Append ``new`` to ``runs``, keep the last :data:`KEEP` per connector, write ``path``."""
    merged = runs + new
    kept: list[dict[str, Any]] = []
    for run in reversed(merged):
        if sum(1 for k in kept if k["connector"] == run["connector"]) < KEEP:
            kept.append(run)
    kept.reverse()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps({"version": 1, "runs": kept}, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    return kept
