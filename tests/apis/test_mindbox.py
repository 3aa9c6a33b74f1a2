"""Mindbox source against a fake of the v3 export operations: start, poll, signed CSV files."""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import signal
import uuid

import pytest

from airflow_provider_dpone.apis.async_export import csv_records
from airflow_provider_dpone.apis.mindbox import column_name
from airflow_provider_dpone.contracts.errors import BadInputError, ResumeExpiredError, TransientError
from airflow_provider_dpone.contracts.manifest import parse_manifest
from airflow_provider_dpone.hooks.rest import AuthError
from airflow_provider_dpone.runtime.failpoints import AFTER_CHECKPOINT
from tests.apis.vendor_fake import VendorFake
from tests.helpers import run_first_load as run
from tests.helpers import run_killed

KEY = "mbx-secret-key-42"
ENDPOINT = "Shop.Website"
STANDARD = {  # operation: (the array its JSON files hold, or None for CSV; period kind)
    "GetClients": ("customers", None),
    "GetOrders": ("orders", "datetime"),
    "GetMessagingReport": (None, "date"),
}
HEADER = ["CustomerIdsMindboxId", "CustomerEmail", "CustomerFullName", "OrderChangeDateTimeUtc"]


def _file(rows: list[list]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    writer.writerow(HEADER)
    writer.writerows(rows)
    return "\ufeff".encode() + out.getvalue().encode()  # Mindbox files start with a BOM


class MindboxFake:
    """Export jobs by id; ``not_ready`` polls answer NotReady before Ready."""

    def __init__(self, customers: int = 5, per_file: int = 3, files_elsewhere: bool = False) -> None:
        self.jobs: dict[str, dict] = {}
        self.not_ready = 2
        self.per_file = per_file
        self.customers = [
            [str(i), f"c{i}@example.com", 'Anna\n"Line"; two' if i == 1 else f"Customer {i}", ""]
            for i in range(1, customers + 1)
        ]
        self.orders = [
            [str(100 + d), f"o{d}@example.com", f"Order {d}", f"2026-03-{d:02d} 12:00"] for d in range(1, 21)
        ]
        self.pending_statuses = ["NotReady"]  # answered in turn while not ready
        self.cancel: str | None = None  # a cancellationReason: the export ends Cancelled
        self.gzip = False  # files stored gzip-compressed (told only by their magic bytes)
        self.break_next_download = False
        self.files_gone = False
        self.fake = VendorFake(self.route)
        self.url = self.fake.url
        # the signed file links on another origin (a storage host), as Mindbox serves them
        self.files = VendorFake(self.route) if files_elsewhere else self.fake

    def started(self) -> list[dict]:
        return [e for e in self.fake.log if e["path"] == "/v3/operations/sync" and "start" in e]

    def route(self, method: str, path: str, query: dict, headers: object, body: bytes):
        if path.startswith("/files/"):
            assert headers.get("Authorization") is None  # type: ignore[attr-defined]
            if self.files_gone:
                return (
                    403,
                    b"<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>",
                    {},
                )
            _, _, job, name = path.split("/")
            data = self.jobs[job]["files"][int(name.split(".")[0])]
            if self.break_next_download:
                self.break_next_download = False
                return 200, data[: len(data) // 2], {"Content-Length": str(len(data)), "Connection": "close"}
            return 200, data, {"Content-Type": "text/csv"}
        if headers.get("Authorization") != f"SecretKey {KEY}":  # type: ignore[attr-defined]
            return 401, b'{"status": "Unauthorized"}', {"Content-Type": "application/json"}
        assert path == "/v3/operations/sync" and query["endpointId"] == ENDPOINT
        request = json.loads(body)
        if "exportId" in request:
            job = self.jobs.get(request["exportId"])
            if job is None:
                return (
                    200,
                    json.dumps({"status": "ValidationError", "errorMessage": "Export not found"}).encode(),
                    {},
                )
            job["polls"] += 1
            if self.cancel is not None:
                result = {"processingStatus": "Cancelled", "cancellationReason": self.cancel}
                return 200, json.dumps({"status": "Success", "exportResult": result}).encode(), {}
            if job["polls"] <= self.not_ready:
                pending = self.pending_statuses[(job["polls"] - 1) % len(self.pending_statuses)]
                result = {"processingStatus": pending}
                return 200, json.dumps({"status": "Success", "exportResult": result}).encode(), {}
            urls = [
                f"{self.files.url}/files/{job['id']}/{k}.csv?signature=s3cr3t"
                for k in range(len(job["files"]))
            ]
            answer = {"status": "Success", "exportResult": {"processingStatus": "Ready", "urls": urls}}
            return 200, json.dumps(answer).encode(), {}
        self.fake.log[-1]["start"] = request
        if query["operation"] == "Export.Customers":
            rows = self.customers
        elif query["operation"] == "Export.Orders":
            since, till = request["sinceDateTimeUtc"], request["tillDateTimeUtc"]
            rows = [o for o in self.orders if since <= o[3] < till]
        elif query["operation"] in STANDARD:
            return self._standard(query["operation"], request)
        else:
            message = f"Operation {query['operation']} not found"
            return 200, json.dumps({"status": "ValidationError", "errorMessage": message}).encode(), {}
        files = [_file(rows[i : i + self.per_file]) for i in range(0, len(rows), self.per_file)] or [
            _file([])
        ]
        return self._job(files)

    def _job(self, files: list[bytes]):
        job = str(uuid.uuid4())
        files = [gzip.compress(f) for f in files] if self.gzip else files
        self.jobs[job] = {"id": job, "polls": 0, "files": files}
        return 200, json.dumps({"status": "Success", "exportId": job}).encode(), {}

    def _standard(self, operation: str, request: dict):
        """The standard exports: JSON files of one array (``;`` CSV for the messaging report,
        whose period is ``sinceDate``/``tillDate``)."""
        key, period = STANDARD[operation]
        if period == "date" and set(request) != {"sinceDate", "tillDate"}:
            errors = {"status": "ValidationError", "errorMessage": "sinceDate and tillDate are required"}
            return 200, json.dumps(errors).encode(), {}
        if operation == "GetMessagingReport":
            days = range(int(request["sinceDate"][8:]), int(request["tillDate"][8:]) + 1)
            out = io.StringIO()
            writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
            writer.writerow(["Date", "MailingId", "Sent", "Opened"])
            writer.writerows([[f"2026-03-{d:02d}", "77", 1000 + d, 300] for d in days])
            return self._job([("\ufeff" + out.getvalue()).encode()])
        if operation == "GetClients":
            items = [
                {
                    "ids": {"mindboxId": i, "externalId": f"ext-{i}"},
                    "email": f"c{i}@example.com",
                    "firstName": 'Anna "A", [x]' if i == 1 else f"Customer {i}",
                    "customFields": {"city": "Moscow"},
                    "subscriptions": [{"brand": "shop", "isSubscribed": True}],
                }
                for i in range(1, len(self.customers) + 1)
            ]
        else:
            since, till = request["sinceDateTimeUtc"], request["tillDateTimeUtc"]
            items = [
                {"ids": {"mindboxId": int(o[0])}, "totalPrice": 10.5, "changeDateTimeUtc": o[3]}
                for o in self.orders
                if since <= o[3] < till
            ]
        chunks = [items[i : i + self.per_file] for i in range(0, len(items), self.per_file)] or [[]]
        return self._job([json.dumps({"exportId": 1, key: chunk}, indent=1).encode() for chunk in chunks])

    def close(self) -> None:
        self.fake.close()
        if self.files is not self.fake:
            self.files.close()


@pytest.fixture
def mbx():
    fake = MindboxFake()
    os.environ["AIRFLOW_CONN_MBX"] = json.dumps(
        {"conn_type": "http", "host": fake.url, "password": KEY, "extra": {"max_retries": 2}}
    )
    yield fake
    fake.close()


FIELDS = {
    "customer_ids_mindbox_id": "int64",
    "customer_email": "string",
    "customer_full_name": "string",
    "order_change_date_time_utc": "timestamp",
}


def manifest(resource: str, operation: str, strategy: str = "incremental_merge", **options):
    source = {
        "connector": "mindbox",
        "conn_id": "mbx",
        "resource": resource,
        "fields": FIELDS,
        "options": {"endpoint_id": ENDPOINT, "operation": operation, "poll_interval": 0, **options},
    }
    if resource == "period_export" and options.pop("incremental", True):
        source["incremental"] = {"mode": "cursor", "cursor": "export_period"}
    return parse_manifest(
        {
            "pipeline": "crm",
            "state": {"backend": "table", "conn_id": "dst"},
            "loads": [
                {
                    "name": operation.split(".")[1].lower(),
                    "source": source,
                    "sink": {
                        "connector": "postgres",
                        "conn_id": "dst",
                        "table": f"raw.mindbox_{operation.split('.')[1].lower()}",
                        "strategy": strategy,
                        "unique_key": ["customer_ids_mindbox_id"],
                    },
                }
            ],
        }
    )


@pytest.mark.unit
def test_header_names_and_csv_reading() -> None:
    assert column_name("CustomerIdsMindboxId") == "customer_ids_mindbox_id"
    assert column_name("Customer.Ids.ExternalIDs") == "customer_ids_external_ids"
    assert column_name("SMSStatus") == "sms_status"
    text = 'A;B\r\n1;"x\r\ny;z"\r\n\r\n2;\r\n'
    assert list(csv_records(io.StringIO(text, newline=""), str, 0)) == [
        {"A": "1", "B": "x\r\ny;z"},
        {"A": "2", "B": None},
    ]
    assert list(csv_records(io.StringIO("a,b\n1,2\n3,4\n"), str, 1)) == [{"a": "3", "b": "4"}]
    assert list(csv_records(io.StringIO(""), str, 0)) == []
    with pytest.raises(BadInputError, match="several columns"):
        list(csv_records(io.StringIO("OrderId;order_id\n1;2\n"), column_name, 0))


@pytest.mark.integration
def test_export_polls_until_ready_then_reads_every_file(mbx, clean_pg) -> None:
    report = run(manifest("export", "Export.Customers", "full_refresh"), "r1")
    assert report.rows == 5
    assert len(mbx.started()) == 1
    polls = [e for e in mbx.fake.log if e["path"] == "/v3/operations/sync" and "start" not in e]
    assert len(polls) == 3  # two NotReady answers, then Ready
    assert len([e for e in mbx.fake.log if e["path"].startswith("/files/")]) == 2
    rows = clean_pg.query(
        "dst", "select customer_ids_mindbox_id, customer_full_name from raw.mindbox_customers order by 1"
    )
    assert rows[0] == (1, 'Anna\n"Line"; two') and rows[4] == (5, "Customer 5")


@pytest.mark.integration
def test_files_on_another_host_are_downloaded_without_the_key(clean_pg) -> None:
    """The REST source sends credentials only to the API's origin; the export's signed links
    are another origin and keep being read, without the secret key."""
    fake = MindboxFake(files_elsewhere=True)
    os.environ["AIRFLOW_CONN_MBX"] = json.dumps({"conn_type": "http", "host": fake.url, "password": KEY})
    try:
        assert run(manifest("export", "Export.Customers", "full_refresh"), "r1").rows == 5
    finally:
        fake.close()
    downloads = fake.files.log
    assert len(downloads) == 2 and not [e for e in downloads if KEY in json.dumps(e, default=str)]
    assert not [e for e in fake.fake.log if e["path"].startswith("/files/")]


@pytest.mark.integration
def test_period_export_starts_at_the_watermark(mbx, clean_pg) -> None:
    first = run(
        manifest("period_export", "Export.Orders", start_date="2026-03-01", end_date="2026-03-10"), "r1"
    )
    assert mbx.started()[-1]["start"] == {
        "sinceDateTimeUtc": "2026-03-01 00:00",
        "tillDateTimeUtc": "2026-03-10 00:00",
    }
    assert first.rows == 9
    second = run(manifest("period_export", "Export.Orders", end_date="2026-03-15T00:00:00Z"), "r2")
    assert mbx.started()[-1]["start"] == {  # the watermark minus Mindbox's default 2 days
        "sinceDateTimeUtc": "2026-03-08 00:00",
        "tillDateTimeUtc": "2026-03-15 00:00",
    }
    assert second.rows == 7  # 03-08..03-14: the two re-read days merged, not added
    assert clean_pg.query(
        "dst", "select count(*), max(order_change_date_time_utc)::text from raw.mindbox_orders"
    ) == [(14, "2026-03-14 12:00:00")]
    from airflow_provider_dpone.operators.wiring import assemble

    m = manifest("period_export", "Export.Orders")
    state = assemble(m.loads[0], m.state).state.get("crm", "orders")
    assert state.value == "2026-03-15T00:00:00+00:00"


@pytest.mark.integration
def test_a_wrong_key_is_not_retried_and_a_bad_operation_is_named(mbx, clean_pg) -> None:
    os.environ["AIRFLOW_CONN_MBX"] = json.dumps({"conn_type": "http", "host": mbx.url, "password": "wrong"})
    with pytest.raises(AuthError, match="returned 401"):
        run(manifest("export", "Export.Customers", "full_refresh"), "r1")
    assert len(mbx.fake.log) == 1
    os.environ["AIRFLOW_CONN_MBX"] = json.dumps({"conn_type": "http", "host": mbx.url, "password": KEY})
    with pytest.raises(BadInputError, match=r"Operation Export\.Nothing not found"):
        run(manifest("export", "Export.Nothing", "full_refresh"), "r2")


@pytest.mark.integration
def test_limits_server_errors_and_a_broken_download_are_retried(mbx, clean_pg) -> None:
    mbx.fake.faults = [(429, b"Too many requests", {"Retry-After": "0"}), (503, b"", {})]
    mbx.break_next_download = True
    assert run(manifest("export", "Export.Customers", "full_refresh"), "r1").rows == 5
    downloads = [e["path"] for e in mbx.fake.log if e["path"].startswith("/files/")]
    assert len(downloads) == 3 and downloads[0] == downloads[1]  # the broken file was reopened


def _killed(m, nth: int) -> None:
    assert run_killed(m, "r1", f"{AFTER_CHECKPOINT}:{nth}") == -signal.SIGKILL


@pytest.mark.integration
def test_a_run_killed_mid_file_resumes_the_same_export_at_its_row(clean_pg) -> None:
    fake = MindboxFake(customers=25_000, per_file=15_000)
    os.environ["AIRFLOW_CONN_MBX"] = json.dumps({"conn_type": "http", "host": fake.url, "password": KEY})
    try:
        m = manifest("export", "Export.Customers", "full_refresh")
        _killed(m, 2)  # after the first 10,000 rows of file 1 were staged
        fake.fake.log.clear()
        report = run(m, "r1")
        assert fake.started() == []  # no second export: the same job was polled again
        assert report.rows == 25_000
        assert clean_pg.query(
            "dst", "select count(*), count(distinct customer_ids_mindbox_id) from raw.mindbox_customers"
        ) == [(25_000, 25_000)]
    finally:
        fake.close()


@pytest.mark.integration
def test_an_export_gone_before_the_retry_starts_over(mbx, clean_pg) -> None:
    m = manifest("export", "Export.Customers", "full_refresh")
    _killed(m, 1)  # the job was started and its id saved
    mbx.jobs.clear()  # Mindbox no longer knows the export
    with pytest.raises(ResumeExpiredError, match="can no longer be read"):
        run(m, "r1")
    assert run(m, "r1").rows == 5  # the next try starts a new export
    assert len(mbx.started()) == 2


@pytest.mark.integration
def test_expired_file_links_start_the_run_over(clean_pg) -> None:
    fake = MindboxFake(customers=25_000, per_file=15_000)
    os.environ["AIRFLOW_CONN_MBX"] = json.dumps({"conn_type": "http", "host": fake.url, "password": KEY})
    try:
        m = manifest("export", "Export.Customers", "full_refresh")
        _killed(m, 2)  # 10,000 rows of the first file staged
        fake.files_gone = True  # the signed links expired meanwhile
        with pytest.raises(ResumeExpiredError, match="link expired"):
            run(m, "r1")
        fake.files_gone = False
        assert run(m, "r1").rows == 25_000  # a new export, staged from scratch: no duplicates
        assert len(fake.started()) == 2
        assert clean_pg.query(
            "dst", "select count(distinct customer_ids_mindbox_id) from raw.mindbox_customers"
        ) == [(25_000,)]
    finally:
        fake.close()


@pytest.mark.integration
def test_a_retry_reads_the_period_its_run_started(mbx, clean_pg) -> None:
    first = manifest("period_export", "Export.Orders", start_date="2026-03-01", end_date="2026-03-10")
    _killed(first, 1)  # the export of 1-10 March was started and its position saved
    later = manifest("period_export", "Export.Orders", start_date="2026-03-01", end_date="2026-03-20")
    assert run(later, "r1").rows == 9  # the same run: it finishes the 1-10 March export
    assert len(mbx.started()) == 1
    from airflow_provider_dpone.operators.wiring import assemble

    state = assemble(later.loads[0], later.state).state.get("crm", "orders")
    assert state.value == "2026-03-10T00:00:00+00:00"  # the period read, not the later end_date


@pytest.mark.integration
def test_a_mindbox_transient_status_fails_the_try_as_retryable(mbx, clean_pg) -> None:
    answer = {"status": "TransientError", "errorMessage": "Service is temporarily unavailable"}
    mbx.fake.faults = [(200, json.dumps(answer).encode(), {})]
    with pytest.raises(TransientError, match="temporarily unavailable") as caught:
        run(manifest("export", "Export.Customers", "full_refresh"), "r1")
    assert caught.value.retryable
    assert run(manifest("export", "Export.Customers", "full_refresh"), "r1").rows == 5


@pytest.mark.integration
def test_a_slow_export_is_polled_again_by_the_next_try(mbx, clean_pg) -> None:
    mbx.not_ready = 3
    with pytest.raises(TransientError, match="not ready after"):
        run(manifest("export", "Export.Customers", "full_refresh", max_wait=0), "r1")
    assert run(manifest("export", "Export.Customers", "full_refresh"), "r1").rows == 5
    assert len(mbx.started()) == 1


@pytest.mark.integration
def test_the_sensor_refuses_an_export(mbx) -> None:
    from airflow_provider_dpone.apis.mindbox import MindboxHook
    from airflow_provider_dpone.contracts.errors import UnsupportedError

    spec = manifest("export", "Export.Customers").loads[0].source
    with pytest.raises(UnsupportedError, match="sensor does not apply"):
        MindboxHook(conn_id="mbx").probe(spec)


@pytest.mark.integration_live
def test_live_export() -> None:
    key, endpoint, operation = (
        os.environ.get("DPONE_LIVE_MINDBOX_KEY"),
        os.environ.get("DPONE_LIVE_MINDBOX_ENDPOINT"),
        os.environ.get("DPONE_LIVE_MINDBOX_OPERATION"),
    )
    if not (key and endpoint and operation):
        pytest.skip(
            "live test: set DPONE_LIVE_MINDBOX_KEY, DPONE_LIVE_MINDBOX_ENDPOINT and "
            "DPONE_LIVE_MINDBOX_OPERATION (an export operation of the project)"
        )
    from airflow_provider_dpone.apis.mindbox import MindboxHook

    os.environ["AIRFLOW_CONN_MBX"] = json.dumps({"conn_type": "http", "password": key})
    spec = manifest("export", operation).loads[0].source.model_copy(update={"fields": None})
    spec.options["endpoint_id"] = endpoint
    for _ in MindboxHook(conn_id="mbx").extract(spec, None).artifact.batches:
        break


@pytest.mark.unit
def test_a_huge_csv_line_fails_within_its_limit() -> None:
    """One line larger than the limit is not read whole: reading stops at the limit."""
    import tracemalloc

    from airflow_provider_dpone.contracts.errors import SourceContractError

    text = io.StringIO("A;B\r\n1;ok\r\n2;" + "x" * 20_000_000 + "\r\n3;after\r\n", newline="")
    tracemalloc.start()
    try:
        with pytest.raises(SourceContractError) as caught:
            list(csv_records(text, str, 0, limit=100_000))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "row 2" in str(caught.value) and "100,000" in str(caught.value)
    assert peak < 2_000_000
    multi = io.StringIO('A;B\r\n1;"' + "y\r\n" * 50_000 + '"\r\n', newline="")  # one field, many lines
    with pytest.raises(SourceContractError, match="row 1"):
        list(csv_records(multi, str, 0, limit=100_000))
    broken = io.TextIOWrapper(io.BytesIO(b"A;B\r\n1;\xff\r\n"), encoding="utf-8-sig", newline="")
    with pytest.raises(SourceContractError, match="cannot be read: UnicodeDecodeError"):
        list(csv_records(broken, str, 0, limit=100_000))


@pytest.mark.integration
def test_an_export_line_over_max_response_bytes_fails_naming_the_file_not_its_signature(
    clean_pg,
) -> None:
    from airflow_provider_dpone.contracts.errors import SourceContractError

    fake = MindboxFake(customers=4, per_file=2)
    fake.customers[2][2] = "z" * 300_000  # file 1, its first data row: one 300 kB line
    os.environ["AIRFLOW_CONN_MBX"] = json.dumps(
        {"conn_type": "http", "host": fake.url, "password": KEY, "extra": {"max_response_bytes": 100_000}}
    )
    try:
        with pytest.raises(SourceContractError) as caught:
            run(manifest("export", "Export.Customers", "full_refresh"), "r1")
    finally:
        fake.close()
    message = str(caught.value)
    assert "/1.csv" in message and "row 1" in message and "max_response_bytes" in message
    assert "signature" not in message and "s3cr3t" not in message


@pytest.mark.unit
def test_mindbox_and_export_messages_mask_the_key() -> None:
    import httpx

    from airflow_provider_dpone.apis.async_export import ExportReader
    from airflow_provider_dpone.apis.mindbox import EXPORT, MindboxHook

    os.environ["AIRFLOW_CONN_MBX_MASKED"] = json.dumps(
        {"conn_type": "http", "host": "http://127.0.0.1:9", "password": KEY}
    )
    hook = MindboxHook(conn_id="mbx_masked")
    request = httpx.Request("POST", "http://127.0.0.1:9/v3/operations/sync")
    answer = {"status": "ValidationError", "errorMessage": f"key {KEY} is not valid here"}
    with pytest.raises(BadInputError) as caught:
        hook.decode(httpx.Response(200, json=answer, request=request))
    assert KEY not in str(caught.value) and "is not valid here" in str(caught.value)

    hook.request = lambda *a, **k: httpx.Response(  # type: ignore[method-assign]
        200, json={"status": "Success", "echo": f"SecretKey {KEY}"}, request=request
    )
    reader = ExportReader(hook, EXPORT, poll_interval=0, max_wait=0)
    pages = reader.pages(
        "v3/operations/sync", {}, method="POST", body={}, headers=None, details={}, start=None, batch_rows=10
    )
    with pytest.raises(BadInputError, match="exportId") as caught:
        next(pages)
    assert KEY not in str(caught.value)


def catalog(resource: str, keys: list[str], fields: dict, cursor: str | None = None, **options):
    """A load of one of the catalog's standard exports (its operation left to the default)."""
    source: dict = {
        "connector": "mindbox",
        "conn_id": "mbx",
        "resource": resource,
        "fields": fields,
        "options": {"endpoint_id": ENDPOINT, "poll_interval": 0, **options},
    }
    if cursor:
        source["incremental"] = {"mode": "cursor", "cursor": cursor}
    sink = {"connector": "postgres", "conn_id": "dst", "table": f"raw.mindbox_{resource}"}
    sink |= {"strategy": "incremental_merge", "unique_key": keys}
    return parse_manifest(
        {
            "pipeline": "crm",
            "state": {"backend": "table", "conn_id": "dst"},
            "loads": [{"name": resource, "source": source, "sink": sink}],
        }
    )


CUSTOMER_FIELDS = {
    "ids_mindbox_id": "int64",
    "ids_external_id": "string",
    "email": "string",
    "first_name": "string",
    "custom_fields_city": "string",
    "subscriptions": "json",
}


@pytest.mark.integration
@pytest.mark.parametrize("gzipped", [False, True])
def test_standard_exports_hand_out_json_files_maybe_gzipped(mbx, clean_pg, gzipped: bool) -> None:
    mbx.gzip = gzipped  # told by the magic bytes alone: no Content-Encoding
    assert run(catalog("customers", ["ids_mindbox_id"], CUSTOMER_FIELDS), "r1").rows == 5
    assert mbx.started()[-1]["query"]["operation"] == "GetClients"
    rows = clean_pg.query(
        "dst",
        "select ids_mindbox_id, ids_external_id, first_name, custom_fields_city, subscriptions::text "
        "from raw.mindbox_customers order by 1",
    )
    assert rows[0][:4] == (1, "ext-1", 'Anna "A", [x]', "Moscow")
    assert json.loads(rows[0][4]) == [{"brand": "shop", "isSubscribed": True}]
    assert len(rows) == 5


@pytest.mark.integration
def test_json_period_exports_start_at_the_watermark(mbx, clean_pg) -> None:
    fields = {"ids_mindbox_id": "int64", "total_price": "decimal(18,2)", "change_date_time_utc": "timestamp"}
    m = catalog(
        "orders", ["ids_mindbox_id"], fields, "export_period", start_date="2026-03-01", end_date="2026-03-10"
    )
    assert run(m, "r1").rows == 9
    assert mbx.started()[-1]["query"]["operation"] == "GetOrders"
    assert mbx.started()[-1]["start"] == {
        "sinceDateTimeUtc": "2026-03-01 00:00",
        "tillDateTimeUtc": "2026-03-10 00:00",
    }


@pytest.mark.integration
def test_date_period_exports_send_since_date_and_till_date_and_read_gzipped_csv(mbx, clean_pg) -> None:
    mbx.gzip = True
    fields = {"date": "date", "mailing_id": "string", "sent": "int64", "opened": "int64"}
    keys = ["date", "mailing_id"]
    m = catalog(
        "messaging_report", keys, fields, "export_period", start_date="2026-03-01", end_date="2026-03-05"
    )
    assert run(m, "r1").rows == 5
    assert mbx.started()[-1]["query"]["operation"] == "GetMessagingReport"
    assert mbx.started()[-1]["start"] == {"sinceDate": "2026-03-01", "tillDate": "2026-03-05"}
    run(catalog("messaging_report", keys, fields, "export_period", end_date="2026-03-07"), "r2")
    assert mbx.started()[-1]["start"] == {"sinceDate": "2026-03-03", "tillDate": "2026-03-07"}
    assert clean_pg.query("dst", "select count(*), sum(sent) from raw.mindbox_messaging_report") == [
        (7, 7028)
    ]


@pytest.mark.integration
def test_an_export_is_waited_on_whatever_its_status_until_ready(mbx, clean_pg) -> None:
    mbx.not_ready, mbx.pending_statuses = 3, ["Queued", "InProgress", "NotReady"]
    assert run(manifest("export", "Export.Customers", "full_refresh"), "r1").rows == 5
    polls = [e for e in mbx.fake.log if e["path"] == "/v3/operations/sync" and "start" not in e]
    assert len(polls) == 4


@pytest.mark.integration
def test_a_cancelled_export_fails_with_its_reason_and_the_next_try_starts_over(mbx, clean_pg) -> None:
    mbx.cancel = "Export was cancelled by the administrator"
    with pytest.raises(ResumeExpiredError, match=r"Cancelled.*cancelled by the administrator"):
        run(manifest("export", "Export.Customers", "full_refresh"), "r1")
    mbx.cancel = None
    assert run(manifest("export", "Export.Customers", "full_refresh"), "r1").rows == 5
    assert len(mbx.started()) == 2


@pytest.mark.unit
def test_json_export_files_are_streamed_item_by_item() -> None:
    from airflow_provider_dpone.apis.export_files import file_records
    from airflow_provider_dpone.contracts.errors import SourceContractError

    items = [{"ids": {"mindboxId": i}, "note": "x" * 50_000 if i == 2 else "]}{,"} for i in range(1, 6)]
    data = json.dumps({"exportId": 7, "total": [1, 2], "customers": items, "after": True}).encode()

    def chunks(blob: bytes, size: int = 1000):
        return [blob[i : i + size] for i in range(0, len(blob), size)]

    for blob in (data, gzip.compress(data[:5000]) + gzip.compress(data[5000:])):  # two gzip members
        got = list(file_records(chunks(blob), column_name, 3, 100_000))
        assert got == [{"ids_mindbox_id": 4, "note": "]}{,"}, {"ids_mindbox_id": 5, "note": "]}{,"}]
    top_array = json.dumps(items[:2]).encode()
    assert len(list(file_records(chunks(top_array), column_name, 0, 100_000))) == 2
    assert list(file_records(chunks(b"\xef\xbb\xbfA;B\r\n1;2\r\n"), str, 0, 1000)) == [{"A": "1", "B": "2"}]
    assert list(file_records([], str, 0, 1000)) == []
    with pytest.raises(SourceContractError, match="longer than 10,000"):
        list(file_records(chunks(data), column_name, 0, 10_000))
    with pytest.raises(SourceContractError, match=r"no records.*'exportId'"):
        list(file_records([b'{"exportId": 1, "rows": [{"a": 1}]}'], str, 0, 1000))
    with pytest.raises(SourceContractError, match="not valid JSON"):
        list(file_records([b'{"customers": [{"a": 1}, {"a": }]}'], str, 0, 1000))


@pytest.mark.unit
def test_a_cut_gzip_export_file_fails_and_every_member_is_read() -> None:
    import gzip

    from airflow_provider_dpone.apis.export_files import gunzipped
    from airflow_provider_dpone.contracts.errors import SourceContractError

    body = b"".join(b"%d;x\n" % i for i in range(5_000))
    packed = gzip.compress(body)
    chunks = [packed[i : i + 1000] for i in range(0, len(packed) // 2, 1000)]
    with pytest.raises(SourceContractError, match="cut short"):
        b"".join(gunzipped(chunks))
    members = gzip.compress(body[:7_000]) + gzip.compress(body[7_000:])
    assert b"".join(gunzipped([members[i : i + 999] for i in range(0, len(members), 999)])) == body


@pytest.mark.unit
def test_an_unkeyed_append_of_a_date_period_export_is_refused() -> None:
    from airflow_provider_dpone.apis.mindbox import MindboxHook
    from airflow_provider_dpone.contracts.errors import BadInputError

    def load(period: str) -> object:
        body = {
            "name": "report",
            "source": {
                "connector": "mindbox",
                "conn_id": "mbx",
                "resource": "messaging_report",
                "options": {"endpoint_id": "e", "period": period},
                "incremental": {"mode": "cursor", "cursor": "export_period"},
            },
            "sink": {
                "connector": "postgres",
                "conn_id": "dst",
                "table": "raw.r",
                "strategy": "incremental_append",
            },
        }
        return parse_manifest({"pipeline": "crm", "loads": [body]}).loads[0].source

    with pytest.raises(BadInputError, match="reads the day of its watermark again"):
        MindboxHook(conn_id="mbx").read_of(load("date"))
    assert MindboxHook(conn_id="mbx").read_of(load("datetime")).resource.name == "messaging_report"
