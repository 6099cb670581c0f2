"""Writing invoices: import the new, bring the imported in line with the record.

`InvoiceWriter` is composed into the invoices sink (headers, or whole invoices) and the
line_items sink (lines whose header did not come in this run); what every object shares (a
read whose 404 means gone, a lookup by external id, the duplicate refusal, a delete, the
memory) it asks of the lifecycle (`sinks.lifecycle`). An invoice ChartMogul does not hold is imported,
with the other new invoices of its customer in one call; one it holds is compared with the
record (`compare`), and:

- transactions it lacks (a late payment) are added;
- a transaction it holds differently is updated (`PATCH /transactions/{uuid}`), or the
  invoice replaced when ChartMogul refuses that;
- any other difference (amounts, lines, dates, currency) replaces the invoice (`replacements`),
  keeping its payments and its status; so does a change the memory's content hash shows where
  ChartMogul's answers cannot (collection_method);
- a `status` of voided or written_off is applied with ChartMogul's status endpoint, once: the
  memory keeps the status last applied.

Under `invoice_changes: keep` none of this touches an invoice imported before: each difference
(content, a payment it lacks, a status) is reported and counted `changed_not_applied`.
"""

from __future__ import annotations

import typing as t

from target_chartmogul.api.changes import CREATE, UPDATE
from target_chartmogul.api.errors import APIError
from target_chartmogul.api.resources import get_or_none, is_duplicate, is_missing
from target_chartmogul.errors import RecordRejected
from target_chartmogul.mapping.invoices import InvoicePayload
from target_chartmogul.mapping.transactions import map_transaction
from target_chartmogul.memory.ledger import Digest, Entry, payload_hash
from target_chartmogul.sinks.invoice_status import InvoiceStatus, status_now, stronger
from target_chartmogul.sinks.lifecycle import Lifecycle, Rules, rules_class
from target_chartmogul.sinks.replacements import Replacer, keeping_transactions
from target_chartmogul.values import compare

if t.TYPE_CHECKING:
    import logging

    from target_chartmogul.api.client import ChartMogulClient
    from target_chartmogul.config.settings import StreamSettings
    from target_chartmogul.run.context import RunContext
    from target_chartmogul.run.invoice_parts import InvoiceParts
    from target_chartmogul.sinks.base import ChartMogulSink

Record = dict[str, t.Any]
Obj = dict[str, t.Any]
Pair = tuple[Record, InvoicePayload]
MAX_ROUNDS = 3


def _describe(errors: t.Mapping[str, t.Any]) -> str:
    return "; ".join(f"{k}: {'; '.join(v) if isinstance(v, list) else v}" for k, v in errors.items())


class InvoiceRules(Rules[InvoicePayload]):
    """What invoices share with every object (their resource in the table); their decisions are the writer's."""

    kind = "invoice"


