"""Landed means seen: an imported record counts as written only once ChartMogul's listings show it.

An import's status answer proves nothing (validation runs after the import; an object reported
imported may never appear). So when a flush's imports are finished, every data source they
wrote to is listed once per kind they carried (customers, invoices, subscription events; 200
per page, the kinds read in parallel while the pages already read are matched), and each page
is matched against the finished imports' entries kept on disk (`Spool.stash`): one read per
200 objects of the data source, memory flat. Where that would cost more reads than the
imported objects are (a few hundred new rows into a data source the memory knows to hold tens
of thousands), each is looked up by its external id instead (`cheaper_by_lookup`): a verification
never costs more reads than the smaller of the two.

An entry is landed when every object it brought is listed: a customer (then compared with
ChartMogul's copy by its sink, which writes what differs, such as attributes a bulk body did
not keep), an invoice with each line item and transaction it carried and its lines from their
own stream, an event. The sync memory keeps each with the uuid the listing shows. An entry no
listing shows is returned, to go through REST in the same run: REST validates at once, so a
truly invalid object is refused with ChartMogul's own reason.
"""

from __future__ import annotations

import collections
import concurrent.futures
import queue
import typing as t

from target_chartmogul.api.answers import external_ids_in
from target_chartmogul.api.resources import find, listing
from target_chartmogul.bulk.entries import Entry
from target_chartmogul.bulk.walks import NEWEST_FIRST, PAGE, Walks, walked_ids
from target_chartmogul.memory.holdings import identified

if t.TYPE_CHECKING:
    from target_chartmogul.bulk.context import LaneContext
    from target_chartmogul.bulk.entries import BulkWriter
    from target_chartmogul.bulk.spool import Spool

Obj = dict[str, t.Any]
AHEAD = 16  # pages read ahead of the matching, per listing (the invoices' reader keeps going while customers match)
LOOKUPS_AT_ONCE = 8  # lookups by external id in flight per (data source, kind); the client paces them all
LISTED_AS = {"customers": "customer", "invoices": "invoice", "subscription_events": "subscription_event"}
_END = object()


