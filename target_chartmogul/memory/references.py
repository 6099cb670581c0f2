"""Finding ChartMogul objects by external id, remembered for the rest of the run.

Invoices need their customer's uuid and their plans' uuids, transactions their
invoice's uuid. Each is found once: in this run's cache, the sync memory, a listing of
the whole data source (when the memory cannot vouch for that kind, see `holdings`), or one
lookup. A miss is remembered too: records that need an object the input has not brought
yet wait for it (see the sinks' deferral) without one lookup per record; writing the
object later in the run replaces the miss.

External ids are unique only within a data source, so the data source is always part of
the key. Invoices carry no data source in ChartMogul's answers (recorded), so a lookup
filtered by data source is trusted.
"""

from __future__ import annotations

import threading
import typing as t

import cachetools

from target_chartmogul.api.answers import external_ids_in
from target_chartmogul.errors import RecordRejected
from target_chartmogul.memory.holdings import LISTS, Holdings

if t.TYPE_CHECKING:
    from target_chartmogul.api.client import ChartMogulClient
    from target_chartmogul.memory.ledger import Ledger

Obj = dict[str, t.Any]

CACHE_SIZE = 20_000
_MISSING: Obj = {}  # cached: looked up in this run and not found


class Unresolved(RecordRejected):
    """A reference nothing written so far satisfies; it may be satisfied later in the run."""


def matches(obj: Obj, data_source_uuid: str, external_id: str) -> bool:
    """Whether a listed object is (data source, external id); merged customers carry several."""
    return external_id in external_ids_in(obj, data_source_uuid)


class References:
    """Thread-safe cache of (kind, data source, external id) -> object or known miss."""

    def __init__(
        self,
        client: t.Callable[[], ChartMogulClient],
        ledger: t.Callable[[], Ledger],
        holdings: Holdings | None = None,
    ) -> None:
        self._client = client
        self._ledger = ledger
        self.holdings = holdings if holdings is not None else Holdings(client, ledger)
        # the least recently used go first; the sync memory still has them
        self._known: cachetools.LRUCache[tuple[str, str, str], Obj] = cachetools.LRUCache(maxsize=CACHE_SIZE)
        self._lock = threading.Lock()
        self._finding: dict[tuple[str, str, str], threading.Lock] = {}
        self.lookups = 0
        # (kind, data source, external id) -> waiting for a bulk import: not in ChartMogul yet, nothing to look up
        self.pending: t.Callable[[str, str, str], bool] = lambda kind, ds, ext: False

    def _keep(self, key: tuple[str, str, str], value: Obj) -> None:
        with self._lock:
            self._known[key] = value

    def remember(self, kind: str, data_source_uuid: str | None, external_id: str | None, obj: t.Any) -> None:
        """Keep the uuid of an object just written or found (not the whole answer: memory stays flat)."""
        if data_source_uuid and external_id and isinstance(obj, dict) and obj.get("uuid"):
            slim = {"uuid": obj["uuid"], "external_id": external_id, "data_source_uuid": data_source_uuid}
            self._keep((kind, data_source_uuid, external_id), slim)

    def forget(self, kind: str, data_source_uuid: str, external_id: str, *, gone: bool = False) -> None:
        """Drop a cached object; `gone` when ChartMogul no longer has it (memory and listing forget too)."""
        with self._lock:
            self._known.pop((kind, data_source_uuid, external_id), None)
        if gone:
            self._ledger().deleted(f"{kind}s", data_source_uuid, external_id)
            self.holdings.drop(kind, data_source_uuid, external_id)

    def cached(self, kind: str, data_source_uuid: str, external_id: str) -> Obj | None:
        """The cached object, without a lookup (None for a miss as for unknown)."""
        with self._lock:
            return self._known.get((kind, data_source_uuid, external_id)) or None

    def find(self, kind: str, data_source_uuid: str, external_id: str) -> Obj | None:
        """The object's uuid from the cache, the memory or a listing, else from one lookup."""
        key = (kind, data_source_uuid, external_id)
        with self._lock:
            finding = self._finding.setdefault(key, threading.Lock())
        with finding:  # concurrent writers needing the same object wait for one lookup
            try:
                return self._find(key)
            finally:
                with self._lock:
                    self._finding.pop(key, None)

    def _find(self, key: tuple[str, str, str]) -> Obj | None:
        kind, data_source_uuid, external_id = key
        with self._lock:
            cached = self._known.get(key)  # a get counts as a use for the LRU order
        if cached:
            return cached
        if self.pending(kind, data_source_uuid, external_id):
            return None
        entry = self._ledger().get(LISTS[kind][2], data_source_uuid, external_id)  # local, and sees this run's writes
        if entry is not None and entry.uuid:
            known = {"uuid": entry.uuid, "external_id": external_id, "data_source_uuid": data_source_uuid}
            self._keep(key, known)
            return known
        if cached is not None:  # missed earlier in this run and not written since: no second lookup
            return None
        found = self.held(kind, data_source_uuid, external_id)
        if found is None:
            self._keep(key, _MISSING)
            return None
        self.remember(kind, data_source_uuid, external_id, found)
        if entry is not None and found.get("uuid"):  # written without its uuid (a bulk import): found once, kept
            self._ledger().written(LISTS[kind][2], data_source_uuid, external_id, uuid=str(found["uuid"]),
                                   payload=entry.payload_hash, stream=entry.stream or "", record=entry.record_hash,
                                   tags=entry.tags, parent=entry.parent)
        return found

    def held(self, kind: str, data_source_uuid: str, external_id: str, *, fresh: bool = False) -> Obj | None:
        """The whole object as ChartMogul holds it (for comparing), from this run's listing or one lookup.

        `fresh` always asks ChartMogul: for an object that may have been written since the
        listing was read (a create whose answer was lost).
        """
        if not fresh and self.holdings.ensure(kind, data_source_uuid):
            return self.holdings.get(kind, data_source_uuid, external_id)
        path, root, _ = LISTS[kind]
        params = {"data_source_uuid": data_source_uuid, "external_id": external_id}
        with self._lock:
            self.lookups += 1
        for obj in self._client().paginate(path, root, params):
            if matches(obj, data_source_uuid, external_id):
                return t.cast("Obj", obj)
        return None

    def require(self, kind: str, data_source_uuid: str, external_id: str, field: str) -> Obj:
        """The object, or `Unresolved` with the reason users see in the rejects file."""
        found = self.find(kind, data_source_uuid, external_id)
        if found is None:
            msg = f'no {kind} with external_id "{external_id}" in data source {data_source_uuid}'
            raise Unresolved(msg, field=field)
        return found
