"""An invoice's status (voided, written_off): set through ChartMogul's status endpoint once, and the outcome counted.

ChartMogul refuses a transition to the status an invoice has already (422), and most of its
answers do not show invoice status: the sync memory keeps the status last applied, and a refusal
the memory cannot explain is checked by reading the invoice again.
"""

from __future__ import annotations

import typing as t

from target_chartmogul.api.errors import APIError
from target_chartmogul.api.resources import get_or_none
from target_chartmogul.mapping.invoices import STATUSES, InvoicePayload

if t.TYPE_CHECKING:
    import logging

    from target_chartmogul.memory.ledger import Entry
    from target_chartmogul.run.context import RunContext

Obj = dict[str, t.Any]
# One outcome per record; when several happened, the strongest is counted.
FINAL_STATUSES = frozenset(STATUSES.values())  # voided, written_off
STRENGTH = ("unchanged", "status_unconfirmed", "updated", "status_changed", "corrected", "created")


def stronger(a: str, b: str) -> str:
    """The outcome that says more of what was done."""
    return a if STRENGTH.index(a) >= STRENGTH.index(b) else b


def status_now(held: t.Mapping[str, t.Any], entry: Entry | None) -> str | None:
    """The status (voided, written_off) the invoice has after it was brought in line: what ChartMogul shows or
    was just set on it, else what the memory knew (`entry`; None for an invoice just replaced).
    """
    if "status" in held:
        return held["status"] if held["status"] in FINAL_STATUSES else None
    return entry.status if entry is not None else None


class InvoiceStatus:
    """Applies a record's status to the invoice ChartMogul holds, for one sink."""

    def __init__(self, context: RunContext, logger: logging.Logger) -> None:
        self.context = context
        self.logger = logger

    def apply(self, payload: InvoicePayload, held: Obj, *, replaced: bool = False,
                     remembered: str | None = None) -> str | None:
        """PUT the record's status (voided, written_off) unless ChartMogul shows it already, or (`remembered`)
        the sync memory says this target applied it: sent again, ChartMogul would refuse it (422).

        `held` is what ChartMogul holds (`replaced`: a fresh import or replacement, which carries
        `status` only once the replacer set it; the memory's status was the old invoice's). Returns
        "status_changed" (noted on `held`), None when nothing was needed, or what `refused`
        makes of a refusal; a refusal it cannot explain is raised (a reject with ChartMogul's message).
        """
        if payload.status is None or held.get("status") == payload.status:
            return None
        if not replaced and remembered == payload.status:
            return None
        path = f"data_sources/{payload.data_source_uuid}/invoices/{payload.external_id}/status"
        try:
            self.context.client.put(path, {"status": payload.status})
        except APIError as exc:
            if replaced or exc.status != 422 or "status" in held or self.wrote_before(payload):
                raise  # ChartMogul showed another status, or this target set it: the refusal stands
            return self.refused(payload, held, exc)
        held["status"] = payload.status
        return "status_changed"

    def refused(self, payload: InvoicePayload, held: Obj, exc: APIError) -> str | None:
        """A refused transition while the memory does not know what was written (it was lost): re-read the invoice.

        It shows the asked status: nothing was needed (None). It shows another: ChartMogul's
        refusal stands (raised). It shows none (no recorded invoice answer carries `status`):
        whether the invoice has the asked status cannot be checked, so it is neither changed
        nor unchanged: warned, with ChartMogul's message, and counted `status_unconfirmed`.
        """
        reread = get_or_none(self.context.client, "invoice", held["uuid"])
        if reread is None or "status" in reread:
            if reread is not None and reread.get("status") == payload.status:
                held["status"] = payload.status
                return None
            raise exc
        self.logger.warning(
            "Invoice %s: ChartMogul refused to set status %s (%s). Its answers do not show invoice status and the "
            "sync memory does not know what was set before, so whether the invoice is %s already cannot be checked "
            "(counted status_unconfirmed; check it in ChartMogul)",
            payload.external_id, payload.status, exc.message, payload.status,
        )
        return "status_unconfirmed"

    def wrote_before(self, payload: InvoicePayload) -> bool:
        """Whether the sync memory knows what this target last wrote of the invoice (its status included)."""
        entry = self.context.ledger.get("invoices", payload.data_source_uuid, payload.external_id)
        return entry is not None and entry.payload_hash is not None
