"""What every manifest model shares: strict keys, and the connector and table name checks."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict

from .connectors import CONNECTORS

_TABLE = re.compile(r"^[^.\s\"]+(\.[^.\s\"]+)?$")


def check_connector(value: str) -> str:
    if value not in CONNECTORS:
        raise ValueError(f"unknown connector '{value}'; allowed: {', '.join(sorted(CONNECTORS))}")
    return value


def check_table(value: str | None) -> str | None:
    if value is not None and not _TABLE.match(value):
        raise ValueError(f"'{value}' is not 'table' or 'schema.table'")
    return value


class Strict(BaseModel):
    """A manifest model: an unknown key is an error."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
