"""Checks rendered GoogleSQL offline: sqlglot's ``bigquery`` dialect must read every statement
of it in full (a script's too), never falling back to a raw ``Command``."""

from __future__ import annotations

import logging

import sqlglot
from sqlglot import exp

logging.getLogger("sqlglot").setLevel(logging.ERROR)


def statements(sql: str) -> list[exp.Expression]:
    """The statements sqlglot reads in ``sql``; AssertionError when it cannot read all of it."""
    try:
        trees = [t for t in sqlglot.parse(sql, read="bigquery", error_level=sqlglot.ErrorLevel.RAISE) if t]
    except sqlglot.errors.SqlglotError as e:
        raise AssertionError(f"sqlglot's bigquery parser cannot read: {sql}\n{e}") from None
    commands = [t.sql("bigquery") for t in trees if isinstance(t, exp.Command)]
    assert trees and not commands, f"not parsed in full ({commands}): {sql}"
    return trees


def check_bigquery(sql: str) -> list[str]:
    """The statement kinds of ``sql`` (``Merge``, ``Insert``, ``Transaction`` ...), once parsed."""
    return [type(t).__name__ for t in statements(sql)]
