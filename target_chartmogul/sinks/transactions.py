"""Transactions (payments and refunds) of invoices: added once, kept in step, safe to replay by external_id.

What is the transactions' own (the lifecycle does the rest): ChartMogul holds a transaction on its
invoice, so its copy is read there, and a changed one it refuses to update replaces the invoice.

The invoice is found by uuid or by external id (cache, sync memory, a listing of the data
source when the memory holds no invoices, or one lookup). A payment whose invoice is not in
ChartMogul yet waits for it, and rides in that invoice's import when it is new. A
transaction ChartMogul already holds is compared with the record, not assumed equal
("already been taken" only proves the external id is used): a changed one (a failed
payment that later succeeded, a corrected amount) is updated, or its invoice replaced when
ChartMogul refuses the update. With `delete_missing`, rows deleted in the source delete it:
by the uuid the memory keeps, else found on its invoice in ChartMogul (a payment nested in its
invoice's import has no uuid of its own unless the import's answer gave it; a lost memory
knows nothing), and the uuid learnt is remembered. Only a transaction ChartMogul does not
hold (read, not assumed) counts `unchanged`.

With `invoice_changes: keep` an invoice imported before this run is never touched: a changed
transaction is not updated and a new one not added; each is warned and counted
`changed_not_applied` (a payment of an invoice this run imported still joins it). Amounts in
currency units are only parsed before the invoice is found; their decimals are checked in the
invoice's currency (a KWD payment of 1.234 is fine).
"""

from __future__ import annotations

import dataclasses
import typing as t

from target_chartmogul.api.errors import APIError
from target_chartmogul.api.resources import delete_if_present, get_or_none, is_missing
from target_chartmogul.errors import RecordRejected
from target_chartmogul.mapping.common import amount_column, data_source, optional_text, required_data_source
from target_chartmogul.mapping.transactions import map_transaction
from target_chartmogul.memory.ledger import payload_hash
from target_chartmogul.memory.references import Unresolved
from target_chartmogul.run.invoice_parts import Payment
from target_chartmogul.sinks.invoice_finder import InvoiceFinder, carried
from target_chartmogul.sinks.lifecycle import Changes, Item, Key, Rules
from target_chartmogul.sinks.replacements import Replacer, held_as_body
from target_chartmogul.values import compare
from target_chartmogul.values.numbers import parse

if t.TYPE_CHECKING:
    from target_chartmogul.api.client import Response
    from target_chartmogul.memory.ledger import Entry
    from target_chartmogul.sinks.lifecycle import ObjectSink

Record = dict[str, t.Any]
Obj = dict[str, t.Any]
FINAL_STATUSES = ("voided", "written_off")  # the statuses an invoice can be set to (others are ChartMogul's own)
AMOUNT_FIELDS = ("amount_in_cents", "transaction_fees_in_cents")


@dataclasses.dataclass
class TransactionRow:
    """A transaction row: mapped only once its invoice is found (its amounts may be in the invoice's currency)."""

    record: Record
    data_source_uuid: str
    external_id: str
    invoice_external_id: str | None


Row = Item[TransactionRow]


