"""Replacing an imported invoice: delete it and import the corrected one, without losing its payments.

ChartMogul's recorded API changes an imported invoice only by deleting it and importing it
again (invoice and line-item PATCH exist only in the client libraries' mocks), and deleting
an invoice deletes its transactions. So the new import carries every transaction the old
invoice held that the record does not (refunds from another stream stay attached), and the
sync memory marks the replacement, with the new content, before the delete: a run that
dies between the delete and the import leaves what the next run needs to finish it, even
if the record never comes again (`repair`).
"""

from __future__ import annotations

import logging
import typing as t

from target_chartmogul import compare
from target_chartmogul.errors import APIError

if t.TYPE_CHECKING:
    from target_chartmogul.context import RunContext

Obj = dict[str, t.Any]
LOGGER = logging.getLogger("target-chartmogul")
# Keys of ChartMogul's answers that are its own (ids it assigns, derived values), never sent back.
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

    def replace(self, data_source_uuid: str, customer_uuid: str, body: Obj, held: t.Mapping[str, t.Any]) -> Obj:
        """Delete `held` and import `body` (with the transactions only `held` has); returns the new invoice."""
        full = keeping_transactions(body, held)
        external_id = str(body["external_id"])
        self.context.ledger.mark_replacement(data_source_uuid, external_id, customer_uuid, full)
        self._delete(str(held["uuid"]))
        answer = self._import(customer_uuid, full)
        self.context.ledger.clear_replacement(data_source_uuid, external_id)
        return answer

    def _delete(self, invoice_uuid: str) -> None:
        try:
            self.context.client.delete(f"invoices/{invoice_uuid}")
        except APIError as exc:
            if exc.status != 404:  # already gone: the replacement goes on
                raise

    def _import(self, customer_uuid: str, body: Obj) -> Obj:
        response = self.context.client.post(f"import/customers/{customer_uuid}/invoices", {"invoices": [body]})
        answers = (response.body or {}).get("invoices") or [{}]
        return t.cast("Obj", answers[0])

    def repair(self) -> int:
        """Finish every replacement a dead run left between its delete and its import; returns how many."""
        repaired = 0
        for ds, external_id, customer_uuid, body in self.context.ledger.pending_replacements():
            held = self.context.refs.held("invoice", ds, external_id, fresh=True)
            if held is not None and not compare.invoice_changes(body, held):
                missing, _ = compare.missing_transactions(body.get("transactions") or [], held.get("transactions") or [])
                if not missing:  # the import landed; only the mark was left
                    self.context.ledger.clear_replacement(ds, external_id)
                    continue
            if held is not None:
                self._delete(str(held["uuid"]))
            answer = self._import(customer_uuid, body)
            self.context.ledger.clear_replacement(ds, external_id)
            self.context.refs.remember("invoice", ds, external_id, answer)
            self.context.ledger.written("invoices", ds, external_id, uuid=answer.get("uuid"), payload=None,
                                        stream="(repair)")
            LOGGER.info("Finished the replacement of invoice %s that an earlier run left half done", external_id)
            repaired += 1
        return repaired
