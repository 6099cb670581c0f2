"""Clocks for the HTTP client in tests: retries wait on them instead of sleeping.

`InstantClock` answers every wait at once and keeps what was asked, so a test of the retry
policy reads the exact waits backoff computed instead of spending them.
"""

from __future__ import annotations

import threading

from target_chartmogul.api.client import Clock


class InstantClock(Clock):
    """A clock whose waits end at once (a stop already requested still ends the call); `waits` lists them."""

    def __init__(self) -> None:
        self.waits: list[float] = []
        self._lock = threading.Lock()

    def wait(self, stop: threading.Event, seconds: float) -> bool:
        with self._lock:
            self.waits.append(seconds)
        return stop.is_set()
