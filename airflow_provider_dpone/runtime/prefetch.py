"""Read an iterator ahead in a background thread, through a bounded queue.

Between two databases this lets the source's COPY stream be read while the previous chunk is
being written to the sink, instead of alternating. Memory stays bounded by ``depth`` items.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")

_DONE = object()


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class Prefetched(Iterator[T], Generic[T]):
    """Iterate ``source`` in a daemon thread, at most ``depth`` items ahead of the consumer.

    ``close()`` (also called when iteration ends or fails) stops the thread and closes the
    source iterator from the thread that ran it, so its ``finally`` blocks run exactly once.
    """

    def __init__(self, source: Iterable[T], depth: int = 4, name: str = "dpone-prefetch") -> None:
        self._source = source
        self._queue: queue.Queue[object] = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._started = False
        self._finished = False

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        iterator = iter(self._source)
        try:
            for item in iterator:
                if not self._put(item):
                    break
            else:
                self._put(_DONE)
        except BaseException as exc:  # handed to the consumer, raised there
            self._put(_Failure(exc))
        finally:
            close = getattr(iterator, "close", None)
            if close:
                close()

    def __iter__(self) -> Prefetched[T]:
        return self

    def __next__(self) -> T:
        if self._finished:
            raise StopIteration
        if not self._started:
            self._started = True
            self._thread.start()
        item = self._queue.get()
        if item is _DONE:
            self.close()
            raise StopIteration
        if isinstance(item, _Failure):
            self.close()
            raise item.exc
        return item  # type: ignore[return-value]

    def close(self) -> None:
        """Stop reading ahead; wait for the thread to close the source."""
        self._finished = True
        self._stop.set()
        if self._started:
            while self._thread.is_alive():
                with contextlib.suppress(queue.Empty):  # drain so a blocked put() sees the stop flag
                    self._queue.get(timeout=0.1)
            self._thread.join()
        else:
            close = getattr(self._source, "close", None)
            if close:
                close()
