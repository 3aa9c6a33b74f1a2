"""The vendors' default request pace is not slept in these tests (their fakes have no rate
limit); ``tests/apis/test_pacing.py`` checks the pace itself with a fake clock. A test marked
``paced`` keeps the real waits."""

from __future__ import annotations

import pytest

from airflow_provider_dpone.hooks import rest_pace


@pytest.fixture(autouse=True)
def _unpaced(request, monkeypatch):
    if request.node.get_closest_marker("paced") is None:
        monkeypatch.setattr(rest_pace.Pace, "wait", lambda self: 0.0)
