"""Transactions (payments and refunds) of invoices: insert, safe to replay by external_id."""

from __future__ import annotations

import typing as t

from target_chartmogul.errors import APIError, RecordRejected, is_already_exists
from target_chartmogul.mapping.common import data_source, optional_text, required_data_source
from target_chartmogul.mapping.transactions import map_transaction
from target_chartmogul.sinks.base import ChartMogulSink

Record = dict[str, t.Any]


class TransactionsSink(ChartMogulSink):
    """Writes a stream into ChartMogul transactions, found by their invoice."""

    object_name = "transactions"

    def write_records(self, records: list[Record]) -> None:
        """Write concurrently; references are resolved per record."""
        self.known = self.memory_lookup(self.memory_key(r) for r in records)
        self.run_each(records, self.write_remembered, records_of=lambda record: [record])

    def memory_key(self, record: Record) -> tuple[str, str]:
        """(data source, external id) under which the memory keeps this transaction."""
        ds = data_source(record, self.config.get("data_source_uuid")) or ""
        return (ds, str(record.get("external_id")))

    def write_remembered(self, record: Record) -> str:
        """Skip a transaction the memory says is written; else write and remember it."""
        body = map_transaction(record)
        fingerprint = {"body": body, "invoice": [record.get("invoice_uuid"), record.get("invoice_external_id")]}
        key = self.memory_key(record)
        if self.is_current(self.known.get(key), fingerprint):
            return "unchanged"
        outcome = self.write_one(record)
        self.remember(*key, uuid=None, payload=fingerprint)
        return outcome

    def invoice_uuid(self, record: Record) -> tuple[str, bool]:
        """The invoice's uuid, and whether it came from a lookup by external id."""
        given = optional_text(record, "invoice_uuid")
        if given:
            return given, False
        external_id = optional_text(record, "invoice_external_id")
        if not external_id:
            raise RecordRejected(
                "field 'invoice_uuid' or 'invoice_external_id' is required", field="invoice_external_id"
            )
        ds = required_data_source(record, self.config.get("data_source_uuid"))
        invoice = self.owner.refs.require("invoice", ds, external_id, field="invoice_external_id")
        return str(invoice["uuid"]), True

    def write_one(self, record: Record) -> str:
        """POST the transaction; 'has already been taken' means it is already there."""
        body = map_transaction(record)
        uuid, looked_up = self.invoice_uuid(record)
        try:
            self.client.post(f"import/invoices/{uuid}/transactions", body)
        except APIError as exc:
            if is_already_exists(exc):
                return "created" if exc.attempts > 1 else "already_present"
            if exc.status == 404:
                if looked_up:
                    ds = data_source(record, self.config.get("data_source_uuid")) or ""
                    self.owner.refs.forget("invoice", ds, str(record.get("invoice_external_id")), gone=True)
                field = "invoice_external_id" if looked_up else "invoice_uuid"
                raise RecordRejected(f"invoice {uuid} does not exist in ChartMogul", field=field, status=404) from None
            raise
        return "created"
