"""TargetChartMogul: routes streams to object sinks, orders writes, owns the shared pieces.

Owns the one HTTP client, the rejects file and the run summary; drains sinks in
dependency order (plans, customers, invoices, transactions); writes STATE with an
encoder that survives Decimal; turns fatal errors into one clear line and exit 1.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import logging
import pathlib
import sys
import threading
import typing as t
from types import FrameType

from singer_sdk import Target
from singer_sdk.exceptions import ConfigValidationError, InvalidInputLine
from singer_sdk.helpers.capabilities import CapabilitiesEnum, PluginCapabilities
from singer_sdk.sinks import Sink

from target_chartmogul.client import ChartMogulClient
from target_chartmogul.encoding import dumps
from target_chartmogul.errors import APIError, FatalError
from target_chartmogul.ledger import Ledger
from target_chartmogul.progress import ProgressReporter
from target_chartmogul.reader import StrictSingerReader
from target_chartmogul.references import References
from target_chartmogul.rejects import RejectsFile
from target_chartmogul.request_log import RequestLog
from target_chartmogul.settings import (
    CONFIG_SCHEMA,
    DEFAULT_API_URL,
    DEFAULT_LEDGER_URL,
    DEFAULT_REJECTS_PATH,
    OBJECTS,
    StreamSettings,
    stream_settings,
)
from target_chartmogul.sinks.base import ChartMogulSink
from target_chartmogul.sinks.customers import CustomersSink
from target_chartmogul.sinks.invoices import InvoicesSink
from target_chartmogul.sinks.plans import PlansSink
from target_chartmogul.sinks.skip import SkipSink
from target_chartmogul.sinks.transactions import TransactionsSink
from target_chartmogul.summary import RunSummary

SINK_CLASSES: dict[str, type[ChartMogulSink]] = {
    "plans": PlansSink,
    "customers": CustomersSink,
    "invoices": InvoicesSink,
    "transactions": TransactionsSink,
}
DRAIN_ORDER = {name: rank for rank, name in enumerate(OBJECTS)}


class TargetChartMogul(Target):
    """Singer target for ChartMogul."""

    name = "target-chartmogul"
    config_jsonschema = copy.deepcopy(CONFIG_SCHEMA)  # the SDK adds its own settings to this dict in place
    default_sink_class = SkipSink
    message_reader_class = StrictSingerReader
    capabilities: t.ClassVar[list[CapabilitiesEnum]] = [*Target.capabilities, PluginCapabilities.ACTIVATE_VERSION]

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        super().__init__(*args, **kwargs)
        # Streams share one rate limit and writes must follow dependency order.
        self.max_parallelism = 1
        self.summary = RunSummary()
        self.rejects = RejectsFile(pathlib.Path(self.config.get("rejects_path") or DEFAULT_REJECTS_PATH))
        self._settings: dict[str, StreamSettings] = {}
        self._client: ChartMogulClient | None = None
        self._client_lock = threading.Lock()
        self.dry_run = bool(self.config.get("dry_run", False))
        self.request_log = RequestLog(self.config["request_log"]) if self.config.get("request_log") else None
        self.progress = ProgressReporter(self.summary, self.logger, float(self.config.get("progress_interval", 10)))
        self.refs = References(lambda: self.client, lambda: self.ledger)
        self._rejected_now: set[tuple[str, str]] = set()
        self._problems: list[str] = []
        self._last_stream: str | None = None
        self._writing = 0
        self._stop_signal: int | None = None
        self._all_sinks: list[ChartMogulSink] = []
        self._final_pass = False
        for stream_name in self.config.get("streams") or {}:
            self.stream_settings(stream_name)  # a bad option fails before any input is read

    # Shared pieces ------------------------------------------------------------------
    @functools.cached_property
    def ledger(self) -> Ledger:
        """The sync memory, opened when the first object sink needs it (not for skipped-only runs)."""
        return Ledger(self.config.get("ledger_url") or DEFAULT_LEDGER_URL, read_only=self.dry_run)

    @property
    def client(self) -> ChartMogulClient:
        """The one HTTP client of the run, built on first use."""
        with self._client_lock:
            if self._client is None:
                self._client = ChartMogulClient(
                    self.config.get("api_url") or DEFAULT_API_URL,
                    self.config["api_key"],
                    max_requests_per_second=self.config.get("max_requests_per_second", 40),
                    max_concurrency=self.config.get("max_concurrency", 10),
                    timeout=float(self.config.get("request_timeout", 30)),
                    max_retries=int(self.config.get("max_retries", 8)),
                    observers=[self.request_log] if self.request_log else [],
                    dry_run=self.dry_run,
                )
                self._client.preflight = self.check_account
            return self._client

    def stream_settings(self, stream_name: str) -> StreamSettings:
        """Resolved options of one stream (cached)."""
        if stream_name not in self._settings:
            self._settings[stream_name] = stream_settings(stream_name, self.config.get("streams"))
        return self._settings[stream_name]

    def check_account(self) -> None:
        """Before the first API call: the key works (ping) and the data source exists.

        A wrong key or data source then fails with one clear line instead of one
        refusal per record; a run that needs no call (all unchanged) makes none.
        """
        self.client.get("ping")
        ds = self.config.get("data_source_uuid")
        if ds:
            try:
                self.client.get(f"data_sources/{ds}")
            except APIError as exc:
                msg = f"data_source_uuid {ds!r} is not a data source of this ChartMogul account ({exc.message})"
                raise FatalError(msg) from None

    def report_problem(self, message: str) -> None:
        """A failure that is not one record's (a blocked delete): logged, and fails `on_reject: fail`."""
        self.logger.error(message)
        self._problems.append(message)

    def note_rejected(self, stream: str, reject_key: str) -> None:
        """Records refused in this run are not retried again in this run."""
        self._rejected_now.add((stream, reject_key))

    def track_sink(self, sink: ChartMogulSink) -> None:
        """Keep every object sink, retired ones too, so deferred records are never forgotten."""
        self._all_sinks.append(sink)

    @property
    def final_pass(self) -> bool:
        """True once input has ended: an unresolved reference is then rejected, not deferred."""
        return self._final_pass

    # Messages ---------------------------------------------------------------------------
    def _note_stream(self, stream_name: str) -> None:
        """SDK taps sync one stream at a time: a message of another stream proves the
        previous stream's full-table version arrived whole.
        """
        if stream_name == self._last_stream:
            return
        self._last_stream = stream_name
        for sink in list(self._sinks_active.values()):
            if isinstance(sink, CustomersSink) and sink.version_pending and sink.stream_name != stream_name:
                sink.complete_version()

    def _process_record_message(self, message_dict: dict) -> None:
        self._note_stream(str(message_dict.get("stream")))
        super()._process_record_message(message_dict)

    def _process_schema_message(self, message_dict: dict) -> None:
        stream = message_dict.get("stream")
        schema = message_dict.get("schema")
        if not isinstance(schema, dict) or not isinstance(schema.get("properties"), dict):
            msg = f"the SCHEMA message of stream {stream!r} has no 'properties' object"
            raise InvalidInputLine(msg)
        self._note_stream(str(stream))
        super()._process_schema_message(message_dict)

    def _process_activate_version_message(self, message_dict: dict) -> None:
        self._note_stream(str(message_dict.get("stream")))
        super()._process_activate_version_message(message_dict)

    # Routing and ordering -------------------------------------------------------------
    def get_sink_class(self, stream_name: str) -> type[Sink]:
        """The sink of the stream's ChartMogul object, or the skipping sink."""
        obj = self.stream_settings(stream_name).object
        if obj is None:
            return SkipSink
        if obj not in SINK_CLASSES:
            msg = f"Stream '{stream_name}': object '{obj}' is not supported yet"
            raise FatalError(msg)
        return SINK_CLASSES[obj]

    def _drain_all(self, sink_list: t.Iterable[Sink], parallelism: int) -> None:
        """Drain in dependency order; on the final pass, retry deferred records after their rank.

        drain_all() calls this first for retired sinks (schema changes), then for the
        active ones; deferred records are retried in the second call, each rank's right
        after that rank's own drain, so a deferred invoice lands before the transactions
        that need it.
        """
        ordered = sorted(sink_list, key=self._drain_rank)
        retry = self._final_pass and sink_list is not self._sinks_to_clear
        for sink in ordered:
            self.drain_one(sink)
            if retry:
                for waiting in self._deferring_sinks():
                    if self._drain_rank(waiting) == self._drain_rank(sink):
                        waiting.retry_deferred()
        if retry:
            for waiting in self._deferring_sinks():
                waiting.retry_deferred()
            self.retry_remembered_rejects()

    def retry_remembered_rejects(self) -> None:
        """Retry records refused in earlier runs, after this run's own records.

        A refused invoice whose plan arrived since then lands without the tap sending
        it again. Streams absent from this run get a sink built from their saved schema.
        """
        if not self._all_sinks:  # no object sink in this run: leave the memory unopened
            return
        self.ledger.flush()
        waiting: dict[str, list[dict[str, t.Any]]] = {}
        for remembered in self.ledger.remembered_rejects():
            if (remembered.stream, remembered.key) not in self._rejected_now:
                waiting.setdefault(remembered.stream, []).append(remembered.record)
        for stream_name in sorted(
            waiting, key=lambda name: DRAIN_ORDER.get(self.stream_settings(name).object or "", 9)
        ):
            sink = self._sinks_active.get(stream_name)
            if not isinstance(sink, ChartMogulSink):
                saved = self.ledger.schema(stream_name)
                if saved is None or self.stream_settings(stream_name).object not in SINK_CLASSES:
                    continue
                sink = t.cast("ChartMogulSink", self.add_sink(stream_name, saved[0], saved[1]))
            records = waiting[stream_name]
            rejected_before = self.summary.get(stream_name, "rejected")
            sink.retry_records(records)
            still = self.summary.get(stream_name, "rejected") - rejected_before
            self.summary.add(stream_name, "retried", len(records))
            self.summary.add(stream_name, "retry_refused", still)
            self.logger.info(
                "Retried %d record(s) of '%s' refused in earlier runs: %d landed, %d still refused",
                len(records),
                stream_name,
                len(records) - still,
                still,
            )

    def _deferring_sinks(self) -> list[ChartMogulSink]:
        return [s for s in self._all_sinks if s.deferred]

    def _deferred_count(self) -> int:
        """Records waiting for a reference: while any wait, no STATE may cover them."""
        return sum(len(s.deferred) for s in self._deferring_sinks())

    def _drain_rank(self, sink: Sink) -> int:
        return DRAIN_ORDER.get(getattr(sink, "object_name", ""), len(DRAIN_ORDER))

    def before_write(self, sink: ChartMogulSink) -> None:
        """Drain the sinks a batch depends on (plans and customers before invoices) first."""
        rank = self._drain_rank(sink)
        for other in list(self._sinks_active.values()):
            if other is not sink and self._drain_rank(other) < rank:
                self.drain_one(other)

    # STATE and the end of the run ----------------------------------------------------
    def _write_state_message(self, state: dict) -> None:
        """Emit STATE with an encoder that accepts Decimal (meltano/sdk#3787).

        Withheld while records wait for a reference (deferred): they are neither
        written nor rejected yet.
        """
        waiting = self._deferred_count()
        if waiting:
            self.logger.info("STATE held back: %d record(s) wait for objects later in the input", waiting)
            return
        sys.stdout.write(dumps(state) + "\n")
        sys.stdout.flush()

    def process_endofpipe(self) -> None:
        """Drain everything, log the summary, then apply `on_reject: fail`."""
        self._final_pass = True
        try:
            super().process_endofpipe()
        finally:
            self.progress.stop()
            if "ledger" in self.__dict__:
                self.ledger.close()
            if self.request_log is not None:
                self.request_log.close()
            self.log_summary()
        rejected = self.summary.total("rejected")
        if self.config.get("on_reject") == "fail":
            if rejected:
                msg = f"{rejected} record(s) were rejected (see {self.rejects.path}); on_reject is 'fail'"
                raise FatalError(msg)
            if self._problems:
                raise FatalError(f"{self._problems[0]} (on_reject is 'fail')")

    def log_summary(self) -> None:
        """Log the per-stream counts as a table."""
        if self.summary.counts:
            self.logger.info("Summary of this run:\n%s", self.summary.table())
        if self.dry_run:
            total = self.summary.total
            self.logger.info(
                "DRY RUN: would create %d, update %d, delete %d, reject %d (nothing was written)",
                total("created"),
                total("updated"),
                total("deleted"),
                total("rejected"),
            )
        if self.rejects.count:
            self.logger.warning("%d record(s) rejected; reasons in %s", self.rejects.count, self.rejects.path)

    # Signals -----------------------------------------------------------------------------
    @contextlib.contextmanager
    def writing(self) -> t.Iterator[None]:
        """Mark a batch write in progress: a SIGTERM then waits for it instead of re-entering it."""
        self._writing += 1
        try:
            yield
        finally:
            self._writing -= 1
        if self._writing == 0 and self._stop_signal is not None:
            self._stop()

    def _handle_termination(self, signum: int, frame: FrameType | None) -> None:
        """SIGTERM/SIGINT: finish the batch in flight, write what was received, then stop.

        Unlike the SDK's handler, a drain that fails (or records left waiting) ends
        with exit code 1 and a reason, and no STATE covers unwritten records.
        """
        self._stop_signal = signum
        if self._writing:
            self.logger.info("Received signal %d during a write: finishing the batch in flight first", signum)
            return
        self._stop()

    def _stop(self) -> t.NoReturn:
        signum, self._stop_signal = self._stop_signal, None  # the final drain must not stop again
        self.logger.info("Received signal %s: writing what was received, then stopping", signum)
        code = 0
        try:
            self.drain_all(is_endofpipe=True)
            waiting = self._deferred_count()
            if waiting:
                self.logger.error(
                    "Stopped by signal %s with %d record(s) still waiting for references; no STATE covers them",
                    signum,
                    waiting,
                )
                code = 1
        except Exception as exc:
            self.logger.error("Stopped by signal %s before everything was written: %s", signum, exc)
            code = 1
        finally:
            self.progress.stop()
            if "ledger" in self.__dict__:
                self.ledger.close()
            self.log_summary()
        sys.exit(code)

    @classmethod
    def invoke(cls, *args: t.Any, **kwargs: t.Any) -> None:
        """Run the target; a fatal error ends it with one clear line and exit code 1."""
        try:
            super().invoke(*args, **kwargs)
        except FatalError as exc:
            logging.getLogger(cls.name).error("target-chartmogul stopped: %s", exc)
            sys.exit(1)
        except ConfigValidationError:
            raise  # the SDK reports each invalid setting itself
        except Exception as exc:  # bad input or a bug: one line, the traceback only at DEBUG
            logger = logging.getLogger(cls.name)
            logger.error("target-chartmogul stopped: %s: %s", type(exc).__name__, exc)
            logger.debug("Traceback of the error above", exc_info=True)
            sys.exit(1)
