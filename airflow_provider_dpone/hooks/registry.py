"""Resolve a connector name to its hook class, importing the driver only now."""

from __future__ import annotations

import importlib
from typing import Any

from ..contracts.connectors import CONNECTORS
from ..contracts.errors import BadInputError, MissingExtraError


def hook_class(connector: str) -> type:
    info = CONNECTORS.get(connector)
    if info is None:
        raise BadInputError(f"unknown connector '{connector}'; allowed: {', '.join(sorted(CONNECTORS))}")
    module_name, _, class_name = info.hook.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise MissingExtraError(exc.name or connector, info.extra) from None
    return getattr(module, class_name)


def build_hook(connector: str, conn_id: str) -> Any:
    return hook_class(connector)(conn_id=conn_id)
