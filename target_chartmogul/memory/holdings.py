"""What ChartMogul already holds in a data source, read in pages when the sync memory cannot tell.

A lost sync memory (a new working directory, a deleted file, another worker, a memory
kept elsewhere) must cost reads, never writes or losses; so must an upgrade, which leaves
the memory's rows without hashes it can trust (memory.migrations.unprove_hashes). So when
the memory cannot vouch for a data source and kind of object (it holds none of it, or an
upgrade left it unproven: `Ledger.vouches_for`), every object of that kind is listed once
(200 per page) before anything is decided: the memory adopts their uuids (filling the
uuids it lacks), the listing proves the kind again (`Ledger.proven`), and the listed copies
let the sinks compare instead of writing what is already there.

Invoices carry no `data_source_uuid` in ChartMogul's answers (recorded): a listing
filtered by data source is trusted to hold only that data source's invoices.

A sink whose stream begins while the memory holds nothing of its kind starts the
listing at once (`prefetch`), so its pages are read while the records are: only the
HTTP reading runs in the background; the memory adopts what was found when a sink
first needs it (`ensure`), in the thread that writes the memory.
"""

from __future__ import annotations

import concurrent.futures
import threading
import typing as t

from target_chartmogul.api.answers import external_ids_in
from target_chartmogul.config.registry import REGISTRY

if t.TYPE_CHECKING:
    from target_chartmogul.api.client import ChartMogulClient
    from target_chartmogul.memory.ledger import Ledger

Obj = dict[str, t.Any]

# kind -> (list path, root key of the list answer, memory object name), for every object with a listing
LISTS: dict[str, tuple[str, str, str]] = {
    entry.listing.kind: (entry.listing.path, entry.listing.root, entry.name) for entry in REGISTRY if entry.listing
}
# What a listing shows besides its own objects, and so proves too: an invoice comes with its lines and transactions.
SHOWN_WITH: dict[str, tuple[str, ...]] = {"invoice": ("line_items", "transactions")}
# Keys of a listed object that no comparison reads: dropped so a large account stays small in memory.
NOISE = frozenset(
    {"address", "chartmogul-url", "billing-system-url", "billing-system-type", "currency-sign", "mrr", "arr", "id"}
)


def identified(obj: Obj) -> Obj:
    """The object with a `uuid`: subscription events are answered with an integer `id` only, which stands in for it."""
    if obj.get("uuid") is None and obj.get("id") is not None:
        return {**obj, "uuid": str(obj["id"])}
    return obj


# a listing read: external id -> uuid, the copies by (kind, data source, external id), every copy
Listing = tuple[dict[str, str], dict[tuple[str, str, str], Obj], list[Obj]]


def slim(obj: Obj) -> Obj:
    """A listed object without the keys no comparison reads."""
    return {key: value for key, value in obj.items() if key not in NOISE}


