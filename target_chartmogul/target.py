"""TargetChartMogul: routes streams to object sinks, drains them, emits STATE, stops cleanly.

The target builds the run's `RunContext` and hands it to every sink it makes (sinks
never reach back into the target). The order of writes and the records waiting for
references live in `ordering`; the two private SDK methods it must override live in
`sdk_overrides`.
"""

from __future__ import annotations

import copy
import logging
import sys
import typing as t

from singer_sdk import Target
from singer_sdk.exceptions import ConfigValidationError
from singer_sdk.helpers.capabilities import CapabilitiesEnum, PluginCapabilities
from singer_sdk.sinks import Sink

from target_chartmogul.context import RunContext
from target_chartmogul.encoding import dumps
from target_chartmogul.errors import FatalError
from target_chartmogul.ordering import RANKS
from target_chartmogul.reader import StrictSingerReader
from target_chartmogul.sdk_overrides import SDKOverrides
from target_chartmogul.settings import CONFIG_SCHEMA
from target_chartmogul.sinks.base import ChartMogulSink
from target_chartmogul.sinks.customers import CustomersSink
from target_chartmogul.sinks.invoices import InvoicesSink
from target_chartmogul.sinks.plans import PlansSink
from target_chartmogul.sinks.skip import SkipSink
from target_chartmogul.sinks.transactions import TransactionsSink
from target_chartmogul.summary import RunSummary

SINK_CLASSES: dict[str, type[ChartMogulSink] | type[SkipSink]] = {
    "plans": PlansSink,
    "customers": CustomersSink,
    "invoices": InvoicesSink,
    "transactions": TransactionsSink,
}


