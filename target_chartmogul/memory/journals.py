"""Journals: work begun against ChartMogul and not yet finished, committed before the work so a rerun finishes it.

`Replacements` (`tcm_invoice_replacements`): an invoice about to be deleted and imported again, with
its new content and the status to set, so a run that dies between the delete and the import is
repaired by the next. `BulkImports` (`tcm_bulk_imports`): bulk imports about to be sent or sent, with
what each record brought, so a run that died while one was processing polls it instead of sending it
again. Every call commits at once; a dry run (read_only) journals nothing.
"""

from __future__ import annotations

import decimal
import json
import typing as t

import sqlalchemy as sa

from target_chartmogul.memory.database import now, upsert_for
from target_chartmogul.memory.schema import bulk_imports, replacements
from target_chartmogul.values.encoding import dumps


def _loads(text: str) -> t.Any:
    return json.loads(text, parse_float=decimal.Decimal)


class Replacements:
    """Invoices between their delete and their re-import."""

    def __init__(self, engine: sa.Engine, *, read_only: bool) -> None:
        self.engine = engine
        self.read_only = read_only
        self._upsert = upsert_for(engine)
        self._any_marks = self._marks_checked = False  # pending ones looked up once per run, not once per invoice

    def mark(self, data_source_uuid: str, external_id: str, customer_uuid: str, invoice: t.Any,
             status: str | None = None) -> None:
        """Note, durably and at once, that an invoice is about to be deleted and imported again as `invoice`
        (then set to `status`, voided or written_off, when given).
        """
        if self.read_only:
            return
        self._any_marks = self._marks_checked = True
        row = {"data_source_uuid": data_source_uuid, "external_id": external_id, "customer_uuid": customer_uuid,
               "invoice": dumps(invoice), "marked_at": now(), "status": status}
        stmt = self._upsert(replacements).values(**row)
        with self.engine.begin() as conn:
            conn.execute(stmt.on_conflict_do_update(index_elements=["data_source_uuid", "external_id"], set_=row))

    def clear(self, data_source_uuid: str, external_id: str) -> None:
        """The replacement is done (the new invoice and its transactions are in ChartMogul)."""
        if self.read_only:
            return
        with self.engine.begin() as conn:
            conn.execute(sa.delete(replacements).where(replacements.c.data_source_uuid == data_source_uuid,
                                                       replacements.c.external_id == external_id))

    def pending_one(self, data_source_uuid: str, external_id: str) -> dict[str, t.Any] | None:
        """The content an unfinished replacement of this invoice was to import, if one is pending."""
        if not self._marks_checked:
            self._any_marks = bool(self.pending())
            self._marks_checked = True
        if not self._any_marks:  # the usual case: one query per run, not one per invoice
            return None
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(replacements.c.invoice).where(
                replacements.c.data_source_uuid == data_source_uuid, replacements.c.external_id == external_id)).first()
        return None if row is None else t.cast("dict[str, t.Any]", _loads(row[0]))

    def pending(self) -> list[tuple[str, str, str, dict[str, t.Any], str | None]]:
        """(data source, external id, customer uuid, invoice body, status to set) of every replacement not finished."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(replacements.c.data_source_uuid, replacements.c.external_id,
                                          replacements.c.customer_uuid, replacements.c.invoice, replacements.c.status))
            return [(row[0], row[1], row[2], _loads(row[3]), row[4]) for row in rows]


class BulkImports:
    """Bulk imports sent (or about to be) whose outcome is not yet in the memory."""

    def __init__(self, engine: sa.Engine, *, read_only: bool) -> None:
        self.engine = engine
        self.read_only = read_only

    def sending(self, local_id: str, data_source_uuid: str, entries: t.Any) -> None:
        """Note, durably and before the request, an import about to be sent (committed at once)."""
        if self.read_only:
            return
        row = {"local_id": local_id, "data_source_uuid": data_source_uuid, "import_id": None,
               "entries": dumps(entries), "submitted_at": now()}
        with self.engine.begin() as conn:
            conn.execute(sa.insert(bulk_imports).values(**row))

    def sent(self, local_id: str, import_id: str) -> None:
        """ChartMogul answered with the import's id: from now on a rerun polls it (committed at once)."""
        if self.read_only:
            return
        with self.engine.begin() as conn:
            conn.execute(sa.update(bulk_imports).where(bulk_imports.c.local_id == local_id).values(import_id=import_id))

    def done(self, local_id: str) -> None:
        """Its outcome is in the memory (the caller flushed it first): forget it."""
        if self.read_only:
            return
        with self.engine.begin() as conn:
            conn.execute(sa.delete(bulk_imports).where(bulk_imports.c.local_id == local_id))

    def in_flight(self) -> list[tuple[str, str, str | None, list[t.Any]]]:
        """(local id, data source, import id or None, entries) of every import whose outcome is not recorded."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(bulk_imports.c.local_id, bulk_imports.c.data_source_uuid,
                                          bulk_imports.c.import_id, bulk_imports.c.entries)
                                .order_by(bulk_imports.c.submitted_at))
            return [(row[0], row[1], row[2], _loads(row[3])) for row in rows]
