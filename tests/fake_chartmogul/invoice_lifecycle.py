"""What happens to an imported invoice: its status, and changes to its transactions.

Known only from the client libraries' hand-written mocks (no recording; every library
sends ``PUT`` to the status path, ruby since its #194 replaced a ``PATCH``):
``PUT /data_sources/{ds}/invoices/{external_id}/status`` answers 200 — in the mocks'
three shapes: ``{"message": "Invoice updated", "invoice": {...}}`` (chartmogul-python
``test/api/test_invoice.py``), ``{"external_id", "status"}`` (chartmogul-node
``test/chartmogul/invoice.js``), ``{}`` (a ruby unit-spec stub) — and a refused
transition 422 ``{"message": "Status transition is not allowed"}`` (chartmogul-node).
``PATCH /transactions/{uuid}`` answers the transaction with ``disabled`` (chartmogul-python
``test/api/test_transaction_external_id.py``); the fake keeps ``transaction_fees_in_cents``,
which every recorded transaction answer carries. Where the mocks are silent or disagree,
each plausible behaviour is a switch on :class:`InvoiceLifecycle` (documented in the package
docstring); ``fake.store.invoice_status_in_answers`` decides whether invoice answers carry
``status`` at all. These are set as ``fake.lifecycle.<switch>``:

``status_repeat``: ``"refused"`` (default) | ``"ok"``
    Setting the status an invoice already has: a refused transition, or a no-op.
``status_answer``: ``"message"`` (default, the python mock) | ``"brief"`` (the node mock)
    The shape of a status change's 200 answer. The python mock is the fuller one and came
    with the endpoint's addition to that client (its PR #134); nothing recorded decides.
``transaction_updates``: ``"patch"`` (default, as mocked) | ``"refused"``
    Whether ``PATCH /transactions/{uuid}`` changes a transaction, or answers 405.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from .store import ApiError, format_timestamp, not_found, parse_timestamp
from .views import transaction_view

if TYPE_CHECKING:
    from .store import Store

JSON = dict[str, Any]
FINAL_STATUSES = ("voided", "written_off")
STATUS_REPEATS = ("refused", "ok")
STATUS_ANSWERS = ("message", "brief")
TRANSACTION_UPDATES = ("patch", "refused")
TRANSITION_REFUSED: JSON = {"message": "Status transition is not allowed"}


class InvoiceLifecycle:
    """Status changes and transaction updates on a store's invoices."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.status_repeat = "refused"
        self.status_answer = "message"
        self.transaction_updates = "patch"

    def set_status(self, data_source_uuid: str, external_id: str, body: JSON) -> JSON:
        """PUT .../invoices/{external_id}/status: voided or written_off, once."""
        status = body.get("status")
        with self.store.lock:
            invoice = self.store.find_invoice_record(data_source_uuid, external_id)
            if invoice is None:
                raise not_found("Invoice")
            if status not in FINAL_STATUSES:
                raise ApiError(422, TRANSITION_REFUSED)
            current = invoice.get("status")
            if current in FINAL_STATUSES and (current != status or self.status_repeat == "refused"):
                raise ApiError(422, TRANSITION_REFUSED)
            invoice["status"] = status
            answer = self.store.invoice_answers([invoice], "get")[0]
        if self.status_answer == "brief":
            return {"external_id": external_id, "status": status}
        return {"message": "Invoice updated", "invoice": {**answer, "status": status}}  # the mock's invoice shows it

    def update_transaction(self, tr_uuid: str, body: JSON) -> JSON:
        """PATCH /transactions/{uuid}: change result, amount, date or fees (as mocked)."""
        if self.transaction_updates == "refused":
            raise ApiError(405, {"code": 405, "message": "Method not allowed", "param": None})
        with self.store.lock:
            tx = self.store.transactions.get(tr_uuid)
            if tx is None:
                raise not_found("Transaction")
            errors: dict[str, str] = {}
            for name in ("type", "result"):
                if name in body:
                    tx[name] = body[name]
            if "date" in body:
                moment = parse_timestamp(body["date"])
                if moment is None:
                    errors["date"] = "is invalid"
                else:
                    tx["date"] = format_timestamp(moment)
            for name in ("amount_in_cents", "transaction_fees_in_cents", "transaction_fees_currency"):
                if name in body:
                    tx[name] = body[name]
            if errors:
                raise ApiError(422, {"errors": errors})
            return updated_transaction_answer(tx)


def updated_transaction_answer(tx: JSON) -> JSON:
    """PATCH /transactions/{uuid}'s answer: the standalone transaction (recorded keys) plus ``disabled``.

    ``disabled`` is what the python mock adds; no transaction is ever disabled here (the
    ``disabled_state`` endpoints are not served).
    """
    return {**transaction_view(copy.deepcopy(tx), standalone=True), "disabled": False}
