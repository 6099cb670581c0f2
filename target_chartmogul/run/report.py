"""The end of a run as a person reads it: the summary table, the run's figures, and one last line.

The last line is always `target-chartmogul finished: N written, M unchanged, R rejected
(see <rejects file>)` or `target-chartmogul failed: <reason>`, so a user (or a script
tailing Meltano's log) learns the outcome without reading the table.
"""

from __future__ import annotations

import logging
import threading
import time
import typing as t

from target_chartmogul.run.summary import DRY_RUN_COLUMNS, UNCHANGED, WRITTEN

if t.TYPE_CHECKING:
    import pathlib

    from target_chartmogul.api.request_stats import RequestStats
    from target_chartmogul.run.summary import RunSummary

PREFIX = "target-chartmogul"


class RunReport:
    """Logs the summary once (whichever way the run ends), then the closing line."""

    def __init__(
        self,
        summary: RunSummary,
        stats: RequestStats,
        logger: logging.Logger,
        *,
        dry_run: bool,
        rejects_path: pathlib.Path,
    ) -> None:
        self.summary = summary
        self.stats = stats
        self.logger = logger
        self.dry_run = dry_run
        self.rejects_path = rejects_path
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self._summary_logged = False

    def log_summary(self) -> None:
        """The per-stream table with totals, elapsed time and API figures (once per run)."""
        with self._lock:
            if self._summary_logged:
                return
            self._summary_logged = True
        if self.summary.counts:
            self.logger.info("Summary of this run:\n%s", self.summary.table(DRY_RUN_COLUMNS if self.dry_run else None))
        elapsed = time.monotonic() - self.started
        self.logger.info("Elapsed %.1fs; %s", elapsed, self.stats.describe())
        if self.dry_run:
            total = self.summary.total
            bulk = f", import {total('imported')} in bulk" if total("imported") else ""
            self.logger.info(
                "DRY RUN: would create %d%s, update %d, delete %d, reject %d (nothing was written%s)",
                total("created"),
                bulk,
                total("updated"),
                total("deleted"),
                total("rejected"),
                f"; would-be rejects in {self.rejects_path}" if total("rejected") else "",
            )

    def finished(self) -> None:
        """The closing line of a run that ended as it should (rejects included: they are in the file)."""
        self.log_summary()
        written = sum(self.summary.total(outcome) for outcome in WRITTEN)
        unchanged = sum(self.summary.total(outcome) for outcome in UNCHANGED)
        rejected = self.summary.total("rejected")
        see = f" (see {self.rejects_path})" if rejected else ""
        if self.dry_run:
            line = f"{PREFIX} finished (dry run, nothing written): would write {written}, {unchanged} unchanged, "
            line += f"would reject {rejected}{see}"
        else:
            line = f"{PREFIX} finished: {written} written, {unchanged} unchanged, {rejected} rejected{see}"
        self.logger.log(logging.WARNING if rejected else logging.INFO, "%s", line)

    def failed(self, reason: str) -> None:
        """The closing line of a run that stopped: what happened, once, after the figures."""
        self.log_summary()
        self.logger.error("%s failed: %s", PREFIX, reason)
