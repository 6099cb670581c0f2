"""The local sync memory: what this target last wrote, and what ChartMogul refused.

It holds no secrets and may be deleted at any time: the next run rebuilds it without duplicates,
because every write is idempotent by external id. `Ledger` is what the rest of the target sees;
each concern lives in a module of its own, composed here over one database:

- objects.py: the objects written or found, this run's changes buffered (pending.py decides which
  wins), and whether the memory can vouch for a data source's objects without a listing;
- rejects.py: refused records to retry next run, and the stream schemas to rebuild a sink with;
- journals.py: invoice replacements and bulk imports in flight, committed before the work they announce;
- facts.py: what the loader learnt of ChartMogul per data source;
- schema.py and migrations.py: the tables, and older memories brought forward when opened
  (database.py opens it); a memory written by a newer release stops the run with one clear line.

Buffered changes (objects, rejects) are committed by `flush()`, which sinks call at the end of each
batch, before the SDK may emit STATE: the memory never claims a write ChartMogul did not confirm.
"""

from __future__ import annotations

import typing as t

from target_chartmogul.config.settings import DEFAULT_LEDGER_URL
from target_chartmogul.memory.database import now, open_engine, state_dir
from target_chartmogul.memory.entries import Digest, Entry, payload_hash
from target_chartmogul.memory.facts import Facts
from target_chartmogul.memory.journals import BulkImports, Replacements
from target_chartmogul.memory.migrations import SCHEMA_VERSION
from target_chartmogul.memory.objects import Objects
from target_chartmogul.memory.rejects import Rejects, RememberedReject, StreamSchemas

__all__ = ["SCHEMA_VERSION", "Digest", "Entry", "Ledger", "RememberedReject", "payload_hash", "state_dir"]


