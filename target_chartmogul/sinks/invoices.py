"""Invoices: headers (with their line items, or with lines from a line_items stream), kept in step.

New invoices of one customer go out together (at most `invoices_per_request` per import
call; calls for different customers run concurrently); an invoice ChartMogul holds is
compared and corrected (see `invoice_writing`). A header whose lines come from their own
stream waits while that stream is still open, then is imported once with all its lines.
Rows deleted in the source delete their invoice (with `delete_missing`).
"""

from __future__ import annotations

import typing as t

from target_chartmogul.api.errors import APIError
from target_chartmogul.bulk.entries import Entry as BulkEntry
from target_chartmogul.bulk.entries import MemoryRow
from target_chartmogul.bulk.writers import Adapter
from target_chartmogul.errors import RecordRejected
from target_chartmogul.mapping.invoices import InvoicePayload, map_invoice, requested_status
from target_chartmogul.memory.ledger import payload_hash
from target_chartmogul.memory.references import Unresolved
from target_chartmogul.run.invoice_parts import LinePart
from target_chartmogul.sinks.base import ChartMogulSink
from target_chartmogul.sinks.invoice_lines import RecordWaiting, line_body, map_stream_lines, merged_lines
from target_chartmogul.sinks.invoice_writing import InvoiceWriter, Pair, Record
from target_chartmogul.sinks.line_items import remembered_lines
from target_chartmogul.sinks.replacements import held_as_body

Obj = dict[str, t.Any]


