"""Invoices with line items and nested transactions: imported once, compared ever after.

A new invoice goes out through the import API, with the other new invoices of its
customer (at most `invoices_per_request` per call; calls for different customers run
concurrently). An invoice ChartMogul already holds (per the sync memory, a listing of the
data source, or an "already exists" answer) is compared with the record instead: the
transactions it lacks, such as a payment made after the invoice was imported, are added;
a difference in the invoice itself is reported (`changed_not_applied`), never counted as
present.

ChartMogul may save the valid invoices of a refused call, or none of them (recordings
do not say), so an invoice answered without errors but without a uuid is sent again.
"""

from __future__ import annotations

import copy
import typing as t

from target_chartmogul import compare
from target_chartmogul.errors import APIError, RecordRejected, is_already_exists
from target_chartmogul.ledger import Entry
from target_chartmogul.mapping.invoices import InvoicePayload, map_invoice
from target_chartmogul.sinks.base import ChartMogulSink

Record = dict[str, t.Any]
Pair = tuple[Record, InvoicePayload]
MAX_ROUNDS = 3


def _invoice_is_duplicate(errors: t.Mapping[str, t.Any]) -> bool:
    message = str(errors.get("external_id", "")).lower()
    return "already exists" in message or "already been taken" in message


def _describe(errors: t.Mapping[str, t.Any]) -> str:
    return "; ".join(f"{k}: {'; '.join(v) if isinstance(v, list) else v}" for k, v in errors.items())


