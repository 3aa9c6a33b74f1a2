"""Manifest files: read YAML from disk, validate it (``contracts.manifest.parse_manifest``),
expand folders. File I/O lives here, next to the DAG factory and the CLI that use it; the
contracts stay pure."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from ..contracts.errors import ManifestError, ValidationIssue
from ..contracts.manifest import Manifest, parse_manifest


def _yaml_loader() -> type:
    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_manifest(path: str | Path) -> Manifest:
    """Read and validate one manifest file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ManifestError([ValidationIssue(str(path), "", f"cannot read file: {exc.strerror}")]) from None
    try:
        data = yaml.load(text, Loader=_yaml_loader())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ManifestError([ValidationIssue(str(path), "", f"invalid YAML{where}: {problem}")]) from None
    return parse_manifest(data, str(path))


def manifest_files(paths: list[str | Path]) -> list[Path]:
    """Expand directories into their ``*.yaml`` / ``*.yml`` files, sorted."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files.extend(sorted([*p.glob("*.yaml"), *p.glob("*.yml")]))
        else:
            files.append(p)
    return files


def validate_paths(paths: list[str | Path]) -> tuple[list[Manifest], list[ValidationIssue]]:
    """Validate every file; a broken one never hides the others. Pipelines must be unique."""
    manifests: list[Manifest] = []
    issues: list[ValidationIssue] = []
    owners: dict[str, str] = {}
    for file in manifest_files(paths):
        try:
            manifest = load_manifest(file)
        except ManifestError as exc:
            issues.extend(exc.issues)
            continue
        if manifest.pipeline in owners:
            issues.append(
                ValidationIssue(
                    str(file),
                    "pipeline",
                    f"'{manifest.pipeline}' is already defined in {owners[manifest.pipeline]}",
                )
            )
            continue
        owners[manifest.pipeline] = str(file)
        manifests.append(manifest)
    return manifests, issues


def broken_dag_id(file: str | Path) -> str:
    """The id of the placeholder DAG an invalid manifest file becomes."""
    return "dpone_invalid__" + re.sub(r"[^A-Za-z0-9_]+", "_", Path(file).stem)


def files_for_dag(paths: list[str | Path], dag_id: str) -> list[Path]:
    """The manifest files the DAG ``dag_id`` can come from: those whose ``pipeline`` is
    ``dag_id`` (read as YAML, not validated) and the file whose placeholder DAG it is. A task run
    parses only these, so its log never carries other manifests' errors."""
    found = []
    for file in manifest_files(paths):
        if broken_dag_id(file) == dag_id:
            found.append(file)
            continue
        try:
            data = yaml.load(file.read_text(encoding="utf-8"), Loader=_yaml_loader())
        except (OSError, yaml.YAMLError):
            continue
        if isinstance(data, dict) and data.get("pipeline") == dag_id:
            found.append(file)
    return found
