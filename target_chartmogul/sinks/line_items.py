"""Line items from their own stream: held until their invoice is written, or correcting it.

Rows carry `invoice_external_id` and the line-item fields (`external_id` is required: it is
how a changed or deleted line finds its place in an invoice ChartMogul holds). A line whose
header arrives in this run goes into that invoice (see sinks/invoices.py). A line whose
header does not (an incremental sync where only the lines changed, or a line deleted in the
source) corrects the invoice ChartMogul holds at the end of the input, counted on this
stream; with no such invoice the line is rejected, and its row waits in the sync memory's
rejects: a header that comes in a later run takes it (`remembered_lines`), so lines sent one
run before their header are imported with it. Lines retried from the rejects at the end of a
run go the same way (never dropped): into their invoice, or rejected again.

Amounts in currency units are only parsed on arrival: their decimals depend on the invoice's
currency (two for EUR, none for JPY, three for KWD) and are checked when the invoice is assembled.

A deleted line finds its invoice by the memory, by the row's `invoice_external_id`, or (a lost
memory, a row carrying only its key) in what ChartMogul holds. It counts `deleted` once its
invoice is in ChartMogul without it (the invoice counts `corrected` on its own stream, when its
header came), `unchanged` when ChartMogul's invoice never had it, `changed_not_applied` under
`invoice_changes: keep`.
"""

from __future__ import annotations

import json
import typing as t

from target_chartmogul.api.errors import APIError
from target_chartmogul.errors import RecordRejected
from target_chartmogul.mapping.common import data_source, required_data_source, required_text
from target_chartmogul.mapping.invoices import InvoicePayload, check_line_item
from target_chartmogul.memory.ledger import payload_hash
from target_chartmogul.run.invoice_parts import LinePart
from target_chartmogul.run.invoice_parts import Record as PartRecord
from target_chartmogul.sinks.invoice_writing import InvoiceFinder, LinesAssembly, Record
from target_chartmogul.sinks.replacements import held_as_body
from target_chartmogul.values.text import is_blank

if t.TYPE_CHECKING:
    from target_chartmogul.run.context import RunContext

Obj = dict[str, t.Any]


