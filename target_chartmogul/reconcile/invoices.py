"""Invoices, their line items and their transactions against ChartMogul's invoices listing, and the revenue of both.

The invoices listing carries each invoice's lines and transactions, so one read per 200
invoices covers all three. An invoice is assembled as a write would import it: its header
and nested lines and payments mapped by `mapping/invoices.py`, or lines and payments from
streams of their own mapped in its currency, plans resolved by the plans listing. Then:

- an invoice ChartMogul lacks is `missing` (one finding; its lines and payments go with it);
- header fields and lines are compared by `compare.invoice_differences` (lines matched by external
  id; a line ChartMogul holds that the source lacks counts only when the lines are complete: nested
  in the header, or a line_items stream that arrived as a complete full-table version);
- each payment or refund is `missing`, or compared field by field (`compare.transaction_differences`);
- lines and payments whose header is not in the input are compared with the invoice ChartMogul holds;
- `extra`: invoices of a complete invoices stream ChartMogul holds beyond it, transactions of a complete
  transactions stream likewise, and any invoice, line or transaction the source deleted.

Revenue (`reconcile/revenue.py`) sums the assembled invoices and ChartMogul's.
"""

from __future__ import annotations

import typing as t

from target_chartmogul.errors import RecordRejected
from target_chartmogul.mapping.common import optional_text
from target_chartmogul.mapping.invoices import map_line_item
from target_chartmogul.mapping.transactions import map_transaction
from target_chartmogul.reconcile.findings import Finding, Findings, key_text
from target_chartmogul.values import compare
from target_chartmogul.values.text import is_blank

if t.TYPE_CHECKING:
    from target_chartmogul.mapping.invoices import InvoicePayload
    from target_chartmogul.reconcile.listings import Listings
    from target_chartmogul.reconcile.revenue import Revenue
    from target_chartmogul.reconcile.source import Key, Part, Row, Source

Obj = dict[str, t.Any]
INVOICE_PARTS = ("invoices", "line_items", "transactions")
Parts = dict[tuple[str, str], dict[str, "Row"]]  # (data source, invoice external id or `uuid:…`) -> external id -> row


def group_parts(rows: dict[Key, Row]) -> Parts:
    """Stream lines or payments by the invoice they name."""
    grouped: Parts = {}
    for (ds, external_id), row in sorted(rows.items()):
        part: Part = row.payload
        invoice = part.invoice_external_id or f"uuid:{part.invoice_uuid}"
        grouped.setdefault((ds, invoice), {})[external_id] = row
    return grouped


def payment_body(row: Row, currency_code: str | None) -> Obj:
    """A payment row of a transactions stream as a write sends it, its amounts read in its invoice's currency."""
    part: Part = row.payload
    currency_code = optional_text(part.record, "currency") or currency_code
    return map_transaction(part.record, unit=row.settings.amount_unit, currency_code=currency_code)


def plain(record: t.Mapping[str, t.Any]) -> Obj:
    """A row without its Singer metadata (what a `missing` line shows of a part nothing could map)."""
    return {key: value for key, value in record.items() if not key.startswith("_sdc_")}


