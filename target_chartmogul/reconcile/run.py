"""A reconcile run: the target routes every stream here, and at the end of the input ChartMogul is read and compared.

`reconcile: true` turns a run into a comparison: the sinks (`reconcile/sink.py`) map each record as
a write would and keep it; nothing is written to ChartMogul, the sync memory is never opened (its
claims are ignored: ChartMogul's copy is the truth) and no STATE goes out. `finish` lists the data
sources (`reconcile/listings.py`), compares customers, plans, subscription events and contacts
(`reconcile/objects.py`) and invoices with their lines and payments (`reconcile/invoices.py`), adds
the revenue months that differ (`reconcile/revenue.py`) and writes the report: `reconcile_path`, the
log's table (`reconcile/report.py`) and the HTML page beside it (`reconcile/page.py`). Its exit code
is 0 when both sides agree, 3 when they differ (1 when the run failed).
"""

from __future__ import annotations

import datetime as dt
import logging
import pathlib
import typing as t

from target_chartmogul.mapping.common import data_source, optional_text
from target_chartmogul.reconcile import page, report
from target_chartmogul.reconcile.contacts import ContactComparison
from target_chartmogul.reconcile.findings import KINDS as KINDS_FOUND
from target_chartmogul.reconcile.findings import REVENUE, Finding, Findings, key_text
from target_chartmogul.reconcile.invoices import INVOICE_PARTS, InvoiceComparison
from target_chartmogul.reconcile.listings import Listings, ReadOnly
from target_chartmogul.reconcile.objects import KINDS, Comparison
from target_chartmogul.reconcile.revenue import Revenue
from target_chartmogul.reconcile.sink import ReconcileSink
from target_chartmogul.reconcile.source import MAPPINGS, Source

if t.TYPE_CHECKING:
    from target_chartmogul.config.settings import StreamSettings
    from target_chartmogul.run.context import RunContext

AGREE, DIFFER, FAILED = 0, 3, 1
# object -> the listing kind that holds it; plans are listed too where invoices name them
LISTED_AS = {"customers": "customer", "plans": "plan", "invoices": "invoice", "line_items": "invoice",
             "transactions": "invoice", "subscription_events": "subscription_event", "contacts": "contact"}


