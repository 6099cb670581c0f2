"""Writing invoices: import the new, bring the imported in line with the record.

Shared by the invoices sink (headers, or whole invoices) and the line_items sink (lines
whose header did not come in this run). An invoice ChartMogul does not hold is imported,
with the other new invoices of its customer in one call; one it holds is compared with the
record (`compare`), and:

- transactions it lacks (a late payment) are added;
- a transaction it holds differently is updated (`PATCH /transactions/{uuid}`), or the
  invoice replaced when ChartMogul refuses that;
- any other difference (amounts, lines, dates, currency) replaces the invoice (`replacements`),
  keeping its payments, unless the stream says `invoice_changes: keep` (then it is reported,
  counted `changed_not_applied`);
- a `status` of voided or written_off is applied with ChartMogul's status endpoint.
"""

from __future__ import annotations

import copy
import typing as t

from target_chartmogul import compare
from target_chartmogul.errors import APIError, RecordRejected, is_already_exists
from target_chartmogul.ledger import Entry, payload_hash
from target_chartmogul.mapping.invoices import InvoicePayload, map_line_item
from target_chartmogul.mapping.transactions import map_transaction
from target_chartmogul.references import Unresolved
from target_chartmogul.replacements import Replacer, keeping_transactions
from target_chartmogul.sinks.deletions import DeletesMissing

Record = dict[str, t.Any]
Obj = dict[str, t.Any]
Pair = tuple[Record, InvoicePayload]
MAX_ROUNDS = 3
# One outcome per record; when several happened, the strongest is counted.
STRENGTH = ("unchanged", "status_unconfirmed", "updated", "status_changed", "corrected", "created")


def stronger(a: str, b: str) -> str:
    """The outcome that says more of what was done."""
    return a if STRENGTH.index(a) >= STRENGTH.index(b) else b


def _invoice_is_duplicate(errors: t.Mapping[str, t.Any]) -> bool:
    message = str(errors.get("external_id", "")).lower()
    return "already exists" in message or "already been taken" in message


def _describe(errors: t.Mapping[str, t.Any]) -> str:
    return "; ".join(f"{k}: {'; '.join(v) if isinstance(v, list) else v}" for k, v in errors.items())


