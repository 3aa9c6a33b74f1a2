"""Client-side request pacing for an API: a token bucket per rate, shared by a hook's requests.

An API that limits request rates answers 429 when a client goes too fast; pacing keeps a load
under the vendor's rate instead of spending its retries. A 429 that still comes honours its
Retry-After (the transport's retry policy), independently of the pace.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from ..contracts.errors import BadInputError


class Pace:
    """At most ``rate`` requests a second on average, and ``burst`` back to back."""

    def __init__(
        self,
        rate: float,
        burst: int = 1,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"a pace needs a positive rate and burst, got {rate}/s, burst {burst}")
        self.rate, self.burst = float(rate), int(burst)
        self._clock, self._sleep = clock, sleep
        self._tokens, self._stamp = float(burst), clock()
        self._lock = threading.Lock()

    def wait(self) -> float:
        """Take a token, sleeping until one is there; the seconds slept."""
        with self._lock:
            now = self._clock()
            self._tokens = min(float(self.burst), self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            if self._tokens >= 1:
                self._tokens -= 1
                return 0.0
            delay = (1 - self._tokens) / self.rate
            self._tokens, self._stamp = 0.0, now + delay  # the token is taken when the wait ends
        self._sleep(delay)
        return delay


def pace_of(extra: dict, override: float | None) -> tuple[float, int] | None:
    """The pace a read uses: the manifest's ``requests_per_second``, else the connection's (or
    the API catalog's default) ``requests_per_second`` extra, with its ``burst``; None: unpaced."""
    given = override if override is not None else extra.get("requests_per_second")
    if given in (None, ""):
        return None
    try:
        rate, burst = float(given), int(extra.get("burst") or 1)
    except (TypeError, ValueError):
        raise BadInputError(
            f"requests_per_second / burst: numbers, got {given!r} / {extra.get('burst')!r}"
        ) from None
    if rate < 0 or burst < 1:
        raise BadInputError(
            f"requests_per_second must be 0 (unpaced) or more and burst 1 or more; got {rate:g} and {burst}"
        )
    return None if rate == 0 else (rate, burst)
