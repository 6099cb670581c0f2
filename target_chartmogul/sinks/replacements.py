"""Replacing an imported invoice: delete it and import the corrected one, without losing its payments.

ChartMogul's recorded API changes an imported invoice only by deleting it and importing it
again (invoice and line-item PATCH exist only in the client libraries' mocks), and deleting
an invoice deletes its transactions. So the new import carries every transaction the old
invoice held that the record does not (refunds from another stream stay attached), and the
sync memory marks the replacement, with the new content and the status (voided, written_off)
to set after the import, before the delete: a run that dies between the delete and the
import, or before the status was set, leaves what the next run needs to finish it, even if
the record never comes again (`repair`). The mark is cleared only once the status is set.

A fresh import has no status, so a replacement sets the invoice's status again: the one the
record asks for, else the one ChartMogul shows, else the one the sync memory says was last
applied (no recorded answer shows status, and a correction arriving as lines only carries
none); the memory then notes it.
"""

from __future__ import annotations

import logging
import typing as t

from target_chartmogul.api.errors import APIError
from target_chartmogul.api.resources import delete_if_present
from target_chartmogul.values import compare

if t.TYPE_CHECKING:
    from target_chartmogul.run.context import RunContext

Obj = dict[str, t.Any]
LOGGER = logging.getLogger("target-chartmogul")
# Keys of ChartMogul's answers that are its own (ids it assigns, derived values), never sent back.
FINAL_STATUSES = ("voided", "written_off")
ANSWER_ONLY = frozenset({"uuid", "subscription_uuid", "balance_transfer", "errors", "customer_uuid", "status",
                         "disabled", "disabled_at", "disabled_by", "user_created", "edit_history_summary"})


def _sent_form(obj: t.Mapping[str, t.Any]) -> Obj:
    """An answered object as it would be sent: no ids of ChartMogul's own, no unset values."""
    return {k: v for k, v in obj.items() if k not in ANSWER_ONLY and v is not None and v != ""}


def held_as_body(held: t.Mapping[str, t.Any], data_source_uuid: str) -> Obj:
    """An invoice as ChartMogul holds it, in the shape of an import body (to correct it, or keep its parts)."""
    body = {k: v for k, v in _sent_form(held).items() if k not in ("line_items", "transactions")}
    body["data_source_uuid"] = data_source_uuid
    body["line_items"] = [_sent_form(item) for item in held.get("line_items") or []]
    transactions = [_sent_form(tx) for tx in held.get("transactions") or []]
    if transactions:
        body["transactions"] = transactions
    return body


def keeping_transactions(body: Obj, held: t.Mapping[str, t.Any]) -> Obj:
    """The new body plus every transaction the held invoice has that the body lacks (re-added with it)."""
    held_transactions = [_sent_form(tx) for tx in held.get("transactions") or []]
    extra, _ = compare.missing_transactions(held_transactions, body.get("transactions") or [])
    if not extra:
        return body
    return {**body, "transactions": [*(body.get("transactions") or []), *extra]}


class Replacer:
    """Crash-safe replacement of invoices, and the repair of replacements a dead run left behind."""

    def __init__(self, context: RunContext) -> None:
        self.context = context

    def replace(self, data_source_uuid: str, customer_uuid: str, body: Obj, held: t.Mapping[str, t.Any],
                status: str | None = None) -> Obj:
        """Delete `held`, import `body` (with the transactions only `held` has) and set its status: `status`, else
        the one the invoice had (`kept_status`).

        Returns the new invoice (carrying `status` once it is set: the caller need not set it again).
        """
        full = keeping_transactions(body, held)
        external_id = str(body["external_id"])
        status = status or self.kept_status(data_source_uuid, external_id, held)
        self.context.ledger.mark_replacement(data_source_uuid, external_id, customer_uuid, full, status)
        self._delete(str(held["uuid"]))
        answer = self._import(customer_uuid, full)
        self._set_status(data_source_uuid, external_id, status, answer)
        self.context.ledger.clear_replacement(data_source_uuid, external_id)
        self.context.ledger.set_status("invoices", data_source_uuid, external_id, status)
        return answer

    def kept_status(self, data_source_uuid: str, external_id: str, held: t.Mapping[str, t.Any]) -> str | None:
        """The status the replaced invoice has: shown by ChartMogul, else the one the sync memory says was applied."""
        if held.get("status") in FINAL_STATUSES:
            return str(held["status"])
        entry = self.context.ledger.get("invoices", data_source_uuid, external_id)
        return entry.status if entry is not None else None

    def _set_status(self, data_source_uuid: str, external_id: str, status: str | None, answer: Obj) -> None:
        """PUT the status the replaced invoice must have (a fresh import has none); noted on the answer."""
        if status is None:
            return
        self.context.client.put(f"data_sources/{data_source_uuid}/invoices/{external_id}/status", {"status": status})
        answer["status"] = status

    def _delete(self, invoice_uuid: str) -> None:
        """Delete the old invoice (already gone: the replacement goes on)."""
        delete_if_present(self.context.client, "invoice", invoice_uuid)

    def _import(self, customer_uuid: str, body: Obj) -> Obj:
        response = self.context.client.post(f"import/customers/{customer_uuid}/invoices", {"invoices": [body]})
        answers = (response.body or {}).get("invoices") or [{}]
        return t.cast("Obj", answers[0])

    def repair(self) -> int:
        """Finish every replacement a dead run left between its delete and its import, or before it set the
        invoice's status; returns how many needed an import.
        """
        repaired = 0
        for ds, external_id, customer_uuid, body, status in self.context.ledger.pending_replacements():
            held = self.context.refs.held("invoice", ds, external_id, fresh=True)
            if held is None or not _landed(body, held):
                if held is not None:
                    self._delete(str(held["uuid"]))
                held = self._import(customer_uuid, body)
                self.context.refs.remember("invoice", ds, external_id, held)
                self.context.ledger.written("invoices", ds, external_id, uuid=held.get("uuid"), payload=None,
                                            stream="(repair)")
                LOGGER.info("Finished the replacement of invoice %s that an earlier run left half done", external_id)
                repaired += 1
            if self._repair_status(ds, external_id, status, held):
                self.context.ledger.set_status("invoices", ds, external_id, status)
            self.context.ledger.clear_replacement(ds, external_id)
        return repaired

    def _repair_status(self, data_source_uuid: str, external_id: str, status: str | None, held: Obj) -> bool:
        """Set the status the replacement was to set, unless ChartMogul shows it already; False when ChartMogul
        refused it (the memory then does not claim it).
        """
        if status is None or held.get("status") == status:
            return True
        try:
            self._set_status(data_source_uuid, external_id, status, held)
        except APIError as exc:
            if exc.status != 422:
                raise
            # the dead run may have set it just before it died (no recorded answer shows invoice status)
            LOGGER.warning("Invoice %s: the replacement an earlier run left was to set status %s, and ChartMogul "
                           "refused it (%s); it may have been set before that run died", external_id, status,
                           exc.message)
            return False
        return True


def _landed(body: Obj, held: t.Mapping[str, t.Any]) -> bool:
    """Whether ChartMogul holds the replacement's content with all its transactions (the import landed)."""
    if compare.invoice_changes(body, held):
        return False
    missing, _ = compare.missing_transactions(body.get("transactions") or [], held.get("transactions") or [])
    return not missing
