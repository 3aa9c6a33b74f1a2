"""What the ``dpone init`` tests share: the flags of a PostgreSQL pair and a REST source, a
terminal stand-in, no stdin by default, and running the command."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from airflow_provider_dpone.cli.main import main

PG_PG = ["--source", "postgres", "--source-conn", "shop_pg", "--sink", "postgres", "--sink-conn", "dwh_pg"]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def no_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads the runner's stdin: a flag-only run sees a closed, non-terminal stdin."""
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    monkeypatch.delenv("DPONE_MANIFESTS_DIR", raising=False)


def init(capsys: pytest.CaptureFixture[str], out: Path, *argv: str) -> tuple[int, str, str]:
    code = main(["init", *argv, "--output", str(out)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


REST = ["--pipeline", "api", "--source", "rest", "--source-conn", "api", "--sink", "postgres"]
