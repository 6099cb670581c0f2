"""Whether a stream arrived as a complete full-table version: only then is what ChartMogul holds beyond it extra.

The same semantics as the deletes of a writing run (`sinks/deletions.py`, `run/ordering.py`):
records carrying `_sdc_table_version` form a version; it is known whole once the tap moves on
to another stream (SDK taps send one stream at a time) or once an ACTIVATE_VERSION at least as
new comes after its records. A version that is still open when the input ends (a tap that died
mid-stream looks the same) is not complete, and an incremental stream never has a version.
"""

from __future__ import annotations

import typing as t


class FullTableVersion:
    """The version one stream is sending; `on_change(complete)` hears when it becomes whole, or a new one opens."""

    def __init__(self, on_change: t.Callable[[bool], None]) -> None:
        self.on_change = on_change
        self.version: int | None = None
        self.has_records = False

    def start(self, version: int) -> None:
        """A newer version begins: the stream is not complete until it is."""
        self.version, self.has_records = version, False
        self.on_change(False)

    def record(self, version: t.Any) -> None:
        """A record of the stream (not a deleted row) with its `_sdc_table_version`, if any."""
        if version is None:
            return
        if self.version is None or version > self.version:
            self.start(version)
        if version == self.version:
            self.has_records = True

    @property
    def pending(self) -> bool:
        """A version whose records arrived and that is not yet known whole."""
        return self.version is not None and self.has_records

    def complete(self) -> None:
        """The version arrived whole."""
        self.has_records = False
        self.on_change(True)

    def other_stream_started(self) -> None:
        """Another stream's message: the pending version arrived whole."""
        if self.pending:
            self.complete()

    def activate(self, new_version: int) -> None:
        """ACTIVATE_VERSION: after a version's records it marks it whole; before them it starts one."""
        if self.pending and self.version is not None and new_version >= self.version:
            self.complete()
        if new_version != self.version:
            self.start(new_version)
