"""``dpone certify --live``: run each connector's live profile with pytest (a subprocess of this
interpreter, in the checkout) and record the outcome: UTC date, versions, passed / failed /
skipped with the reasons. A profile passes only when at least one of its tests passed and none
failed; a profile whose tests all skipped is *skipped*, never passed."""

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


def _junit(path: Path) -> tuple[dict[str, int], list[str]]:
    """Counts of passed / failed / skipped tests and the reasons of those that did not pass."""
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    reasons: list[str] = []
    skips: dict[str, list[str]] = {}  # reason -> tests (one line per reason, not per test)
    for case in ElementTree.parse(path).getroot().iter("testcase"):
        name = f"{case.get('classname', '')}::{case.get('name', '')}"
        bad = case.find("failure") if case.find("failure") is not None else case.find("error")
        skipped = case.find("skipped")
        if bad is not None:
            counts["failed"] += 1
            message = (bad.get("message") or bad.text or "").strip().splitlines()
            reasons.append(f"failed {name}: {message[0] if message else 'no message'}")
        elif skipped is not None:
            counts["skipped"] += 1
            skips.setdefault((skipped.get("message") or "").strip(), []).append(name)
        else:
            counts["passed"] += 1
    for why, names in skips.items():
        which = names[0] if len(names) == 1 else f"{len(names)} tests ({names[0]}, ...)"
        reasons.append(f"skipped {which}: {why}")
    return counts, reasons


def outcome(returncode: int, counts: dict[str, int]) -> str:
    """passed / failed / skipped from pytest's exit code and the test counts."""
    if counts["failed"] or returncode not in (0, 1, 5):
        return "failed"
    if returncode == 1:  # a failure junit did not list (collection): never a pass
        return "failed"
    if counts["passed"]:
        return "passed"
    return "skipped" if counts["skipped"] else "failed"  # nothing ran: the profile is broken


def run_profile(root: Path, connector: str, profile: LiveProfile, *, timeout: float) -> dict[str, Any]:
    """Run ``profile``'s tests in ``root`` and return the run's record (no secret in it: the
    values of the profile's variables are masked in every message)."""
    redactor = Redactor()
    redactor.add_secret(*(os.environ[n] for n in profile.env if os.environ.get(n)))
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="dpone-live-") as tmp:
        junit = Path(tmp) / "junit.xml"
        cmd = [sys.executable, "-m", "pytest", "-m", profile.marker, "-p", "no:cacheprovider", "-q", "-rs",
               f"--junitxml={junit}", *profile.tests]  # fmt: skip
        try:
            proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=timeout)
            returncode, output = proc.returncode, proc.stdout + proc.stderr
        except subprocess.TimeoutExpired:
            returncode, output = -1, f"timed out after {timeout:g} s"
        counts, reasons = _junit(junit) if junit.is_file() else ({"passed": 0, "failed": 0, "skipped": 0}, [])
    result = outcome(returncode, counts)
    if result == "failed" and not counts["failed"]:
        tail = [ln for ln in output.strip().splitlines() if ln.strip()][-3:]
        reasons.append(f"pytest exited {returncode}: " + (" | ".join(tail) or "no output"))
    return {
        "connector": connector,
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "result": result,
        "dpone": dpone_version(),
        "python": platform.python_version(),
        "drivers": {d: v for d in profile.drivers if (v := _version(d))},
        "marker": profile.marker,
        "tests": counts,
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
