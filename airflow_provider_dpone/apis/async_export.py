"""Exports an API prepares in the background: start a job, poll it, stream the files it lists.

The position after each batch is ``{"job", "file", "row"}``: a retry polls the same job and
continues at that row of that file instead of starting another export. Files are downloaded
without the connection's credentials (they are signed links, often on another host) and read
as CSV row by row, so memory stays bounded by the batch size whatever the file size; one record
(a line, or the lines of a quoted field) is read up to the connection's ``max_response_bytes``
characters, no further.
"""

from __future__ import annotations

import csv
import io
import itertools
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Any
from urllib.parse import urlsplit

from ..contracts.errors import (
    BadInputError,
    MissingExtraError,
    ResumeExpiredError,
    SourceContractError,
    TransientError,
)
from ..hooks.rest import AuthError, RetryableHTTPError, dig
from ..hooks.rest_http import DEFAULT_MAX_RESPONSE_BYTES

try:
    import httpx
except ImportError as _exc:  # pragma: no cover - hooks.rest raises first
    raise MissingExtraError(_exc.name or "httpx", "rest") from None

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AsyncExport:
    """How one API runs an export: the request that starts it answers a job id; the same
    request with ``poll_body(job id)`` answers its status and, once ready, the file links."""

    job_id_path: str
    poll_body: Callable[[str], dict[str, Any]]
    status_path: str
    ready: str
    pending: tuple[str, ...] | None  # None: every status but ``ready`` and ``failed`` is waited on
    files_path: str
    column: Callable[[str], str] = str  # a CSV header -> the record field name
    failed: tuple[str, ...] = ()  # statuses that end the job, with the reason at ``reason_path``
    reason_path: str = ""
    # (the file's byte chunks, column, rows to skip, record limit) -> records; None: CSV text
    file_records: (
        Callable[[Iterable[bytes], Callable[[str], str], int, int], Iterator[dict[str, Any]]] | None
    ) = None


class _Chunks(io.RawIOBase):
    """A byte-chunk iterator as a readable stream (for ``io.TextIOWrapper``)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._rest = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._rest:
            try:
                self._rest = next(self._chunks)
            except StopIteration:
                return 0
        size = min(len(buffer), len(self._rest))
        buffer[:size] = self._rest[:size]
        self._rest = self._rest[size:]
        return size


def shown(url: str) -> str:
    """A file link for the log: host and path, without the signed query."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


class _TooLong(Exception):
    """A record passed its character limit (``_Lines``)."""


class _Lines:
    """The lines of a text stream for ``csv.reader``, at most ``limit`` characters per record
    (``used`` is reset after each): a huge line is read up to the limit, not whole."""

    def __init__(self, text: IO[str], limit: int) -> None:
        self.text, self.limit = text, limit
        self.used = 0  # characters of the record being read
        self.line = 0  # lines read

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        line = self.text.readline(self.limit - self.used + 1)
        if not line:
            raise StopIteration
        self.line += 1
        self.used += len(line)
        if self.used > self.limit:
            raise _TooLong
        return line


def csv_records(
    text: IO[str], column: Callable[[str], str], skip: int, limit: int = DEFAULT_MAX_RESPONSE_BYTES
) -> Iterator[dict[str, Any]]:
    """Records of a CSV text (``;`` or ``,`` separated, told by the header), after ``skip`` rows.
    A record over ``limit`` characters, or one that cannot be read, fails with
    ``SourceContractError`` naming its data row and line."""
    lines, row = _Lines(text, limit), 0  # row: the data row being read (0: the header)
    try:
        first = next(lines, "")
        if not first.strip():
            return
        delimiter = ";" if first.count(";") > first.count(",") else ","
        # csv's own field limit (131,072 by default) is process-wide: only ever raised, to ``limit``
        csv.field_size_limit(max(csv.field_size_limit(), limit))
        reader = csv.reader(itertools.chain([first], lines), delimiter=delimiter)
        names = [column(name.strip()) for name in next(reader)]
        doubled = sorted({n for n in names if names.count(n) > 1})
        if doubled:
            raise BadInputError(f"the export file has several columns named {doubled}")
        lines.used, row = 0, 1
        for values in reader:
            lines.used = 0
            if not values:
                continue
            if row > skip:
                yield {name: value or None for name, value in zip(names, values, strict=False)}  # "" is NULL
            row += 1
    except _TooLong:
        where = f"data row {row}" if row else "the header"
        raise SourceContractError(
            f"{where} (line {lines.line}) is longer than {limit:,} characters, the limit "
            "(connection extra max_response_bytes); reading stopped there"
        ) from None
    except (csv.Error, UnicodeDecodeError) as exc:
        where = f"data row {row}" if row else "the header"
        raise SourceContractError(
            f"{where} (line {lines.line}) cannot be read: {type(exc).__name__}: {exc}"
        ) from None