class InvoiceComparison:
    """Compares the input's invoices, lines and payments with ChartMogul's, into findings and revenue."""

    def __init__(self, source: Source, listings: Listings, findings: Findings, revenue: Revenue,
                 default_ds: str | None) -> None:
        self.source = source
        self.listings = listings
        self.findings = findings
        self.revenue = revenue
        self.default_ds = default_ds
        self.lines = group_parts(source.of("line_items"))
        self.payments = group_parts(source.of("transactions"))
        self.assembled: dict[Key, Obj] = {}
        self.partial_lines: set[Key] = set()  # invoices whose lines come from an incremental line_items stream

    def key(self, ds: str, external_id: str) -> str:
        """A finding's key."""
        return key_text(ds, external_id, self.default_ds)

    def held(self, ds: str, external_id: str) -> Obj | None:
        """ChartMogul's invoice with this external id (or `uuid:…`) in the data source, as listed."""
        if external_id.startswith("uuid:"):
            found = self.listings.by_field("invoice", ds, "uuid").get(external_id.removeprefix("uuid:").casefold())
            return found[0] if found else None
        return self.listings.by_external_id("invoice", ds).get(external_id)

    def run(self) -> None:
        """Every invoice, then the lines and payments whose header the input lacks, then extras and revenue."""
        tally = self.findings.tally("invoices")
        for key, row in sorted(self.source.of("invoices").items()):
            tally.source += 1
            self.invoice(key, row)
        for (ds, invoice), rows in sorted(self.lines.items()):
            self.lone_lines(ds, invoice, rows)
        for (ds, invoice), rows in sorted(self.payments.items()):
            held = self.held(ds, invoice)
            ours = self.mapped_payments(ds, rows, held.get("currency") if held else None)
            if held is None:
                self.findings.extend(Finding("transactions", self.key(ds, ext), "missing", source=body)
                                     for ext, body in ours.items())
            else:
                self.transactions(ds, invoice, list(ours.values()), held)
        self.extras()
        self.held_revenue()

    # One invoice ------------------------------------------------------------------------------
    def invoice(self, key: Key, row: Row) -> None:
        """Assemble one invoice, then: refused, missing, or compared with ChartMogul's copy."""
        ds, external_id = key
        payload: InvoicePayload = row.payload
        try:
            body = self.assemble(ds, payload)
        except RecordRejected as exc:
            self.source.refuse("invoices", key)
            self.findings.add(Finding("invoices", self.key(*key), "refused", exc.field, exc.reason))
            return
        self.assembled[key] = body
        self.revenue.add_source(body)
        nested = body.pop("transactions", [])
        self.findings.tally("transactions").source += len(nested)
        streamed = self.mapped_payments(ds, self.payments.pop(key, {}), body["currency"])
        ours = [tx for tx in nested if tx.get("external_id") not in streamed] + list(streamed.values())
        held = self.held(ds, external_id)
        if held is None:
            self.findings.add(Finding("invoices", self.key(*key), "missing", source={**body, "transactions": ours}))
            return
        found = compare.invoice_differences(body, held)
        if payload.lines_from_stream and not self.source.is_complete("line_items"):
            # lines ChartMogul has beyond an incremental line_items stream say nothing
            self.partial_lines.add(key)
            found = [d for d in found if "only in ChartMogul" not in d.name]
        if payload.status is not None and held.get("status") not in (None, payload.status):
            found.append(compare.Difference("status", payload.status, held.get("status")))
        self.findings.extend(Finding("invoices", self.key(*key), "different", d.name, d.ours, d.held) for d in found)
        self.transactions(ds, external_id, ours, held)

    def assemble(self, ds: str, payload: InvoicePayload) -> Obj:
        """The invoice body a write would import: lines from their stream when the header has none, plans
        resolved by the plans listing (a plan ChartMogul lacks is named in the line's `plan_uuid`).
        """
        body = {**payload.body, "line_items": [dict(line) for line in payload.body.get("line_items") or []]}
        refs = list(payload.plan_refs)
        if payload.lines_from_stream:
            body["line_items"], refs = self.stream_lines(ds, payload)
        plans = self.listings.by_external_id("plan", ds)
        for index, plan_external_id in refs:
            plan = plans.get(plan_external_id)
            body["line_items"][index]["plan_uuid"] = plan["uuid"] if plan else f"(no plan {plan_external_id!r} in ChartMogul)"
        return body

    def stream_lines(self, ds: str, payload: InvoicePayload) -> tuple[list[Obj], list[tuple[int, str]]]:
        """The lines of a line_items stream that name this invoice, in its currency; a line that cannot be
        mapped refuses its invoice (a write would not import it without the line).
        """
        rows = self.lines.pop((ds, payload.external_id), {})
        self.findings.tally("line_items").source += len(rows)
        if not rows:
            msg = "no line items: the header has no line_items column and no line_items row names it"
            raise RecordRejected(msg, field="line_items")
        lines: list[Obj] = []
        refs: list[tuple[int, str]] = []
        for external_id, row in rows.items():
            line, plan = map_line_item(row.payload.record, f"line_items[{external_id}].", unit=row.settings.amount_unit,
                                       currency_code=payload.body["currency"])
            line.setdefault("external_id", external_id)
            if plan:
                refs.append((len(lines), plan))
            lines.append(line)
        return lines, refs

    def mapped_payments(self, ds: str, rows: dict[str, Row], currency_code: str | None) -> dict[str, Obj]:
        """Payments of a transactions stream as a write sends them; one that cannot be mapped is refused."""
        self.findings.tally("transactions").source += len(rows)
        mapped: dict[str, Obj] = {}
        for external_id, row in rows.items():
            try:
                mapped[external_id] = payment_body(row, currency_code)
            except RecordRejected as exc:
                self.source.refuse("transactions", (ds, external_id))
                self.findings.add(Finding("transactions", self.key(ds, external_id), "refused", exc.field, exc.reason))
        return mapped

    def transactions(self, ds: str, invoice: str, ours: list[Obj], held: Obj) -> None:
        """Each payment or refund of one invoice: missing in ChartMogul, or compared field by field."""
        held_transactions = held.get("transactions") or []
        missing, _ = compare.missing_transactions(ours, held_transactions)
        by_id = {tx["external_id"]: tx for tx in held_transactions if not is_blank(tx.get("external_id"))}

        def key(tx: t.Mapping[str, t.Any]) -> str:
            ext = tx.get("external_id")
            return self.key(ds, str(ext) if not is_blank(ext) else f"{invoice} {tx.get('type')} {tx.get('date')}")

        self.findings.extend(Finding("transactions", key(tx), "missing", source=tx) for tx in missing)
        for tx in ours:
            match = by_id.get(tx.get("external_id")) if not is_blank(tx.get("external_id")) else None
            if match is not None:
                self.findings.extend(Finding("transactions", key(tx), "different", d.name, d.ours, d.held)
                                     for d in compare.transaction_differences(tx, match))

    # Parts whose header is not in the input --------------------------------------------------
    def lone_lines(self, ds: str, invoice: str, rows: dict[str, Row]) -> None:
        """Lines of an invoice the input has no header for: compared with the invoice ChartMogul holds."""
        self.findings.tally("line_items").source += len(rows)
        held = self.held(ds, invoice)
        for external_id, row in rows.items():
            if held is None:
                self.findings.add(Finding("line_items", self.key(ds, external_id), "missing", source=plain(row.payload.record)))
                continue
            try:
                line, plan = map_line_item(row.payload.record, "", unit=row.settings.amount_unit,
                                           currency_code=held.get("currency"))
            except RecordRejected as exc:
                self.findings.add(Finding("line_items", self.key(ds, external_id), "refused", exc.field, exc.reason))
                continue
            line.setdefault("external_id", external_id)
            if plan:
                found = self.listings.by_external_id("plan", ds).get(plan)
                line["plan_uuid"] = found["uuid"] if found else f"(no plan {plan!r} in ChartMogul)"
            self.line(ds, external_id, line, held)

    def line(self, ds: str, external_id: str, line: Obj, held: Obj) -> None:
        """One line against the line of ChartMogul's invoice with its external id."""
        theirs = [item for item in held.get("line_items") or [] if item.get("external_id") == external_id]
        prefix = f"line_items[{external_id}]."
        for d in compare.line_item_differences([line], theirs):
            if d.name.startswith(prefix):
                self.findings.add(Finding("line_items", self.key(ds, external_id), "different",
                                          d.name.removeprefix(prefix), d.ours, d.held))
            else:
                self.findings.add(Finding("line_items", self.key(ds, external_id), "missing", source=line))

    # Extras and ChartMogul's revenue ----------------------------------------------------------
    def listed(self) -> t.Iterator[tuple[str, Obj]]:
        """(data source, invoice) of every invoice listed for the input's invoices, lines and payments."""
        for ds in sorted(self.source.data_sources("invoices", "line_items", "transactions")):
            for invoice in self.listings.objects("invoice", ds):
                yield ds, invoice

    def extras(self) -> None:
        """Invoices, lines and transactions ChartMogul holds that the source deleted or a complete stream lacks."""
        complete = self.source.is_complete("invoices")
        present = set(self.source.of("invoices")) | self.source.refused.get("invoices", set())
        deleted = {obj: self.source.deleted.get(obj, set()) for obj in INVOICE_PARTS}
        payments = self.accounted_payments()
        count_lines = bool(self.source.streams_of("line_items"))
        for ds, invoice in self.listed():
            ext = str(invoice.get("external_id") or "")
            lines, transactions = invoice.get("line_items") or [], invoice.get("transactions") or []
            self.findings.tally("invoices").chartmogul += 1
            self.findings.tally("transactions").chartmogul += len(transactions)
            if count_lines:
                self.findings.tally("line_items").chartmogul += len(lines)
            if (ds, ext) in deleted["invoices"] or (complete and ext and (ds, ext) not in present):
                self.findings.add(Finding("invoices", self.key(ds, ext), "extra", chartmogul=self.brief(invoice)))
            for line in lines:
                if (ds, str(line.get("external_id"))) in deleted["line_items"]:
                    self.findings.add(Finding("line_items", self.key(ds, str(line["external_id"])), "extra",
                                              chartmogul={"invoice": ext, **line}))
            judged = payments if complete or (ds, ext) in present else None  # its nested payments are known
            for tx in transactions:
                tx_key = (ds, str(tx.get("external_id") or ""))
                if tx_key in deleted["transactions"] or (judged is not None and tx_key[1] and tx_key not in judged):
                    self.findings.add(Finding("transactions", self.key(*tx_key), "extra", chartmogul={"invoice": ext, **tx}))

    def accounted_payments(self) -> set[Key] | None:
        """The payments the source has (stream rows, refused ones, nested in its invoices), when a transactions
        stream arrived as a complete full-table version; None otherwise (then none is extra for lacking a row).
        """
        if not self.source.is_complete("transactions"):
            return None
        found = set(self.source.of("transactions")) | self.source.refused.get("transactions", set())
        for (ds, _), row in self.source.of("invoices").items():
            found |= {(ds, str(tx["external_id"])) for tx in row.payload.transactions if not is_blank(tx.get("external_id"))}
        return found

    @staticmethod
    def brief(invoice: Obj) -> Obj:
        """What an `extra` line shows of an invoice: its identity, date, currency and line total."""
        total = sum(int(line.get("amount_in_cents") or 0) for line in invoice.get("line_items") or [])
        return {"uuid": invoice.get("uuid"), "external_id": invoice.get("external_id"), "date": invoice.get("date"),
                "currency": invoice.get("currency"), "amount_in_cents": total}

    def held_revenue(self) -> None:
        """ChartMogul's side of the revenue: every listed invoice of a complete invoices stream, else those the
        input has.
        """
        complete = self.source.is_complete("invoices")
        mine = set(self.source.of("invoices")) | self.source.refused.get("invoices", set())
        data_sources = self.source.data_sources("invoices")
        for ds, invoice in self.listed():
            key = (ds, str(invoice.get("external_id")))
            if ds in data_sources and (complete or key in mine):
                self.revenue.add_chartmogul(self.as_far_as_known(key, invoice))

    def as_far_as_known(self, key: Key, invoice: Obj) -> Obj:
        """ChartMogul's invoice, limited to the lines the input carries when its lines come from an incremental
        line_items stream (the input says nothing of the others: they count on neither side).
        """
        body = self.assembled.get(key)
        if body is None or key not in self.partial_lines:
            return invoice
        ours = {line.get("external_id") for line in body["line_items"]}
        return {**invoice, "line_items": [line for line in invoice.get("line_items") or [] if line.get("external_id") in ours]}
