"""The hand-offs used between a source COPY stream and a sink COPY: read-ahead and push."""

from __future__ import annotations

import threading
import time
from contextlib import closing

import pytest

from airflow_provider_dpone.runtime.prefetch import Prefetched, Pushed


class Source:
    """A generator-backed source that records how far it was read and whether it was closed."""

    def __init__(self, n: int, fail_at: int | None = None) -> None:
        self.n, self.fail_at = n, fail_at
        self.produced = 0
        self.closed = threading.Event()
        self.thread_names: set[str] = set()

    def __iter__(self):
        try:
            for i in range(self.n):
                self.thread_names.add(threading.current_thread().name)
                if i == self.fail_at:
                    raise RuntimeError(f"source broke at {i}")
                self.produced += 1
                yield i
        finally:
            self.closed.set()


def test_yields_everything_in_order_and_closes_the_source() -> None:
    src = Source(1000)
    assert list(Prefetched(src, depth=3)) == list(range(1000))
    assert src.closed.is_set()
    assert src.thread_names == {"dpone-prefetch"}  # read in the background thread


def test_source_error_reaches_the_consumer() -> None:
    src = Source(100, fail_at=10)
    got = []
    with pytest.raises(RuntimeError, match="broke at 10"):
        for item in Prefetched(src, depth=2):
            got.append(item)
    assert got == list(range(10)) and src.closed.is_set()


def test_reads_at_most_depth_ahead_and_close_stops_the_thread() -> None:
    src = Source(10_000)
    with closing(Prefetched(src, depth=4)) as items:
        assert next(items) == 0
        time.sleep(0.2)  # let the reader run as far ahead as it may
        # one handed out, four queued, one blocked waiting for room in the queue
        assert src.produced <= 1 + 4 + 1
    assert src.closed.wait(2) and src.produced < 10_000


def test_close_before_start_closes_the_source() -> None:
    def gen():
        yield 1

    g = gen()
    Prefetched(g).close()
    assert list(g) == []  # closed: nothing more comes out


def write_rows(n: int, size: int, fail_at: int | None = None, written: list[int] | None = None):
    """A producer that writes ``n`` rows of ``size`` bytes, one write each, like a COPY reader."""

    def produce(out) -> None:
        for i in range(n):
            if i == fail_at:
                raise RuntimeError(f"producer broke at {i}")
            out.write(bytes([i % 256]) * size)
            if written is not None:
                written.append(i)

    return produce


def test_pushed_gathers_small_writes_into_chunks_in_order() -> None:
    chunks = list(Pushed(write_rows(10_000, 300), chunk_size=64 * 1024, depth=2))
    data = b"".join(chunks)
    assert data == b"".join(bytes([i % 256]) * 300 for i in range(10_000))
    # A chunk is flushed when the next row would not fit: within one row of the chunk size.
    assert all(64 * 1024 - 300 < len(c) <= 64 * 1024 for c in chunks[:-1])


def test_pushed_error_reaches_the_consumer_after_what_was_written() -> None:
    got = bytearray()
    with pytest.raises(RuntimeError, match="broke at 500"):
        for chunk in Pushed(write_rows(1000, 100, fail_at=500), chunk_size=4096):
            got += chunk
    assert got == b"".join(bytes([i % 256]) * 100 for i in range(500))


def test_pushed_close_stops_the_producer_at_its_next_write() -> None:
    written: list[int] = []
    items = Pushed(write_rows(10**7, 100, written=written), chunk_size=1000, depth=2)
    assert len(next(items)) == 1000
    items.close()
    assert not items._thread.is_alive()
    assert len(written) < 100  # a chunk handed out, two queued, one refused: about 40 rows
    with pytest.raises(StopIteration):
        next(items)


def test_pushed_close_interrupts_a_producer_blocked_on_its_input() -> None:
    release = threading.Event()

    def produce(out) -> None:
        out.write(b"x" * 10)
        out.flush()
        if not release.wait(10):  # a driver waiting on a slow server
            raise AssertionError("never interrupted")
        raise RuntimeError("cancelled")

    items = Pushed(produce, chunk_size=1000, interrupt=release.set)
    assert next(items) == b"x" * 10
    started = time.monotonic()
    items.close()
    assert time.monotonic() - started < 2 and not items._thread.is_alive()


def test_pushed_close_before_start_runs_nothing() -> None:
    ran = []
    Pushed(lambda out: ran.append(1), chunk_size=10).close()
    assert ran == []