class TransactionRules(Rules[TransactionRow]):
    """Transactions, found by their invoice."""

    kind = "transaction"
    updated = "corrected"
    blind_updates = False  # a transaction is always compared with its invoice's copy
    ids_lost_creates = False  # a create answered only on a retry is ours: no read for its id

    def __init__(self, sink: ObjectSink) -> None:
        super().__init__(sink)
        self._currencies: dict[str, str] = {}  # invoice currencies read for `amount_unit: units`
        self.invoices = InvoiceFinder(self.context)

    def arrived(self, record: Record) -> None:
        """Offer a payment to its invoice's import (if the invoice turns out new)."""
        external_id = optional_text(record, "external_id") if not record.get("_sdc_deleted_at") else None
        invoice = optional_text(record, "invoice_external_id")
        ds = data_source(record, self.default_data_source)
        if external_id and invoice and ds:
            self.context.invoice_parts.offer_payment((ds, invoice), Payment(external_id, record, self.settings.amount_unit))

    # Mapping -----------------------------------------------------------------------------------
    def map(self, record: Record) -> TransactionRow:
        """The row and its key; from here it is written on its own (or waits, offered again), not in its invoice."""
        row = TransactionRow(record, data_source(record, self.default_data_source) or "", str(record.get("external_id")),
                             optional_text(record, "invoice_external_id"))
        if row.invoice_external_id:
            self.context.invoice_parts.withdraw_payment((row.data_source_uuid, row.invoice_external_id), row.external_id)
        return row

    def fingerprint(self, payload: TransactionRow) -> t.Any:
        """The row (its amounts as given) and how its amounts are read."""
        return {"record": {k: v for k, v in payload.record.items() if not k.startswith("_sdc_")},
                "unit": self.settings.amount_unit}

    def remember(self, item: Row, written: t.Any, uuid: str | None) -> None:
        """With its invoice (external id): a later delete finds it there if no uuid is known."""
        self.context.ledger.written(self.sink.object_name, *item.key, uuid=uuid,
                                    payload=payload_hash(written) if written is not None else None,
                                    stream=self.sink.stream_name, parent=item.payload.invoice_external_id)

    # Deciding ----------------------------------------------------------------------------------
    def ensure_listed(self, data_sources: t.Iterable[str]) -> None:
        """Transactions are listed with their invoices: where the memory cannot vouch for them, the data source's
        invoices are listed once and compared.
        """
        for ds in sorted(set(data_sources) - {""}):
            self.context.refs.holdings.ensure("invoice", ds)

    @property
    def insert_only(self) -> bool:
        """Its one mode is insert, yet a transaction ChartMogul holds differently is corrected."""
        return False

    def knows(self, entry: Entry | None) -> bool:
        """The memory knows it was written (the row changed since): compared with its invoice, never posted blind."""
        return entry is not None and entry.payload_hash is not None

    def settled(self, item: Row) -> tuple[str, str | None] | None:
        """It went in with its invoice's import."""
        parts = self.context.invoice_parts
        nested = parts.nested_as(*item.key)
        return (nested, parts.nested_uuid(*item.key)) if nested is not None else None

    def prepare(self, item: Row) -> None:
        """The checks before any call (RecordRejected naming the field), its invoice, and its body."""
        self.check(item.payload.record)
        uuid, external_id = self.invoice_uuid(item.payload.record)
        item.facts.update(invoice=uuid, invoice_external_id=external_id,
                          body=self.body_of(item.payload.record, uuid, external_id))

    def check(self, record: Record) -> None:
        """Amounts in currency units are only parsed here, as their decimals depend on the invoice's currency."""
        unit, currency_code = self.settings.amount_unit, optional_text(record, "currency")
        if unit != "units" or currency_code:
            map_transaction(record, unit=unit, currency_code=currency_code)
            return
        columns = [column for name in AMOUNT_FIELDS if (column := amount_column(record, name, unit)) is not None]
        map_transaction({k: v for k, v in record.items() if k not in columns}, unit=unit)
        for column in columns:
            parse(record[column], column, what="an amount")

    def invoice_uuid(self, record: Record) -> tuple[str, str | None]:
        """The invoice's uuid, and its external id when it was found by one.

        A payment whose invoice is not in ChartMogul yet is offered to that invoice's import
        (one call for both when the invoice is new), then waits like any unresolved reference.
        """
        given = optional_text(record, "invoice_uuid")
        if given:
            return given, None
        external_id = optional_text(record, "invoice_external_id")
        if not external_id:
            raise RecordRejected(
                "field 'invoice_uuid' or 'invoice_external_id' is required", field="invoice_external_id"
            )
        ds = required_data_source(record, self.default_data_source)
        try:
            invoice = self.context.refs.require("invoice", ds, external_id, field="invoice_external_id")
        except Unresolved:  # it waits for its invoice: offered again to that invoice's import
            payment = Payment(str(record.get("external_id")).strip(), record, self.settings.amount_unit)
            self.context.invoice_parts.offer_payment((ds, external_id), payment)
            raise
        return str(invoice["uuid"]), external_id

    def body_of(self, record: Record, invoice_uuid: str, invoice_external_id: str | None) -> Obj:
        """The API body; with `amount_unit: units` amounts are read in the invoice's currency."""
        currency_code = None
        if self.settings.amount_unit == "units":
            currency_code = optional_text(record, "currency") or self.invoice_currency(invoice_uuid, invoice_external_id)
        return map_transaction(record, unit=self.settings.amount_unit, currency_code=currency_code)

    def invoice_currency(self, invoice_uuid: str, invoice_external_id: str | None) -> str | None:
        """The currency of the invoice (from this run's listing when there is one, else one read per invoice)."""
        if invoice_uuid not in self._currencies:
            ds = self.default_data_source or ""
            listed = self.context.refs.holdings.get("invoice", ds, invoice_external_id) if invoice_external_id else None
            held = listed or get_or_none(self.client, "invoice", invoice_uuid) or {}
            self._currencies[invoice_uuid] = str(held.get("currency") or "") or ""
        return self._currencies[invoice_uuid] or None

    def copy(self, item: Row) -> Obj | None:
        """Transactions are never listed on their own."""
        return None

    def read(self, item: Row) -> Obj | None:
        """The transaction as its invoice holds it (read now); None when the invoice does not hold it (any more)."""
        return self.on_invoice(item, get_or_none(self.client, "invoice", item.facts["invoice"]) or {})

    def on_invoice(self, item: Row, invoice: Obj) -> Obj | None:
        """The transaction on this invoice, noted with it (a refused update replaces that invoice)."""
        held = carried(invoice, "transactions", item.facts["body"]["external_id"])
        if held is not None:
            item.facts["held_invoice"] = invoice
        return held

    def gone(self, item: Row) -> None:
        """Not on its invoice: it is posted again (the memory keeps it until then)."""

    def matches(self, item: Row) -> list[Obj]:
        """The listed copy of its invoice (a lost memory) holds it."""
        external_id = item.facts["invoice_external_id"]
        if external_id is None:
            return []
        listed = self.context.refs.holdings.get("invoice", item.payload.data_source_uuid, external_id)
        held = self.on_invoice(item, listed) if listed is not None and listed.get("uuid") == item.facts["invoice"] else None
        return [held] if held is not None else []

    def changes(self, item: Row, held: Obj) -> Changes:
        """Fields ChartMogul holds differently (amount null means the full amount)."""
        body = item.facts["body"]
        return {name: (held.get(name), body.get(name)) for name in compare.transaction_changes(body, held)}

    def kept(self, item: Row, changes: Changes | None) -> bool:
        """`invoice_changes: keep`: an invoice imported before this run keeps the transactions it has, as they are."""
        if self.settings.invoice_changes != "keep":
            return False
        external_id, invoice = item.facts["body"]["external_id"], item.facts["invoice_external_id"]
        if changes is not None:
            self.logger.warning("Transaction %s changed in the source (%s); invoice_changes is 'keep', so ChartMogul "
                                "keeps it as first written", external_id, ", ".join(changes))
            return True
        if invoice is not None and self.context.invoice_parts.imported_now((item.payload.data_source_uuid, invoice)):
            return False  # its invoice was imported in this run: the payment joins it
        self.logger.warning("Transaction %s is new in the source; invoice_changes is 'keep', so invoice %s keeps "
                            "the transactions it was imported with", external_id, invoice or item.facts["invoice"])
        return True

    def look_up(self, item: Row) -> Obj | None:
        """The external id is used: its invoice, read now, holds it as sent, or another invoice uses it (a reject)."""
        held = self.on_invoice(item, get_or_none(self.client, "invoice", item.facts["invoice"]) or {})
        if held is None:
            named = item.payload.invoice_external_id or item.facts["invoice"]
            msg = (f"transaction external_id {item.facts['body']['external_id']!r} is already used in ChartMogul by "
                   f"another invoice than {named}")
            raise RecordRejected(msg, field="external_id", status=422)
        return held

    # Writing -----------------------------------------------------------------------------------
    def create(self, item: Row) -> Response:
        """POST it to its invoice."""
        return self.client.post(self.resource.created_at(item.facts["invoice"]), item.facts["body"])

    def created(self, item: Row, response: Response) -> None:
        """Nothing to keep: its invoice is not listed anew."""

    def refused(self, item: Row, exc: APIError) -> t.NoReturn:
        """Its invoice is gone (404): the invoice is forgotten and the row rejected."""
        if not is_missing(exc):
            raise exc
        external_id = item.facts["invoice_external_id"]
        if external_id is not None:
            self.context.refs.forget("invoice", item.payload.data_source_uuid, external_id, gone=True)
        field = "invoice_external_id" if external_id is not None else "invoice_uuid"
        raise RecordRejected(f"invoice {item.facts['invoice']} does not exist in ChartMogul", field=field, status=404) from None

    def update(self, item: Row, held: Obj, changes: Changes) -> Obj | None:
        """PATCH what differs; when ChartMogul refuses, the invoice is imported again with the record's transaction."""
        body = item.facts["body"]
        try:
            self.client.patch(self.resource.one(held["uuid"]), {name: new for name, (_, new) in changes.items()})
        except APIError as exc:
            if exc.status in (401, 403):
                raise
            self.logger.info("ChartMogul refused to update transaction %s (%s): replacing its invoice",
                             body["external_id"], exc.message)
            self.replace_with(item.facts["held_invoice"], body)
        return None

    def replace_with(self, invoice: Obj, body: Obj) -> None:
        """Import the invoice again with this transaction as the record has it (the others kept)."""
        ds = self.default_data_source or ""
        new_body = held_as_body(invoice, ds)
        others = [tx for tx in new_body.get("transactions") or [] if tx.get("external_id") != body["external_id"]]
        new_body["transactions"] = [*others, body]
        status = invoice.get("status") if invoice.get("status") in FINAL_STATUSES else None  # kept when shown
        answer = Replacer(self.context).replace(ds, str(invoice["customer_uuid"]), new_body, invoice, status)
        self.context.refs.remember("invoice", ds, str(invoice["external_id"]), answer)

    # Deleting ----------------------------------------------------------------------------------
    def to_delete(self, key: Key, record: Record, entry: Entry | None) -> str | None:
        """The uuid its invoice in ChartMogul shows (the one the memory or the row names, else found in a listing);
        remembered before the delete.
        """
        data_source_uuid, external_id = key
        named = record.get("invoice_external_id")
        named = str(named).strip() if isinstance(named, str) and named.strip() else None
        invoice = self.invoices.holding(data_source_uuid, "transactions", external_id,
                                        (entry.parent if entry is not None else None) or named)
        held = carried(invoice, "transactions", external_id) if invoice is not None else None
        if invoice is None or held is None or not held.get("uuid"):
            return None
        self.context.ledger.written(self.sink.object_name, data_source_uuid, external_id, uuid=str(held["uuid"]),
                                    payload=entry.payload_hash if entry is not None else None,
                                    stream=str(entry.stream) if entry is not None and entry.stream else self.sink.stream_name,
                                    record=entry.record_hash if entry is not None else None,
                                    parent=str(invoice.get("external_id")))
        return str(held["uuid"])

    def not_to_delete(self, key: Key, entry: Entry | None) -> bool:
        """No invoice in ChartMogul holds it."""
        self.context.ledger.deleted(self.sink.object_name, *key)
        self.logger.info("Transaction %s: deleted in the source, and no invoice in ChartMogul holds it", key[1])
        return False

    def delete(self, key: Key, uuid: str) -> None:
        """DELETE it (gone already is fine)."""
        delete_if_present(self.client, self.kind, uuid)
