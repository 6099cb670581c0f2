"""The order of writes: what a batch depends on drains first, and records wait for what comes later.

ChartMogul needs a plan and a customer before an invoice that names them, and an invoice
before its transactions. Taps send streams in their own order (tap-postgres sorts them by
name), so:

- before a sink writes a batch, every sink of a lower rank drains first (`before_write`);
- a record whose reference is neither written nor in ChartMogul yet waits (`defer`) for
  the end of the input, where waiting records are retried rank by rank after everything
  else was drained; only then is a still-missing reference a reject;
- no STATE may go out while a record waits (`waiting`).

The sinks are seen only through `Sequenced`; this module imports none of them.
"""

from __future__ import annotations

import threading
import typing as t

from target_chartmogul.config.registry import rank_of

Record = dict[str, t.Any]


class Ranked(t.Protocol):
    """Anything that writes one ChartMogul object (a sink): its rank."""

    @property
    def object_name(self) -> str:
        """The ChartMogul object the sink writes (its rank)."""


class Sequenced(Ranked, t.Protocol):
    """What the ordering needs of a sink."""

    @property
    def stream_name(self) -> str:
        """The stream the sink writes."""

    def retry(self, records: list[Record]) -> None:
        """Write records that waited (or were refused earlier) again."""

    def other_stream_started(self) -> None:
        """A message of another stream arrived: a full-table version of this one is complete."""

    def finish_input(self) -> None:
        """Everything of the input was written or refused: a last step (lines whose header never came)."""


def rank(sink: Ranked) -> int:
    """Plans first, then customers, invoices, transactions; anything else last."""
    return rank_of(sink.object_name)


class WriteOrder:
    """Dependency order and deferral for every object sink of a run (retired ones too)."""

    def __init__(self, drain: t.Callable[[t.Any], None]) -> None:
        self._drain = drain
        self._sinks: list[Sequenced] = []
        self._waiting: dict[int, list[Record]] = {}
        self._lock = threading.Lock()
        self._final = False
        self._last_stream: str | None = None

    def register(self, sink: Sequenced) -> None:
        """Keep a sink for the life of the run, so records it deferred are never forgotten."""
        self._sinks.append(sink)

    @property
    def sinks(self) -> list[Sequenced]:
        """Every object sink of the run, in the order they were made."""
        return list(self._sinks)

    def drain(self, sink: Sequenced) -> None:
        """Write a sink's staged records now (a full-table version completes only after its last batch)."""
        self._drain(sink)

    def before_write(self, sink: Sequenced) -> None:
        """Drain the sinks a batch depends on (plans and customers before invoices) first."""
        for other in self._sinks:
            if other is not sink and rank(other) < rank(sink):
                self._drain(other)

    # Waiting for references ---------------------------------------------------------
    @property
    def final_pass(self) -> bool:
        """True once input has ended: an unresolved reference is then rejected, not deferred."""
        return self._final

    def begin_final_pass(self) -> None:
        """The input has ended: from now on nothing more can arrive to resolve a reference."""
        self._final = True

    def defer(self, sink: Sequenced, record: Record) -> None:
        """Keep a record until the end of input (its reference may come later in it)."""
        with self._lock:
            self._waiting.setdefault(id(sink), []).append(record)

    def waiting(self) -> int:
        """Records waiting for a reference: while any wait, no STATE may cover them."""
        with self._lock:
            return sum(len(records) for records in self._waiting.values())

    def retry_waiting(self) -> None:
        """Retry waiting records rank by rank, so a waiting invoice lands before its waiting refund."""
        for sink in sorted(self._sinks, key=rank):
            with self._lock:
                records = self._waiting.pop(id(sink), [])
            if records:
                sink.retry(records)

    def finish(self) -> None:
        """After the waiting records: each sink's last step, rank by rank."""
        for sink in sorted(self._sinks, key=rank):
            sink.finish_input()

    # Streams ------------------------------------------------------------------------------
    def stream_seen(self, stream_name: str, active: t.Iterable[Sequenced]) -> None:
        """SDK taps send one stream at a time: a message of another stream ends the previous one."""
        if stream_name == self._last_stream:
            return
        self._last_stream = stream_name
        for sink in list(active):
            if sink.stream_name != stream_name:
                sink.other_stream_started()
