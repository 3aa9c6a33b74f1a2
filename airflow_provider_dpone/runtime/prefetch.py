"""Hand items from a background thread to the consumer, through a bounded queue.

Between two databases this lets the source's COPY stream be read while the previous chunk is
being written to the sink, instead of alternating. Memory stays bounded by ``depth`` items.

- ``Prefetched`` reads an iterator ahead.
- ``Pushed`` runs a producer that *writes* to a file object (a driver's ``copy_expert``, for
  instance) and hands on what it writes in chunks of up to ``chunk_size`` bytes.
"""

from __future__ import annotations

import contextlib
import io
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, BinaryIO, Generic, TypeVar

T = TypeVar("T")

_DONE = object()


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class _Handoff(Iterator[T], Generic[T]):
    """The consumer's end: a bounded queue filled by ``_produce`` in a daemon thread."""

    def __init__(self, depth: int, name: str) -> None:
        self._queue: queue.Queue[object] = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._started = False
        self._finished = False

    def _produce(self) -> None:
        raise NotImplementedError

    def _not_started(self) -> None:
        """Release what the producer would have released; it never ran."""

    def _interrupt(self) -> None:
        """Wake a producer blocked outside ``_put`` (in a driver's read, say)."""

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            self._produce()
        except BaseException as exc:  # handed to the consumer, raised there
            self._put(_Failure(exc))
        else:
            self._put(_DONE)

    def __iter__(self) -> _Handoff[T]:
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
        """Stop the producer and wait for it to end."""
        self._finished = True
        self._stop.set()
        if not self._started:
            self._not_started()
            return
        if self._thread.is_alive():
            self._interrupt()
        while self._thread.is_alive():
            with contextlib.suppress(queue.Empty):  # drain so a blocked put() sees the stop flag
                self._queue.get(timeout=0.1)
        self._thread.join()


class Prefetched(_Handoff[T]):
    """Iterate ``source`` in a daemon thread, at most ``depth`` items ahead of the consumer.

    ``close()`` (also called when iteration ends or fails) stops the thread and closes the
    source iterator from the thread that ran it, so its ``finally`` blocks run exactly once.
    """

    def __init__(self, source: Iterable[T], depth: int = 4, name: str = "dpone-prefetch") -> None:
        super().__init__(depth, name)
        self._source = source

    def _produce(self) -> None:
        iterator = iter(self._source)
        try:
            for item in iterator:
                if not self._put(item):
                    return
        finally:
            close = getattr(iterator, "close", None)
            if close:
                close()

    def _not_started(self) -> None:
        close = getattr(self._source, "close", None)
        if close:
            close()


class _Stopped(Exception):
    """The consumer closed the stream: the producer's next write ends it."""


class _QueueWriter(io.RawIOBase):
    """The raw end of a ``BufferedWriter``: each flushed buffer becomes one queued chunk."""

    def __init__(self, put: Callable[[object], bool]) -> None:
        self._put_chunk = put

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        if not self._put_chunk(bytes(data)):  # the buffer is reused: hand on a copy
            raise _Stopped
        return len(data)


class Pushed(_Handoff[bytes]):
    """Run ``produce(out)`` in a daemon thread and iterate what it writes to ``out``.

    ``out`` is a buffered binary file: small writes (one per database row, say) are gathered in
    C into chunks of up to ``chunk_size`` bytes, at most ``depth`` of them waiting. ``close()`` makes
    the producer's next write fail, and calls ``interrupt`` if given, to wake a producer
    blocked on its own input.
    """

    def __init__(
        self,
        produce: Callable[[BinaryIO], object],
        *,
        chunk_size: int,
        depth: int = 4,
        interrupt: Callable[[], object] | None = None,
        name: str = "dpone-pushed",
    ) -> None:
        super().__init__(depth, name)
        self._producer, self._chunk_size, self._interrupter = produce, chunk_size, interrupt

    def _produce(self) -> None:
        raw: Any = _QueueWriter(self._put)  # a RawIOBase; typeshed's stream protocol is narrower
        out = io.BufferedWriter(raw, buffer_size=self._chunk_size)
        try:
            self._producer(out)  # type: ignore[arg-type]
            out.flush()
        except _Stopped:
            return
        finally:
            with contextlib.suppress(_Stopped, ValueError):
                out.close()  # flushes nothing more once stopped: the queue refuses it

    def _interrupt(self) -> None:
        if self._interrupter is not None:
            with contextlib.suppress(Exception):
                self._interrupter()