class TargetChartMogul(SDKOverrides, Target):
    """Singer target for ChartMogul."""

    name = "target-chartmogul"
    config_jsonschema = copy.deepcopy(CONFIG_SCHEMA)  # the SDK adds its own settings to this dict in place
    message_reader_class = StrictSingerReader
    capabilities: t.ClassVar[list[CapabilitiesEnum]] = [*Target.capabilities, PluginCapabilities.ACTIVATE_VERSION]

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        super().__init__(*args, **kwargs)
        # Streams share one rate limit and writes follow dependency order.
        self.max_parallelism = 1
        self.context = RunContext(self.config, self.logger, drain=self.drain_one, stop=self.stop)
        self._sink_classes: dict[str, type[Sink]] = {}
        self._active: dict[str, Sink] = {}
        self._state_withheld = False
        for stream_name in self.config.get("streams") or {}:
            self.context.stream(stream_name)  # a bad option fails before any input is read

    @property
    def summary(self) -> RunSummary:
        """Per-stream counts of this run."""
        return self.context.summary

    # Routing ------------------------------------------------------------------------------
    def get_sink_class(self, stream_name: str) -> type[Sink]:
        """The sink of the stream's ChartMogul object, bound to this run's context, or the skipping sink."""
        obj = self.context.stream(stream_name).object or "(skipped)"
        if obj not in self._sink_classes:
            self._sink_classes[obj] = SINK_CLASSES.get(obj, SkipSink).bound_to(self.context)
        return self._sink_classes[obj]

    def get_sink(
        self,
        stream_name: str,
        *,
        record: dict | None = None,
        schema: dict | None = None,
        key_properties: t.Sequence[str] | None = None,
    ) -> Sink:
        """The stream's sink; seeing another stream's message ends the previous stream's full-table version."""
        self.context.order.stream_seen(stream_name, self._object_sinks())
        sink = super().get_sink(stream_name, record=record, schema=schema, key_properties=key_properties)
        self._active[stream_name] = sink
        return sink

    def _object_sinks(self) -> list[ChartMogulSink]:
        return [sink for sink in self._active.values() if isinstance(sink, ChartMogulSink)]

    # The end of the input -------------------------------------------------------------------
    def process_endofpipe(self) -> None:
        """Drain everything, retry what waited and what earlier runs refused, then apply `on_reject: fail`."""
        order = self.context.order
        try:
            super().process_endofpipe()
            order.begin_final_pass()  # nothing more can arrive: a missing reference is now a reject
            order.retry_waiting()
            self.retry_remembered_rejects()
            if self._state_withheld:
                self.drain_all()  # every sink is empty: this only emits the STATE that was held back
        finally:
            self.context.close()
            self.log_summary()
        self.fail_on_rejects()

    def retry_remembered_rejects(self) -> None:
        """Retry records refused in earlier runs, after this run's own records.

        A refused invoice whose plan arrived since then lands without the tap sending
        it again. Streams absent from this run get a sink built from their saved schema.
        """
        context = self.context
        if not context.order.sinks:  # no object sink in this run: leave the memory unopened
            return
        context.ledger.flush()
        waiting: dict[str, list[dict[str, t.Any]]] = {}
        for remembered in context.ledger.remembered_rejects():
            if not context.rejected_now(remembered.stream, remembered.key):
                waiting.setdefault(remembered.stream, []).append(remembered.record)
        for stream_name in sorted(waiting, key=lambda name: RANKS.get(context.stream(name).object or "", 9)):
            sink = self._sink_for_retry(stream_name)
            if sink is not None:
                self._retry_stream(sink, waiting[stream_name])

    def _sink_for_retry(self, stream_name: str) -> ChartMogulSink | None:
        sink = self._active.get(stream_name)
        if isinstance(sink, ChartMogulSink):
            return sink
        saved = self.context.ledger.schema(stream_name)
        if saved is None or self.context.stream(stream_name).object not in SINK_CLASSES:
            return None
        return t.cast("ChartMogulSink", self.add_sink(stream_name, saved[0], saved[1]))

    def _retry_stream(self, sink: ChartMogulSink, records: list[dict[str, t.Any]]) -> None:
        summary, stream_name = self.context.summary, sink.stream_name
        rejected_before = summary.get(stream_name, "rejected")
        sink.retry_records(records)
        still = summary.get(stream_name, "rejected") - rejected_before
        summary.add(stream_name, "retried", len(records))
        summary.add(stream_name, "retry_refused", still)
        self.logger.info(
            "Retried %d record(s) of '%s' refused in earlier runs: %d landed, %d still refused",
            len(records),
            stream_name,
            len(records) - still,
            still,
        )

    def fail_on_rejects(self) -> None:
        """`on_reject: fail`: every good record was written; now fail the run if any was refused."""
        if self.context.setting("on_reject") != "fail":
            return
        rejected = self.context.summary.total("rejected")
        if rejected:
            msg = f"{rejected} record(s) were rejected (see {self.context.rejects.path}); on_reject is 'fail'"
            raise FatalError(msg)
        if self.context.problems:
            raise FatalError(f"{self.context.problems[0]} (on_reject is 'fail')")

    def log_summary(self) -> None:
        """Log the per-stream counts as a table."""
        summary = self.context.summary
        if summary.counts:
            self.logger.info("Summary of this run:\n%s", summary.table())
        if self.context.dry_run:
            total = summary.total
            self.logger.info(
                "DRY RUN: would create %d, update %d, delete %d, reject %d (nothing was written)",
                total("created"),
                total("updated"),
                total("deleted"),
                total("rejected"),
            )
        if self.context.rejects.count:
            self.logger.warning(
                "%d record(s) rejected; reasons in %s", self.context.rejects.count, self.context.rejects.path
            )

    # STATE and signals (called by sdk_overrides) ----------------------------------------------
    def emit_state(self, state: dict[str, t.Any]) -> None:
        """Print STATE with an encoder that accepts Decimal (meltano/sdk#3787).

        Withheld while records wait for a reference (deferred): they are neither
        written nor rejected yet.
        """
        waiting = self.context.order.waiting()
        if waiting:
            self._state_withheld = True
            self.logger.info("STATE held back: %d record(s) wait for objects later in the input", waiting)
            return
        self._state_withheld = False
        sys.stdout.write(dumps(state) + "\n")
        sys.stdout.flush()

    def on_termination_signal(self, signum: int) -> None:
        """SIGTERM/SIGINT: finish the batch in flight, write what was received, then stop."""
        self.context.guard.request(signum)

    def stop(self, signum: int) -> t.NoReturn:
        """Write what was received and exit: 0 when all of it is in ChartMogul, else 1 with a reason.

        Unlike the SDK's handler, a drain that fails (or records left waiting) ends with
        exit code 1, and no STATE covers unwritten records.
        """
        self.logger.info("Received signal %s: writing what was received, then stopping", signum)
        code = 0
        try:
            self.drain_all(is_endofpipe=True)
            waiting = self.context.order.waiting()
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
            self.context.close()
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