class InvoiceWriting(DeletesMissing):
    """Imports, corrections, status changes and deletes of invoices (see the module docstring)."""

    def setup(self) -> None:
        """The run's waiting line items and payments, and the replacer."""
        super().setup()
        self.parts = self.context.invoice_parts
        self.replacer = Replacer(self.context)
        self.known: dict[tuple[str, str], Entry] = {}

    # Memory ------------------------------------------------------------------------------
    @staticmethod
    def fingerprint(payload: InvoicePayload) -> dict[str, t.Any]:
        """What the memory hashes: the import body, the references still to resolve, and the status."""
        return copy.deepcopy(
            {"body": payload.body, "customer_uuid": payload.customer_uuid, "plans": payload.plan_refs,
             "status": payload.status}
        )

    def remember_invoice(self, payload: InvoicePayload, uuid: str | None, *, current: bool = True) -> None:
        """Note an invoice that is in ChartMogul; `current` False when it differs from the record.

        Written from its lines alone (no header in this run), it keeps what the memory knew of its header.
        """
        ds, ext = payload.data_source_uuid, payload.external_id
        if payload.fingerprint is None:
            entry = self.context.ledger.get("invoices", ds, ext)
            digest, stream = (entry.payload_hash, str(entry.stream)) if entry is not None else (None, self.stream_name)
        else:
            digest, stream = (payload_hash(payload.fingerprint) if current else None), self.stream_name
        self.context.ledger.written("invoices", ds, ext, uuid=uuid, payload=digest, stream=stream)
        if uuid:
            self.context.refs.remember("invoice", payload.data_source_uuid, payload.external_id, {"uuid": uuid})

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
            try:
                return t.cast("Obj", self.client.get(f"invoices/{entry.uuid}").body)
            except APIError as exc:
                if exc.status != 404:
                    raise
                refs.forget("invoice", ds, ext, gone=True)
                return None
        if entry is not None:  # remembered without a uuid: its import answer was lost
            return refs.held("invoice", ds, ext, fresh=True)
        return None

    # An invoice ChartMogul holds -------------------------------------------------------------
    def reconcile(self, payload: InvoicePayload, held: Obj, customer_uuid: str, *, created: bool = False) -> str:
        """Bring an invoice ChartMogul holds in line with the record; returns the outcome to count."""
        changes = compare.invoice_changes(payload.body, held)
        changed_transactions = compare.changed_transactions(payload.transactions, held.get("transactions") or [])
        if (changes or changed_transactions) and self.settings.invoice_changes == "keep":
            self.add_missing_transactions(payload, held)
            self._not_applied(payload, held, changes + [f"transactions[{tx[0]['external_id']}]"
                                                         for tx in changed_transactions])
            return "changed_not_applied"
        if changes:
            held, outcome = self.replace(payload, held, customer_uuid, changes), "corrected"
        else:
            outcome = "updated" if self.add_missing_transactions(payload, held) else "unchanged"
            if changed_transactions:
                held, outcome = self.update_transactions(payload, held, customer_uuid, changed_transactions), "corrected"
        status = self.apply_status(payload, held, replaced=outcome == "corrected" and bool(changes))
        if status is not None:
            outcome = stronger(outcome, status)
        self.remember_invoice(payload, str(held["uuid"]))
        return "created" if created else outcome

    def add_missing_transactions(self, payload: InvoicePayload, held: Obj) -> bool:
        """POST the record's transactions the invoice lacks (matched by external id); True if any."""
        missing, _ = compare.missing_transactions(payload.transactions, held.get("transactions") or [])
        for transaction in missing:
            try:
                self.client.post(f"import/invoices/{held['uuid']}/transactions", transaction)
            except APIError as exc:
                if not is_already_exists(exc):
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
        self.remember_invoice(payload, str(held["uuid"]), current=False)

    def replace(self, payload: InvoicePayload, held: Obj, customer_uuid: str, changes: list[str]) -> Obj:
        """Delete and import again with the record's content, keeping the invoice's other transactions."""
        self.logger.info("Correcting invoice %s (%s)", payload.external_id, ", ".join(changes[:5]))
        answer = self.replacer.replace(payload.data_source_uuid, customer_uuid, payload.body, held)
        self.transactions_moved(payload.data_source_uuid, answer)
        self.context.refs.holdings.put("invoice", payload.data_source_uuid, payload.external_id, answer)
        return answer

    def transactions_moved(self, data_source_uuid: str, invoice: Obj) -> None:
        """A re-imported invoice's transactions have new uuids: the memory follows them."""
        moved = {tx["external_id"]: tx.get("uuid") for tx in invoice.get("transactions") or [] if tx.get("external_id")}
        ledger = self.context.ledger
        for ext, entry in ledger.lookup("transactions", data_source_uuid, moved).items():
            ledger.written("transactions", data_source_uuid, ext, uuid=moved[ext], payload=entry.payload_hash,
                           stream=str(entry.stream), record=entry.record_hash)

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

    def apply_status(self, payload: InvoicePayload, held: Obj, *, replaced: bool = False) -> str | None:
        """PUT the record's status (voided, written_off) unless ChartMogul shows it already.

        Returns the outcome: "status_changed", None when nothing was needed, or
        "status_unconfirmed" when ChartMogul refused the transition, its answers do not show
        invoice status (no recorded answer does) and the sync memory does not know what was
        written (it was lost): most likely the invoice has it already; logged, never counted
        as changed.
        """
        if payload.status is None or (not replaced and held.get("status") == payload.status):
            return None
        path = f"data_sources/{payload.data_source_uuid}/invoices/{payload.external_id}/status"
        try:
            self.client.put(path, {"status": payload.status})
        except APIError as exc:
            if replaced or exc.status != 422 or "status" in held or self.wrote_before(payload):
                raise  # a transition from a status this target set: ChartMogul's refusal stands
            self.logger.warning(
                "Invoice %s: ChartMogul refused to set status %s (%s) and its answers do not show invoice status; "
                "most likely it is %s already (counted status_unconfirmed)",
                payload.external_id, payload.status, exc.message, payload.status,
            )
            return "status_unconfirmed"
        return "status_changed"

    def wrote_before(self, payload: InvoicePayload) -> bool:
        """Whether the sync memory knows what this target last wrote of the invoice (its status included)."""
        entry = self.context.ledger.get("invoices", payload.data_source_uuid, payload.external_id)
        return entry is not None and entry.payload_hash is not None

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
            self.apply_status(payload, answer, replaced=True)
        except APIError as exc:
            self.remember_invoice(payload, answer.get("uuid"), current=False)
            self.refuse(record, payload, f"imported, but ChartMogul refused its status {payload.status}: {exc.message}",
                        field="status", status=exc.status)
            return
        self.context.ledger.clear_replacement(payload.data_source_uuid, payload.external_id)
        for external_id in payload.nested_payments:
            self.parts.nested(payload.data_source_uuid, external_id)
        self.remember_invoice(payload, answer.get("uuid"))
        self.counted(record, payload, "created", answer.get("uuid"))

    def _sort_refusal(self, customer_uuid: str, pending: list[Pair], exc: APIError, *, ours: bool) -> list[Pair]:
        """Handle a refused import call; return the invoices to send again."""
        if exc.status == 404:
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
            elif _invoice_is_duplicate(errors):
                self.already_there(record, payload, customer_uuid, ours=ours)
            else:
                self.refuse(record, payload, f"ChartMogul refused it: {_describe(errors)}", field=next(iter(errors), None),
                            status=exc.status)
        return again

    def already_there(self, record: Record, payload: InvoicePayload, customer_uuid: str, *, ours: bool) -> None:
        """'already exists': find the invoice (never trusting an earlier listing) and compare it."""
        held = self.context.refs.held("invoice", payload.data_source_uuid, payload.external_id, fresh=True)
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

    # Outcomes (the line_items sink counts on its lines too) ---------------------------------
    def counted(self, record: Record, payload: InvoicePayload, outcome: str, uuid: str | None) -> None:
        """Count one invoice's outcome."""
        self.count(outcome)

    def refuse(
        self, record: Record, payload: InvoicePayload, reason: str, *, field: str | None = None, status: int | None = None
    ) -> None:
        """Reject one invoice, and the lines that arrived for it."""
        self.reject(record, reason, field=field, status=status)
        for part in payload.stream_lines:
            if part.refused is None:  # a refused line has its own reject line already
                part.owner.reject(part.record, f"its invoice {part.invoice_external_id} was refused: {reason}",
                                  field="invoice_external_id", status=status)

    # Deletes ------------------------------------------------------------------------------
    def delete_invoice(self, data_source_uuid: str, external_id: str) -> str:
        """Delete one invoice and forget its transactions (ChartMogul deletes them with it)."""
        entry = self.context.ledger.get("invoices", data_source_uuid, external_id)
        held = None
        if entry is not None and entry.uuid:
            held = self._get_or_none(str(entry.uuid))
        if held is None:
            held = self.context.refs.held("invoice", data_source_uuid, external_id, fresh=True)
        if held is not None:
            try:
                self.client.delete(f"invoices/{held['uuid']}")
            except APIError as exc:
                if exc.status != 404:
                    raise
            for tx in held.get("transactions") or []:
                if tx.get("external_id"):
                    self.context.ledger.deleted("transactions", data_source_uuid, tx["external_id"])
        self.context.refs.forget("invoice", data_source_uuid, external_id, gone=True)
        return "deleted" if held is not None else "unchanged"

    def _get_or_none(self, invoice_uuid: str) -> Obj | None:
        try:
            return t.cast("Obj", self.client.get(f"invoices/{invoice_uuid}").body)
        except APIError as exc:
            if exc.status == 404:
                return None
            raise



