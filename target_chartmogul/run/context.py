"""Everything a sink needs for one run, handed to it as one object.

The target builds one `RunContext` and every sink gets it: the HTTP client, the sync
memory, the references, the rejects file, the summary, the write order and the stop
guard. Sinks never import or reach into the target, so a sink can be built and tested
with a context alone, and the target stays free to change how it routes and drains.
"""

from __future__ import annotations

import functools
import logging
import pathlib
import threading
import types
import typing as t

from target_chartmogul.api.client import ChartMogulClient
from target_chartmogul.api.dry_run import DryRunClient
from target_chartmogul.api.errors import APIError
from target_chartmogul.api.request_log import RequestLog
from target_chartmogul.api.request_stats import RequestStats
from target_chartmogul.bulk.lane import BulkLane
from target_chartmogul.config.settings import StreamSettings, setting, stream_settings
from target_chartmogul.errors import FatalError
from target_chartmogul.memory.ledger import Ledger, state_dir
from target_chartmogul.memory.references import References
from target_chartmogul.run.data_source import DataSource, resolve
from target_chartmogul.run.invoice_parts import InvoiceParts
from target_chartmogul.run.ordering import WriteOrder
from target_chartmogul.run.progress import ProgressReporter
from target_chartmogul.run.rejects_file import RejectsFile, dry_run_path
from target_chartmogul.run.report import RunReport, summary_path_of
from target_chartmogul.run.stopping import StopGuard
from target_chartmogul.run.summary import RunSummary


