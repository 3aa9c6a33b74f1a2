"""``dpone replay``: a kept staging manifest loaded into the load's sink again, as a source.

The replayed files are verified like any staged export; the load's strategy, quality gates and
finalize run as always, and its state does not move (a replay re-applies an old batch, it reads
nothing new). A strategy that needs the source's key set (reconciliation of an incremental
load) cannot be replayed: the files hold the batch, not the source's keys.
"""

from __future__ import annotations

from typing import Any

from ..contracts.artifacts import ExtractResult, ObjectStorageStagingManifest
from ..contracts.errors import UnsupportedError
from ..contracts.redaction import Redactor
from ..contracts.sources import SourceSpec
from ..contracts.state import StateRecord
from ..contracts.table import TableSchema


class ReplaySource:
    """The staging manifest under ``uri`` (its store's connection: ``conn_id``) as a source of
    load ``load`` of ``pipeline``: an export another load staged is refused. The files are read
    from ``uri`` (wherever they were copied to) and never deleted by a replay."""

    def __init__(self, uri: str, conn_id: str | None, pipeline: str, load: str) -> None:
        self.uri, self.conn_id, self.pipeline, self.load = uri.rstrip("/"), conn_id, pipeline, load

    def _manifest(self) -> Any:
        import dataclasses

        from ..contracts.errors import BadInputError
        from ..staging.files import load_manifest
        from ..staging.store import store_for

        manifest = load_manifest(store_for(self.uri, self.conn_id))
        origin = dict(manifest.origin)
        if (
            origin.get("pipeline", self.pipeline) != self.pipeline
            or origin.get("load", self.load) != self.load
        ):
            raise BadInputError(
                f"--uri: {self.uri} holds an export of load '{origin.get('load')}' of pipeline "
                f"'{origin.get('pipeline')}', not of '{self.load}' of '{self.pipeline}'"
            )
        return dataclasses.replace(manifest, uri=self.uri, retention="keep")

    def _details(self, manifest: Any) -> dict[str, Any]:
        return {
            "mode": "replay",
            "uri": self.uri,
            "files": len(manifest.files),
            "staged_window": dict(manifest.window),
        }

    def extract(
        self, spec: SourceSpec, state: StateRecord | None, *, accepted_formats: tuple[str, ...] = ()
    ) -> ExtractResult:
        manifest = self._manifest()
        artifact = ObjectStorageStagingManifest(manifest, self.conn_id)
        return ExtractResult(artifact, manifest.schema, None, self._details(manifest))

    def plan_extract(self, spec: SourceSpec, state: StateRecord | None) -> tuple[dict[str, Any], TableSchema]:
        manifest = self._manifest()
        plan = {
            "sql": f"-- replay of {self.uri}: {len(manifest.files)} file(s), {manifest.rows:,} rows, verified first",
            "params": [],
            "window": self._details(manifest),
            "state_candidate": None,
            "schema": [
                {"name": c.name, "type": c.type.value, "nullable": c.nullable}
                for c in manifest.schema.columns
            ],
            "primary_key": list(manifest.schema.primary_key),
        }
        return plan, manifest.schema

    def extract_keys(
        self, spec: SourceSpec, keys: list[str], *, accepted_formats: tuple[str, ...] = ()
    ) -> ExtractResult:
        raise UnsupportedError(
            "reconciliation.deletes: a replay holds the staged batch, not the source's key set; replay "
            "this load without reconciliation, or run it against its source"
        )

    def dataset(self, table: str) -> dict[str, str] | None:
        return None

    def redactor(self) -> Redactor:
        return Redactor()
