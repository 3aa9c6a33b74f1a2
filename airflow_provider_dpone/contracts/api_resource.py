"""What ``dpone validate`` and ``dpone init`` know of one SaaS resource (the catalogue itself,
``api_catalog.py``, is generated from the hooks' catalogues). Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class ResourceFacts:
    """One resource: its primary key, the field the API filters on (None: read in full every
    run), the ``source.options`` it needs (``a|b``: ``a``, or ``b`` standing for it)."""

    primary_key: tuple[str, ...] = ()
    cursor: str | None = None
    required_options: tuple[str, ...] = ()

    def missing_options(self, given: Mapping[str, object]) -> list[str]:
        """The required options ``given`` lacks, each as ``a`` or ``a (or b)``."""
        missing = []
        for needed in self.required_options:
            names = needed.split("|")
            if not any(given.get(n) not in (None, "") for n in names):
                missing.append(names[0] + (f" (or {', '.join(names[1:])})" if names[1:] else ""))
        return missing
