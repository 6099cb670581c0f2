"""Stopping on SIGTERM/SIGINT without cutting a batch in half.

A signal that arrives while a batch is being written waits for that batch: stopping in
the middle would leave some of its records written and others not, with no STATE to say
which. A signal that arrives between batches stops at once. A call of the batch in flight
that waits to be retried is abandoned at once (`requested` ends the client's retry wait):
an API that keeps failing would otherwise hold the stop for minutes.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import typing as t

LOGGER = logging.getLogger("target-chartmogul")


class StopGuard:
    """Counts batches being written; a stop requested meanwhile runs when the last one ends."""

    def __init__(self, stop: t.Callable[[int], None]) -> None:
        self._stop = stop
        self._writing = 0
        self._requested: int | None = None
        self.requested = threading.Event()  # set on the first signal; the HTTP client's retry waits watch it

    @contextlib.contextmanager
    def writing(self) -> t.Iterator[None]:
        """Mark a batch write in progress (re-entrant: a batch may drain its dependencies)."""
        self._writing += 1
        try:
            yield
        finally:
            self._writing -= 1
        if self._writing == 0 and self._requested is not None:
            self._stop_now()

    def request(self, signum: int) -> None:
        """A signal arrived: stop now, or once the batch in flight is written."""
        self._requested = signum
        self.requested.set()
        if self._writing:
            LOGGER.info("Received signal %d during a write: finishing the batch in flight first", signum)
            return
        self._stop_now()

    def _stop_now(self) -> None:
        signum, self._requested = self._requested, None  # the final drain must not stop again
        if signum is not None:
            self._stop(signum)