class ExportReader:
    """Runs one export through ``hook`` (a DponeRestHook: its requests, retries and log). Every
    request (the start, each poll, each file opened) waits for the hook's pace at ``pace``
    requests a second (the load's ``requests_per_second``; None: the connection's or the API's)."""

    def __init__(
        self,
        hook: Any,
        export: AsyncExport,
        *,
        poll_interval: float,
        max_wait: float,
        pace: float | None = None,
    ) -> None:
        self.hook = hook
        self.export = export
        self.poll_interval = poll_interval
        self.max_wait = max_wait
        self.pace = pace

    @classmethod
    def of(
        cls, hook: Any, export: AsyncExport, options: Mapping[str, Any], pace: float | None
    ) -> ExportReader:
        """The reader of one load: ``options.poll_interval`` (default 10 s) and ``max_wait``
        (default 3600 s), at the load's pace."""
        return cls(
            hook,
            export,
            poll_interval=float(options.get("poll_interval", 10)),
            max_wait=float(options.get("max_wait", 3600)),
            pace=pace,
        )

    def pages(
        self,
        path: str,
        params: dict[str, Any],
        *,
        method: str,
        body: Any,
        headers: dict | None,
        details: dict[str, Any],
        start: dict[str, Any] | None,
        batch_rows: int,
    ) -> Iterator[tuple[list[dict[str, Any]], dict[str, Any] | None]]:
        """``(records, position)`` batches of the export, as ``DponeRestHook.pages`` yields them."""
        if start is None:
            answer = self.hook.decode(
                self.hook.request(
                    method, path, params=params, json_body=body, headers=headers, pace=self.pace
                )
            )
            job = dig(answer, self.export.job_id_path)
            if not job:
                raise BadInputError(
                    f"{path}: the export answer has no '{self.export.job_id_path}': "
                    + self.hook.redactor().redact(f"{answer!r:.200}")
                )
            position: dict[str, Any] = {"job": str(job), "file": 0, "row": 0}
            log.info("%s: export job %s started", path, job)
            yield [], position  # saved before the wait: a retry polls this job, it does not start another
        else:
            position = dict(start)
        details["export_job"] = position["job"]
        files = self._wait(path, params, method, headers, position["job"], resumed=start is not None)
        details["export_files"] = len(files)
        for index in range(position["file"], len(files)):
            skip = position["row"] if index == position["file"] else 0
            done, batch, started = skip, [], time.perf_counter()
            for record in self._file(str(files[index]), skip):
                batch.append(record)
                done += 1
                if len(batch) >= batch_rows:
                    yield batch, {**position, "file": index, "row": done}
                    batch = []
            log.info(
                "export job %s: file %d/%d (%s): %s rows in %.1f s",
                position["job"],
                index + 1,
                len(files),
                shown(str(files[index])),
                f"{done:,}",
                time.perf_counter() - started,
            )
            last = index == len(files) - 1
            yield batch, None if last else {**position, "file": index + 1, "row": 0}
        if not files:
            yield [], None

    def _wait(
        self, path: str, params: dict, method: str, headers: dict | None, job: str, *, resumed: bool
    ) -> list[Any]:
        """Poll the job until it is ready; its file links."""
        began, polls = time.monotonic(), 0
        while True:
            try:
                answer = self.hook.decode(
                    self.hook.request(
                        method,
                        path,
                        params=params,
                        json_body=self.export.poll_body(job),
                        headers=headers,
                        pace=self.pace,
                    )
                )
            except AuthError:
                raise
            except BadInputError as exc:
                if not resumed:
                    raise
                raise ResumeExpiredError(f"export job {job} can no longer be read ({exc.message})") from None
            polls += 1
            status = dig(answer, self.export.status_path)
            if status == self.export.ready:
                files = dig(answer, self.export.files_path) or []
                log.info("export job %s ready after %d polls: %d files", job, polls, len(files))
                return list(files)
            if status in self.export.failed or (
                self.export.pending is not None and status not in self.export.pending
            ):
                reason = dig(answer, self.export.reason_path) if self.export.reason_path else None
                shown_status = self.hook.redactor().redact(
                    f"{status!r:.100}" + (f" ({reason!s:.300})" if reason else "")
                )
                raise ResumeExpiredError(
                    f"export job {job} ended as {shown_status}, not {self.export.ready!r}; "
                    "the next try starts a new export"
                )
            if not isinstance(status, str) or not status:
                raise SourceContractError(
                    f"export job {job}: the poll answer has no '{self.export.status_path}': "
                    + self.hook.redactor().redact(f"{answer!r:.200}")
                )
            waited = time.monotonic() - began
            if waited >= self.max_wait:
                raise TransientError(
                    f"export job {job} not ready after {waited:.0f} s (options.max_wait); "
                    "the next try keeps polling it"
                )
            log.info(
                "export job %s: %s after %.0f s; next poll in %.0f s", job, status, waited, self.poll_interval
            )
            self.hook.sleep(self.poll_interval)

    def _file(self, url: str, skip: int) -> Iterator[dict[str, Any]]:
        """The records of one file from row ``skip``; a broken download is reopened where it
        stopped, a bounded number of times."""
        done, failures = skip, 0
        retries = int(self.hook._extra().get("max_retries", 5))
        while True:
            try:
                for record in self._read(url, done):
                    done += 1
                    yield record
                return
            except (httpx.TransportError, RetryableHTTPError) as exc:
                failures += 1
                why = self.hook.redactor().redact(str(exc))
                if failures > retries:
                    raise TransientError(f"download of {shown(url)} failed {failures} times: {why}") from None
                log.warning("download of %s broke after %d rows (%s); reopening", shown(url), done, why)
                self.hook.sleep(min(30.0, 0.5 * 2 ** (failures - 1)))

    def _read(self, url: str, skip: int) -> Iterator[dict[str, Any]]:
        timeout = float(self.hook._extra().get("timeout", 60))
        bucket = self.hook._pace(self.pace)
        if bucket is not None:  # a signed link is no API call, but it is one more request of the load
            bucket.wait()
        with httpx.stream("GET", url, timeout=timeout, follow_redirects=True) as response:
            status = response.status_code
            if status == 429 or status >= 500:
                raise RetryableHTTPError(f"GET {shown(url)} returned {status}")
            if status in (403, 404, 410):
                raise ResumeExpiredError(f"export file {shown(url)} is gone ({status}); its link expired")
            if status >= 400:
                raise BadInputError(f"GET {shown(url)} returned {status}")
            limit = self.hook.max_response_bytes()
            try:
                if self.export.file_records is not None:
                    yield from self.export.file_records(
                        response.iter_bytes(), self.export.column, skip, limit
                    )
                    return
                text = io.TextIOWrapper(
                    io.BufferedReader(_Chunks(response.iter_bytes())), encoding="utf-8-sig", newline=""
                )
                yield from csv_records(text, self.export.column, skip, limit)
            except SourceContractError as exc:  # the file named without its signed query
                where = self.hook.redactor().redact(shown(url))
                raise SourceContractError(f"export file {where}: {exc.message}") from None