class InvoicesSink(ChartMogulSink):
    """Writes a stream of invoice records into ChartMogul invoices (the invoice machinery composed: `writer`)."""

    object_name = "invoices"

    def setup(self) -> None:
        """The invoice machinery and the lane's adapter of this sink."""
        super().setup()
        self.writer = InvoiceWriter(self)
        self.parts = self.context.invoice_parts
        self._bulk = InvoiceEntries(self)

    def write_records(self, records: list[Record]) -> None:
        """Map, skip what the memory says is current, group by customer, write the groups concurrently."""
        pairs: list[Pair] = []
        for record in self.split_deletions(records):
            try:
                pairs.append((record, map_invoice(record, self.config.get("data_source_uuid"),
                                                  unit=self.settings.amount_unit)))
            except RecordRejected as exc:
                self.reject(record, exc.reason, field=exc.field)
        for ds in sorted({payload.data_source_uuid for _, payload in pairs}):
            self.context.refs.holdings.ensure("invoice", ds)  # a lost memory: read the data source's invoices once
        self.writer.known = self.memory_lookup((p.data_source_uuid, p.external_id) for _, p in pairs)
        groups: dict[tuple[str, ...], list[Pair]] = {}
        for record, payload in pairs:
            payload.fingerprint = self.writer.fingerprint(payload)  # before plan references are filled in
            payload.content = self.writer.content_hash(payload)
            if self.is_current(self.writer.known.get((payload.data_source_uuid, payload.external_id)), payload.fingerprint):
                self.count("unchanged")
                continue
            key = (
                ("uuid", payload.customer_uuid)
                if payload.customer_uuid
                else ("external_id", payload.data_source_uuid, str(payload.customer_external_id))
            )
            groups.setdefault(key, []).append((record, payload))
        size = self.settings.invoices_per_request
        chunks = [group[i : i + size] for group in groups.values() for i in range(0, len(group), size)]
        self.run_each(chunks, self.write_chunk, records_of=lambda chunk: [record for record, _ in chunk])

    @property
    def bulk_writer(self) -> InvoiceEntries:
        """The lane's adapter: new invoices ride in bulk imports with their lines and payments."""
        return self._bulk

    def delete_rows(self, keys: list[tuple[str, str]], records: list[Record]) -> None:
        """Delete the invoices of rows deleted in the source (a 404 means gone already)."""
        self.run_each(list(zip(records, keys, strict=True)), lambda pair: self.writer.delete_invoice(pair[0], *pair[1]),
                      records_of=lambda pair: [pair[0]])

    # One customer's invoices -----------------------------------------------------------
    def write_chunk(self, chunk: list[Pair]) -> None:
        """Resolve the customer, then compare each invoice ChartMogul holds and import the others together."""
        customer_uuid = self.writer.customer_uuid(chunk[0][1])
        new: list[Pair] = []
        for record, payload in chunk:
            lines: list[LinePart] = []
            try:
                lines = self.lines_of(payload)
                pair = self.write_one(record, payload, lines, customer_uuid)
            except RecordRejected as exc:
                self.not_written(record, lines, exc)
                continue
            except APIError as exc:
                self.not_written(record, lines, RecordRejected(f"ChartMogul refused it: {exc.message}",
                                                               field=next(iter(exc.fields), None), status=exc.status))
                continue
            if pair is not None:
                new.append(pair)
        self.writer.import_invoices(customer_uuid, new)

    def lines_of(self, payload: InvoicePayload) -> list[LinePart]:
        """The lines that arrived for a header without a line_items column (it waits while more may come)."""
        if not payload.lines_from_stream:
            return []
        if self.parts.lines_pending and not self.context.order.final_pass:
            raise RecordWaiting("its line items may still arrive", field="line_items")
        lines = self.parts.take_lines(payload.data_source_uuid, payload.external_id)
        payload.stream_lines = lines
        return lines

    def write_one(self, record: Record, payload: InvoicePayload, lines: list[LinePart], customer_uuid: str) -> Pair | None:
        """Compare (and correct) an invoice ChartMogul holds; return a new one to import (with the lines that
        earlier runs kept for it, when its header comes after them).
        """
        self.writer.resolve_plans(payload)
        held = self.writer.held_invoice(payload)
        if held is None and payload.lines_from_stream:
            lines.extend(self.remembered_lines(payload, lines))
        mapped = map_stream_lines(self.context, payload, lines)
        if payload.lines_from_stream:
            held_lines = held_as_body(held, payload.data_source_uuid)["line_items"] if held is not None else []
            payload.body["line_items"] = merged_lines(held_lines, mapped)
            if not payload.body["line_items"]:
                raise RecordRejected("no line items arrived for it (line_items stream)", field="line_items")
        if held is None:
            self.writer.prepare_new(payload)
            return record, payload
        outcome = self.writer.reconcile(payload, held, customer_uuid)
        self.writer.counted(record, payload, outcome, str(held.get("uuid")))
        return None

    def remembered_lines(self, payload: InvoicePayload, lines: list[LinePart]) -> list[LinePart]:
        """Lines of this new invoice that came without it in an earlier run (rejected then, their rows kept in the
        sync memory's rejects) and not again in this run: the invoice is imported whole with them.
        """
        if not self.context.ledger.remembers_rejects():
            return []
        have = {part.external_id for part in lines}
        waiting = self.parts.remembered_lines((payload.data_source_uuid, payload.external_id), self._load_remembered)
        return [part for part in waiting if part.external_id not in have]

    def lines_wait_in_memory(self, payload: InvoicePayload) -> bool:
        """Whether lines of an earlier run wait in the sync memory for this header (left waiting)."""
        return self.context.ledger.remembers_rejects() and self.parts.has_remembered(
            (payload.data_source_uuid, payload.external_id), self._load_remembered)

    def _load_remembered(self) -> list[LinePart]:
        return remembered_lines(self.context, self.config.get("data_source_uuid"))

    def not_written(self, record: Record, lines: list[LinePart], exc: RecordRejected) -> None:
        """A refused or waiting invoice: its lines wait with it, or are refused with it."""
        if isinstance(exc, Unresolved) and not self.context.order.final_pass:
            self.parts.put_back(lines)
            self.defer_or_reject(record, exc)
            return
        self.reject(record, exc.reason, field=exc.field, status=exc.status)
        for part in lines:
            if part.refused is None:  # a refused line has its own reject line already
                part.owner.reject(part.record, f"its invoice {part.invoice_external_id} was refused: {exc.reason}",
                                  field="invoice_external_id", status=exc.status)



