"""The error types every layer raises; it imports nothing of the package, so any module may import it.

An answer ChartMogul refused is an `APIError`, with the reading of its error bodies, in
`target_chartmogul.api.errors`.
"""

from __future__ import annotations


class TargetChartMogulError(Exception):
    """Base class for this target's own errors."""


class FatalError(TargetChartMogulError):
    """Stops the whole run: no record could succeed (bad key, API unreachable, bad config)."""


class AuthenticationError(FatalError):
    """ChartMogul refused the API key (401/403); retrying cannot help."""


class RetriesExhaustedError(FatalError):
    """A transient failure outlasted every retry; the run stops so STATE does not advance."""


class StoppedError(FatalError):
    """SIGTERM/SIGINT arrived while a call waited to be retried: the call is abandoned, not retried for minutes."""


class UncertainWrite(TargetChartMogulError):
    """A write that may have reached ChartMogul but whose answer was lost (no answer in time, a 5xx): the caller
    must find out whether it landed before sending it again (a bulk import must never be sent twice).
    """


class RecordRejected(TargetChartMogulError):
    """One record cannot be written; it goes to the rejects file and the run goes on."""

    def __init__(self, reason: str, *, field: str | None = None, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = field
        self.status = status
