"""Central Bank of Russia: official exchange rates (XML, https://www.cbr.ru/development/SXML/).

No authentication. Bodies are XML in windows-1251; decimals use a comma. The daily rates for
a non-working day are those of the previous working day (the ``Date`` attribute says which), so
reading a date range yields each effective date once.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from .base import ApiHook, ApiSource, Resource, day_range


def _num(text: str | None) -> str | None:
    return None if text is None else text.strip().replace(",", ".")


def _date(text: str) -> str:
    return dt.datetime.strptime(text.strip(), "%d.%m.%Y").date().isoformat()


def _cbr_date(value: dt.date) -> str:
    return value.strftime("%d/%m/%Y")


def daily_records(root: Any) -> list[dict[str, Any]]:
    day = _date(root.get("Date"))
    return [
        {
            "date": day,
            "id": v.get("ID"),
            "num_code": v.findtext("NumCode"),
            "char_code": v.findtext("CharCode"),
            "nominal": v.findtext("Nominal"),
            "name": v.findtext("Name"),
            "value": _num(v.findtext("Value")),
            "unit_rate": _num(v.findtext("VunitRate")),
        }
        for v in root.iter("Valute")
    ]


def dynamic_records(root: Any) -> list[dict[str, Any]]:
    return [
        {
            "date": _date(r.get("Date")),
            "id": r.get("Id"),
            "nominal": r.findtext("Nominal"),
            "value": _num(r.findtext("Value")),
            "unit_rate": _num(r.findtext("VunitRate")),
        }
        for r in root.iter("Record")
    ]


def currency_records(root: Any) -> list[dict[str, Any]]:
    return [
        {
            "id": i.get("ID"),
            "name": i.findtext("Name"),
            "eng_name": i.findtext("EngName"),
            "nominal": i.findtext("Nominal"),
            "parent_code": (i.findtext("ParentCode") or "").strip(),
            "iso_num_code": i.findtext("ISO_Num_Code"),
            "iso_char_code": i.findtext("ISO_Char_Code"),
        }
        for i in root.iter("Item")
    ]


def daily_targets(options: dict[str, Any], filters: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """One request per day, from the watermark (or ``start_date``) through ``end_date``."""
    return [
        ("scripts/XML_daily.asp", {"date_req": _cbr_date(d)})
        for d in day_range(options, filters.get("since"))
    ]


def dynamic_targets(options: dict[str, Any], filters: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """One request for the whole range: the API filters by date on the server."""
    days = day_range(options, filters.get("since"), default_days=30)
    if not days:
        return []
    params = {
        "date_req1": _cbr_date(days[0]),
        "date_req2": _cbr_date(days[-1]),
        "VAL_NM_RQ": options["currency_id"],
    }
    return [("scripts/XML_dynamic.asp", params)]


RATE_FIELDS = {
    "date": "date",
    "id": "string",
    "num_code": "string",
    "char_code": "string",
    "nominal": "int32",
    "name": "string",
    "value": "decimal(18,4)",
    "unit_rate": "decimal(28,14)",
}
DATE_FILTER = {"param": "since", "field": "date", "format": "date"}

CBR = ApiSource(
    name="cbr",
    title="Central Bank of Russia",
    base_url="https://www.cbr.ru/",
    docs_url="https://www.cbr.ru/development/SXML/",
    auth="none (public); leave login and password empty",
    extra={"auth": "none"},
    body_format="xml",
    rate_limits="no published limit; the site blocks aggressive clients (403). dpone sends one request per "
    "requested day for daily_rates and one per range for dynamics.",
    resources={
        "daily_rates": Resource(
            name="daily_rates",
            path="scripts/XML_daily.asp",
            description="Official rates of every currency for each day (XML_daily.asp?date_req=dd/mm/yyyy)",
            fields=RATE_FIELDS,
            primary_key=("date", "char_code"),
            server_filter=DATE_FILTER,
            records=daily_records,
            targets=daily_targets,
            distinct=True,
        ),
        "dynamics": Resource(
            name="dynamics",
            path="scripts/XML_dynamic.asp",
            description="One currency's rates over a date range (XML_dynamic.asp?date_req1=..&date_req2=..&VAL_NM_RQ=..)",
            fields={
                "date": "date",
                "id": "string",
                "nominal": "int32",
                "value": "decimal(18,4)",
                "unit_rate": "decimal(28,14)",
            },
            primary_key=("date", "id"),
            server_filter=DATE_FILTER,
            records=dynamic_records,
            targets=dynamic_targets,
            required_options=("currency_id",),
        ),
        "currencies": Resource(
            name="currencies",
            path="scripts/XML_valFull.asp",
            description="The currency reference (XML_valFull.asp): ids, ISO codes, nominal",
            fields={
                "id": "string",
                "name": "string",
                "eng_name": "string",
                "nominal": "int32",
                "parent_code": "string",
                "iso_num_code": "string",
                "iso_char_code": "string",
            },
            primary_key=("id",),
            records=currency_records,
        ),
    },
)


class CbrHook(ApiHook):
    api = CBR
    conn_type = "dpone_cbr"
    hook_name = "dpone Central Bank of Russia"