class InvoiceEntries(Adapter):
    """The bulk lane's adapter of the invoices sink: an invoice's header, its lines and its payments in one unit."""

    kind = "invoice"

    def __init__(self, invoices: InvoicesSink) -> None:
        super().__init__(invoices)
        self.invoices = invoices

    def bulk_split(self, records: list[Record]) -> tuple[list[tuple[str, str, str, Record]], list[Record]]:
        """Invoices ChartMogul does not hold, of a customer named by external id, can ride in a bulk import;
        a status (voided, written_off) or a replacement left unfinished needs REST.
        """
        keyed = [(record, self.key(record) if self._plain(record) else None) for record in records]
        ledger = self.invoices.context.ledger
        return self.partition(keyed, lambda ds, ext: ledger.pending_replacement(ds, ext) is not None)

    @staticmethod
    def _plain(record: Record) -> bool:
        """Named by its customer's external id, and no status to set."""
        try:
            return not record.get("customer_uuid") and requested_status(record) is None
        except RecordRejected:
            return False

    def bulk_entries(self, records: list[Record]) -> tuple[list[list[BulkEntry]], list[Record]]:
        """One unit per invoice: its header, its lines (from the row or the line_items stream), its payments."""
        units: list[list[BulkEntry]] = []
        rest: list[Record] = []
        ds, amounts = self.invoices.config.get("data_source_uuid"), self.invoices.settings.amount_unit
        for record, payload in self.mapped(records, lambda record: map_invoice(record, ds, unit=amounts)):
            if any("plan_uuid" in line for line in payload.body.get("line_items") or []) or not self.ready(
                    payload.data_source_uuid, str(payload.customer_external_id), self._plans_named(payload)):
                rest.append(record)  # a bulk line names its plan by external id only; a missing plan waits in REST
                continue
            if payload.lines_from_stream and self.invoices.lines_wait_in_memory(payload):
                rest.append(record)  # lines an earlier run kept for it join it through REST
                continue
            payload.fingerprint = self.invoices.writer.fingerprint(payload)
            payload.content = self.invoices.writer.content_hash(payload)
            unit = self.bulk_unit(record, payload)
            if unit:
                units.append(unit)
        return units, rest

    def _plans_named(self, payload: InvoicePayload) -> set[str]:
        """The plans its lines name: from the row, or from the lines of the line_items stream that arrived."""
        plans = {plan for _, plan in payload.plan_refs}
        if payload.lines_from_stream:
            for part in self.invoices.parts.peek_lines(payload.data_source_uuid, payload.external_id):
                plan = part.record.get("plan_external_id")
                if isinstance(plan, str) and plan.strip():
                    plans.add(plan.strip())
        return plans

    def bulk_unit(self, record: Record, payload: InvoicePayload) -> list[BulkEntry]:
        """The invoice's entry and its stream lines' entries; [] when it was refused (lines with it)."""
        ds, ext = payload.data_source_uuid, payload.external_id
        entry = self.entry(record, str(payload.customer_external_id))
        skipped = ("line_items", "transactions", "data_source_uuid")
        entry.add("invoices", {k: v for k, v in payload.body.items() if k not in skipped})
        entry.memory.append(MemoryRow("invoices", ds, ext, payload_hash(payload.fingerprint), record_hash=payload.content))
        plans = dict(payload.plan_refs)
        for index, line in enumerate(payload.body.get("line_items") or []):
            entry.add("line_items", {**line, "invoice_external_id": ext,
                                     **({"plan_external_id": plans[index]} if index in plans else {})})
        children: list[BulkEntry] = []
        lines = self.invoices.parts.take_lines(ds, ext) if payload.lines_from_stream else []
        try:
            children = [child for part in lines if (child := self.bulk_line(part, payload)) is not None]
            if payload.lines_from_stream and not children:
                raise RecordRejected("no line items arrived for it (line_items stream)", field="line_items")
        except RecordRejected as exc:
            self.invoices.not_written(record, lines, exc)
            return []
        have = {tx.get("external_id") for tx in payload.transactions}
        for transaction in payload.transactions:
            entry.add("transactions", {**transaction, "invoice_external_id": ext})
        for payment in self.invoices.parts.take_payments((ds, ext)):
            if payment.external_id in have:
                continue
            try:
                body = self.invoices.writer.map_payment(payment, payload)
            except RecordRejected:  # its own stream rejects it, naming the field; the invoice goes without it
                continue
            entry.add("transactions", {**body, "invoice_external_id": ext})
            entry.payments.append(payment.external_id)
        return [entry, *children]

    def bulk_line(self, part: LinePart, payload: InvoicePayload) -> BulkEntry | None:
        """A line of the line_items stream as a bulk line item (None for a line deleted before it was sent)."""
        if part.deleted:
            part.owner.line_written(part, None)
            part.owner.count("deleted")
            return None
        prefix = f"line_items[{part.external_id}]."
        body, plan_external_id = line_body(part, payload.body["currency"])
        if "plan_uuid" in body:
            raise RecordRejected("a line naming its plan by uuid cannot go in a bulk import",
                                 field=prefix + "plan_uuid")
        body = {**body, "external_id": part.external_id, "invoice_external_id": payload.external_id}
        if plan_external_id:
            body["plan_external_id"] = plan_external_id
        owner = t.cast("ChartMogulSink", part.owner)
        child = BulkEntry(owner.stream_name, str(payload.customer_external_id), part.record, owner.record_key(part.record),
                          owner.reject_key(part.record))
        child.add("line_items", body)
        child.memory.append(MemoryRow("line_items", part.data_source_uuid, part.external_id,
                                      payload_hash(part.fingerprint), parent=payload.external_id))
        return child

