"""Transactions (payments and refunds) of invoices: added once, safe to replay by external_id.

The invoice is found by uuid or by external id (cache, sync memory, a listing of the
data source when the memory holds no invoices, or one lookup). A transaction ChartMogul
already holds is compared with the record, not assumed equal: "already been taken" only
proves the external id is used, so the invoice is read to see what it holds.
"""

from __future__ import annotations

import typing as t

from target_chartmogul import compare
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
        """Skip a transaction the memory says is written; else write or compare, and remember it."""
        body = map_transaction(record)
        fingerprint = {"body": body, "invoice": [record.get("invoice_uuid"), record.get("invoice_external_id")]}
        key = self.memory_key(record)
        if self.is_current(self.known.get(key), fingerprint):
            return "unchanged"
        outcome, uuid = self.write_one(record, body)
        self.remember(*key, uuid=uuid, payload=fingerprint if outcome != "changed_not_applied" else None)
        return outcome

    def invoice_uuid(self, record: Record) -> tuple[str, str | None]:
        """The invoice's uuid, and its external id when it was found by one."""
        given = optional_text(record, "invoice_uuid")
        if given:
            return given, None
        external_id = optional_text(record, "invoice_external_id")
        if not external_id:
            raise RecordRejected(
                "field 'invoice_uuid' or 'invoice_external_id' is required", field="invoice_external_id"
            )
        ds = required_data_source(record, self.config.get("data_source_uuid"))
        invoice = self.context.refs.require("invoice", ds, external_id, field="invoice_external_id")
        return str(invoice["uuid"]), external_id

    def write_one(self, record: Record, body: dict[str, t.Any]) -> tuple[str, str | None]:
        """POST the transaction unless the invoice is known to hold it; returns (outcome, uuid)."""
        uuid, invoice_external_id = self.invoice_uuid(record)
        ds = data_source(record, self.config.get("data_source_uuid")) or ""
        if invoice_external_id is not None:
            listed = self.context.refs.holdings.get("invoice", ds, invoice_external_id)
            if listed is not None and listed.get("uuid") == uuid:
                held = self._held_transaction(listed, body["external_id"])
                if held is not None:
                    return self._compared(body, held), held.get("uuid")
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

    def _compared(self, body: dict[str, t.Any], held: t.Mapping[str, t.Any]) -> str:
        """'unchanged' when ChartMogul holds the transaction as the record says, else report the difference."""
        changes = compare.transaction_changes(body, held)
        if not changes:
            return "unchanged"
        self.logger.warning(
            "Transaction %s changed in the source but ChartMogul holds it as first written (%s); "
            "this version does not apply transaction corrections",
            body["external_id"],
            ", ".join(changes),
        )
        return "changed_not_applied"

    def _already_taken(self, record: Record, body: dict[str, t.Any], invoice_uuid: str) -> tuple[str, str | None]:
        """The external id is used: read the invoice to see whether it holds this transaction as sent."""
        try:
            invoice = self.client.get(f"invoices/{invoice_uuid}").body or {}
        except APIError as exc:
            if exc.status != 404:
                raise
            invoice = {}
        held = self._held_transaction(invoice, body["external_id"])
        if held is None:
            msg = (
                f"transaction external_id {body['external_id']!r} is already used in ChartMogul by another "
                f"invoice than {record.get('invoice_external_id') or invoice_uuid}"
            )
            raise RecordRejected(msg, field="external_id", status=422)
        return self._compared(body, held), held.get("uuid")
