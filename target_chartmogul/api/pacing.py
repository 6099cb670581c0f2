"""Client-side pacing: never more than N request starts in any sliding second, nor
more than M requests in flight.

ChartMogul answers 429 past 40 requests/s and 503 past 20 parallel connections per
account. Pacing below both limits is cheaper than retrying after them.
"""

from __future__ import annotations

import collections
import contextlib
import threading
import time
import typing as t

# Requests leave in a burst and arrive with varied network delay; a small margin on the
# window keeps the server's own sliding window from seeing one request too many.
WINDOW_MARGIN_SECONDS = 0.05
API_MAX_CONNECTIONS = 20


class Pacer:
    """Thread-safe gate: a sliding-window rate limit plus a cap on concurrent requests."""

    def __init__(
        self,
        max_requests_per_second: float | None,
        max_concurrency: int,
        *,
        clock: t.Callable[[], float] = time.monotonic,
        sleep: t.Callable[[float], None] = time.sleep,
    ) -> None:
        self.max_concurrency = max(1, min(int(max_concurrency), API_MAX_CONNECTIONS))
        self._per_window = max(1, int(max_requests_per_second)) if max_requests_per_second else None
        self._window = 1.0 + WINDOW_MARGIN_SECONDS
        if max_requests_per_second and max_requests_per_second < 1:
            # Slower than one a second: one request per 1/rate seconds.
            self._per_window = 1
            self._window = 1.0 / max_requests_per_second + WINDOW_MARGIN_SECONDS
        self._spacing = self._window / self._per_window * 0.9 if self._per_window else 0.0
        self._starts: collections.deque[float] = collections.deque()
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(self.max_concurrency)
        self._clock = clock
        self._sleep = sleep

    def _wait_for_rate(self) -> None:
        if self._per_window is None:
            return
        while True:
            with self._lock:
                now = self._clock()
                while self._starts and now - self._starts[0] >= self._window:
                    self._starts.popleft()
                # Even spacing as well as the window: a burst of N starts at the top of each
                # window reaches the server with varied delays and can spill into its next second.
                spacing = self._spacing - (now - self._starts[-1]) if self._starts else 0.0
                if len(self._starts) < self._per_window and spacing <= 0:
                    self._starts.append(now)
                    return
                delay = spacing if len(self._starts) < self._per_window else self._window - (now - self._starts[0])
            self._sleep(max(delay, 0.001))

    @contextlib.contextmanager
    def slot(self) -> t.Iterator[None]:
        """Hold one connection slot and one rate token for the duration of a request."""
        with self._slots:
            self._wait_for_rate()
            yield
