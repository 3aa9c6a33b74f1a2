"""A load given as operator arguments (a Python DAG) checked by the manifest's own rules, so a
DAG file fails to parse with the messages ``dpone validate`` prints. Pure: no Airflow, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .manifest import LoadSpec, StateSpec, parse_manifest

PLACEHOLDER = "templated"
"""What a Jinja template or a run-time value (an XComArg) stands as while the DAG is parsed."""

_PLAIN = (str, int, float, bool, type(None))


def load_mapping(
    name: str,
    source: Mapping[str, Any],
    sink: Mapping[str, Any],
    *,
    description: str | None = None,
    quality: Sequence[Mapping[str, Any]] | None = None,
    schema_evolution: Mapping[str, Any] | None = None,
    reconciliation: Mapping[str, Any] | None = None,
    parallel: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The manifest ``loads[]`` entry the arguments describe (unset ones left to the defaults)."""
    load: dict[str, Any] = {"name": name, "source": source, "sink": sink}
    extras = {
        "description": description,
        "quality": quality,
        "schema_evolution": schema_evolution,
        "reconciliation": reconciliation,
        "parallel": parallel,
    }
    load.update({k: v for k, v in extras.items() if v is not None})
    return load


def is_template(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def unrendered(value: Any) -> Any:
    """``value`` as plain data with every template string and every run-time object (an
    XComArg) replaced by :data:`PLACEHOLDER`: what can be checked before the run."""
    if isinstance(value, Mapping):
        return {str(k): unrendered(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [unrendered(v) for v in value]
    if is_template(value) or not isinstance(value, _PLAIN):
        return PLACEHOLDER
    return value


def check_load(
    pipeline: str, load: Mapping[str, Any], state: Mapping[str, Any] | None, file: str
) -> tuple[LoadSpec, StateSpec]:
    """The load and state validated as a one-load manifest of ``pipeline``; raises
    :class:`~.errors.ManifestError` naming ``file``, the load and the field."""
    data = {"pipeline": pipeline, "state": dict(state or {}), "loads": [dict(load)]}
    manifest = parse_manifest(data, file)
    return manifest.loads[0], manifest.state
