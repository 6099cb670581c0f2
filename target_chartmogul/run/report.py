"""The end of a run as a person reads it: the summary table, the run's figures, and one last line.

The last line is always `target-chartmogul finished: N written, M unchanged, R rejected
(see <rejects file>)` or `target-chartmogul failed: <reason>`, so a user (or a script
tailing Meltano's log) learns the outcome without reading the table. With `summary_path`
the same ending goes to a JSON file for schedulers (`run.summary_file`), from the same counts.
"""

from __future__ import annotations

import logging
import pathlib
import threading
import time
import typing as t

from target_chartmogul.config.settings import setting
from target_chartmogul.run import summary_file
from target_chartmogul.run.rejects_file import dry_run_path
from target_chartmogul.run.summary import UNCHANGED, WRITTEN

if t.TYPE_CHECKING:
    from target_chartmogul.api.request_stats import RequestStats
    from target_chartmogul.run.data_source import DataSource
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
        summary_path: pathlib.Path | None = None,
        secrets: t.Sequence[str] = (),
    ) -> None:
        self.summary = summary
        self.stats = stats
        self.logger = logger
        self.dry_run = dry_run
        self.rejects_path = rejects_path
        self.summary_path = summary_path
        self.secrets = tuple(secrets)
        self.started_at = summary_file.now()
        self.start_time = time.monotonic()
        self.stopped_by: int | None = None  # the signal that ended the run, if one did
        self.data_source: DataSource | None = None
        self._lock = threading.Lock()
        self._summary_logged = False

    def log_summary(self) -> None:
        """The per-stream table with totals, elapsed time and API figures (once per run)."""
        with self._lock:
            if self._summary_logged:
                return
            self._summary_logged = True
        if self.summary.counts:
            self.logger.info("Summary of this run:\n%s", self.summary.table())
        elapsed = time.monotonic() - self.start_time
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
        status = "stopped" if self.stopped_by else "succeeded_with_rejects" if rejected else "succeeded"
        self.write_summary_file(status, 0)

    def failed(self, reason: str) -> None:
        """The closing line of a run that stopped: what happened, once, after the figures."""
        self.log_summary()
        self.logger.error("%s failed: %s", PREFIX, reason)
        self.write_summary_file("stopped" if self.stopped_by else "failed", 1, reason)

    # The summary file ---------------------------------------------------------------------------
    def started(self) -> None:
        """`running` in the summary file: a run killed outright leaves that, never the last run's outcome."""
        self.write_summary_file("running", None)

    def reconciled(self, exit_code: int, details: t.Mapping[str, t.Any]) -> None:
        """A reconcile run's summary file: `succeeded` (both sides agree, exit 0) or `succeeded_with_differences`
        (exit 3), with what it found under `reconcile`; its closing line is the reconciliation's own.
        """
        status = "succeeded" if exit_code == 0 else "succeeded_with_differences"
        self.write_summary_file(status, exit_code, extra={"reconcile": dict(details)})

    def document(self, status: str, exit_code: int | None, reason: str | None = None) -> dict[str, t.Any]:
        """The summary file's content: the figures and counts the log's last lines show."""
        counts = self.summary.as_dict()
        source = self.data_source
        return {
            "status": status,
            "exit_code": exit_code,
            "reason": summary_file.hidden(reason, self.secrets),
            "dry_run": self.dry_run,
            "started_at": self.started_at,
            "finished_at": None if status == "running" else summary_file.now(),
            "elapsed_seconds": round(time.monotonic() - self.start_time, 3),
            "data_source": None if source is None else {"uuid": source.uuid, "name": source.name,
                                                        "created": source.created},
            **self.stats.figures(),
            "rejects_path": str(self.rejects_path),
            "streams": summary_file.stream_counts(counts, self.summary.objects),
            "totals": summary_file.totals(counts),
        }

    def write_summary_file(self, status: str, exit_code: int | None, reason: str | None = None, *,
                           extra: t.Mapping[str, t.Any] | None = None) -> None:
        """Write the summary file, when `summary_path` is set; a file that cannot be written is logged, not fatal."""
        if self.summary_path is None:
            return
        try:
            summary_file.write(self.summary_path, {**self.document(status, exit_code, reason), **(extra or {})})
        except OSError as exc:
            self.logger.error("Could not write the summary file %s: %s", self.summary_path, exc)


def summary_path_of(config: t.Mapping[str, t.Any]) -> pathlib.Path | None:
    """Where this run's summary file goes: `summary_path`, or beside it `….dry-run.json` for a dry run."""
    path = setting(config, "summary_path")
    if not path or not isinstance(path, str):  # a value of the wrong type is the settings error being reported
        return None
    return dry_run_path(path) if setting(config, "dry_run") is True else pathlib.Path(path)


def failed_before_start(config: t.Mapping[str, t.Any], reason: str) -> None:
    """The summary file of a run refused before it had a context (bad settings): `failed`, with no figures."""
    path = summary_path_of(config)
    if path is None:
        return
    dry_run = setting(config, "dry_run") is True
    rejects = str(setting(config, "rejects_path"))
    document = {
        "status": "failed", "exit_code": 1, "reason": summary_file.hidden(reason, [str(config.get("api_key") or "")]),
        "dry_run": dry_run, "started_at": None, "finished_at": summary_file.now(), "elapsed_seconds": None,
        "data_source": None, "requests": None, "retries": None, "answered_429": None, "bulk_imports": None,
        "rejects_path": str(dry_run_path(rejects)) if dry_run else rejects, "streams": {}, "totals": {},
    }
    try:
        summary_file.write(path, document)
    except OSError:  # the run failed already, and says why: the file is a convenience
        return
