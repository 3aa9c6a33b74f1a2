"""The command's output, and only it, on stdout.

``dpone`` may import Airflow in the middle of a command (a connection Airflow stores, a hook
that is an Airflow hook), and Airflow then sets up logging with a handler on ``sys.stdout`` as
it is at that moment. While a command runs, ``sys.stdout`` is stderr; what the command prints
for its reader goes through ``out`` to the real stdout, so ``--format json`` stays parseable.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Iterator
from typing import Any, TextIO

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2  # success, a load (or check) failed, bad input
_stdout: list[TextIO] = []


def out(*parts: Any, end: str = "\n") -> None:
    """Print the command's output (to stdout, whatever else writes to ``sys.stdout``)."""
    stream = _stdout[-1] if _stdout else sys.stdout
    print(*parts, end=end, file=stream)
    stream.flush()


@contextlib.contextmanager
def command_output() -> Iterator[None]:
    """Run a command with ``sys.stdout`` pointing at stderr and ``out`` at the real stdout."""
    _stdout.append(sys.stdout)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        _stdout.pop()


def emit(args: argparse.Namespace, data: Any, human: str) -> None:
    """``data`` as JSON with ``--format json``, else the ``human`` text."""
    out(json.dumps(data, indent=2, default=str) if args.format == "json" else human)
