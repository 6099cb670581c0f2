"""Progress lines on long runs: per active stream, records done, rate and rejects so far.

A stream is active when it received or finished records since the last line: finished and
skipped streams would otherwise repeat the same figures every interval.
"""

from __future__ import annotations

import logging
import threading
import time
import typing as t

from target_chartmogul.run.summary import RunSummary

DONE_OUTCOMES = ("created", "imported", "updated", "corrected", "status_changed", "status_unconfirmed", "unchanged",
                 "already_present", "changed_not_applied", "deleted", "superseded", "rejected", "skipped")


class ProgressReporter:
    """A daemon thread that logs one line per active stream every `interval` seconds."""

    def __init__(self, summary: RunSummary, logger: logging.Logger, interval: float = 10.0) -> None:
        self.summary = summary
        self.logger = logger
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = time.monotonic()
        self._last: dict[str, tuple[int, int]] = {}  # stream -> (received, done) at the last line
        self.sources: list[t.Callable[[], str | None]] = []  # other figures (bulk imports), a line each when set

    def start(self) -> None:
        """Start reporting (idempotent)."""
        if self._thread is None and self.interval > 0:
            self._thread = threading.Thread(target=self._run, name="progress", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop reporting."""
        self._stop.set()

    def _run(self) -> None:
        last_time = time.monotonic()
        while not self._stop.wait(self.interval):
            now = time.monotonic()
            self.report(now - last_time)
            last_time = now

    def report(self, elapsed: float) -> None:
        """Log the current figures of every stream that moved since the last line (skipped streams never)."""
        for stream, counts in sorted(self.summary.as_dict().items()):
            if self.summary.objects.get(stream) == "(skipped)":
                continue
            received, done = counts.get("received", 0), sum(counts.get(k, 0) for k in DONE_OUTCOMES)
            last_received, last_done = self._last.get(stream, (0, 0))
            if (received, done) == (last_received, last_done):
                continue
            rate = (done - last_done) / elapsed if elapsed > 0 else 0.0
            self._last[stream] = (received, done)
            self.logger.info(
                "Progress %s: %d received, %d done (%.1f/s), %d rejected, %.0fs elapsed",
                stream,
                received,
                done,
                rate,
                counts.get("rejected", 0),
                time.monotonic() - self._started,
            )
        for source in list(self.sources):
            line = source()
            if line:
                self.logger.info("Progress %s", line)
