"""The label every sink writes on its staging objects, and the rule for sweeping stale ones.

A staging table's comment is ``{"dpone_staging": "<pipeline>.<load>", "run_id": ...,
"created_epoch": ...}``. Another run of the same load may drop it once it is older than
``sink.staging.stale_after``; a retry of the same run reuses it instead.
"""

from __future__ import annotations

import json

from .protocols import LoadContext


def staging_label(ctx: LoadContext, born_epoch: float) -> str:
    return json.dumps({"dpone_staging": ctx.key, "run_id": ctx.run_id, "created_epoch": float(born_epoch)})


def stale_age(comment: str | None, ctx: LoadContext, now_epoch: float) -> tuple[float, str] | None:
    """(age in seconds, run id) when ``comment`` labels another run's staging of this load that
    is older than ``stale_after``; None for anything else (this run's, another load's, unlabelled)."""
    try:
        meta = json.loads(comment or "")
    except ValueError:
        return None
    if not isinstance(meta, dict) or meta.get("dpone_staging") != ctx.key or meta.get("run_id") == ctx.run_id:
        return None
    age = float(now_epoch) - float(meta.get("created_epoch", now_epoch))
    if age < ctx.load.sink.staging.stale_after:
        return None
    return age, str(meta.get("run_id"))
