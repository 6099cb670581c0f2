"""Finding ChartMogul objects by external id, remembered for the rest of the run.

Invoices need their customer's uuid and their plans' uuids, transactions their
invoice's uuid. Each is looked up once (external ids are unique only within a data
source, so the data source is always part of the key) and kept; a miss is not kept,
because the object may be written later in the same run.
"""

from __future__ import annotations

import collections
import threading
import typing as t

from target_chartmogul.errors import RecordRejected

if t.TYPE_CHECKING:
    from target_chartmogul.client import ChartMogulClient
    from target_chartmogul.ledger import Ledger

Obj = dict[str, t.Any]

CACHE_SIZE = 20_000
# kind -> (list path, root key of the list answer)
LISTS = {"customer": ("customers", "entries"), "plan": ("plans", "plans"), "invoice": ("invoices", "invoices")}


class Unresolved(RecordRejected):
    """A reference nothing written so far satisfies; it may be satisfied later in the run."""


def matches(obj: Obj, data_source_uuid: str, external_id: str) -> bool:
    """Whether a listed object really is (data source, external id); merged customers carry several."""
    ids = obj.get("external_ids") or [obj.get("external_id")]
    sources = obj.get("data_source_uuids") or [obj.get("data_source_uuid")]
    return external_id in ids and data_source_uuid in sources


class References:
    """Thread-safe cache of (kind, data source, external id) -> object, filled by lookups."""

    def __init__(self, client: t.Callable[[], ChartMogulClient], ledger: t.Callable[[], Ledger] | None = None) -> None:
        self._client = client
        self._ledger = ledger
        self._known: collections.OrderedDict[tuple[str, str, str], Obj] = collections.OrderedDict()
        self._lock = threading.Lock()

    def remember(self, kind: str, data_source_uuid: str | None, external_id: str | None, obj: t.Any) -> None:
        """Keep the uuid of an object just written or found (not the whole answer: memory stays flat)."""
        if data_source_uuid and external_id and isinstance(obj, dict) and obj.get("uuid"):
            slim = {"uuid": obj["uuid"], "external_id": external_id, "data_source_uuid": data_source_uuid}
            with self._lock:
                self._known[(kind, data_source_uuid, external_id)] = slim
                self._known.move_to_end((kind, data_source_uuid, external_id))
                while len(self._known) > CACHE_SIZE:  # the oldest go; the sync memory still has them
                    self._known.popitem(last=False)

    def forget(self, kind: str, data_source_uuid: str, external_id: str, *, gone: bool = False) -> None:
        """Drop a cached object; `gone` when ChartMogul no longer has it (the memory forgets too)."""
        with self._lock:
            self._known.pop((kind, data_source_uuid, external_id), None)
        if gone and self._ledger is not None:
            self._ledger().deleted(f"{kind}s", data_source_uuid, external_id)

    def cached(self, kind: str, data_source_uuid: str, external_id: str) -> Obj | None:
        """The cached object, without a lookup."""
        with self._lock:
            found = self._known.get((kind, data_source_uuid, external_id))
            if found is not None:
                self._known.move_to_end((kind, data_source_uuid, external_id))
            return found

    def find(self, kind: str, data_source_uuid: str, external_id: str, *, fresh: bool = False) -> Obj | None:
        """The object's uuid from the cache or the sync memory, else the whole object from ChartMogul.

        `fresh` asks ChartMogul itself (for callers that need more than the uuid).
        """
        found = None if fresh else self.cached(kind, data_source_uuid, external_id)
        if found is not None:
            return found
        if self._ledger is not None and not fresh:
            entry = self._ledger().get(f"{kind}s", data_source_uuid, external_id)
            if entry is not None and entry.uuid:
                known = {"uuid": entry.uuid, "external_id": external_id, "data_source_uuid": data_source_uuid}
                self.remember(kind, data_source_uuid, external_id, known)
                return known
        path, root = LISTS[kind]
        params = {"data_source_uuid": data_source_uuid, "external_id": external_id}
        for obj in self._client().paginate(path, root, params):
            if matches(obj, data_source_uuid, external_id):
                self.remember(kind, data_source_uuid, external_id, obj)
                return t.cast("Obj", obj)
        return None

    def require(self, kind: str, data_source_uuid: str, external_id: str, field: str) -> Obj:
        """The object, or `Unresolved` with the reason users see in the rejects file."""
        found = self.find(kind, data_source_uuid, external_id)
        if found is None:
            msg = f'no {kind} with external_id "{external_id}" in data source {data_source_uuid}'
            raise Unresolved(msg, field=field)
        return found