class Verifier:
    """Matches the listings of the data sources against the imported entries; what no listing shows is returned.

    While imports are still processing, `walks` (when given) reads the newest-first listings for what the finished
    ones brought, and `drain` matches those pages (an object whose import is not recorded yet waits in memory until
    `stashed` says it is); `run` finishes the walks, walks for what no walk looked for, and lists (or looks up)
    whatever no walk showed.
    """

    def __init__(self, context: LaneContext, spool: Spool, writers: t.Mapping[str, BulkWriter],
                 walks: Walks | None = None) -> None:
        self.context = context
        self.spool = spool
        self.writers = writers
        self.walks = walks or Walks(context.client, lambda ds, kind: 0)
        self.landed = 0
        self._unrecorded: dict[tuple[str, str], set[str]] = collections.defaultdict(set)  # sent, not on disk yet
        self._early: dict[tuple[str, str], dict[str, Obj]] = collections.defaultdict(dict)  # listed before that

    def sending(self, ds: str, entries: t.Sequence[Entry]) -> None:
        """An import is being sent: a walk may list its objects before its entries are on disk."""
        self.walks.sending(ds, entries)
        for kind, ids in walked_ids(entries).items():
            self._unrecorded[ds, kind].update(ids)

    def refused(self, entries: t.Sequence[Entry]) -> None:
        """ChartMogul refused an import request: no walk waits for what it carried, and none of it will be on disk."""
        self.walks.refused(entries)
        for kind, ids in walked_ids(entries).items():
            for (_, listed), unrecorded in self._unrecorded.items():
                if listed == kind:
                    unrecorded.difference_update(ids)

    def stashed(self, ds: str, entries: t.Sequence[Entry]) -> None:
        """An import's entries are on disk: match what walks listed of them already."""
        for kind, ids in walked_ids(entries).items():
            self._unrecorded[ds, kind].difference_update(ids)
            early = self._early[ds, kind]
            listed = [early.pop(external_id) for external_id in ids if external_id in early]
            for page in _pages_of(listed):
                self._match(ds, kind, page)

    def drain(self) -> None:
        """Match the pages walks read so far, without waiting (while imports are processing)."""
        for ds, kind, page in self.walks.pages():
            self._take(ds, kind, page)

    def _take(self, ds: str, kind: str, page: list[Obj]) -> None:
        """Match a walk's page; keep its objects whose import is not on disk yet."""
        unrecorded = self._unrecorded[ds, kind]
        for obj in page:
            for external_id in external_ids_in(obj, ds):
                if external_id in unrecorded:
                    self._early[ds, kind][external_id] = obj
        self._match(ds, kind, page)
        self.context.ledger.flush()

    def _finish_walks(self) -> None:
        """Match every page of the walks under way, then walk for what no walk looked for (nothing is in flight)."""
        for ds, kind, page in self.walks.pages(wait=True):
            self._take(ds, kind, page)
        for ds, kind in self.spool.to_verify():
            if kind in NEWEST_FIRST:
                self.walks.last(ds, kind, self.spool.waiting_ids(ds, kind))
        for ds, kind, page in self.walks.pages(wait=True):
            self._take(ds, kind, page)
        for kind in sorted({kind for _, kind in self.walks.not_newest_first()}):
            self.context.logger.info("ChartMogul's listing of %s did not begin with what the imports brought: what they "
                                     "carried is verified through a full listing", kind)
        for kind in sorted({kind for _, kind in self.walks.missed()}):
            self.context.logger.info("A walk of ChartMogul's listing of %s did not see all that the imports brought: "
                                     "the rest is verified through a full listing", kind)

    # After the last import ----------------------------------------------------------------------
    def run(self) -> list[Entry]:
        """Finish the walks; list (or look up) and match what no walk showed; the entries no listing showed (with
        those that fail with them).
        """
        try:
            with concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="bulk-verify") as pool:
                # listings no walk serves are read meanwhile: customers while the invoices' last walks are under way
                full = {(ds, kind): self._read_ahead(pool, ds, kind) for ds, kind in self.spool.to_verify()
                        if kind in LISTED_AS and kind not in NEWEST_FIRST}
                self._finish_walks()
                full |= {(ds, kind): self._read_ahead(pool, ds, kind) for ds, kind in self.spool.to_verify()
                         if kind in NEWEST_FIRST}
                for (ds, kind), ahead in full.items():
                    for page in _drain(ahead):
                        self._match(ds, kind, page)
                        self.context.ledger.flush()  # per page: the sync memory's buffer stays one page's rows
        finally:
            self.walks.close()
        missing = [Entry.from_json(entry) for entry in self.spool.unverified()]
        if missing:
            self.context.logger.warning(
                "%d imported record(s) are not in ChartMogul's listings although the import finished: they are written "
                "through REST, which says why if ChartMogul refuses them", sum(1 for entry in missing if entry.parent is None))
        return missing

    def cheaper_by_lookup(self, ds: str, kind: str) -> list[str] | None:
        """The external ids to look up one by one when that costs fewer reads than listing the data source (whose
        size the sync memory knows, nearly); None: list it.
        """
        waiting = self.spool.waiting(ds, kind)
        pages = -(-(self.context.ledger.count(kind, ds) + waiting) // PAGE)
        if waiting >= pages:
            return None
        self.context.logger.info("Checking %d imported %s by external id: fewer reads than listing the data source's "
                                 "%d page(s)", waiting, kind, pages)
        return self.spool.waiting_ids(ds, kind)

    def _read_ahead(self, pool: concurrent.futures.ThreadPoolExecutor, ds: str, kind: str) -> queue.Queue[t.Any]:
        """Pages of the listing (or of the lookups, when cheaper), read in a worker thread ahead of the matching."""
        ahead: queue.Queue[t.Any] = queue.Queue(maxsize=AHEAD)
        lookups = self.cheaper_by_lookup(ds, kind)

        def found(external_id: str) -> Obj | None:
            return find(self.context.client, LISTED_AS[kind], ds, external_id)

        def objects() -> t.Iterator[Obj]:
            if lookups is None:
                yield from listing(self.context.client, LISTED_AS[kind], {"data_source_uuid": ds})
                return
            with concurrent.futures.ThreadPoolExecutor(LOOKUPS_AT_ONCE, thread_name_prefix="bulk-lookup") as lookup:
                yield from (obj for obj in lookup.map(found, lookups) if obj is not None)

        def read() -> None:
            try:
                page: list[Obj] = []
                for obj in objects():
                    page.append(identified(obj))
                    if len(page) == PAGE:
                        ahead.put(page)
                        page = []
                ahead.put(page)
                ahead.put(_END)
            except BaseException as exc:  # raised again where the pages are matched
                ahead.put(exc)

        pool.submit(read)
        return ahead

    def _match(self, ds: str, kind: str, page: list[Obj]) -> None:
        held = {external_id: obj for obj in page for external_id in external_ids_in(obj, ds)}
        found = self.spool.imported(ds, kind, list(held))
        if kind == "customers":
            self._customers(ds, found, held)
            return
        landed: list[int] = []
        for seq, external_id, entry, children in found:
            entries = [Entry.from_json(entry), *(Entry.from_json(child) for child in children)]
            uuids = _seen(entries, held[external_id]) if kind == "invoices" else {external_id: _uuid(held[external_id])}
            if uuids is not None:
                for one in entries:
                    self._record(one, uuids)
                landed.append(seq)
        self.spool.verified(landed)

    def _customers(self, ds: str, found: list[tuple[int, str, t.Any, list[t.Any]]], held: dict[str, Obj]) -> None:
        """Customers listed: their sink compares each with ChartMogul's copy and writes what differs."""
        by_stream: dict[str, list[Entry]] = collections.defaultdict(list)
        for _, _, entry, _ in found:
            one = Entry.from_json(entry)
            by_stream[one.stream].append(one)
        for stream, entries in by_stream.items():
            writer = self.writers.get(stream)
            if writer is not None:
                writer.bulk_follow_up(entries, held)
            else:  # an import an earlier run sent: its uuid now; the record, replayed, is compared then
                for entry in entries:
                    self.context.ledger.written("customers", ds, entry.customer, uuid=_uuid(held[entry.customer]),
                                                payload=None, stream=stream)
                    self.context.summary.add(stream, "imported")
        self.landed += len(found)
        self.spool.verified(seq for seq, *_ in found)

    def _record(self, entry: Entry, uuids: dict[str, str | None]) -> None:
        """One landed entry: the sync memory keeps what it brought, with the listed uuids; counted `imported`."""
        ledger, refs = self.context.ledger, self.context.refs
        for row in entry.memory:
            uuid = uuids.get(row.external_id)
            ledger.written(row.obj, row.ds, row.external_id, uuid=uuid, payload=row.payload_hash, stream=entry.stream,
                           record=row.record_hash if row.payload_hash else None, tags=row.tags, parent=row.parent)
            if row.obj in LISTED_AS and uuid:
                refs.remember(LISTED_AS[row.obj], row.ds, row.external_id, {"uuid": uuid})
        for external_id in entry.payments:
            self.context.invoice_parts.nested(entry.memory[0].ds, external_id, "imported", uuids.get(external_id))
        self.context.summary.add(entry.stream, "imported")
        self.landed += 1


def _pages_of(objects: list[Obj]) -> t.Iterator[list[Obj]]:
    for start in range(0, len(objects), PAGE):
        yield objects[start:start + PAGE]


def _drain(ahead: queue.Queue[t.Any]) -> t.Iterator[list[Obj]]:
    while (page := ahead.get()) is not _END:
        if isinstance(page, BaseException):
            raise page
        yield page


def _uuid(obj: Obj) -> str | None:
    uuid = obj.get("uuid")
    return str(uuid) if uuid else None


def _seen(entries: list[Entry], invoice: Obj) -> dict[str, str | None] | None:
    """The uuids of an invoice and of every line item and transaction its entries brought, when the listed invoice
    holds them all (objects sent without an external id: as many as were sent); else None.
    """
    held = {"line_items": invoice.get("line_items") or [], "transactions": invoice.get("transactions") or []}
    uuids: dict[str, str | None] = {str(invoice.get("external_id")): _uuid(invoice)}
    for kind, listed in held.items():
        by_id = {str(obj["external_id"]): _uuid(obj) for obj in listed if isinstance(obj, dict) and obj.get("external_id")}
        sent = [external_id for entry in entries for sent_kind, external_id in entry.objects if sent_kind == kind]
        if len(sent) > len(listed) or any(external_id and external_id not in by_id for external_id in sent):
            return None
        uuids.update(by_id)
    return uuids
