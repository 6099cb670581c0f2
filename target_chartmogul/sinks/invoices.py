"""Invoices with line items and nested transactions: insert, safe to replay.

Invoices of one customer go out together (at most `invoices_per_request` per import
call); calls for different customers run concurrently. ChartMogul may save the valid
invoices of a refused call, or none of them (uncertain), so the valid ones are sent
again: a duplicate on that resend proves the first call saved them.
"""

from __future__ import annotations

import copy
import typing as t

from target_chartmogul.errors import APIError, RecordRejected, is_already_exists
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
        """Map, group by customer, cut into import calls, write the calls concurrently."""
        groups: dict[tuple[str, ...], list[Pair]] = {}
        pairs: list[Pair] = []
        for record in records:
            try:
                pairs.append((record, map_invoice(record, self.config.get("data_source_uuid"))))
            except RecordRejected as exc:
                self.reject(record, exc.reason, field=exc.field)
        known = self.memory_lookup((p.data_source_uuid, p.external_id) for _, p in pairs)
        for record, payload in pairs:
            payload.fingerprint = self.fingerprint(payload)  # before plan references are filled in
            if self.is_current(known.get((payload.data_source_uuid, payload.external_id)), payload.fingerprint):
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

    def remember_invoice(self, payload: InvoicePayload, uuid: str | None) -> None:
        """Note an invoice that is in ChartMogul (created now, or already there)."""
        self.remember(payload.data_source_uuid, payload.external_id, uuid=uuid, payload=payload.fingerprint)

    # One import call (or a few, when ChartMogul refuses some invoices) ----------------
    def write_chunk(self, chunk: list[Pair]) -> None:
        """Resolve the customer and plans, then import; counts each invoice itself."""
        customer_uuid = self.customer_uuid(chunk[0][1])
        ready: list[Pair] = []
        for record, payload in chunk:
            try:
                self.resolve_plans(payload)
            except RecordRejected as exc:
                self.defer_or_reject(record, exc)
                continue
            ready.append((record, payload))
        self.import_invoices(customer_uuid, ready)

    def customer_uuid(self, payload: InvoicePayload) -> str:
        """The customer given by uuid, or found by external id in the data source."""
        if payload.customer_uuid:
            return payload.customer_uuid
        customer = self.owner.refs.require(
            "customer",
            payload.data_source_uuid,
            str(payload.customer_external_id),
            field="customer_external_id",
        )
        return str(customer["uuid"])

    def resolve_plans(self, payload: InvoicePayload) -> None:
        """Replace each line item's plan_external_id by the plan's uuid."""
        for index, plan_external_id in payload.plan_refs:
            plan = self.owner.refs.require(
                "plan",
                payload.data_source_uuid,
                plan_external_id,
                field=f"line_items[{index}].plan_external_id",
            )
            payload.body["line_items"][index]["plan_uuid"] = plan["uuid"]

    def import_invoices(self, customer_uuid: str, pending: list[Pair]) -> None:
        """POST the invoices; sort each into created, already present or rejected."""
        if self.client.dry_run:  # nothing is written, so ask first which invoices exist
            present = [p for p in pending if self.owner.refs.find("invoice", p[1].data_source_uuid, p[1].external_id)]
            self.count("already_present", len(present))
            pending = [p for p in pending if p not in present]
            if pending:
                self.client.post(
                    f"import/customers/{customer_uuid}/invoices", {"invoices": [p.body for _, p in pending]}
                )
                self.count("created", len(pending))
            return
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
                answer = answers[index] if index < len(answers) else None
                self.owner.refs.remember("invoice", payload.data_source_uuid, payload.external_id, answer)
                self.remember_invoice(payload, (answer or {}).get("uuid"))
            self.count("created", len(pending))
            return
        for record, _ in pending:  # pragma: no cover - the API kept refusing without saying why
            self.reject(record, "ChartMogul refused the import repeatedly without naming an error")

    def _sort_refusal(self, customer_uuid: str, pending: list[Pair], exc: APIError, *, ours: bool) -> list[Pair]:
        """Handle a refused import call; return the invoices to send again."""
        if exc.status == 404:
            for record, payload in pending:
                if payload.customer_external_id:
                    self.owner.refs.forget("customer", payload.data_source_uuid, payload.customer_external_id, gone=True)
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
        by_id = {a.get("external_id"): a for a in answers if isinstance(a, dict) and a.get("external_id")}
        again: list[Pair] = []
        for index, (record, payload) in enumerate(pending):
            answer = by_id.get(payload.external_id) or answers[index]
            errors = (answer or {}).get("errors") or {}
            if not errors:
                again.append((record, payload))
            elif _invoice_is_duplicate(errors):
                self.count("created" if ours else "already_present")
                if not ours:
                    self.add_missing_transactions(payload)
                self.remember_invoice(payload, None)
            else:
                field = next(iter(errors), None)
                self.reject(record, f"ChartMogul refused it: {_describe(errors)}", field=field, status=exc.status)
        return again

    def add_missing_transactions(self, payload: InvoicePayload) -> None:
        """On replay, post nested transactions the stored invoice lacks (matched by external_id)."""
        wanted = [tr for tr in payload.transactions if tr.get("external_id")]
        if not wanted:
            return
        held = self.owner.refs.find("invoice", payload.data_source_uuid, payload.external_id, fresh=True)
        if held is None:
            return
        have = {tr.get("external_id") for tr in held.get("transactions") or []}
        for transaction in wanted:
            if transaction["external_id"] in have:
                continue
            try:
                self.client.post(f"import/invoices/{held['uuid']}/transactions", transaction)
            except APIError as exc:
                if not is_already_exists(exc):
                    raise