class InvoicesSink(ChartMogulSink):
    """Writes a stream into ChartMogul invoices through the import API."""

    object_name = "invoices"

    def write_records(self, records: list[Record]) -> None:
        """Map, skip what the memory says is current, group by customer, write the groups concurrently."""
        groups: dict[tuple[str, ...], list[Pair]] = {}
        pairs: list[Pair] = []
        for record in records:
            try:
                pairs.append((record, map_invoice(record, self.config.get("data_source_uuid"))))
            except RecordRejected as exc:
                self.reject(record, exc.reason, field=exc.field)
        for ds in {payload.data_source_uuid for _, payload in pairs}:
            self.context.refs.holdings.ensure("invoice", ds)  # a lost memory: read the data source's invoices once
        self.known = self.memory_lookup((p.data_source_uuid, p.external_id) for _, p in pairs)
        for record, payload in pairs:
            payload.fingerprint = self.fingerprint(payload)  # before plan references are filled in
            if self.is_current(self.known.get((payload.data_source_uuid, payload.external_id)), payload.fingerprint):
                self.count("unchanged")
                continue
            key = (
                ("uuid", payload.customer_uuid)
                if payload.customer_uuid
                else ("external_id", payload.data_source_uuid, str(payload.customer_external_id))
            )
            groups.setdefault(key, []).append((record, payload))
        size = self.settings.invoices_per_request
        chunks = [pairs[i : i + size] for pairs in groups.values() for i in range(0, len(pairs), size)]
        self.run_each(chunks, self.write_chunk, records_of=lambda chunk: [record for record, _ in chunk])

    @staticmethod
    def fingerprint(payload: InvoicePayload) -> dict[str, t.Any]:
        """What the memory hashes: the import body and the references still to resolve."""
        return copy.deepcopy({"body": payload.body, "customer_uuid": payload.customer_uuid, "plans": payload.plan_refs})

    def remember_invoice(self, payload: InvoicePayload, uuid: str | None, *, current: bool = True) -> None:
        """Note an invoice that is in ChartMogul; `current` False when it differs from the record."""
        self.remember(
            payload.data_source_uuid, payload.external_id, uuid=uuid, payload=payload.fingerprint if current else None
        )
        if uuid:
            self.context.refs.remember("invoice", payload.data_source_uuid, payload.external_id, {"uuid": uuid})

    # One customer's invoices -----------------------------------------------------------
    def write_chunk(self, chunk: list[Pair]) -> None:
        """Resolve the customer and plans, compare invoices ChartMogul holds, import the others."""
        customer_uuid = self.customer_uuid(chunk[0][1])
        new: list[Pair] = []
        for record, payload in chunk:
            try:
                self.resolve_plans(payload)
                held = self.held_invoice(payload)
                if held is None:
                    new.append((record, payload))
                else:
                    self.count(self.reconcile(payload, held))
            except RecordRejected as exc:
                self.defer_or_reject(record, exc)
            except APIError as exc:
                self.reject(record, f"ChartMogul refused it: {exc.message}", field=next(iter(exc.fields), None),
                            status=exc.status)
        self.import_invoices(customer_uuid, new)

    def customer_uuid(self, payload: InvoicePayload) -> str:
        """The customer given by uuid, or found by external id in the data source."""
        if payload.customer_uuid:
            return payload.customer_uuid
        customer = self.context.refs.require(
            "customer",
            payload.data_source_uuid,
            str(payload.customer_external_id),
            field="customer_external_id",
        )
        return str(customer["uuid"])

    def resolve_plans(self, payload: InvoicePayload) -> None:
        """Replace each line item's plan_external_id by the plan's uuid."""
        for index, plan_external_id in payload.plan_refs:
            plan = self.context.refs.require(
                "plan",
                payload.data_source_uuid,
                plan_external_id,
                field=f"line_items[{index}].plan_external_id",
            )
            payload.body["line_items"][index]["plan_uuid"] = plan["uuid"]

    def held_invoice(self, payload: InvoicePayload) -> dict[str, t.Any] | None:
        """The invoice as ChartMogul holds it, when it holds it; None means import it.

        Asked of this run's listing (a lost memory), by the remembered uuid, or, for an
        invoice the memory knows without a uuid (its import answer was lost), by external id.
        """
        ds, ext = payload.data_source_uuid, payload.external_id
        refs = self.context.refs
        if refs.holdings.listed("invoice", ds):
            return refs.holdings.get("invoice", ds, ext)
        entry: Entry | None = self.known.get((ds, ext))
        if entry is not None and entry.uuid:
            try:
                return t.cast("dict[str, t.Any]", self.client.get(f"invoices/{entry.uuid}").body)
            except APIError as exc:
                if exc.status != 404:
                    raise
                refs.forget("invoice", ds, ext, gone=True)
                return None
        if entry is not None:  # remembered without a uuid: its import answer was lost
            return refs.held("invoice", ds, ext, fresh=True)
        return None

    def reconcile(self, payload: InvoicePayload, held: dict[str, t.Any], *, created: bool = False) -> str:
        """Bring an invoice ChartMogul holds in line with the record: add the transactions it lacks.

        Returns the outcome to count. A difference in the invoice itself, or in a
        transaction it holds, is not applied by this version: it is logged, counted
        `changed_not_applied`, and checked again on the next run.
        """
        uuid = str(held["uuid"])
        missing, differing = compare.missing_transactions(payload.transactions, held.get("transactions") or [])
        for transaction in missing:
            try:
                self.client.post(f"import/invoices/{uuid}/transactions", transaction)
            except APIError as exc:
                if not is_already_exists(exc):
                    raise
        if missing:
            added = [*(held.get("transactions") or []), *missing]
            self.context.refs.holdings.put("invoice", payload.data_source_uuid, payload.external_id,
                                         {**held, "transactions": added})
        changes = compare.invoice_changes(payload.body, held) + differing
        if changes:
            self.logger.warning(
                "Invoice %s changed in the source but ChartMogul holds it as imported (%s); "
                "this version does not apply invoice corrections",
                payload.external_id,
                ", ".join(changes[:5]) + (" …" if len(changes) > 5 else ""),
            )
            self.remember_invoice(payload, uuid, current=False)
            return "changed_not_applied"
        self.remember_invoice(payload, uuid)
        if created:
            return "created"
        return "updated" if missing else "unchanged"

    # The import call (or a few, when ChartMogul refuses some invoices) -----------------
    def import_invoices(self, customer_uuid: str, pending: list[Pair]) -> None:
        """POST the new invoices; sort each into created, already there, or rejected."""
        resent = False
        for _ in range(MAX_ROUNDS):
            if not pending:
                return
            path = f"import/customers/{customer_uuid}/invoices"
            try:
                response = self.client.post(path, {"invoices": [payload.body for _, payload in pending]})
            except APIError as exc:
                pending = self._sort_refusal(customer_uuid, pending, exc, ours=resent or exc.attempts > 1)
                resent = True
                continue
            answers = (response.body or {}).get("invoices") or []
            for index, (_, payload) in enumerate(pending):
                self.imported(payload, self._answer_for(payload, answers, index))
            self.count("created", len(pending))
            return
        for record, _ in pending:  # pragma: no cover - the API kept refusing without saying why
            self.reject(record, "ChartMogul refused the import repeatedly without naming an error")

    @staticmethod
    def _answer_for(payload: InvoicePayload, answers: list[t.Any], index: int) -> dict[str, t.Any]:
        """The answer entry of one sent invoice: by external id, else by position."""
        for answer in answers:
            if isinstance(answer, dict) and answer.get("external_id") == payload.external_id:
                return answer
        answer = answers[index] if index < len(answers) else None
        return answer if isinstance(answer, dict) else {}

    def imported(self, payload: InvoicePayload, answer: dict[str, t.Any]) -> None:
        """Remember an invoice ChartMogul saved (its uuid from the answer)."""
        self.remember_invoice(payload, answer.get("uuid"))
        if answer.get("uuid"):
            self.context.refs.holdings.put("invoice", payload.data_source_uuid, payload.external_id, answer)

    def _sort_refusal(self, customer_uuid: str, pending: list[Pair], exc: APIError, *, ours: bool) -> list[Pair]:
        """Handle a refused import call; return the invoices to send again."""
        if exc.status == 404:
            for record, payload in pending:
                if payload.customer_external_id:
                    self.context.refs.forget("customer", payload.data_source_uuid, payload.customer_external_id, gone=True)
                self.reject(
                    record, f"customer {customer_uuid} does not exist in ChartMogul", field="customer_uuid", status=404
                )
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
                self.imported(payload, answer)
                self.count("created")
            elif not errors:
                again.append((record, payload))
            elif _invoice_is_duplicate(errors):
                self.already_there(record, payload, ours=ours)
            else:
                field = next(iter(errors), None)
                self.reject(record, f"ChartMogul refused it: {_describe(errors)}", field=field, status=exc.status)
        return again

    def already_there(self, record: Record, payload: InvoicePayload, *, ours: bool) -> None:
        """'already exists': find the invoice (never trusting an earlier listing) and compare it."""
        held = self.context.refs.held("invoice", payload.data_source_uuid, payload.external_id, fresh=True)
        if held is None:
            msg = f"ChartMogul says invoice {payload.external_id!r} exists but no such invoice was found in the data source"
            self.reject(record, msg, field="external_id", status=422)
            return
        try:
            self.count(self.reconcile(payload, held, created=ours))
        except APIError as exc:
            self.reject(record, f"ChartMogul refused it: {exc.message}", field=next(iter(exc.fields), None),
                        status=exc.status)
