"""Line items from their own stream: held until their invoice is written, or correcting it.

Rows carry `invoice_external_id` and the line-item fields (`external_id` is required: it is
how a changed or deleted line finds its place in an invoice ChartMogul holds). A line whose
header arrives in this run goes into that invoice (see sinks/invoices.py). A line whose
header does not (an incremental sync where only the lines changed, or a line deleted in the
source) corrects the invoice ChartMogul holds at the end of the input, counted on this
stream; with no such invoice the line is rejected.
"""

from __future__ import annotations

import typing as t

from target_chartmogul.errors import APIError, RecordRejected
from target_chartmogul.invoice_parts import LinePart
from target_chartmogul.ledger import payload_hash
from target_chartmogul.mapping.common import data_source, required_data_source, required_text
from target_chartmogul.mapping.invoices import InvoicePayload, map_line_item
from target_chartmogul.replacements import held_as_body
from target_chartmogul.sinks.invoice_writing import LinesAssembly, Record

Obj = dict[str, t.Any]
CHECK_CURRENCY = "EUR"  # any two-decimal currency: a line is checked on arrival, converted with its invoice's


class LineItemsSink(LinesAssembly):
    """Collects a stream of line item rows for their invoices."""

    object_name = "line_items"

    def setup(self) -> None:
        """Headers without line items wait while this stream is open."""
        super().setup()
        self.parts.stream_open(self.stream_name)

    def dedupe_key(self, record: Record) -> t.Hashable:
        """The same line twice in a batch: the last row wins."""
        ds = data_source(record, self.config.get("data_source_uuid"))
        return (str(ds), str(record.get("invoice_external_id")), str(record.get("external_id")))

    def write_records(self, records: list[Record]) -> None:
        """Check each line, skip those the memory says are written as they are, hold the rest for their invoice."""
        lines = []
        for record in self.split_deletions(records):
            try:
                lines.append(self.line_part(record))
            except RecordRejected as exc:
                self.reject(record, exc.reason, field=exc.field)
                self.refused_line(record, exc.reason)
        self.known = self.memory_lookup((part.data_source_uuid, part.external_id) for part in lines)
        for part in lines:
            if self.is_current(self.known.get((part.data_source_uuid, part.external_id)), part.fingerprint):
                self.count("unchanged")
            else:
                self.parts.add_line(part)

    def refused_line(self, record: Record, reason: str) -> None:
        """A refused row still tells its invoice it cannot be imported whole."""
        ds = data_source(record, self.config.get("data_source_uuid"))
        invoice, external_id = record.get("invoice_external_id"), record.get("external_id")
        if ds and invoice and external_id:
            self.parts.add_line(LinePart(self, ds, str(invoice).strip(), str(external_id).strip(), record,
                                         self.settings.amount_unit, refused=reason))

    def line_part(self, record: Record) -> LinePart:
        """A checked line row (the checks that need no currency; amounts are converted with the invoice)."""
        ds = required_data_source(record, self.config.get("data_source_uuid"))
        invoice = required_text(record, "invoice_external_id", "the invoice this line belongs to")
        external_id = required_text(record, "external_id", "it is how a changed line finds its place in its invoice")
        map_line_item(record, "", unit=self.settings.amount_unit, currency_code=CHECK_CURRENCY)
        content = {k: v for k, v in record.items() if not k.startswith("_sdc_")}
        return LinePart(self, ds, invoice, external_id, record, self.settings.amount_unit,
                        {"line": content, "unit": self.settings.amount_unit})

    def line_written(self, part: LinePart, invoice_uuid: str | None) -> None:
        """The line is in ChartMogul as the row says (or gone, when deleted)."""
        if part.deleted:
            self.context.ledger.deleted("line_items", part.data_source_uuid, part.external_id)
            return
        self.context.ledger.written(
            "line_items", part.data_source_uuid, part.external_id, uuid=None, payload=payload_hash(part.fingerprint),
            stream=self.stream_name, parent=part.invoice_external_id,
        )

    def delete_one(self, data_source_uuid: str, external_id: str) -> str | None:
        """A line deleted in the source: its invoice is corrected without it at the end of the input."""
        entry = self.context.ledger.get("line_items", data_source_uuid, external_id)
        if entry is None or entry.parent is None:
            return "unchanged"  # never written: nothing to take out
        record = {"data_source_uuid": data_source_uuid, "invoice_external_id": entry.parent, "external_id": external_id}
        part = LinePart(self, data_source_uuid, entry.parent, external_id, record, self.settings.amount_unit,
                        deleted=True)
        self.parts.add_line(part)
        return None  # counted with its invoice's correction

    def other_stream_started(self) -> None:
        """The stream ended: a complete version deletes what it lacks, then waiting headers may go."""
        super().other_stream_started()
        self.parts.stream_complete(self.stream_name)

    # Lines whose header did not come -------------------------------------------------------------
    def finish_input(self) -> None:
        """Correct the invoices whose lines changed without their header (in ChartMogul's copy)."""
        self.parts.stream_complete(self.stream_name)
        orphans = self.parts.invoices_with_lines()
        if not orphans:
            return
        with self.context.guard.writing():
            try:
                self.run_each(orphans, self.write_orphan, records_of=lambda key: [])
            finally:
                self.context.ledger.flush()

    def write_orphan(self, key: tuple[str, str]) -> None:
        """One invoice: ChartMogul's copy with these lines changed, added or removed."""
        ds, invoice = key
        lines = self.parts.take_lines(ds, invoice)
        try:
            held = self.held_for(ds, invoice)
            if held is None and all(part.deleted for part in lines):  # gone with their invoice
                for part in lines:
                    self.line_written(part, None)
                    self.count("deleted")
                return
            if held is None or not held.get("customer_uuid"):
                raise RecordRejected(f'no invoice with external_id "{invoice}" in data source {ds}, and its header '
                                     "did not arrive", field="invoice_external_id")
            payload = InvoicePayload(ds, invoice, str(held["customer_uuid"]), None, held_as_body(held, ds), [],
                                     lines_from_stream=True, stream_lines=lines)
            payload.body.pop("transactions", None)  # the invoice keeps its own (see replacements)
            payload.body["line_items"] = self.merged_lines(payload.body["line_items"],
                                                           self.map_stream_lines(payload, lines))
            outcome = self.reconcile(payload, held, str(held["customer_uuid"]))
        except (RecordRejected, APIError) as exc:
            reason = exc.reason if isinstance(exc, RecordRejected) else f"ChartMogul refused it: {exc.message}"
            for part in lines:
                if part.refused is None:  # a refused row has its reject line already
                    self.reject(part.record, reason, field="invoice_external_id")
            return
        for part in lines:
            self.count(outcome)
            if outcome != "changed_not_applied":
                self.line_written(part, str(held["uuid"]))

    def held_for(self, data_source_uuid: str, invoice: str) -> Obj | None:
        """The invoice as ChartMogul holds it (with its customer), by remembered uuid or by external id."""
        entry = self.context.ledger.get("invoices", data_source_uuid, invoice)
        if entry is not None and entry.uuid:
            held = self._get_or_none(str(entry.uuid))
            if held is not None:
                return held
        self.context.refs.holdings.ensure("invoice", data_source_uuid)
        return self.context.refs.held("invoice", data_source_uuid, invoice, fresh=True)
