"""The BigQuery hook: the sink (``bigquery_connector``) on the official google provider's
``BigQueryHook``, whose ``google_cloud_platform`` connection gives the credentials (key file,
keyfile JSON, impersonation, workload identity, or ``is_anonymous`` for an emulator) and the
project; ``location`` (the datasets' region) from the hook's argument or the connection's extra.

The hook's client is ``BigQueryHook.get_client``: it honours ``BIGQUERY_EMULATOR_HOST`` for a
local emulator, as google-cloud-bigquery does. Jobs use standard SQL whatever the provider's
legacy-SQL default says.
"""

from __future__ import annotations

from typing import Any

from ..contracts.errors import MissingExtraError

try:
    from airflow.providers.google.cloud.hooks.bigquery import BigQueryHook
except ImportError as _exc:  # pragma: no cover - exercised by the missing-extra test
    raise MissingExtraError(_exc.name or "airflow.providers.google", "bigquery") from None

from .bigquery_connector import BigQueryConnector
from .connection import conn_id_of, probe


class DponeBigQueryHook(BigQueryConnector, BigQueryHook):
    """The BigQuery sink and state host on a ``google_cloud_platform`` connection."""

    hook_name = "dpone BigQuery"
    default_conn_name = "google_cloud_default"

    def __init__(
        self,
        gcp_conn_id: str | None = None,
        *,
        conn_id: str | None = None,
        location: str | None = None,
        **kwargs: Any,
    ) -> None:
        """``gcp_conn_id`` (what Airflow passes) or its alias ``conn_id``; ``location``: the
        datasets' region (else the connection's extra ``location``)."""
        chosen = conn_id_of(self, gcp_conn_id, conn_id)
        super().__init__(gcp_conn_id=chosen, use_legacy_sql=False, location=location, **kwargs)
        self.location = location or self.get_connection(chosen).extra_dejson.get("location")

    @property
    def dpone_conn_id(self) -> str:  # type: ignore[override]  # declared as an attribute by the connector
        return str(self.gcp_conn_id)

    def _client(self) -> Any:
        return self.get_client(project_id=self.project_id, location=self.location)

    def test_connection(self) -> tuple[bool, str]:  # type: ignore[override]
        """The UI's Test button: a query job (anonymous credentials pass the provider's own test
        without contacting anything); no credential in the message."""
        return probe(self.redactor(), lambda: f"select 1 returned {self.jobs.query('select 1')[2]}")