class Holdings:
    """Listings of whole data sources, read at most once per (kind, data source) and run."""

    def __init__(self, client: t.Callable[[], ChartMogulClient], ledger: t.Callable[[], Ledger]) -> None:
        self._client = client
        self._ledger = ledger
        self._held: dict[tuple[str, str, str], Obj] = {}
        self._every: dict[tuple[str, str], list[Obj]] = {}
        self._listed: set[tuple[str, str]] = set()
        self._checked: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        self._reading: dict[tuple[str, str], threading.Lock] = {}
        self._ahead: dict[tuple[str, str], concurrent.futures.Future[Listing]] = {}
        self.objects_read = 0

    def prefetch(self, kind: str, data_source_uuid: str) -> None:
        """Start reading the listing in the background if the memory cannot vouch for `kind` in the data source."""
        key = (kind, data_source_uuid)
        with self._lock:
            if key in self._listed or key in self._ahead:
                return
        if self._memory_vouches(key):
            return
        ahead: concurrent.futures.Future[Listing] = concurrent.futures.Future()
        with self._lock:
            if key in self._listed or key in self._ahead:  # started meanwhile
                return
            self._ahead[key] = ahead

        def read() -> None:
            try:
                ahead.set_result(self._read(kind, data_source_uuid))
            except BaseException as exc:  # raised again where the listing is used (ensure)
                ahead.set_exception(exc)

        threading.Thread(target=read, name=f"list-{kind}", daemon=True).start()

    def ensure(self, kind: str, data_source_uuid: str) -> bool:
        """Read every `kind` object of the data source if the memory cannot vouch for them.

        True when this run holds the whole listing, so a miss in it is authoritative.
        """
        key = (kind, data_source_uuid)
        with self._lock:
            if key in self._listed:
                return True
            if key in self._checked:
                return False
            reading = self._reading.setdefault(key, threading.Lock())
        with reading:  # one reader per data source; the others wait for its result
            with self._lock:
                if key in self._listed:
                    return True
            if self._memory_vouches(key):
                return False
            with self._lock:
                ahead = self._ahead.get(key)
            try:
                found, held, every = ahead.result() if ahead is not None else self._read(kind, data_source_uuid)
            except BaseException:
                with self._lock:
                    self._ahead.pop(key, None)  # a failed read is not kept: the next use reads again
                raise
            self._proven(kind, data_source_uuid, found)
            with self._lock:
                self._held.update(held)
                self._every[key] = every
                self._listed.add(key)
                self._ahead.pop(key, None)  # only now: a prefetch meanwhile sees it read ahead, not missing
                self.objects_read += len(held)
            return True

    def _memory_vouches(self, key: tuple[str, str]) -> bool:
        """Whether the sync memory can answer for (kind, data source): then no listing is read for it (asked once)."""
        with self._lock:
            if key in self._checked:
                return True
        kind, data_source_uuid = key
        if not self._ledger().vouches_for(LISTS[kind][2], data_source_uuid, *SHOWN_WITH.get(kind, ())):
            return False
        with self._lock:
            self._checked.add(key)
        return True

    def _proven(self, kind: str, data_source_uuid: str, found: dict[str, str]) -> None:
        """The memory adopts what the listing found, and vouches again for everything the listing shows."""
        ledger = self._ledger()
        ledger.adopt(LISTS[kind][2], data_source_uuid, found)
        for obj in (LISTS[kind][2], *SHOWN_WITH.get(kind, ())):
            ledger.proven(obj, data_source_uuid)

    def _read(self, kind: str, data_source_uuid: str) -> Listing:
        """Page through the listing: (external id -> uuid, copies by key, every copy, with or without an external id)."""
        path, root, _ = LISTS[kind]
        found: dict[str, str] = {}
        held: dict[tuple[str, str, str], Obj] = {}
        every: list[Obj] = []
        for answered in self._client().paginate(path, root, {"data_source_uuid": data_source_uuid}):
            obj = identified(answered)
            kept = slim(obj)
            every.append(kept)
            for ext in external_ids_in(obj, data_source_uuid):
                held[(kind, data_source_uuid, ext)] = kept
                if obj.get("uuid"):
                    found[ext] = str(obj["uuid"])
        return found, held, every

    def objects(self, kind: str, data_source_uuid: str) -> list[Obj]:
        """Every listed object of (kind, data source) as read, those without an external id too (contacts)."""
        with self._lock:
            return list(self._every.get((kind, data_source_uuid), []))

    def listed(self, kind: str, data_source_uuid: str) -> bool:
        """Whether the whole listing of (kind, data source) was read in this run."""
        with self._lock:
            return (kind, data_source_uuid) in self._listed

    def get(self, kind: str, data_source_uuid: str, external_id: str) -> Obj | None:
        """The listed copy of one object (kept current with our own writes), or None."""
        with self._lock:
            return self._held.get((kind, data_source_uuid, external_id))

    def put(self, kind: str, data_source_uuid: str, external_id: str, obj: Obj) -> None:
        """Keep the copy of an object current after we wrote it (only where a listing was read)."""
        with self._lock:
            if (kind, data_source_uuid) in self._listed:
                self._held[(kind, data_source_uuid, external_id)] = slim(obj)

    def unlist(self, kind: str, data_source_uuid: str) -> None:
        """Objects arrived that the listing does not hold (a bulk import): a miss in it no longer proves absence.

        The copies read stay (for comparing); what the listing lacks is looked up one by one.
        """
        with self._lock:
            self._listed.discard((kind, data_source_uuid))
            self._every.pop((kind, data_source_uuid), None)

    def drop(self, kind: str, data_source_uuid: str, external_id: str) -> None:
        """The object is gone from ChartMogul."""
        with self._lock:
            self._held.pop((kind, data_source_uuid, external_id), None)
