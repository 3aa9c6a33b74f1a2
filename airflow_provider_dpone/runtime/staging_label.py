"""The label every sink writes on its staging objects, and the rule for sweeping stale ones.

A staging table's comment is ``{"dpone_staging": "<pipeline>.<load>", "run_id": ...,
"created_epoch": ...}``. Another run of the same load may drop it once it is older than
``sink.staging.stale_after``, or when more than ``sink.staging.max_kept`` other runs' staging
is kept (the oldest go first); a retry of the same run reuses it instead.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .protocols import LoadContext


def staging_label(ctx: LoadContext, born_epoch: float) -> str:
    return json.dumps({"dpone_staging": ctx.key, "run_id": ctx.run_id, "created_epoch": float(born_epoch)})


@dataclass(frozen=True)
class KeptStaging:
    """A staging object another run of this load left behind."""

    name: str
    run_id: str
    age_seconds: float


def kept_staging(rows: list[tuple[str, str | None]], ctx: LoadContext, now_epoch: float) -> list[KeptStaging]:
    """Other runs' staging of this load among ``(name, comment)`` rows, newest first."""
    kept = []
    for name, comment in rows:
        try:
            meta: Any = json.loads(comment or "")
        except ValueError:
            continue
        if (
            not isinstance(meta, dict)
            or meta.get("dpone_staging") != ctx.key
            or meta.get("run_id") == ctx.run_id
        ):
            continue
        age = float(now_epoch) - float(meta.get("created_epoch", now_epoch))
        kept.append(KeptStaging(name, str(meta.get("run_id")), age))
    return sorted(kept, key=lambda k: k.age_seconds)


def to_sweep(
    rows: list[tuple[str, str | None]], ctx: LoadContext, now_epoch: float
) -> list[tuple[KeptStaging, str]]:
    """The staging to drop, with why: older than ``stale_after``, or beyond the newest
    ``max_kept`` runs (a run's batch and key-set tables count as one)."""
    spec = ctx.load.sink.staging
    runs: list[str] = []
    out = []
    for kept in kept_staging(rows, ctx, now_epoch):
        if kept.run_id not in runs:
            runs.append(kept.run_id)
        if kept.age_seconds >= spec.stale_after:
            out.append((kept, f"older than stale_after ({kept.age_seconds:.0f}s)"))
        elif runs.index(kept.run_id) >= spec.max_kept:
            out.append((kept, f"more than max_kept {spec.max_kept} runs' staging kept"))
    return out
