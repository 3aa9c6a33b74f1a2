"""Wait until a REST endpoint has data newer than a dpone load's stored watermark."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseSensorOperator


class RestNewDataSensor(BaseSensorOperator):
    """Succeed once the endpoint returns at least ``min_records`` records past the watermark.

    :param source: the load's ``source`` mapping, as in the manifest: connector ``rest`` with
        an ``endpoint`` (and its ``server_filter``), or a SaaS connector with its ``resource``
        and ``options`` (``RestSource(...)``, ``SimilarwebSource(...)``...), with ``incremental``.
    :param pipeline, load, state: whose stored cursor is the watermark (``state`` is the
        manifest's state mapping); without one, any record counts.

    Each poke asks for the first page, with the server-side filter set to the watermark, of
    each request series the load sends (one, or one per domain, host or parent record) until
    one has records. A background export (Mindbox) has no such request: the sensor refuses it.
    """

    template_fields: Sequence[str] = ("source",)
    ui_color = "#f0e6ff"

    def __init__(
        self,
        *,
        source: dict[str, Any],
        pipeline: str,
        load: str,
        state: dict[str, Any] | None = None,
        min_records: int = 1,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.source, self.pipeline, self.load = source, pipeline, load
        self.state = state or {}
        self.min_records = min_records

    def poke(self, context: Any) -> bool:
        from ..contracts.manifest import StateSpec
        from ..contracts.sources import source_spec
        from ..hooks.registry import build_hook
        from ..state import build_state_backend

        spec = source_spec(self.source)
        stored = build_state_backend(StateSpec.model_validate(self.state)).get(self.pipeline, self.load)
        hook = build_hook(spec.connector, spec.conn_id)  # the REST hook, or a SaaS catalog's
        found = hook.probe(spec, stored)
        self.log.info("%s: %d record(s) past %s", spec.object_name, found, stored)
        return found >= self.min_records
