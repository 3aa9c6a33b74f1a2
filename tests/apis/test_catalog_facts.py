"""``contracts/api_catalog.py`` (what validation and ``dpone init`` know of each SaaS catalogue
without importing the hooks) says what the catalogues in ``apis/`` say."""

from __future__ import annotations

import pytest

from airflow_provider_dpone.apis.catalog_facts import facts
from airflow_provider_dpone.contracts.api_catalog import RESOURCES

pytestmark = pytest.mark.unit


def test_the_light_catalogue_equals_the_catalogues() -> None:
    assert facts() == RESOURCES, (
        "contracts/api_catalog.py is out of date: run `python -m airflow_provider_dpone.apis.catalog_facts`"
    )
