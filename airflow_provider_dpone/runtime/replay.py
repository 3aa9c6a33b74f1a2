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
    """The staging manifest under ``uri`` (its store's connection: ``conn_id``) as a source."""

    def __init__(self, uri: str, conn_id: str | None = None) -> None:
        self.uri, self.conn_id = uri.rstrip("/"), conn_id

    def _manifest(self) -> Any:
        from ..staging.files import load_manifest
        from ..staging.store import store_for

        return load_manifest(store_for(self.uri, self.conn_id))

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
