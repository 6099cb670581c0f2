"""What the bulk lane needs of the run, seen only through what it uses of each piece.

The run's summary, write order, invoice parts, progress lines and stop guard live in `run`, a
layer above `bulk` (docs/architecture.md, "What may import what"): the lane and its
verification see them through these small protocols, and `run.context.RunContext` fits them.
"""

from __future__ import annotations

import contextlib
import pathlib
import threading
import typing as t

if t.TYPE_CHECKING:
    import logging

    from target_chartmogul.api.client import ChartMogulClient
    from target_chartmogul.memory.ledger import Ledger
    from target_chartmogul.memory.references import References

Record = dict[str, t.Any]


class Counts(t.Protocol):
    """The run's summary (`run.summary.RunSummary`)."""

    def add(self, stream: str, outcome: str, n: int = 1) -> None:
        """Count records of a stream with an outcome."""

    def total(self, outcome: str) -> int:
        """One outcome summed over all streams."""


class Order(t.Protocol):
    """The run's write order (`run.ordering.WriteOrder`)."""

    @property
    def final_pass(self) -> bool:
        """True once the input has ended."""


class NestedParts(t.Protocol):
    """The run's invoice parts (`run.invoice_parts.InvoiceParts`)."""

    def nested(self, data_source_uuid: str, external_id: str, outcome: str = "created", uuid: str | None = None) -> None:
        """A payment went into its invoice's import."""


class Progress(t.Protocol):
    """The run's progress lines (`run.progress.ProgressReporter`)."""

    @property
    def sources(self) -> list[t.Callable[[], str | None]]:
        """Other figures, a line each when set."""


class Guard(t.Protocol):
    """The run's stop guard (`run.stopping.StopGuard`)."""

    @property
    def requested(self) -> threading.Event:
        """Set on the first signal."""

    def writing(self) -> contextlib.AbstractContextManager[None]:
        """Mark a batch write in progress."""


class LaneContext(t.Protocol):
    """What the lane needs of the run (target_chartmogul.run.context.RunContext)."""

    logger: logging.Logger
    dry_run: bool
    refs: References

    @property
    def summary(self) -> Counts:
        """Outcomes per stream."""

    @property
    def order(self) -> Order:
        """The write order."""

    @property
    def invoice_parts(self) -> NestedParts:
        """Invoice parts waiting for their invoice."""

    @property
    def progress(self) -> Progress:
        """Progress lines."""

    @property
    def guard(self) -> Guard:
        """The stop guard."""

    @property
    def client(self) -> ChartMogulClient:
        """The run's HTTP client."""

    @property
    def ledger(self) -> Ledger:
        """The sync memory."""

    def setting(self, name: str) -> t.Any:
        """A top-level setting."""

    @property
    def state_dir(self) -> pathlib.Path:
        """Where files beside the sync memory go (the spool)."""

    def reject(self, stream: str, key: dict[str, t.Any], reject_key: str, record: Record, reason: str, *,
               field: str | None = None, status: int | None = None) -> None:
        """Refuse one record."""