class LineItemsSink(LinesAssembly):
    """Collects a stream of line item rows for their invoices."""

    object_name = "line_items"

    def setup(self) -> None:
        """Headers without line items wait while this stream is open."""
        super().setup()
        self.parts.stream_open(self.stream_name)
        self.invoices = InvoiceFinder(self.context)
        self.deleted_rows: dict[tuple[str, str], str | None] = {}  # the invoice a deleted row names

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
        for ds in sorted({part.data_source_uuid for part in lines}):  # memory cannot vouch: compare with a listing
            self.context.refs.holdings.ensure("invoice", ds)
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
        check_line_item(record, unit=self.settings.amount_unit)
        return LinePart(self, ds, invoice, external_id, record, self.settings.amount_unit,
                        line_fingerprint(record, self.settings.amount_unit))

    def retry_records(self, records: list[Record]) -> None:
        """Lines refused in earlier runs, retried after this run's own records (and so after every sink's last
        step): each goes into its invoice now, or is rejected again; none is left waiting and forgotten.

        A line whose header is retried after it (invoices rank after lines) is left in the memory's rejects:
        that header takes it (`remembered_lines`), so the invoice is imported whole, or both refused once.
        """
        headers = self.headers_retried()
        default = self.config.get("data_source_uuid")
        mine = [record for record in records
                if (data_source(record, default), record.get("invoice_external_id")) not in headers]
        super().retry_records(mine)
        self.finish_input()

    def headers_retried(self) -> set[tuple[str | None, t.Any]]:
        """(data source, external id) of the invoice headers the memory holds as rejects still to retry in this run."""
        default, context = self.config.get("data_source_uuid"), self.context
        context.ledger.flush()  # a header written in this run has its reject forgotten: not to be retried
        return {(data_source(r.record, default), r.record.get("external_id")) for r in context.ledger.remembered_rejects()
                if context.stream(r.stream).object == "invoices" and not context.rejected_now(r.stream, r.key)}

    def line_written(self, part: LinePart, invoice_uuid: str | None) -> None:
        """The line is in ChartMogul as the row says (or gone, when deleted); a reject it left earlier is done."""
        if self.context.ledger.remembers_rejects():
            self.context.ledger.forget_reject(self.stream_name, self.reject_key(part.record))
        if part.deleted:
            self.context.ledger.deleted("line_items", part.data_source_uuid, part.external_id)
            return
        self.context.ledger.written(
            "line_items", part.data_source_uuid, part.external_id, uuid=None, payload=payload_hash(part.fingerprint),
            stream=self.stream_name, parent=part.invoice_external_id,
        )

    def delete_keys(self, keys: list[tuple[str, str]], records: list[Record]) -> None:
        """Note which invoice each deleted row names (log-based rows may carry it), then delete."""
        for key, record in zip(keys, records, strict=True):
            invoice = record.get("invoice_external_id")
            self.deleted_rows[key] = str(invoice).strip() if isinstance(invoice, str) and invoice.strip() else None
        super().delete_keys(keys, records)

    def delete_one(self, data_source_uuid: str, external_id: str) -> str | None:
        """A line deleted in the source: its invoice is corrected without it at the end of the input.

        The invoice is the one the memory noted, else the one the row names, else the one ChartMogul
        holds the line on (a lost memory); `unchanged` only when no invoice in ChartMogul holds it.
        """
        entry = self.context.ledger.get("line_items", data_source_uuid, external_id)
        invoice = (entry.parent if entry is not None else None) or self.deleted_rows.get((data_source_uuid, external_id))
        if invoice is None:
            held = self.invoices.holding(data_source_uuid, "line_items", external_id)
            if held is None:
                self.logger.info("Line item %s: deleted in the source, and no invoice in ChartMogul holds it",
                                 external_id)
                return "unchanged"
            invoice = str(held["external_id"])
        record = {"data_source_uuid": data_source_uuid, "invoice_external_id": invoice, "external_id": external_id}
        part = LinePart(self, data_source_uuid, invoice, external_id, record, self.settings.amount_unit,
                        deleted=True, held=entry is not None)
        part.owner = DeletedLine(self, part)
        self.parts.add_line(part)
        return None  # counted once its invoice is written (see DeletedLine)

    def other_stream_started(self) -> None:
        """The stream ended: a complete version deletes what it lacks, then waiting headers may go."""
        super().other_stream_started()
        self.parts.stream_complete(self.stream_name)

    # Lines whose header did not come -------------------------------------------------------------
    def finish_input(self) -> None:
        """Correct the invoices whose lines changed without their header (in ChartMogul's copy); lines whose header
        the memory holds as a reject to retry later in this run wait for it (it takes them when it is retried).
        """
        self.parts.stream_complete(self.stream_name)
        orphans = self.parts.invoices_with_lines()
        if orphans and self.context.ledger.remembers_rejects():
            headers = self.headers_retried()
            orphans = [key for key in orphans if key not in headers]
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
                    part.owner.count("deleted")
                return
            if held is None or not held.get("customer_uuid"):
                self.parts.homeless(part for part in lines if not part.deleted)  # a header later in the run takes them
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
            part.owner.count(outcome)
            if outcome != "changed_not_applied":
                self.line_written(part, str(held["uuid"]))

    def held_for(self, data_source_uuid: str, invoice: str) -> Obj | None:
        """The invoice as ChartMogul holds it (with its customer): listed in this run, by remembered uuid, or by
        external id.
        """
        if self.context.refs.holdings.listed("invoice", data_source_uuid):
            return self.context.refs.holdings.get("invoice", data_source_uuid, invoice)
        entry = self.context.ledger.get("invoices", data_source_uuid, invoice)
        if entry is not None and entry.uuid:
            held = self._get_or_none(str(entry.uuid))
            if held is not None:
                return held
        self.context.refs.holdings.ensure("invoice", data_source_uuid)
        return self.context.refs.held("invoice", data_source_uuid, invoice, fresh=True)


