"""Where a line item or a transaction is: the invoice ChartMogul holds that carries it.

Asked by the line_items and transactions sinks to delete or move a row whose invoice the sync
memory cannot name (nested payments have no uuid of their own; a lost memory knows nothing).
"""

from __future__ import annotations

import threading
import typing as t

from target_chartmogul.api.resources import get_or_none, listing

if t.TYPE_CHECKING:
    from target_chartmogul.run.context import RunContext

Obj = dict[str, t.Any]


class InvoiceFinder:
    """Finds the invoice ChartMogul holds that carries a line item or a transaction, by their external ids.

    A row deleted in the source must leave ChartMogul even when the sync memory cannot say where it
    is (payments nested in their invoice's import have no uuid of their own; a lost memory knows
    nothing): the invoice the memory or the row names is read, else every invoice of the data source
    is listed, once per run and only when needed.
    """

    def __init__(self, context: RunContext) -> None:
        self.context = context
        self._lock = threading.Lock()
        self._index: dict[str, dict[tuple[str, str], str]] = {}  # data source -> (part, external id) -> invoice

    def holding(self, data_source_uuid: str, part: str, external_id: str, invoice: str | None = None) -> Obj | None:
        """The invoice (as ChartMogul holds it now) whose `part` ("line_items" or "transactions") has this
        external id; `invoice` is where the memory or the row says it is. None: no invoice holds it.
        """
        if invoice is not None:
            held = self._read(data_source_uuid, invoice)
            if held is not None and carried(held, part, external_id) is not None:
                return held
        listed = self._listed(data_source_uuid).get((part, external_id))
        if listed is None or listed == invoice:
            return None
        held = self._read(data_source_uuid, listed)
        return held if held is not None and carried(held, part, external_id) is not None else None

    def _listed(self, data_source_uuid: str) -> dict[tuple[str, str], str]:
        """(part, external id) -> invoice external id, of every invoice of the data source (listed once)."""
        with self._lock:
            if data_source_uuid not in self._index:
                index: dict[tuple[str, str], str] = {}
                for listed in listing(self.context.client, "invoice", {"data_source_uuid": data_source_uuid}):
                    for name in ("line_items", "transactions"):
                        for item in listed.get(name) or []:
                            if isinstance(item, dict) and item.get("external_id"):
                                index[(name, str(item["external_id"]))] = str(listed.get("external_id"))
                self._index[data_source_uuid] = index
            return self._index[data_source_uuid]

    def _read(self, data_source_uuid: str, invoice: str) -> Obj | None:
        """One invoice, read now (by the uuid the memory keeps, else by external id)."""
        entry = self.context.ledger.get("invoices", data_source_uuid, invoice)
        held = get_or_none(self.context.client, "invoice", entry.uuid) if entry is not None and entry.uuid else None
        return held if held is not None else self.context.refs.held("invoice", data_source_uuid, invoice, fresh=True)


def carried(invoice: t.Mapping[str, t.Any], part: str, external_id: str) -> Obj | None:
    """The line item or transaction (`part`) of an invoice with this external id, or None."""
    for item in invoice.get(part) or []:
        if isinstance(item, dict) and item.get("external_id") == external_id:
            return item
    return None
