"""The store contract (store_contract.py) on local disk (``file://``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.staging.store_contract import Directory, StoreContract

pytestmark = pytest.mark.unit


class TestLocalStore(StoreContract):
    @pytest.fixture
    def directory(self, tmp_path: Path) -> Directory:
        return Directory((tmp_path / "exports").as_uri())
