"""Transactions (payments and refunds) of invoices: added once, kept in step, safe to replay by external_id.

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

import typing as t

from target_chartmogul.api.errors import APIError, is_already_exists
from target_chartmogul.errors import RecordRejected
from target_chartmogul.mapping.common import amount_column, data_source, optional_text, required_data_source
from target_chartmogul.mapping.transactions import map_transaction
from target_chartmogul.memory.ledger import Entry, payload_hash
from target_chartmogul.memory.references import Unresolved
from target_chartmogul.run.invoice_parts import Payment
from target_chartmogul.sinks.deletions import DeletesMissing
from target_chartmogul.sinks.invoice_writing import InvoiceFinder, carried
from target_chartmogul.sinks.replacements import Replacer, held_as_body
from target_chartmogul.values import compare
from target_chartmogul.values.numbers import parse

Record = dict[str, t.Any]
Obj = dict[str, t.Any]
FINAL_STATUSES = ("voided", "written_off")  # the statuses an invoice can be set to (others are ChartMogul's own)
AMOUNT_FIELDS = ("amount_in_cents", "transaction_fees_in_cents")


class TransactionsSink(DeletesMissing):
    """Writes a stream into ChartMogul transactions, found by their invoice."""

    object_name = "transactions"

    def setup(self) -> None:
        """Invoice currencies read for `amount_unit: units` are kept for the run."""
        super().setup()
        self._currencies: dict[str, str] = {}
        self.invoices = InvoiceFinder(self.context)
        self.deleted_rows: dict[tuple[str, str], str | None] = {}  # the invoice a deleted row names

    def process_record(self, record: Record, context: dict[str, t.Any]) -> None:
        """Stage the record, and offer a payment to its invoice's import (if the invoice turns out new)."""
        super().process_record(record, context)
        external_id = optional_text(record, "external_id") if not record.get("_sdc_deleted_at") else None
        invoice = optional_text(record, "invoice_external_id")
        ds = data_source(record, self.config.get("data_source_uuid"))
        if external_id and invoice and ds:
            self.context.invoice_parts.offer_payment((ds, invoice), Payment(external_id, record, self.settings.amount_unit))

    def write_records(self, records: list[Record]) -> None:
        """Write concurrently; references are resolved per record."""
        upserts = self.split_deletions(records)
        for ds in sorted({self.memory_key(r)[0] for r in upserts} - {""}):  # memory cannot vouch: compare with a listing
            self.context.refs.holdings.ensure("invoice", ds)
        self.known = self.memory_lookup(self.memory_key(r) for r in upserts)
        self.run_each(upserts, self.write_remembered, records_of=lambda record: [record])

    def memory_key(self, record: Record) -> tuple[str, str]:
        """(data source, external id) under which the memory keeps this transaction."""
        ds = data_source(record, self.config.get("data_source_uuid")) or ""
        return (ds, str(record.get("external_id")))

    def fingerprint(self, record: Record) -> dict[str, t.Any]:
        """What the memory hashes: the row (its amounts as given) and how its amounts are read."""
        return {"record": {k: v for k, v in record.items() if not k.startswith("_sdc_")}, "unit": self.settings.amount_unit}

    def write_remembered(self, record: Record) -> str:
        """Skip a transaction the memory says is written; else write or compare, and remember it."""
        fingerprint = self.fingerprint(record)
        key = self.memory_key(record)
        invoice = optional_text(record, "invoice_external_id")
        if invoice:  # from here it is written on its own (or waits, offered again)
            self.context.invoice_parts.withdraw_payment((key[0], invoice), key[1])
        if self.is_current(self.known.get(key), fingerprint):
            return "unchanged"
        nested = self.context.invoice_parts.nested_as(*key)
        if nested is not None:  # it went in with its invoice's import
            self.remember_transaction(key, self.context.invoice_parts.nested_uuid(*key), fingerprint, invoice)
            return nested
        self.check(record)
        entry = self.known.get(key)
        outcome, uuid = self.write_one(record, written=entry is not None and entry.payload_hash is not None)
        self.remember_transaction(key, uuid or (entry.uuid if entry else None),
                                  fingerprint if outcome != "changed_not_applied" else None, invoice)
        return outcome

    def check(self, record: Record) -> None:
        """The checks before any call (RecordRejected naming the field); amounts in currency units are only parsed
        here, as their decimals depend on the invoice's currency (`body_of` converts them).
        """
        unit, currency_code = self.settings.amount_unit, optional_text(record, "currency")
        if unit != "units" or currency_code:
            map_transaction(record, unit=unit, currency_code=currency_code)
            return
        columns = [column for name in AMOUNT_FIELDS if (column := amount_column(record, name, unit)) is not None]
        map_transaction({k: v for k, v in record.items() if k not in columns}, unit=unit)
        for column in columns:
            parse(record[column], column, what="an amount")

    def remember_transaction(self, key: tuple[str, str], uuid: str | None, payload: t.Any, invoice: str | None) -> None:
        """Note a written transaction with its invoice (external id): a later delete finds it there if no uuid is known."""
        self.context.ledger.written(self.object_name, *key, uuid=uuid,
                                    payload=payload_hash(payload) if payload is not None else None,
                                    stream=self.stream_name, parent=invoice)

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
        ds = required_data_source(record, self.config.get("data_source_uuid"))
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
            ds = self.config.get("data_source_uuid") or ""
            listed = self.context.refs.holdings.get("invoice", ds, invoice_external_id) if invoice_external_id else None
            held = listed or self.client.get(f"invoices/{invoice_uuid}").body or {}
            self._currencies[invoice_uuid] = str(held.get("currency") or "") or ""
        return self._currencies[invoice_uuid] or None

    def write_one(self, record: Record, *, written: bool = False) -> tuple[str, str | None]:
        """POST the transaction unless the invoice is known to hold it; returns (outcome, uuid).

        `written`: the memory knows it was written (the row changed since): compared, not posted again.
        """
        uuid, invoice_external_id = self.invoice_uuid(record)
        body = self.body_of(record, uuid, invoice_external_id)
        if written:  # compare with what the invoice holds; post only if it is gone from there
            invoice = self._invoice_or_empty(uuid)
            held = self._held_transaction(invoice, body["external_id"])
            if held is not None:
                return self._compared(body, held, invoice), held.get("uuid")
        ds = data_source(record, self.config.get("data_source_uuid")) or ""
        if invoice_external_id is not None:
            listed = self.context.refs.holdings.get("invoice", ds, invoice_external_id)
            if listed is not None and listed.get("uuid") == uuid:
                held = self._held_transaction(listed, body["external_id"])
                if held is not None:
                    return self._compared(body, held, listed), held.get("uuid")
        if self.settings.invoice_changes == "keep" and (
                invoice_external_id is None or not self.context.invoice_parts.imported_now((ds, invoice_external_id))):
            self.logger.warning("Transaction %s is new in the source; invoice_changes is 'keep', so invoice %s keeps "
                                "the transactions it was imported with", body["external_id"],
                                invoice_external_id or uuid)
            return "changed_not_applied", None
        try:
            response = self.client.post(f"import/invoices/{uuid}/transactions", body)
        except APIError as exc:
            if is_already_exists(exc):
                if exc.attempts > 1:  # our own earlier attempt wrote it; its answer was lost
                    return "created", None
                return self._already_taken(record, body, uuid)
            if exc.status == 404:
                if invoice_external_id is not None:
                    self.context.refs.forget("invoice", ds, invoice_external_id, gone=True)
                field = "invoice_external_id" if invoice_external_id is not None else "invoice_uuid"
                raise RecordRejected(f"invoice {uuid} does not exist in ChartMogul", field=field, status=404) from None
            raise
        return "created", (response.body or {}).get("uuid")

    @staticmethod
    def _held_transaction(invoice: t.Mapping[str, t.Any], external_id: str) -> dict[str, t.Any] | None:
        for held in invoice.get("transactions") or []:
            if isinstance(held, dict) and held.get("external_id") == external_id:
                return held
        return None

    def _compared(self, body: Obj, held: t.Mapping[str, t.Any], invoice: Obj) -> str:
        """'unchanged' when ChartMogul holds the transaction as the record says; else update (or report) it."""
        changes = compare.transaction_changes(body, held)
        if not changes:
            return "unchanged"
        if self.settings.invoice_changes == "keep":
            self.logger.warning(
                "Transaction %s changed in the source (%s); invoice_changes is 'keep', so ChartMogul keeps it as "
                "first written", body["external_id"], ", ".join(changes),
            )
            return "changed_not_applied"
        fields = {name: body.get(name) for name in changes}
        try:
            self.client.patch(f"transactions/{held['uuid']}", fields)
        except APIError as exc:
            if exc.status in (401, 403):
                raise
            self.logger.info("ChartMogul refused to update transaction %s (%s): replacing its invoice",
                             body["external_id"], exc.message)
            self._replace_with(invoice, body)
        return "corrected"

    def _replace_with(self, invoice: Obj, body: Obj) -> None:
        """Import the invoice again with this transaction as the record has it (the others kept)."""
        ds = self.config.get("data_source_uuid") or ""
        new_body = held_as_body(invoice, ds)
        others = [tx for tx in new_body.get("transactions") or [] if tx.get("external_id") != body["external_id"]]
        new_body["transactions"] = [*others, body]
        status = invoice.get("status") if invoice.get("status") in FINAL_STATUSES else None  # kept when shown
        answer = Replacer(self.context).replace(ds, str(invoice["customer_uuid"]), new_body, invoice, status)
        self.context.refs.remember("invoice", ds, str(invoice["external_id"]), answer)

    def _already_taken(self, record: Record, body: Obj, invoice_uuid: str) -> tuple[str, str | None]:
        """The external id is used: read the invoice to see whether it holds this transaction as sent."""
        invoice = self._invoice_or_empty(invoice_uuid)
        held = self._held_transaction(invoice, body["external_id"])
        if held is None:
            msg = (
                f"transaction external_id {body['external_id']!r} is already used in ChartMogul by another "
                f"invoice than {record.get('invoice_external_id') or invoice_uuid}"
            )
            raise RecordRejected(msg, field="external_id", status=422)
        return self._compared(body, held, invoice), held.get("uuid")

    def _invoice_or_empty(self, invoice_uuid: str) -> Obj:
        try:
            return t.cast("Obj", self.client.get(f"invoices/{invoice_uuid}").body or {})
        except APIError as exc:
            if exc.status != 404:
                raise
            return {}

    def delete_keys(self, keys: list[tuple[str, str]], records: list[Record]) -> None:
        """Note which invoice each deleted row names (log-based rows may carry it), then delete."""
        for key, record in zip(keys, records, strict=True):
            invoice = record.get("invoice_external_id")
            self.deleted_rows[key] = str(invoice).strip() if isinstance(invoice, str) and invoice.strip() else None
        super().delete_keys(keys, records)

    def delete_one(self, data_source_uuid: str, external_id: str) -> str:
        """Delete a transaction deleted in the source (404 means already gone).

        By its remembered uuid, else by the uuid its invoice in ChartMogul shows (`find_uuid`);
        `unchanged` only when no invoice in ChartMogul holds it.
        """
        entry = self.known.get((data_source_uuid, external_id))
        uuid = entry.uuid if entry is not None and entry.uuid else self.find_uuid(data_source_uuid, external_id, entry)
        if uuid is None:
            self.context.ledger.deleted("transactions", data_source_uuid, external_id)
            self.logger.info("Transaction %s: deleted in the source, and no invoice in ChartMogul holds it",
                             external_id)
            return "unchanged"
        try:
            self.client.delete(f"transactions/{uuid}")
        except APIError as exc:
            if exc.status != 404:
                raise
        self.context.ledger.deleted("transactions", data_source_uuid, external_id)
        return "deleted"

    def find_uuid(self, data_source_uuid: str, external_id: str, entry: Entry | None) -> str | None:
        """The uuid of a transaction the memory knows no uuid of, from the invoice ChartMogul holds it on
        (the one the memory or the row names, else found in a listing); remembered before the delete.
        """
        named = (entry.parent if entry is not None else None) or self.deleted_rows.get((data_source_uuid, external_id))
        invoice = self.invoices.holding(data_source_uuid, "transactions", external_id, named)
        held = carried(invoice, "transactions", external_id) if invoice is not None else None
        if invoice is None or held is None or not held.get("uuid"):
            return None
        self.context.ledger.written("transactions", data_source_uuid, external_id, uuid=str(held["uuid"]),
                                    payload=entry.payload_hash if entry is not None else None,
                                    stream=str(entry.stream) if entry is not None and entry.stream else self.stream_name,
                                    record=entry.record_hash if entry is not None else None,
                                    parent=str(invoice.get("external_id")))
        return str(held["uuid"])