class RecordWaiting(Unresolved):
    """A header whose lines may still arrive (a line_items stream is still open): it waits."""


class LinesAssembly(InvoiceWriting):
    """Line items from a line_items stream, mapped and merged into their invoice."""

    def map_stream_lines(self, payload: InvoicePayload, parts: list[t.Any]) -> list[tuple[t.Any, Obj | None]]:
        """(part, body or None when the line was deleted) of each line, plans resolved.

        A line ChartMogul would refuse refuses its whole invoice (importing it without the
        line would be wrong): RecordRejected names the line.
        """
        mapped: list[tuple[t.Any, Obj | None]] = []
        for part in parts:
            if part.refused is not None:
                raise RecordRejected(f"its line {part.external_id} was refused: {part.refused}",
                                     field=f"line_items[{part.external_id}]")
            if part.deleted:
                mapped.append((part, None))
                continue
            prefix = f"line_items[{part.external_id}]."
            body, plan_external_id = map_line_item(part.record, prefix, unit=part.unit,
                                                   currency_code=payload.body["currency"])
            body.setdefault("external_id", part.external_id)
            if plan_external_id:
                plan = self.context.refs.require("plan", payload.data_source_uuid, plan_external_id,
                                                 field=prefix + "plan_external_id")
                body["plan_uuid"] = plan["uuid"]
            mapped.append((part, body))
        return mapped

    @staticmethod
    def merged_lines(held_lines: list[Obj], mapped: list[tuple[t.Any, Obj | None]]) -> list[Obj]:
        """ChartMogul's lines with the arrived ones replacing theirs (by external id), added, or removed."""
        changed = {part.external_id: body for part, body in mapped}
        lines = [changed.pop(str(line.get("external_id")), line) if line.get("external_id") in changed else line
                 for line in held_lines]
        lines.extend(body for body in changed.values() if body is not None)
        return [line for line in lines if line is not None]
