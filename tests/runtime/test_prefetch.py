"""The read-ahead iterator used between a source COPY stream and a sink COPY."""

from __future__ import annotations

import threading
import time
from contextlib import closing

import pytest

from airflow_provider_dpone.runtime.prefetch import Prefetched


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