class Reconciliation:
    """The input as source rows, ChartMogul's listings, and what differs between them."""

    def __init__(self, context: RunContext) -> None:
        self.context = context
        self.logger: logging.Logger = context.logger
        self.source = Source()
        self.findings = Findings()
        self.revenue = Revenue()
        self.listings = Listings(ReadOnly(lambda: context.client))
        self.path = report.report_path(context.setting("reconcile_path"), context.setting("rejects_path"))
        self.page_path = report.page_path(self.path)
        for stale in (self.path, self.page_path):  # a run that fails leaves no earlier run's report to be misread
            stale.unlink(missing_ok=True)
        self.exit_code = FAILED  # until `finish` has written the report
        self.sink_class = ReconcileSink.bound_to(self)
        self._sinks: list[ReconcileSink] = []
        self._last_stream: str | None = None

    # What the sinks need (reconcile.sink.Collector) ----------------------------------------------
    @property
    def default_data_source_uuid(self) -> str | None:
        """The configured data source."""
        return t.cast("str | None", self.context.config.get("data_source_uuid"))

    def stream(self, stream_name: str) -> StreamSettings:
        """A stream's resolved options."""
        return self.context.stream(stream_name)

    def refuse(self, obj: str, record: dict[str, t.Any], field: str | None, reason: str) -> None:
        """A row the writing path would refuse: a `refused` finding naming the field and the reason."""
        default = self.default_data_source_uuid
        key = (str(data_source(record, default) or ""), str(optional_text(record, "external_id") or "(no external_id)"))
        self.source.refuse(obj, key)
        self.findings.tally(obj).source += 1
        self.findings.add(Finding(obj, key_text(*key, default), "refused", field, reason))

    # What the target needs -----------------------------------------------------------------------
    def sink_for(self, obj: str | None) -> type[ReconcileSink] | None:
        """The sink of a stream of this object in a reconcile run (None: a stream that maps to no object)."""
        return self.sink_class if obj in MAPPINGS else None

    def sink_opened(self, sink: t.Any) -> None:
        """Keep the run's sinks, to tell them when another stream begins."""
        if isinstance(sink, ReconcileSink) and sink not in self._sinks:
            self._sinks.append(sink)

    def stream_seen(self, stream_name: str) -> None:
        """SDK taps send one stream at a time: a message of another stream ends the previous one's version."""
        if stream_name == self._last_stream:
            return
        self._last_stream = stream_name
        for sink in self._sinks:
            if sink.stream_name != stream_name:
                sink.other_stream_started()

    def finish(self) -> int:
        """Read ChartMogul, compare, write the report and log it; returns the exit code (0 agree, 3 differ)."""
        self.listings.read(self.wanted())
        comparison = Comparison(self.source, self.listings, self.findings, self.default_data_source_uuid)
        for kind in KINDS:
            if self.source.streams_of(kind.name):
                comparison.run(kind)
        if self.source.streams_of("contacts"):
            ContactComparison(self.source, self.listings, self.findings, self.default_data_source_uuid).run()
        if any(self.source.streams_of(obj) for obj in INVOICE_PARTS):
            InvoiceComparison(self.source, self.listings, self.findings, self.revenue, self.default_data_source_uuid).run()
        self.findings.extend(self.revenue.findings())
        self.write()
        self.exit_code = DIFFER if self.findings.items else AGREE
        return self.exit_code

    def wanted(self) -> set[tuple[str, str]]:
        """(listing kind, data source) of every listing the comparison reads: one read per 200 objects each."""
        wanted = {(LISTED_AS[obj], ds) for obj in LISTED_AS for ds in self.source.data_sources(obj)}
        wanted |= {("plan", ds) for ds in self.source.data_sources(*INVOICE_PARTS[:2])}  # plans named by lines
        return wanted

    def write(self) -> None:
        """The JSON-lines file, the HTML page beside it, the table and the closing line in the log."""
        ordered = report.ordered(self.findings.items)
        report.write_lines(self.path, ordered)
        generated = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        text = page.render(self.findings, ordered, self.revenue, generated=generated)
        partial = self.page_path.with_name(self.page_path.name + ".partial")
        partial.write_text(text, encoding="utf-8")
        partial.replace(self.page_path)
        self.logger.info("Reconcile (nothing was written; %d object(s) listed):\n%s", self.listings.count(),
                         report.table(self.findings))
        self.logger.info("%s", report.revenue_line(self.revenue))
        if not any(tally.source for tally in self.findings.tallies.values()):
            self.logger.warning("Reconcile: the input held no record of a ChartMogul object, so nothing was compared")
        closing = report.closing_line(self.findings, self.path, self.page_path)
        self.logger.log(logging.WARNING if self.findings.items else logging.INFO, "%s", closing)

    def details(self) -> dict[str, t.Any]:
        """What the summary file (`summary_path`) says of the comparison: the report's files, the count of each kind
        of difference, and per object the counts of the log's table.
        """
        found = self.findings.items
        return {
            "reconcile_path": str(self.path),
            "page": str(self.page_path),
            "differences": len(found),
            **{kind: sum(1 for f in found if f.kind == kind and f.object != REVENUE) for kind in KINDS_FOUND},
            "revenue_months": sum(1 for f in found if f.object == REVENUE),
            "objects": {row[0]: dict(zip([c.lower() for c in report.COLUMNS[1:]], map(int, row[1:]), strict=True))
                        for row in report.summary_rows(self.findings)},
        }

    @property
    def paths(self) -> tuple[pathlib.Path, pathlib.Path]:
        """The JSON-lines file and the HTML page."""
        return self.path, self.page_path
