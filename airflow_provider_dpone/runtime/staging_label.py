"""The label every sink writes on its staging objects, and the rule for sweeping stale ones.

A staging table's comment is ``{"dpone_staging": "<pipeline>.<load>", "run_id": ...,
"created_epoch": ...}``. Another run of the same load may drop it once it is older than
``sink.staging.stale_after``, or, once its run has failed (the label then says ``"failed":
true``), when more than ``sink.staging.max_kept`` failed runs' staging is kept (the oldest go
first); a retry of the same run reuses it instead.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .protocols import LoadContext


def staging_label(ctx: LoadContext, born_epoch: float) -> str:
    return json.dumps({"dpone_staging": ctx.key, "run_id": ctx.run_id, "created_epoch": float(born_epoch)})


def failed_label(comment: str | None) -> str | None:
    """``comment`` marked as the staging of a run that has ended in failure (and so may be
    capped by ``max_kept``); None when it is not a staging label."""
    try:
        meta: Any = json.loads(comment or "")
    except ValueError:
        return None
    if not isinstance(meta, dict) or "dpone_staging" not in meta:
        return None
    return json.dumps({**meta, "failed": True})


@dataclass(frozen=True)
class KeptStaging:
    """A staging object another run of this load left behind."""

    name: str
    run_id: str
    age_seconds: float
    failed: bool  # its run ended in failure; otherwise it was killed, or is still running


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
        kept.append(KeptStaging(name, str(meta.get("run_id")), age, bool(meta.get("failed"))))
    return sorted(kept, key=lambda k: k.age_seconds)


def to_sweep(kept: list[KeptStaging], ctx: LoadContext) -> list[tuple[KeptStaging, str]]:
    """The staging to drop, with why: older than ``stale_after``, or a failed run's beyond the
    newest ``max_kept`` failed runs (a run's batch and key-set tables count as one). Staging of
    a run that has not ended in failure (still running, or killed) goes only by age."""
    spec = ctx.load.sink.staging
    failed_runs: list[str] = []
    out = []
    for item in kept:
        if item.failed and item.run_id not in failed_runs:
            failed_runs.append(item.run_id)
        if item.age_seconds >= spec.stale_after:
            out.append((item, f"older than stale_after ({item.age_seconds:.0f}s)"))
        elif item.failed and failed_runs.index(item.run_id) >= spec.max_kept:
            out.append((item, f"more than max_kept {spec.max_kept} failed runs' staging kept"))
    return out
