"""Wait until a ClickHouse table has rows newer than a watermark."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseSensorOperator


class ClickHouseWatermarkSensor(BaseSensorOperator):
    """Succeed once ``table`` holds at least ``min_rows`` rows with ``column`` > ``watermark``.

    :param conn_id: a ClickHouse connection (see ``DponeClickHouseHook``).
    :param table: ``database.table``.
    :param column: the watermark column (a date/time or number).
    :param watermark: the value rows must be newer than, e.g. ``{{ data_interval_end }}``;
        None waits for any row.
    :param min_rows: how many newer rows are enough.

    The watermark is bound as a parameter of the column's own type, never pasted into SQL.
    """

    template_fields: Sequence[str] = ("table", "column", "watermark")
    ui_color = "#ffcc00"

    def __init__(
        self,
        *,
        conn_id: str = "clickhouse_default",
        table: str,
        column: str,
        watermark: str | None = None,
        min_rows: int = 1,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.conn_id = conn_id
        self.table = table
        self.column = column
        self.watermark = watermark
        self.min_rows = min_rows

    def poke(self, context: Any) -> bool:
        from ..hooks.clickhouse import DponeClickHouseHook
        from ..sql.clickhouse import CLICKHOUSE as dialect

        hook = DponeClickHouseHook(conn_id=self.conn_id)
        newer = hook.count_newer(
            self.table, self.column, None if self.watermark is None else str(self.watermark)
        )
        self.log.info(
            "%s: %d row(s) with %s > %s (waiting for %d)",
            dialect.parse_table(self.table),
            newer,
            self.column,
            self.watermark,
            self.min_rows,
        )
        return newer >= self.min_rows
