"""TargetChartMogul: routes streams to object sinks, drains them, emits STATE, stops cleanly.

The target builds the run's `RunContext` and hands it to every sink it makes (sinks
never reach back into the target). The order of writes and the records waiting for
references live in `run.ordering`; the two private SDK methods it must override live in
`run.sdk_hooks`.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import io
import logging
import os
import sys
import typing as t

from singer_sdk import Target
from singer_sdk.exceptions import ConfigValidationError, InvalidInputLine
from singer_sdk.helpers.capabilities import CapabilitiesEnum, PluginCapabilities
from singer_sdk.sinks import Sink

from target_chartmogul.config import about
from target_chartmogul.config.checks import REFUSED, check_settings, check_variables, invalid_values
from target_chartmogul.config.input import ENV_PREFIX, from_cli_args
from target_chartmogul.config.registry import RANKS, REGISTRY
from target_chartmogul.config.settings import CONFIG_SCHEMA, STREAM_OPTION_NAMES
from target_chartmogul.errors import FatalError, StoppedError
from target_chartmogul.reconcile.run import Reconciliation
from target_chartmogul.run.context import RunContext
from target_chartmogul.run.reader import StrictSingerReader
from target_chartmogul.run.report import failed_before_start
from target_chartmogul.run.sdk_hooks import SDKOverrides
from target_chartmogul.run.summary import RunSummary
from target_chartmogul.sinks.base import ChartMogulSink
from target_chartmogul.sinks.replacements import Replacer
from target_chartmogul.sinks.skip import SkipSink
from target_chartmogul.values.encoding import dumps

if t.TYPE_CHECKING:
    import click  # the SDK's CLI library: only `cb_config`'s annotations name it

# object -> its sink class, imported from the path of its entry in `registry.REGISTRY` (in write order)
SINK_CLASSES: dict[str, type[ChartMogulSink] | type[SkipSink]] = {
    entry.name: t.cast("type[ChartMogulSink]", getattr(importlib.import_module(entry.sink_module), entry.sink_class))
    for entry in REGISTRY
}


class _SkipEnvNote(logging.Filter):
    """Drops the SDK's `Skipping parse of env var settings...`, logged by every run: `--config ENV` is read by
    `config.input` instead, so the line says nothing. Every other line, warnings included, passes.
    """

    NOTE = "Skipping parse of env var settings..."

    def filter(self, record: logging.LogRecord) -> bool:
        return record.msg != self.NOTE


class TargetChartMogul(SDKOverrides, Target):
    """Singer target for ChartMogul."""

    name = "target-chartmogul"
    config_jsonschema = copy.deepcopy(CONFIG_SCHEMA)  # the SDK adds its own settings to this dict in place
    message_reader_class = StrictSingerReader
    capabilities: t.ClassVar[list[CapabilitiesEnum]] = [*Target.capabilities, PluginCapabilities.ACTIVATE_VERSION]

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        super().__init__(*args, **kwargs)
        # A misspelt setting would be ignored in silence: refuse it before any input is read.
        check_settings(self.config, self.settings_schema()["properties"], STREAM_OPTION_NAMES)
        self.quiet_metrics()
        # Streams share one rate limit and writes follow dependency order.
        self.max_parallelism = 1
        self.context = RunContext(self.config, self.logger, drain=self.drain_one, stop=self.stop)
        # reconcile: true routes every stream to the comparison (target_chartmogul/reconcile), which writes nothing
        self.reconciliation = Reconciliation(self.context) if self.context.setting("reconcile") else None
        self._sink_classes: dict[str, type[Sink]] = {}
        self._active: dict[str, Sink] = {}
        self._state_withheld = False
        self._input_ended = False
        t.cast("StrictSingerReader", self.message_reader).before_input = self.start_run
        for stream_name in self.config.get("streams") or {}:
            self.context.stream(stream_name)  # a bad option fails before any input is read

    @property
    def config(self) -> t.Mapping[str, t.Any]:
        """The settings; once the run's context holds them, with `data_source_uuid` resolved (run.data_source),
        so every sink reads the one default data source the run decided on.
        """
        context = self.__dict__.get("context")
        return context.config if context is not None else super().config

    @property
    def summary(self) -> RunSummary:
        """Per-stream counts of this run."""
        return self.context.summary

    # Settings -------------------------------------------------------------------------------
    @classmethod
    def settings_schema(cls) -> dict[str, t.Any]:
        """Every setting: this target's and the SDK's own (what `--about` lists)."""
        cls.append_builtin_config(cls.config_jsonschema)
        return cls.config_jsonschema

    @classmethod
    def append_builtin_config(cls, config_jsonschema: dict) -> None:
        """The SDK's settings, less `load_method`: nothing here appends or overwrites (see config.checks.REFUSED)."""
        super().append_builtin_config(config_jsonschema)
        for name in REFUSED:
            config_jsonschema["properties"].pop(name, None)

    @classmethod
    def print_about(cls, output_format: str | None = None) -> None:
        """`--about`: text and markdown show each setting's default and description and the options of a `streams`
        entry (config.about); JSON is the SDK's, which holds the whole schema.
        """
        if output_format not in (None, "text", "markdown"):
            super().print_about(output_format)
            return
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            super().print_about(output_format)
        if output_format == "markdown":
            section, marker = about.markdown_settings(cls.settings_schema()), "## Settings\n"
        else:
            section, marker = about.text_settings(cls.settings_schema(), ENV_PREFIX), "Settings:\n"
        sys.stdout.write(about.replace_settings(printed.getvalue(), section, marker))

    @classmethod
    def cb_config(cls, ctx: click.Context, param: click.Option, value: tuple[str, ...]) -> t.Any:
        """Read `--config` files and `ENV` here (see config.input): each problem is one line, then exit 1."""
        schema = cls.settings_schema()
        try:
            config, unknown = from_cli_args(value, schema)
            check_variables(unknown, ENV_PREFIX, schema["properties"])
        except FatalError as exc:
            cls.logger.error("target-chartmogul failed: %s", exc)
            ctx.exit(1)
        if "ENV" in value:
            cls.logger.info("Read settings from %s* variables and .env of %s", ENV_PREFIX, os.getcwd())
        return config

    def quiet_metrics(self) -> None:
        """singer-sdk's METRIC lines only when asked for: `metrics_log_level`, or the SDK's SINGER_SDK_LOG_CONFIG."""
        level = self.config.get("metrics_log_level")
        if level:
            self.metrics_logger.setLevel(level)
        elif "SINGER_SDK_LOG_CONFIG" not in os.environ:
            self.metrics_logger.setLevel(logging.WARNING)

    def start_run(self) -> None:
        """Before the first input line: the summary file says `running`, and the default data source is decided.

        `data_source_name` is looked up (or its data source created) here, so settings that
        disagree stop the run having read nothing, and no sink starts without knowing where
        its records go. Building a target (as `--about` and tests do) calls nothing.
        """
        self.context.report.started()
        self.context.resolve_data_source()

    # Routing ------------------------------------------------------------------------------
    def get_sink_class(self, stream_name: str) -> type[Sink]:
        """The sink of the stream's ChartMogul object, bound to this run's context, or the skipping sink."""
        obj = self.context.stream(stream_name).object or "(skipped)"
        if obj not in self._sink_classes:
            reconciling = self.reconciliation.sink_for(obj) if self.reconciliation is not None else None
            self._sink_classes[obj] = reconciling or SINK_CLASSES.get(obj, SkipSink).bound_to(self.context)
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
        if self.reconciliation is not None:
            self.reconciliation.stream_seen(stream_name)
        sink = super().get_sink(stream_name, record=record, schema=schema, key_properties=key_properties)
        self._active[stream_name] = sink
        if self.reconciliation is not None:
            self.reconciliation.sink_opened(sink)
        return sink

    def _object_sinks(self) -> list[ChartMogulSink]:
        return [sink for sink in self._active.values() if isinstance(sink, ChartMogulSink)]

    # The end of the input -------------------------------------------------------------------
    def process_endofpipe(self) -> None:
        """Drain everything, retry what waited and what earlier runs refused, then apply `on_reject: fail`."""
        if self.reconciliation is not None:
            self.finish_reconcile(self.reconciliation)
            return
        order = self.context.order
        self._input_ended = True
        try:
            super().process_endofpipe()
            self.context.bulk.flush()  # new objects that waited for a bulk import, before anything is retried
            order.begin_final_pass()  # nothing more can arrive: a missing reference is now a reject
            order.retry_waiting()
            order.finish()
            self.repair_replacements()
            self.retry_remembered_rejects()
            if self._state_withheld:
                self.drain_all()  # every sink is empty: this only emits the STATE that was held back
        finally:
            self.context.close()
            self.context.report.log_summary()
        self.fail_on_rejects()
        self.context.report.finished()

    def finish_reconcile(self, reconciliation: Reconciliation) -> None:
        """A reconcile run's end: nothing was staged, waits or is retried; ChartMogul is read and compared."""
        try:
            super().process_endofpipe()
            code = reconciliation.finish()
        finally:
            self.context.close()
        self.context.report.reconciled(code, reconciliation.details())

    def repair_replacements(self) -> None:
        """Finish invoice replacements an earlier run left between its delete and its import."""
        if self.context.order.sinks and self.context.ledger.pending_replacements():
            repaired = Replacer(self.context).repair()
            self.logger.info("Repaired %d invoice replacement(s) an earlier run left unfinished", repaired)

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
        """`on_reject: fail`: every good record was written; now fail the run if any was refused.

        Never in a dry run: its rejects are a forecast (in their own file), not a failure.
        """
        if self.context.setting("on_reject") != "fail":
            return
        rejected = self.context.summary.total("rejected")
        if self.context.dry_run:
            if rejected or self.context.problems:
                self.logger.info("DRY RUN: with on_reject 'fail', a real run of this input would exit 1")
            return
        if rejected:
            msg = f"{rejected} record(s) were rejected (see {self.context.rejects.path}); on_reject is 'fail'"
            raise FatalError(msg)
        if self.context.problems:
            raise FatalError(f"{self.context.problems[0]} (on_reject is 'fail')")

    # STATE and signals (called by run.sdk_hooks) ----------------------------------------------
    def emit_state(self, state: dict[str, t.Any]) -> None:
        """Print STATE with an encoder that accepts Decimal (meltano/sdk#3787).

        Withheld while records wait for a reference (deferred): they are neither
        written nor rejected yet. Never in a dry run or a reconcile run: Meltano would save it as
        the tap's bookmark and the real run after it would skip those rows.
        """
        if self.context.dry_run or self.reconciliation is not None:
            if not self._state_withheld:
                mode = "RECONCILE" if self.reconciliation is not None else "DRY RUN"
                self.logger.info("%s: STATE not emitted, so the next real run reads the same rows", mode)
            self._state_withheld = True
            return
        bulk = self.context.bulk
        if bulk.unfinished:  # its records are neither recorded nor refused: the next run settles them
            self._state_withheld = True
            self.logger.info("STATE held back: a bulk import did not finish (%s)", bulk.unfinished)
            return
        if bulk.flush_early():  # a long backfill: import what waits, then see whether this STATE may go out
            bulk.flush()
        # At the end of the input what waits is written (or refused) next, and STATE follows: nothing to announce.
        waiting = self.context.order.waiting()
        if waiting:
            self._state_withheld = True
            if not self._input_ended:
                self.logger.info("STATE held back: %d record(s) wait for objects later in the input", waiting)
            return
        if bulk.waiting():
            self._state_withheld = True
            if not self._input_ended:
                self.logger.info("STATE held back: %d new record(s) wait for the end of the input, where new objects are "
                                 "written together (in bulk imports, or through REST below bulk_min_records)",
                                 bulk.waiting())
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
        if self.reconciliation is not None:  # exit 0 would say "agree": a stopped comparison is a failure
            self.context.report.stopped_by = signum
            self.context.close()
            self.context.report.failed(f"stopped by signal {signum} before ChartMogul was compared")
            sys.exit(1)
        self.logger.info("Received signal %s: writing what was received, then stopping", signum)
        self.context.report.stopped_by = signum
        self._input_ended = True  # no more input is read: what waits is written now, or the run fails saying so
        reason = None
        try:
            self.drain_all(is_endofpipe=True)
            waiting, spooled = self.context.order.waiting(), self.context.bulk.waiting()
            if spooled:  # a bulk import may take minutes: not started now; the tap sends these again
                reason = (f"stopped by signal {signum} with {spooled} new record(s) waiting for a bulk import; no STATE "
                          "covers them, so the next run writes them")
            elif self.context.bulk.unfinished:
                reason = f"stopped by signal {signum}: {self.context.bulk.unfinished}; no STATE covers its records"
            elif waiting:
                reason = f"stopped by signal {signum} with {waiting} record(s) still waiting for references; no STATE covers them"
        except StoppedError as exc:  # a call waited to be retried: the signal ended the wait
            reason = str(exc)
        except Exception as exc:
            reason = f"stopped by signal {signum} before everything was written: {exc}"
        finally:
            self.context.close()
        if reason is None:
            self.context.report.finished()
            sys.exit(0)
        self.context.report.failed(reason)
        sys.exit(1)

    @classmethod
    def invoke(  # type: ignore[override]
        cls,
        *,
        about: bool = False,
        about_format: str | None = None,
        config: t.Any = None,
        file_input: t.IO[str] | None = None,
    ) -> None:
        """Run the target (singer-sdk's `Target.invoke`, keeping the instance): however the run ends, its
        last line says so, `finished: …` or `failed: <reason>` with exit code 1.
        """
        if about:
            super().invoke(about=about, about_format=about_format)  # prints and exits
        cls.print_version(print_fn=cls.logger.info)
        target: TargetChartMogul | None = None
        try:
            target = cls(config=config.config if config else {}, validate_config=True, parse_env_config=False)
            target.listen(file_input)
            if target.reconciliation is not None:
                sys.exit(target.reconciliation.exit_code)  # 0: ChartMogul agrees with the input, 3: it differs
        except ConfigValidationError as exc:  # one line naming each setting, not the SDK's "Config validation failed"
            reason = invalid_values(exc.errors)
            cls.logger.error("target-chartmogul failed: %s", reason)
            failed_before_start(config.config if config else {}, reason)
            sys.exit(1)
        except Exception as exc:  # a FatalError is one line; bad input or a bug too, the traceback only at DEBUG
            explained = isinstance(exc, (FatalError, InvalidInputLine))  # their message says it all (a line number)
            if not explained:
                cls.logger.debug("Traceback of the error below", exc_info=True)
            reason = str(exc) if explained else f"{type(exc).__name__}: {exc}"
            if target is None:
                cls.logger.error("target-chartmogul failed: %s", reason)
                failed_before_start(config.config if config else {}, reason)
            else:
                target.context.close()
                target.context.report.failed(reason)
            sys.exit(1)


if not any(isinstance(f, _SkipEnvNote) for f in TargetChartMogul.logger.filters):
    TargetChartMogul.logger.addFilter(_SkipEnvNote())
