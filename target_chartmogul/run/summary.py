"""Per-stream counts of what happened to each record, logged as a table at the end."""

from __future__ import annotations

import collections
import threading
import typing as t

OUTCOMES = (
    "created",
    "imported",
    "updated",
    "corrected",
    "status_changed",
    "status_unconfirmed",
    "unchanged",
    "already_present",
    "changed_not_applied",
    "deleted",
    "superseded",
    "rejected",
    "skipped",
    "retried",
    "retry_refused",
)
# The closing line's three figures (target_chartmogul/run/report.py): what landed, what needed nothing.
WRITTEN = ("created", "imported", "updated", "corrected", "status_changed", "deleted")
UNCHANGED = ("unchanged", "already_present")
# A dry run's table says what it would do (nothing was written).
DRY_RUN_COLUMNS = {"created": "would create", "updated": "would update", "deleted": "would delete"}


class RunSummary:
    """Thread-safe counters: received plus one outcome per record."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: dict[str, collections.Counter[str]] = {}
        self.objects: dict[str, str] = {}

    def add(self, stream: str, outcome: str, n: int = 1) -> None:
        """Count `n` records of `stream` with `outcome` (or `received`)."""
        with self._lock:
            self.counts.setdefault(stream, collections.Counter())[outcome] += n

    def get(self, stream: str, outcome: str) -> int:
        """One counter's value."""
        with self._lock:
            return self.counts.get(stream, collections.Counter())[outcome]

    def total(self, outcome: str) -> int:
        """One outcome summed over all streams."""
        with self._lock:
            return sum(c[outcome] for c in self.counts.values())

    def as_dict(self) -> dict[str, dict[str, int]]:
        """Plain copy, for tests and machine-readable output."""
        with self._lock:
            return {s: {k: c[k] for k in ("received", *OUTCOMES)} for s, c in self.counts.items()}

    def table(self, headings: t.Mapping[str, str] | None = None) -> str:
        """The counts as a fixed-width text table with a totals row (outcome columns that are all zero left out);
        `headings` name some columns otherwise (a dry run's `would create`).
        """
        counts = self.as_dict()
        shown = [c for c in OUTCOMES if any(row[c] for row in counts.values())]
        columns = ("received", *shown)
        rows: list[t.Sequence[str]] = [("stream", "object", *((headings or {}).get(c, c) for c in columns))]
        for stream, row in sorted(counts.items()):
            rows.append((stream, self.objects.get(stream, "-"), *(str(row[c]) for c in columns)))
        rows.append(("total", "", *(str(sum(row[c] for row in counts.values())) for c in columns)))
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        return "\n".join(
            "  ".join(
                cell.rjust(w) if i > 1 else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            ).rstrip()
            for row in rows
        )
