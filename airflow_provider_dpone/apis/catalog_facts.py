"""Writes ``contracts/api_catalog.py``: what ``dpone validate`` and ``dpone init`` need to know of
each SaaS catalogue (its resources, their keys, the field the API filters on, the options they
need) without importing the hooks (Airflow). ``tests/apis/test_catalog_facts.py`` keeps the two
equal: after changing a catalogue, run ``python -m airflow_provider_dpone.apis.catalog_facts``.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

from ..contracts.api_resource import ResourceFacts
from ..contracts.connectors import CONNECTORS

TARGET = Path(__file__).resolve().parents[1] / "contracts" / "api_catalog.py"
HEADER = '''"""The resources of each SaaS API catalogue, as ``dpone validate`` and ``dpone init`` check them
without importing the hooks. Generated from ``apis/`` by ``python -m
airflow_provider_dpone.apis.catalog_facts``; do not edit (a test compares it with the catalogues).
"""

from __future__ import annotations

from .api_resource import ResourceFacts

'''


def facts() -> dict[str, dict[str, ResourceFacts]]:
    """What the catalogues of every API connector say (imports their hooks: Airflow)."""
    found: dict[str, dict[str, ResourceFacts]] = {}
    for name, info in sorted(CONNECTORS.items()):
        if info.objects != "resource":
            continue
        module, _, cls = info.hook.partition(":")
        api = getattr(importlib.import_module(module), cls).api

        def needed(options: tuple[str, ...], aliases: dict[str, tuple[str, ...]]) -> tuple[str, ...]:
            return tuple("|".join((o, *aliases.get(o, ()))) for o in options)

        found[name] = {
            res_name: ResourceFacts(
                tuple(res.primary_key),
                (res.server_filter or {}).get("field"),
                needed(tuple(res.required_options), api.option_aliases),
            )
            for res_name, res in sorted(api.resources.items())
        }
    return found


def render() -> str:
    """The module's text (``ruff format`` then lays it out)."""
    lines = [HEADER.rstrip("\n"), "", "", "RESOURCES: dict[str, dict[str, ResourceFacts]] = {"]
    for name, resources in facts().items():
        lines.append(f"    {name!r}: {{")
        lines += [
            f"        {r!r}: ResourceFacts({f.primary_key!r}, {f.cursor!r}, {f.required_options!r}),"
            for r, f in resources.items()
        ]
        lines.append("    },")
    lines.append("}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    TARGET.write_text(render(), encoding="utf-8")
    subprocess.run([sys.executable, "-m", "ruff", "format", "--quiet", str(TARGET)], check=False)
    print(f"wrote {TARGET}", file=sys.stderr)