class InvoiceWriter:
    """Imports, corrections, status changes and deletes of invoices (see the module docstring), for one sink."""

    def __init__(self, sink: ChartMogulSink) -> None:
        self.sink = sink
        self.replacer = Replacer(sink.context)
        self.known: dict[tuple[str, str], Entry] = {}
        self.lifecycle: Lifecycle[InvoicePayload] = Lifecycle(sink, rules_class("invoices")(sink))
        self.status = InvoiceStatus(sink.context, sink.logger)

    @property
    def context(self) -> RunContext:
        """The run."""
        return self.sink.context

    @property
    def client(self) -> ChartMogulClient:
        """The run's client."""
        return self.sink.context.client

    @property
    def parts(self) -> InvoiceParts:
        """The run's waiting line items and payments."""
        return self.sink.context.invoice_parts

    @property
    def settings(self) -> StreamSettings:
        """The sink's stream options."""
        return self.sink.settings

    @property
    def logger(self) -> logging.Logger:
        """The sink's logger."""
        return self.sink.logger

    # Memory ------------------------------------------------------------------------------
    @staticmethod
    def fingerprint(payload: InvoicePayload) -> Digest:
        """What the memory hashes: the import body, the references still to resolve, and the status (hashed now,
        as resolving the references changes the body).
        """
        return Digest(payload_hash({"body": payload.body, "customer_uuid": payload.customer_uuid,
                                    "plans": payload.plan_refs, "status": payload.status}))

    @staticmethod
    def content_hash(payload: InvoicePayload) -> str:
        """What ChartMogul keeps of the invoice apart from its payments and status: header, lines (in any order),
        customer and plans named. Taken with the fingerprint and kept as the memory's `record_hash` of the
        invoice, it tells a change in a field ChartMogul's answers never show (collection_method).
        """
        plans = dict(payload.plan_refs)
        lines = sorted(payload_hash({**line, "plan": plans.get(index)})
                       for index, line in enumerate(payload.body.get("line_items") or []))
        header = {k: v for k, v in payload.body.items() if k not in ("line_items", "transactions")}
        return payload_hash({"header": header, "lines": lines, "customer_uuid": payload.customer_uuid})

    def remember_invoice(self, payload: InvoicePayload, uuid: str | None, *, current: bool = True,
                         applied: bool = True) -> None:
        """Note an invoice that is in ChartMogul; `current` False when it differs from the record (checked again
        next run), `applied` False when ChartMogul keeps its earlier content (`invoice_changes: keep`).

        Written from its lines alone (no header in this run), it keeps what the memory knew of its header.
        """
        ds, ext = payload.data_source_uuid, payload.external_id
        entry = self.context.ledger.get("invoices", ds, ext) if payload.fingerprint is None or not applied else None
        if payload.fingerprint is None:
            digest, content = (entry.payload_hash, entry.record_hash) if entry is not None else (None, None)
            stream = str(entry.stream) if entry is not None else self.sink.stream_name
        else:
            digest, stream = (payload_hash(payload.fingerprint) if current else None), self.sink.stream_name
            content = payload.content if applied else (entry.record_hash if entry is not None else None)
        self.context.ledger.written("invoices", ds, ext, uuid=uuid, payload=digest, stream=stream, record=content)
        if uuid:
            self.context.refs.remember("invoice", payload.data_source_uuid, payload.external_id, {"uuid": uuid})

    def note_status(self, payload: InvoicePayload, status: str | None) -> None:
        """The status the invoice now has in ChartMogul as this target applied it (None: none)."""
        self.context.ledger.set_status("invoices", payload.data_source_uuid, payload.external_id, status)

    def remembered(self, payload: InvoicePayload) -> Entry | None:
        """What the sync memory holds of the invoice (this run's writes included)."""
        return self.context.ledger.get("invoices", payload.data_source_uuid, payload.external_id)

    # References -------------------------------------------------------------------------
    def customer_uuid(self, payload: InvoicePayload) -> str:
        """The customer given by uuid, or found by external id in the data source."""
        if payload.customer_uuid:
            return payload.customer_uuid
        customer = self.context.refs.require(
            "customer", payload.data_source_uuid, str(payload.customer_external_id), field="customer_external_id"
        )
        return str(customer["uuid"])

    def resolve_plans(self, payload: InvoicePayload) -> None:
        """Replace each line item's plan_external_id by the plan's uuid."""
        for index, plan_external_id in payload.plan_refs:
            plan = self.context.refs.require(
                "plan", payload.data_source_uuid, plan_external_id, field=f"line_items[{index}].plan_external_id"
            )
            payload.body["line_items"][index]["plan_uuid"] = plan["uuid"]

    def held_invoice(self, payload: InvoicePayload) -> Obj | None:
        """The invoice as ChartMogul holds it, when it holds it; None means import it.

        Asked of this run's listing (a lost memory), by the remembered uuid, or, for an
        invoice the memory knows without a uuid (its import answer was lost), by external id.
        """
        ds, ext = payload.data_source_uuid, payload.external_id
        refs = self.context.refs
        if refs.holdings.listed("invoice", ds):
            return refs.holdings.get("invoice", ds, ext)
        entry = self.known.get((ds, ext)) or self.context.ledger.get("invoices", ds, ext)
        if entry is not None and entry.uuid:
            return self.lifecycle.held((ds, ext), entry.uuid)
        if entry is not None:  # remembered without a uuid: its import answer was lost
            return self.lifecycle.look_up((ds, ext))
        return None

    # An invoice ChartMogul holds -------------------------------------------------------------
    def reconcile(self, payload: InvoicePayload, held: Obj, customer_uuid: str, *, created: bool = False) -> str:
        """Bring an invoice ChartMogul holds in line with the record; returns the outcome to count.

        The memory tells `compare` whether the content changed since it was written, so a change in a
        field ChartMogul's answers never show is a correction too. Under `invoice_changes: keep` (not for
        an invoice this run imported itself) nothing is written, every difference is reported.
        """
        entry = self.remembered(payload)
        differs = (entry is not None and entry.record_hash is not None and payload.content is not None
                   and entry.record_hash != payload.content)
        changes = compare.invoice_changes(payload.body, held, written_differs=differs)
        changed_transactions = compare.changed_transactions(payload.transactions, held.get("transactions") or [])
        if self.settings.invoice_changes == "keep" and not created:
            return self.kept(payload, held, entry, changes + [f"transactions[{tx[0]['external_id']}]"
                                                              for tx in changed_transactions])
        before = held
        named = [*changes, *(f"transactions[{tx[0].get('external_id')}]" for tx in changed_transactions)]
        shown = {"status": (held.get("status"), payload.status)} if payload.status is not None else {}
        with self.lifecycle.change_of(payload.external_id, UPDATE, shown, named):  # shown when a write was needed
            if changes:
                held, outcome = self.replace(payload, held, customer_uuid, changes), "corrected"
            else:
                outcome = "updated" if self.add_missing_transactions(payload, held) else "unchanged"
                if changed_transactions:
                    held = self.update_transactions(payload, held, customer_uuid, changed_transactions)
                    outcome = "corrected"
            status = self.status.apply(payload, held, replaced=held is not before,
                                       remembered=entry.status if entry is not None else None)
        if status is not None:
            outcome = stronger(outcome, status)
        self.remember_invoice(payload, str(held["uuid"]))
        self.note_status(payload, status_now(held, entry if held is before else None))
        return "created" if created else outcome

    def kept(self, payload: InvoicePayload, held: Obj, entry: Entry | None, changes: list[str]) -> str:
        """`invoice_changes: keep`: ChartMogul's invoice is never touched (no correction, no payment added, no
        status set); each difference is warned and counted `changed_not_applied`, on every run.
        """
        missing, _ = compare.missing_transactions(payload.transactions, held.get("transactions") or [])
        changes = changes + [f"transactions[{tx.get('external_id') or 'without external_id'}] (not in ChartMogul)"
                             for tx in missing]
        if payload.status is not None and held.get("status") != payload.status and (
                entry is None or entry.status != payload.status):
            changes.append(f"status {payload.status}")
        if not changes:
            self.remember_invoice(payload, str(held["uuid"]))
            return "unchanged"
        self._not_applied(payload, held, changes)
        return "changed_not_applied"

    def add_missing_transactions(self, payload: InvoicePayload, held: Obj) -> bool:
        """POST the record's transactions the invoice lacks (matched by external id); True if any."""
        missing, _ = compare.missing_transactions(payload.transactions, held.get("transactions") or [])
        for transaction in missing:
            try:
                self.client.post(f"import/invoices/{held['uuid']}/transactions", transaction)
            except APIError as exc:
                if not is_duplicate(exc, "transaction"):
                    raise
        if missing:
            held["transactions"] = [*(held.get("transactions") or []), *missing]
            self.context.refs.holdings.put("invoice", payload.data_source_uuid, payload.external_id, held)
        return bool(missing)

    def _not_applied(self, payload: InvoicePayload, held: Obj, changes: list[str]) -> None:
        self.logger.warning(
            "Invoice %s changed in the source (%s); invoice_changes is 'keep', so ChartMogul keeps it as imported",
            payload.external_id,
            ", ".join(changes[:5]) + (" …" if len(changes) > 5 else ""),
        )
        self.remember_invoice(payload, str(held["uuid"]), current=False, applied=False)

    def replace(self, payload: InvoicePayload, held: Obj, customer_uuid: str, changes: list[str]) -> Obj:
        """Delete and import again with the record's content, keeping the invoice's other transactions."""
        self.logger.info("Correcting invoice %s (%s)", payload.external_id, ", ".join(changes[:5]))
        answer = self.replacer.replace(payload.data_source_uuid, customer_uuid, payload.body, held, payload.status)
        self.transactions_moved(payload.data_source_uuid, answer)
        self.context.refs.holdings.put("invoice", payload.data_source_uuid, payload.external_id, answer)
        return answer

    def transactions_moved(self, data_source_uuid: str, invoice: Obj) -> None:
        """A re-imported invoice's transactions have new uuids: the memory follows them."""
        moved = {tx["external_id"]: tx.get("uuid") for tx in invoice.get("transactions") or [] if tx.get("external_id")}
        ledger = self.context.ledger
        for ext, entry in ledger.lookup("transactions", data_source_uuid, moved).items():
            ledger.written("transactions", data_source_uuid, ext, uuid=moved[ext], payload=entry.payload_hash,
                           stream=str(entry.stream), record=entry.record_hash,
                           parent=entry.parent or invoice.get("external_id"))

    def update_transactions(
        self,
        payload: InvoicePayload,
        held: Obj,
        customer_uuid: str,
        changed: t.Sequence[tuple[t.Mapping[str, t.Any], t.Mapping[str, t.Any], dict[str, t.Any]]],
    ) -> Obj:
        """PATCH each transaction ChartMogul holds differently; replace the invoice if it refuses."""
        for ours, theirs, fields in changed:
            try:
                self.client.patch(f"transactions/{theirs['uuid']}", fields)
            except APIError as exc:
                if exc.status in (401, 403):
                    raise
                self.logger.info("ChartMogul refused to update transaction %s (%s): replacing invoice %s",
                                 ours.get("external_id"), exc.message, payload.external_id)
                return self.replace(payload, held, customer_uuid, [f"transactions[{ours.get('external_id')}]"])
        return held

    # New invoices -------------------------------------------------------------------------
    def prepare_new(self, payload: InvoicePayload) -> None:
        """Before its import: nest the payments waiting for it, and keep what an unfinished replacement held."""
        key = (payload.data_source_uuid, payload.external_id)
        have = {tx.get("external_id") for tx in payload.transactions}
        nested = []
        for payment in self.parts.take_payments(key):
            if payment.external_id in have:
                continue
            try:
                nested.append(self.map_payment(payment, payload))
            except RecordRejected:  # its own stream rejects it, naming the field; the invoice goes without it
                continue
        if nested:
            payload.body["transactions"] = [*payload.transactions, *nested]
            payload.nested_payments = [str(tx["external_id"]) for tx in nested]
        pending = self.context.ledger.pending_replacement(*key)
        if pending is not None:  # a dead run deleted it: bring back the payments the record does not carry
            payload.body.update(keeping_transactions(payload.body, pending))
            entry = self.remembered(payload)  # and the status it had (the dead run noted no other)
            payload.status = payload.status or (entry.status if entry is not None else None)

    def map_payment(self, payment: t.Any, payload: InvoicePayload) -> Obj:
        """A waiting payment as nested in the import (amounts in the invoice's currency)."""
        return map_transaction(payment.record, unit=payment.unit, currency_code=payload.body["currency"])

    def import_invoices(self, customer_uuid: str, pending: list[Pair]) -> None:
        """POST the new invoices; sort each into created, already there, or rejected."""
        resent = False
        for _ in range(MAX_ROUNDS):
            if not pending:
                return
            try:
                with self.lifecycle.change_of(", ".join(p.external_id for _, p in pending), CREATE):
                    response = self.client.post(
                        f"import/customers/{customer_uuid}/invoices", {"invoices": [p.body for _, p in pending]}
                    )
            except APIError as exc:
                pending = self._sort_refusal(customer_uuid, pending, exc, ours=resent or exc.attempts > 1)
                resent = True
                continue
            answers = (response.body or {}).get("invoices") or []
            for index, (record, payload) in enumerate(pending):
                self.imported(record, payload, self._answer_for(payload, answers, index))
            return
        for record, payload in pending:  # pragma: no cover - the API kept refusing without saying why
            self.refuse(record, payload, "ChartMogul refused the import repeatedly without naming an error")

    @staticmethod
    def _answer_for(payload: InvoicePayload, answers: list[t.Any], index: int) -> Obj:
        """The answer entry of one sent invoice: by external id, else by position."""
        for answer in answers:
            if isinstance(answer, dict) and answer.get("external_id") == payload.external_id:
                return answer
        answer = answers[index] if index < len(answers) else None
        return answer if isinstance(answer, dict) else {}

    def imported(self, record: Record, payload: InvoicePayload, answer: Obj) -> None:
        """An invoice ChartMogul saved: its status, the memory, the payments nested in it."""
        if answer.get("uuid"):
            self.context.refs.holdings.put("invoice", payload.data_source_uuid, payload.external_id, answer)
        try:
            with self.lifecycle.change_of(payload.external_id, UPDATE, {"status": (None, payload.status)}):
                self.status.apply(payload, answer, replaced=True)
        except APIError as exc:
            self.remember_invoice(payload, answer.get("uuid"), current=False)
            self.note_status(payload, None)
            self.refuse(record, payload, f"imported, but ChartMogul refused its status {payload.status}: {exc.message}",
                        field="status", status=exc.status)
            return
        self.context.ledger.clear_replacement(payload.data_source_uuid, payload.external_id)
        self.parts.imported((payload.data_source_uuid, payload.external_id))
        uuids = {tx.get("external_id"): tx.get("uuid") for tx in answer.get("transactions") or [] if isinstance(tx, dict)}
        for external_id in payload.nested_payments:
            self.parts.nested(payload.data_source_uuid, external_id, uuid=uuids.get(external_id))
        self.remember_invoice(payload, answer.get("uuid"))
        self.note_status(payload, payload.status)
        self.counted(record, payload, "created", answer.get("uuid"))

    def _sort_refusal(self, customer_uuid: str, pending: list[Pair], exc: APIError, *, ours: bool) -> list[Pair]:
        """Handle a refused import call; return the invoices to send again."""
        if is_missing(exc):
            for record, payload in pending:
                if payload.customer_external_id:
                    self.context.refs.forget("customer", payload.data_source_uuid, payload.customer_external_id,
                                             gone=True)
                self.refuse(record, payload, f"customer {customer_uuid} does not exist in ChartMogul", field="customer_uuid",
                            status=404)
            return []
        answers = exc.body.get("invoices") if isinstance(exc.body, dict) else None
        if not isinstance(answers, list) or len(answers) != len(pending):
            if len(pending) > 1:  # the API did not say which invoice: send them one by one
                for pair in pending:
                    self.import_invoices(customer_uuid, [pair])
                return []
            answers = [{"errors": exc.fields or {"invoice": exc.message}}]
        again: list[Pair] = []
        for index, (record, payload) in enumerate(pending):
            answer = self._answer_for(payload, answers, index)
            errors = answer.get("errors") or {}
            if not errors and answer.get("uuid"):  # saved although the call was refused
                self.imported(record, payload, answer)
            elif not errors:
                again.append((record, payload))
            elif self.lifecycle.duplicate(errors.get("external_id")):
                self.already_there(record, payload, customer_uuid, ours=ours)
            else:
                self.refuse(record, payload, f"ChartMogul refused it: {_describe(errors)}", field=next(iter(errors), None),
                            status=exc.status)
        return again

    def already_there(self, record: Record, payload: InvoicePayload, customer_uuid: str, *, ours: bool) -> None:
        """'already exists': find the invoice (never trusting an earlier listing) and compare it."""
        held = self.lifecycle.look_up((payload.data_source_uuid, payload.external_id))
        if held is None:
            msg = f"ChartMogul says invoice {payload.external_id!r} exists but no such invoice was found in the data source"
            self.refuse(record, payload, msg, field="external_id", status=422)
            return
        try:
            outcome = self.reconcile(payload, held, customer_uuid, created=ours)
        except APIError as exc:
            self.refuse(record, payload, f"ChartMogul refused it: {exc.message}", field=next(iter(exc.fields), None),
                        status=exc.status)
            return
        self.counted(record, payload, outcome, str(held["uuid"]))

    # Outcomes ---------------------------------------------------------------------------
    def counted(self, record: Record, payload: InvoicePayload, outcome: str, uuid: str | None) -> None:
        """Count the invoice, and each of its arrived lines with the same outcome (and remember them)."""
        self.sink.count(outcome)
        for part in payload.stream_lines:
            part.owner.count(outcome)
            if outcome != "changed_not_applied":  # else the line is checked again next run
                part.owner.line_written(part, uuid)

    def refuse(
        self, record: Record, payload: InvoicePayload, reason: str, *, field: str | None = None, status: int | None = None
    ) -> None:
        """Reject one invoice, and the lines that arrived for it."""
        self.sink.reject(record, reason, field=field, status=status)
        for part in payload.stream_lines:
            if part.refused is None:  # a refused line has its own reject line already
                part.owner.reject(part.record, f"its invoice {part.invoice_external_id} was refused: {reason}",
                                  field="invoice_external_id", status=status)

    # Deletes ------------------------------------------------------------------------------
    def delete_invoice(self, record: Record, data_source_uuid: str, external_id: str) -> str:
        """Delete one invoice and forget its transactions (ChartMogul deletes them with it)."""
        key = (data_source_uuid, external_id)
        entry = self.context.ledger.get("invoices", data_source_uuid, external_id)
        held = get_or_none(self.client, "invoice", entry.uuid) if entry is not None and entry.uuid else None
        if held is None:
            held = self.lifecycle.look_up(key)
        if held is None:
            self.context.refs.forget("invoice", data_source_uuid, external_id, gone=True)
            return "unchanged"
        for tx in held.get("transactions") or []:
            if tx.get("external_id"):
                self.context.ledger.deleted("transactions", data_source_uuid, tx["external_id"])
        return self.lifecycle.delete_held(record, key, str(held["uuid"]))
