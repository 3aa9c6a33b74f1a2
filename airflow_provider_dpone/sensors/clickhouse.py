"""Wait until a ClickHouse table has rows newer than a watermark."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .deferrable import CheckSensor


class ClickHouseWatermarkSensor(CheckSensor):
    """Succeed once ``table`` holds at least ``min_rows`` rows with ``column`` > ``watermark``.

    :param conn_id: a ClickHouse connection (see ``DponeClickHouseHook``).
    :param table: ``database.table``.
    :param column: the watermark column (a date/time or number).
    :param watermark: the value rows must be newer than, e.g. ``{{ data_interval_end }}``;
        None waits for any row.
    :param min_rows: how many newer rows are enough.

    :param deferrable: check once, then wait in the triggerer (the same count every
        ``poke_interval`` seconds, from a worker thread) until enough rows or ``timeout``.

    The watermark is bound as a parameter of the column's own type, never pasted into SQL.
    """

    template_fields: Sequence[str] = ("table", "column", "watermark")
    ui_color = "#ffcc00"
    what = "ClickHouse sensor"

    def __init__(
        self,
        *,
        conn_id: str = "clickhouse_default",
        table: str,
        column: str,
        watermark: str | None = None,
        min_rows: int = 1,
        deferrable: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(deferrable=deferrable, **kwargs)
        self.conn_id = conn_id
        self.table = table
        self.column = column
        self.watermark = watermark
        self.min_rows = min_rows

    def check_call(self) -> tuple[str, dict[str, Any]]:
        watermark = None if self.watermark is None else str(self.watermark)
        arguments = {
            "conn_id": self.conn_id,
            "table": self.table,
            "column": self.column,
            "watermark": watermark,
            "min_rows": self.min_rows,
        }
        return f"{__name__}:clickhouse_check", arguments


def clickhouse_check(
    *, conn_id: str, table: str, column: str, watermark: str | None, min_rows: int
) -> tuple[bool, str]:
    """(whether ``table`` holds ``min_rows`` rows with ``column`` past ``watermark``, what was
    seen). A sensor's poke and its trigger (in a worker thread) ask this."""
    from clickhouse_connect.driver.exceptions import ClickHouseError, OperationalError

    from ..contracts.errors import BadInputError, TransientError
    from ..hooks.clickhouse import DponeClickHouseHook
    from ..sql.clickhouse import CLICKHOUSE as dialect

    hook = DponeClickHouseHook(conn_id=conn_id)
    try:
        newer = hook.count_newer(table, column, watermark)
    except OperationalError as exc:  # the server went away mid-check: the next check may work
        raise TransientError(f"the ClickHouse sensor's check: {hook.redactor().redact(str(exc))}") from None
    except ClickHouseError as exc:  # the server refused the query (a value of the wrong type...)
        raise BadInputError(f"the ClickHouse sensor's check: {hook.redactor().redact(str(exc))}") from None
    finally:
        hook.close_client()
    seen = (
        f"{dialect.parse_table(table)}: {newer} row(s) with {column} > {watermark} (waiting for {min_rows})"
    )
    return newer >= min_rows, seen