class Ledger:
    """The sync memory, one database, its concerns composed (see the module docstring)."""

    def __init__(self, url: str = DEFAULT_LEDGER_URL, *, read_only: bool = False) -> None:
        """Open the memory, creating it or migrating an older one to the current schema.

        `read_only` (dry run) keeps this run's writes out of the memory, but an older
        schema is still migrated: the code below cannot read the old layout.
        """
        self.engine = open_engine(url)
        self.read_only = read_only
        self.objects = Objects(self.engine)
        self.rejects = Rejects(self.engine)
        self.schemas = StreamSchemas(self.engine, read_only=read_only)
        self.replacements = Replacements(self.engine, read_only=read_only)
        self.bulk_imports = BulkImports(self.engine, read_only=read_only)
        self.facts = Facts(self.engine, read_only=read_only)

    # Objects --------------------------------------------------------------------------
    def lookup(self, obj: str, data_source_uuid: str, external_ids: t.Iterable[str]) -> dict[str, Entry]:
        """Entries for many external ids of one data source, this run's unflushed changes applied."""
        return self.objects.lookup(obj, data_source_uuid, external_ids)

    def get(self, obj: str, data_source_uuid: str, external_id: str) -> Entry | None:
        """One entry, or None."""
        return self.objects.lookup(obj, data_source_uuid, [external_id]).get(external_id)

    def holds_any(self, obj: str, data_source_uuid: str) -> bool:
        """Whether the memory knows any object of this kind in this data source (written or adopted)."""
        return self.objects.holds_any(obj, data_source_uuid)

    def vouches_for(self, obj: str, data_source_uuid: str, *shown_with: str) -> bool:
        """Whether the memory can answer for (obj, data source) without listing it: it holds some, and no upgrade
        left it (or the objects a listing of it shows too, `shown_with`: an invoice's lines and transactions)
        unproven since. When it cannot, memory.holdings lists the data source and calls `proven`.
        """
        if any(self.objects.unproven(name, data_source_uuid) for name in (obj, *shown_with)):
            return False
        return self.objects.holds_any(obj, data_source_uuid)

    def proven(self, obj: str, data_source_uuid: str) -> None:
        """A whole listing of (obj, data source) was read in this run: vouched for again from the next flush."""
        self.objects.proven(obj, data_source_uuid)

    def written(
        self,
        obj: str,
        data_source_uuid: str,
        external_id: str,
        *,
        uuid: str | None,
        payload: str | None,
        stream: str,
        record: str | None = None,
        tags: t.Sequence[str] | None = None,
        parent: str | None = None,
    ) -> None:
        """Note a confirmed write (`payload` and `record` are hashes; None when ChartMogul holds other data).

        `tags` are the customer tags the loader set from the record (kept as given, order and
        case included); None when unknown. `parent` is a line item's invoice. The status stays
        as it was (`set_status`).
        """
        if isinstance(tags, str):
            raise TypeError("tags is a sequence of tag names, not one string")
        row = (uuid, payload, stream, record, None if tags is None else tuple(tags), parent)
        self.objects.written((data_source_uuid, obj, external_id), row)

    def set_status(self, obj: str, data_source_uuid: str, external_id: str, status: str | None) -> None:
        """Note the status (voided, written_off; None: none) ChartMogul's invoice now has, as this target applied it.

        Kept apart from `written`, so every other writer of the row keeps it; a row never
        written stays without one.
        """
        self.objects.set_status((data_source_uuid, obj, external_id), status)

    def adopt(self, obj: str, data_source_uuid: str, found: t.Mapping[str, str]) -> None:
        """Note objects found in ChartMogul (external id -> uuid) that this run did not write.

        They fill gaps only (a row the memory lacks, or the uuid of one without): a later record
        skips its lookup but is compared before anything is sent. They land at the next `flush()`.
        """
        self.objects.adopt(obj, data_source_uuid, found)

    def deleted(self, obj: str, data_source_uuid: str, external_id: str) -> None:
        """Note that the object is gone from ChartMogul."""
        self.objects.deleted((data_source_uuid, obj, external_id))

    def stream_objects(self, obj: str, stream: str) -> dict[tuple[str, str], str | None]:
        """(data source, external id) -> uuid of every object this stream wrote."""
        self.flush()
        return self.objects.stream_objects(obj, stream)

    # Refused records -----------------------------------------------------------------
    def remember_reject(
        self, stream: str, key: str, record: dict[str, t.Any], reason: str, field: str | None, status: int | None
    ) -> None:
        """Keep a refused record for the next run (a newer one with the same key replaces it)."""
        self.rejects.remember(stream, key, record, reason, field, status)

    def remembers_rejects(self) -> bool:
        """Whether any refused record waits for a retry (most runs: none, so nothing to forget)."""
        return self.rejects.any()

    def forget_reject(self, stream: str, key: str) -> None:
        """A newer record with this key arrived, or it landed: drop the remembered one."""
        self.rejects.forget(stream, key)

    def remembered_rejects(self) -> list[RememberedReject]:
        """Every refused record waiting for a retry (as of the last flush)."""
        return self.rejects.remembered()

    # Schemas -------------------------------------------------------------------------
    def save_schema(self, stream: str, schema: dict[str, t.Any], key_properties: t.Sequence[str]) -> None:
        """Keep a stream's schema, so its remembered rejects can be retried without the tap."""
        self.schemas.save(stream, schema, key_properties)

    def schema(self, stream: str) -> tuple[dict[str, t.Any], list[str]] | None:
        """A saved schema and key properties."""
        return self.schemas.get(stream)

    # Invoice replacements ------------------------------------------------------------
    def mark_replacement(
        self, data_source_uuid: str, external_id: str, customer_uuid: str, invoice: t.Any, status: str | None = None
    ) -> None:
        """Note, durably and at once (before the delete), that an invoice is about to be deleted and imported again
        as `invoice` (then set to `status`, voided or written_off, when given).
        """
        self.replacements.mark(data_source_uuid, external_id, customer_uuid, invoice, status)

    def clear_replacement(self, data_source_uuid: str, external_id: str) -> None:
        """The replacement is done (the new invoice and its transactions are in ChartMogul)."""
        self.replacements.clear(data_source_uuid, external_id)

    def pending_replacement(self, data_source_uuid: str, external_id: str) -> dict[str, t.Any] | None:
        """The content an unfinished replacement of this invoice was to import, if one is pending."""
        return self.replacements.pending_one(data_source_uuid, external_id)

    def pending_replacements(self) -> list[tuple[str, str, str, dict[str, t.Any], str | None]]:
        """(data source, external id, customer uuid, invoice body, status to set) of every replacement not finished."""
        return self.replacements.pending()

    # Bulk imports in flight -------------------------------------------------------------
    def bulk_import_sending(self, local_id: str, data_source_uuid: str, entries: t.Any) -> None:
        """Note, durably and before the request, an import about to be sent (committed at once)."""
        self.bulk_imports.sending(local_id, data_source_uuid, entries)

    def bulk_import_sent(self, local_id: str, import_id: str) -> None:
        """ChartMogul answered with the import's id: from now on a rerun polls it (committed at once)."""
        self.bulk_imports.sent(local_id, import_id)

    def bulk_import_done(self, local_id: str) -> None:
        """Its outcome is in the memory (flushed first): forget it."""
        if self.read_only:
            return
        self.flush()
        self.bulk_imports.done(local_id)

    def bulk_imports_in_flight(self) -> list[tuple[str, str, str | None, list[t.Any]]]:
        """(local id, data source, import id or None, entries) of every import whose outcome is not recorded."""
        return self.bulk_imports.in_flight()

    # Facts learnt of ChartMogul ---------------------------------------------------------
    def fact(self, data_source_uuid: str, name: str) -> str | None:
        """A fact learnt in an earlier run (or this one), or None."""
        return self.facts.get(data_source_uuid, name)

    def set_fact(self, data_source_uuid: str, name: str, value: str) -> None:
        """Remember a fact (committed at once; a dry run remembers nothing)."""
        self.facts.set(data_source_uuid, name, value)

    def forget_fact(self, data_source_uuid: str, name: str) -> None:
        """Drop a fact (committed at once)."""
        self.facts.forget(data_source_uuid, name)

    # Commit ----------------------------------------------------------------------------
    def flush(self) -> None:
        """Commit the buffered changes (objects, rejects) in one transaction; a dry run drops them."""
        objects, rejects = self.objects.take(), self.rejects.take()
        if self.read_only or not (objects or rejects):
            return
        at = now()
        with self.engine.begin() as conn:
            self.objects.write(conn, objects, at)
            self.rejects.write(conn, rejects, at)

    def close(self) -> None:
        """Flush and release connections."""
        self.flush()
        self.engine.dispose()