class RunContext:
    """The shared pieces of one run; the client and the sync memory open on first use."""

    def __init__(
        self,
        config: t.Mapping[str, t.Any],
        logger: logging.Logger,
        *,
        drain: t.Callable[[t.Any], None],
        stop: t.Callable[[int], None],
    ) -> None:
        self.config = config
        self.logger = logger
        self.dry_run = bool(self.setting("dry_run"))
        self.data_source = DataSource(config.get("data_source_uuid") or None)
        self.summary = RunSummary()
        rejects_path = pathlib.Path(self.setting("rejects_path"))
        # A dry run's would-be rejects go to a file of their own, never mixed into the real one.
        self.rejects = RejectsFile(dry_run_path(rejects_path) if self.dry_run else rejects_path, fresh=self.dry_run)
        self.request_log = RequestLog(config["request_log"]) if config.get("request_log") else None
        self.progress = ProgressReporter(self.summary, logger, float(self.setting("progress_interval")))
        self.refs = References(lambda: self.client, lambda: self.ledger)
        self.order = WriteOrder(drain)
        self.invoice_parts = InvoiceParts()
        self.guard = StopGuard(stop)
        self.request_stats = RequestStats()
        self.state_dir = state_dir(str(self.setting("ledger_url")), rejects_path)
        self.report = RunReport(self.summary, self.request_stats, logger, dry_run=self.dry_run, rejects_path=self.rejects.path,
                                summary_path=summary_path_of(config), secrets=[str(config.get("api_key") or "")])
        self.bulk = BulkLane(self)
        self.problems: list[str] = []
        self._rejected_now: set[tuple[str, str]] = set()
        self._streams: dict[str, StreamSettings] = {}
        self._client: ChartMogulClient | None = None
        self._client_lock = threading.Lock()

    def setting(self, name: str) -> t.Any:
        """A top-level setting, or its default from the settings schema."""
        return setting(self.config, name)

    def stream(self, stream_name: str) -> StreamSettings:
        """Resolved options of one stream (cached; a bad option is a FatalError)."""
        if stream_name not in self._streams:
            self._streams[stream_name] = stream_settings(stream_name, self.config.get("streams"))
        return self._streams[stream_name]

    def resolve_data_source(self) -> DataSource:
        """Find (or create once) the data source `data_source_name` names, before any input is read.

        The one place the default data source is decided: afterwards `config["data_source_uuid"]`
        is the resolved uuid for every reader (sinks, the bulk lane). No call without a name.
        """
        if self.config.get("data_source_name"):
            self.data_source = resolve(self.client, self.config.get("data_source_uuid"),
                                       self.config.get("data_source_name"), self.logger, dry_run=self.dry_run,
                                       create=not self.setting("reconcile"))
            self.config = types.MappingProxyType({**self.config, "data_source_uuid": self.data_source.uuid})
        self.report.data_source = self.data_source
        return self.data_source

    # Opened on first use --------------------------------------------------------------------
    @functools.cached_property
    def ledger(self) -> Ledger:
        """The sync memory, opened when the first object sink needs it (not for skipped-only runs)."""
        return Ledger(self.setting("ledger_url"), read_only=self.dry_run)

    @property
    def ledger_opened(self) -> bool:
        """Whether the sync memory was opened in this run."""
        return "ledger" in self.__dict__

    @property
    def client(self) -> ChartMogulClient:
        """The one HTTP client of the run, built on first use; its first call checks the account."""
        with self._client_lock:
            if self._client is None:
                client_class = DryRunClient if self.dry_run else ChartMogulClient
                self._client = client_class(
                    self.setting("api_url"),
                    self.config["api_key"],
                    max_requests_per_second=self.setting("max_requests_per_second"),
                    max_concurrency=int(self.setting("max_concurrency")),
                    timeout=float(self.setting("request_timeout")),
                    max_retries=int(self.setting("max_retries")),
                    observers=[self.request_stats, *([self.request_log] if self.request_log else [])],
                    stop_requested=self.guard.requested,
                )
                self._client.preflight = self.check_account
            return self._client

    def check_account(self) -> None:
        """Before the first API call: the key works (ping) and the data source exists.

        A wrong key or data source then fails with one clear line instead of one refusal
        per record; a run that needs no call (all unchanged) makes none.
        """
        self.client.get("ping")
        ds = self.config.get("data_source_uuid")
        if ds and not self.config.get("data_source_name"):  # with a name, `resolve_data_source` checks it
            try:
                self.client.get(f"data_sources/{ds}")
            except APIError as exc:
                msg = f"data_source_uuid {ds!r} is not a data source of this ChartMogul account ({exc.message})"
                raise FatalError(msg) from None

    # What went wrong --------------------------------------------------------------------------
    def report_problem(self, message: str) -> None:
        """A failure that is not one record's (a blocked delete): logged, and fails `on_reject: fail`."""
        self.logger.error(message)
        self.problems.append(message)

    def reject(
        self,
        stream: str,
        key: dict[str, t.Any],
        reject_key: str,
        record: dict[str, t.Any],
        reason: str,
        *,
        field: str | None = None,
        status: int | None = None,
    ) -> None:
        """Refuse one record: a rejects-file line, remembered for the next run's retry, counted."""
        self.logger.warning("Rejected %s record %s: %s", stream, key, reason)
        self.rejects.write(stream=stream, key=key, record=record, reason=reason, field=field, status=status)
        self.note_rejected(stream, reject_key)
        self.ledger.remember_reject(stream, reject_key, record, reason, field, status)
        self.summary.add(stream, "rejected")

    def note_rejected(self, stream: str, reject_key: str) -> None:
        """Records refused in this run are not retried again in this run."""
        self._rejected_now.add((stream, reject_key))

    def rejected_now(self, stream: str, reject_key: str) -> bool:
        """Whether this record was refused earlier in this run."""
        return (stream, reject_key) in self._rejected_now

    def close(self) -> None:
        """Stop progress lines, flush and close the sync memory, the request log and the HTTP pool."""
        self.progress.stop()
        self.bulk.close()
        if self.ledger_opened:
            self.ledger.close()
        if self.request_log is not None:
            self.request_log.close()
        if self._client is not None:
            self._client.close()
