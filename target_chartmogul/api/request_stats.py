"""Counts of the HTTP attempts of a run, for the summary: requests, retries, 429s, bulk imports, writes a dry run
held back.

An observer of the client (like the request log), so the counts cover every call of every
sink without the sinks knowing.
"""

from __future__ import annotations

import re
import threading
import typing as t

if t.TYPE_CHECKING:
    from target_chartmogul.api.client import Attempt

BULK_IMPORT = re.compile(r"/?data_sources/[^/]+/json_imports/?")  # POST: one bulk import sent


class RequestStats:
    """Thread-safe counters fed one `Attempt` at a time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests = 0  # attempts sent (a retry is one more)
        self.retries = 0  # attempts after the first of a call
        self.rate_limited = 0  # attempts answered 429
        self.held_back = 0  # writes a dry run answered itself, never sent
        self.bulk_imports = 0  # bulk imports ChartMogul accepted (POST …/json_imports answered 2xx)

    def __call__(self, attempt: Attempt) -> None:
        """Count one attempt."""
        with self._lock:
            if attempt.dry_run:
                self.held_back += 1
                return
            self.requests += 1
            self.retries += attempt.attempt > 1
            self.rate_limited += attempt.status == 429
            accepted = attempt.status is not None and 200 <= attempt.status < 300
            self.bulk_imports += accepted and attempt.method == "POST" and bool(BULK_IMPORT.fullmatch(attempt.path))

    def figures(self) -> dict[str, int]:
        """The counts as the summary file names them."""
        with self._lock:
            return {"requests": self.requests, "retries": self.retries, "answered_429": self.rate_limited,
                    "bulk_imports": self.bulk_imports}

    def describe(self) -> str:
        """`13 API requests (2 retries, 1 answered 429)`, plus the writes a dry run did not send."""
        requests = f"{self.requests} API request{'' if self.requests == 1 else 's'}"
        retries = f"{self.retries} retr{'y' if self.retries == 1 else 'ies'}"
        text = f"{requests} ({retries}, {self.rate_limited} answered 429)"
        if self.held_back:
            text += f"; {self.held_back} write(s) not sent (dry run)"
        return text
