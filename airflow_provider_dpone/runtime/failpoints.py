"""Crash injection at named points of a load, for the crash-safety tests.

Setting ``DPONE_FAILPOINT`` to one of :data:`POINTS` makes the process kill itself with
SIGKILL when it reaches that point: no ``finally``, no rollback, no cleanup, exactly like an
OOM kill or a lost worker. ``<point>:N`` kills at the N-th time the point is reached (e.g. after
the second staged batch). ``DPONE_FAILPOINT_ONCE`` names a marker file: then only the first
process to reach the point dies (it creates the file), so the retry of a killed task, or its
siblings on other workers, run through. Unset (always, in production), a failpoint is one dict
lookup.
"""

from __future__ import annotations

import logging
import os
import signal

ENV = "DPONE_FAILPOINT"
ONCE_ENV = "DPONE_FAILPOINT_ONCE"
POINTS = ("after_extract", "mid_copy", "after_stage", "mid_finalize", "after_finalize")
# Resumable extracts only: after a batch is staged and its checkpoint saved.
AFTER_CHECKPOINT = "after_checkpoint"
# Sources told of the commit (a change feed's slot, a consumer group): the state is committed,
# the source not yet acknowledged.
AFTER_STATE = "after_state"
# Partitioned loads only: a partition's files and manifest are written, its result not yet returned.
PARTITION_FILES = "partition_files"

log = logging.getLogger(__name__)


_hits: dict[str, int] = {}


def failpoint(name: str) -> None:
    """SIGKILL this process if ``DPONE_FAILPOINT`` names ``name`` (``name:N``: at its N-th hit)."""
    wanted = os.environ.get(ENV)
    if not wanted:
        return
    point, _, nth = wanted.partition(":")
    if point != name:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] >= int(nth or 1) and _first_to_die():
        log.warning("dpone failpoint %s: killing process %d with SIGKILL", name, os.getpid())
        for handler in logging.getLogger().handlers:
            handler.flush()
        os.kill(os.getpid(), signal.SIGKILL)


def _first_to_die() -> bool:
    """True unless ``DPONE_FAILPOINT_ONCE`` names a marker another process already created."""
    marker = os.environ.get(ONCE_ENV)
    if not marker:
        return True
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True
