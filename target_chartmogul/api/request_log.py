"""The request log: one JSON line per HTTP attempt, the open counterpart of a live debugger.

Holds method, path, query, status, duration, attempt number and both bodies (cut at a
size limit). The Authorization header is never handed to it, so the key cannot leak.
In a dry run each write has a line too, marked `dry_run`, with status null (it was not
sent) and, as response body, the answer ChartMogul would have given.
"""

from __future__ import annotations

import datetime as dt
import pathlib
import threading

from target_chartmogul.api.client import Attempt
from target_chartmogul.values.encoding import dumps

BODY_LIMIT = 4000


def _cut(text: str | None) -> str | None:
    if text is None or len(text) <= BODY_LIMIT:
        return text
    return text[:BODY_LIMIT] + f"…[{len(text) - BODY_LIMIT} more characters]"


def _text(body: object) -> str:
    """A body as sent: bytes (a bulk import, encoded once) read back as text, anything else encoded."""
    if isinstance(body, bytes):
        return body[: BODY_LIMIT * 4].decode("utf-8", "ignore") + ("" if len(body) <= BODY_LIMIT * 4 else "…")
    return dumps(body)


class RequestLog:
    """Thread-safe JSON-lines writer, used as a `ChartMogulClient` observer."""

    def __init__(self, path: str | pathlib.Path) -> None:
        self.path = pathlib.Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = self.path.open("a", encoding="utf-8")
        self._lock = threading.Lock()

    def __call__(self, attempt: Attempt) -> None:
        """Append one attempt."""
        line = dumps(
            {
                "time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "method": attempt.method,
                "path": attempt.path,
                "query": attempt.params or {},
                "status": attempt.status,
                "duration_ms": round(attempt.duration * 1000, 1),
                "attempt": attempt.attempt,
                "dry_run": attempt.dry_run,
                "error": attempt.error,
                "request_body": _cut(_text(attempt.body)) if attempt.body is not None else None,
                "response_body": _cut(attempt.response_text),
            },
        )
        with self._lock:
            self._handle.write(line + "\n")
            self._handle.flush()

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            self._handle.close()
