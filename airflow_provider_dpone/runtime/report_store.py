"""Run reports on disk, one JSON file per run, so ``dpone report`` can show past runs.

The directory is ``DPONE_REPORT_DIR`` (or ``dpone run --report-dir``); files live under
``<dir>/<pipeline>/<load>/`` and sort by start time.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from .report import RunReport

ENV_DIR = "DPONE_REPORT_DIR"
DEFAULT_DIR = ".dpone/reports"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def report_dir(explicit: str | None = None, default: str | None = DEFAULT_DIR) -> Path | None:
    chosen = explicit or os.environ.get(ENV_DIR) or default
    return Path(chosen) if chosen else None


def save_report(report: RunReport, directory: Path) -> Path:
    """Write the report atomically (temp file, then rename); returns its path."""
    folder = directory / _UNSAFE.sub("_", report.pipeline) / _UNSAFE.sub("_", report.load)
    folder.mkdir(parents=True, exist_ok=True)
    stamp = report.started_at.replace(":", "").replace("-", "")
    path = folder / f"{stamp}__{_UNSAFE.sub('_', report.run_id)[:80]}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(report.to_json(), encoding="utf-8")
    tmp.replace(path)
    return path


def find_reports(
    directory: Path, pipeline: str | None = None, load: str | None = None, last: int = 1
) -> list[RunReport]:
    """The newest ``last`` reports per load, filtered by pipeline and load, oldest first."""
    found: list[RunReport] = []
    for load_dir in sorted(p for p in directory.glob("*/*") if p.is_dir()):
        files = sorted(load_dir.glob("*.json"))[-last:] if last > 0 else []
        for file in files:
            report = RunReport.from_dict(json.loads(file.read_text(encoding="utf-8")))
            if (pipeline is None or report.pipeline == pipeline) and (load is None or report.load == load):
                found.append(report)
    return sorted(found, key=lambda r: r.started_at)
