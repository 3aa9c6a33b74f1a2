"""The resources of each SaaS API catalogue, as ``dpone validate`` and ``dpone init`` check them
without importing the hooks. Generated from ``apis/`` by ``python -m
airflow_provider_dpone.apis.catalog_facts``; do not edit (a test compares it with the catalogues).
"""

from __future__ import annotations

from .api_resource import ResourceFacts

RESOURCES: dict[str, dict[str, ResourceFacts]] = {
    "appsflyer": {
        "daily_report": ResourceFacts(
            ("app_id", "date", "agency_pmd", "media_source", "campaign"), "date", ()
        ),
        "in_app_events": ResourceFacts((), "event_time", ()),
        "in_app_events_retarget": ResourceFacts((), "event_time", ()),
        "installs": ResourceFacts(("app_id", "appsflyer_id"), "event_time", ()),
        "installs_retarget": ResourceFacts(("app_id", "appsflyer_id", "event_time"), "event_time", ()),
        "organic_in_app_events": ResourceFacts((), "event_time", ()),
        "organic_installs": ResourceFacts(("app_id", "appsflyer_id"), "event_time", ()),
        "organic_uninstall_events": ResourceFacts(("app_id", "appsflyer_id", "event_time"), "event_time", ()),
        "partners_by_date": ResourceFacts(
            ("app_id", "date", "agency_pmd", "media_source", "campaign"), "date", ()
        ),
        "uninstall_events": ResourceFacts(("app_id", "appsflyer_id", "event_time"), "event_time", ()),
    },
    "cbr": {
        "currencies": ResourceFacts(("id",), None, ()),
        "daily_rates": ResourceFacts(("date", "char_code"), "date", ()),
        "dynamics": ResourceFacts(("date", "id"), "date", ("currency_id",)),
    },
    "fasttrack": {
        "cascade_transactions": ResourceFacts(("transaction_uuid",), None, ("uuid",)),
        "chat_sessions": ResourceFacts(("uuid_polzovatelya", "data_nachala"), None, ("uuid",)),
        "flex_cms_ratings": ResourceFacts((), None, ("category",)),
    },
    "google_ads": {
        "ad_group_stats": ResourceFacts(("ad_group_id", "date"), "date", ()),
        "app_stats": ResourceFacts(("campaign_id", "date"), "date", ()),
        "campaign_stats": ResourceFacts(("campaign_id", "date"), "date", ()),
        "campaigns": ResourceFacts(("campaign_id",), None, ()),
        "demand_gen_stats": ResourceFacts(("campaign_id", "date"), "date", ()),
        "display_stats": ResourceFacts(("ad_group_id", "ad_group_ad_ad_id", "date"), "date", ()),
        "keyword_stats": ResourceFacts(
            ("ad_group_id", "ad_group_criterion_criterion_id", "ad_group_criterion_keyword_text", "date"),
            "date",
            (),
        ),
        "pmax_stats": ResourceFacts(("campaign_id", "date"), "date", ()),
        "shopping_stats": ResourceFacts(("campaign_id", "date"), "date", ()),
        "webpage_stats": ResourceFacts(("webpage_view_resource_name", "date"), "date", ()),
    },
    "google_sheets": {
        "sheets": ResourceFacts(("sheet_id",), None, ("spreadsheet_id|spreadsheet_url",)),
        "values": ResourceFacts((), None, ("spreadsheet_id|spreadsheet_url",)),
    },
    "mindbox": {
        "customer_actions": ResourceFacts((), "export_period", ("endpoint_id",)),
        "customers": ResourceFacts((), None, ("endpoint_id",)),
        "export": ResourceFacts((), None, ("endpoint_id", "operation")),
        "mailings": ResourceFacts((), "export_period", ("endpoint_id",)),
        "messaging_report": ResourceFacts((), "export_period", ("endpoint_id",)),
        "operations_logs": ResourceFacts((), "export_period", ("endpoint_id",)),
        "orders": ResourceFacts((), "export_period", ("endpoint_id",)),
        "period_export": ResourceFacts((), "export_period", ("endpoint_id", "operation")),
    },
    "omnidesk": {
        "cases": ResourceFacts(("case_id",), "updated_at", ()),
        "groups": ResourceFacts(("group_id",), None, ()),
        "labels": ResourceFacts(("label_id",), None, ()),
        "messages": ResourceFacts(("message_id",), "created_at", ()),
        "staff": ResourceFacts(("staff_id",), None, ()),
        "users": ResourceFacts(("user_id",), "updated_at", ()),
    },
    "openexchangerates": {
        "currencies": ResourceFacts(("code",), None, ()),
        "historical": ResourceFacts(("date", "currency"), "date", ()),
        "latest": ResourceFacts(("timestamp", "currency"), None, ()),
        "usage": ResourceFacts((), None, ()),
    },
    "similarweb": {
        "average_visit_duration": ResourceFacts(("domain", "country", "date"), "date", ("domains",)),
        "bounce_rate": ResourceFacts(("domain", "country", "date"), "date", ("domains",)),
        "keywords": ResourceFacts(("domain", "month", "keyword"), "month", ("domains",)),
        "pages_per_visit": ResourceFacts(("domain", "country", "date"), "date", ("domains",)),
        "visits": ResourceFacts(("domain", "country", "date"), "date", ("domains",)),
    },
    "yandex_webmaster": {
        "hosts": ResourceFacts(("host_id",), None, ()),
        "in_search_history": ResourceFacts(("host_id", "date"), "date", ()),
        "indexing_history": ResourceFacts(("host_id", "indicator", "date"), "date", ()),
        "popular_queries": ResourceFacts(("host_id", "query_id", "date_from", "date_to"), None, ()),
        "query_analytics": ResourceFacts(("host_id", "query_text", "date", "field"), None, ()),
        "search_events_history": ResourceFacts(("host_id", "indicator", "date"), "date", ()),
        "search_query_history": ResourceFacts(
            ("query_id", "device_type", "indicator", "date"), "date", ("host_id", "query_ids")
        ),
        "summary": ResourceFacts(("host_id",), None, ()),
    },
}