class DeletedLine:
    """Stands for the line_items sink as the owner of a deleted line: what happened to its invoice is
    counted as what happened to the line (the invoice's own stream counts the invoice).
    """

    def __init__(self, sink: LineItemsSink, part: LinePart) -> None:
        self.sink = sink
        self.part = part
        self.stream_name = sink.stream_name

    def count(self, outcome: str, n: int = 1) -> None:
        """`deleted` when ChartMogul's invoice had the line and is now without it, `unchanged` when it never had
        it, `changed_not_applied` when `invoice_changes: keep` left it there.
        """
        if outcome != "changed_not_applied":
            outcome = "deleted" if self.part.held else "unchanged"
        self.sink.count(outcome, n)

    def reject(self, record: PartRecord, reason: str, *, field: str | None = None, status: int | None = None) -> None:
        """The line's deletion could not be applied (its invoice was refused)."""
        self.sink.reject(record, reason, field=field, status=status)

    def line_written(self, part: LinePart, invoice_uuid: str | None) -> None:
        """The line is gone from ChartMogul: the memory forgets it."""
        self.sink.line_written(part, invoice_uuid)


def line_fingerprint(record: PartRecord, unit: str) -> dict[str, t.Any]:
    """What the memory hashes of a line row: the row (its amounts as given) and how its amounts are read."""
    return {"line": {k: v for k, v in record.items() if not k.startswith("_sdc_")}, "unit": unit}


def remembered_lines(context: RunContext, default_data_source: str | None) -> list[LinePart]:
    """Line rows the sync memory keeps as rejects (of every line_items stream, this run's refusals aside), as
    lines waiting for their header: rows sent one run before their header are imported with it.
    """
    parts = []
    for remembered in context.ledger.remembered_rejects():
        settings = context.stream(remembered.stream)
        record = remembered.record
        if settings.object != "line_items" or context.rejected_now(remembered.stream, remembered.key) or \
                record.get("_sdc_deleted_at"):
            continue
        ds, invoice, external_id = (data_source(record, default_data_source), record.get("invoice_external_id"),
                                    record.get("external_id"))
        if not ds or not isinstance(invoice, str) or is_blank(invoice) or is_blank(external_id):
            continue
        owner = RememberedLine(context, remembered.stream, remembered.key)
        parts.append(LinePart(owner, str(ds), invoice.strip(), str(external_id).strip(), record, settings.amount_unit,
                              line_fingerprint(record, settings.amount_unit)))
    return parts


class RememberedLine:
    """Owner of a line that waited in the sync memory's rejects for its header (its stream need not be in this
    run): counted and rejected on its stream, its reject forgotten once it is in ChartMogul.
    """

    def __init__(self, context: RunContext, stream_name: str, reject_key: str) -> None:
        self.context = context
        self.stream_name = stream_name
        self.reject_key = reject_key

    def count(self, outcome: str, n: int = 1) -> None:
        """Count the line on its stream."""
        self.context.summary.add(self.stream_name, outcome, n)

    def reject(self, record: PartRecord, reason: str, *, field: str | None = None, status: int | None = None) -> None:
        """Its invoice was refused: the line is rejected again (and kept for the next run)."""
        try:
            key = json.loads(self.reject_key)
        except ValueError:
            key = {"key": self.reject_key}
        self.context.reject(self.stream_name, key, self.reject_key, record, reason, field=field, status=status)

    def line_written(self, part: LinePart, invoice_uuid: str | None) -> None:
        """The line landed with its invoice: remembered as written, its reject forgotten."""
        self.context.ledger.written("line_items", part.data_source_uuid, part.external_id, uuid=None,
                                    payload=payload_hash(part.fingerprint), stream=self.stream_name,
                                    parent=part.invoice_external_id)
        self.context.ledger.forget_reject(self.stream_name, self.reject_key)
