"""What ChartMogul holds, read through its listings only: one read per 200 objects, never one per object.

Each (kind, data source) a comparison needs is listed once, the kinds in parallel: customers
(their answer carries custom attributes and tags), plans, invoices (with their line items and
transactions), subscription events and contacts, through the table's `api.resources.listing`. The
sync memory is neither asked nor told: in a reconcile run ChartMogul's copy is the truth.

The client is seen through `ReadOnly`, which has no way to write.
"""

from __future__ import annotations

import concurrent.futures
import threading
import typing as t

from target_chartmogul.api.answers import external_ids_in
from target_chartmogul.api.resources import Pages, listing
from target_chartmogul.memory.holdings import identified, slim

Obj = dict[str, t.Any]
MAX_PARALLEL = 4  # listings read at once (the client paces every request under the account's limits)


class ReadOnly:
    """The run's HTTP client with reads only: a reconcile run cannot send a write, by construction."""

    def __init__(self, client: t.Callable[[], Pages]) -> None:
        self._client = client

    def paginate(self, path: str, root_key: str, params: dict[str, t.Any] | None = None) -> t.Iterator[Obj]:
        """Every entry of a listing (200 per page)."""
        return self._client().paginate(path, root_key, params)


class Listings:
    """Whole data sources as ChartMogul lists them: each (kind, data source) read at most once."""

    def __init__(self, reader: Pages) -> None:
        self.reader = reader
        self._objects: dict[tuple[str, str], list[Obj]] = {}
        self._indexes: dict[tuple[str, str, str], dict[str, t.Any]] = {}
        self._lock = threading.Lock()

    def read(self, wanted: t.Iterable[tuple[str, str]]) -> None:
        """List every (kind, data source) not listed yet, several at a time; the first failure is raised."""
        with self._lock:
            todo = sorted(set(wanted) - set(self._objects))
        if not todo:
            return
        with concurrent.futures.ThreadPoolExecutor(max_workers=MAX_PARALLEL, thread_name_prefix="reconcile") as pool:
            found = dict(zip(todo, pool.map(lambda key: self._list(*key), todo), strict=True))
        with self._lock:
            self._objects.update(found)

    def _list(self, kind: str, data_source_uuid: str) -> list[Obj]:
        return [slim(identified(obj)) for obj in listing(self.reader, kind, {"data_source_uuid": data_source_uuid})]

    def objects(self, kind: str, data_source_uuid: str) -> list[Obj]:
        """Every listed object of (kind, data source), as answered (minus keys no comparison reads)."""
        with self._lock:
            return list(self._objects.get((kind, data_source_uuid), []))

    def by_external_id(self, kind: str, data_source_uuid: str) -> dict[str, Obj]:
        """The listed objects by the external ids they have in the data source (a merged customer has several)."""
        return self._index(kind, data_source_uuid, "", lambda obj: external_ids_in(obj, data_source_uuid), first=True)

    def by_field(self, kind: str, data_source_uuid: str, field: str) -> dict[str, list[Obj]]:
        """The listed objects by one field's value (text, case-folded: emails match as a write matches them)."""
        return self._index(kind, data_source_uuid, field, lambda obj: [str(obj.get(field) or "").casefold()])

    @t.overload
    def _index(self, kind: str, data_source_uuid: str, name: str, keys: t.Callable[[Obj], t.Iterable[str]], *,
               first: t.Literal[True]) -> dict[str, Obj]: ...

    @t.overload
    def _index(self, kind: str, data_source_uuid: str, name: str, keys: t.Callable[[Obj], t.Iterable[str]], *,
               first: t.Literal[False] = False) -> dict[str, list[Obj]]: ...

    def _index(self, kind: str, data_source_uuid: str, name: str, keys: t.Callable[[Obj], t.Iterable[str]], *,
               first: bool = False) -> dict[str, t.Any]:
        """An index of one listing, built once (a row never scans the whole listing: 50,000 rows stay linear);
        `first`: one object per key, the first listed.
        """
        with self._lock:
            found = self._indexes.get((kind, data_source_uuid, name))
            if found is None:
                found = {}
                for obj in self._objects.get((kind, data_source_uuid), []):
                    for key in keys(obj):
                        if first:
                            found.setdefault(key, obj)
                        else:
                            found.setdefault(key, []).append(obj)
                self._indexes[(kind, data_source_uuid, name)] = found
            return found

    def count(self) -> int:
        """How many objects were listed in all."""
        with self._lock:
            return sum(len(objects) for objects in self._objects.values())
