"""Walks of a newest-first listing that stop once they saw what they wait for.

ChartMogul lists invoices and subscription events newest first, behind a cursor that is a keyset
(creation time and uuid, or the event's id: chartmogul-ruby's recorded paginations of
`/invoices` and `/subscription_events`), and works on a data source's imports one after another.
So what an import just brought sits at the head of the listing, above what earlier imports
brought. A walk begun as soon as an import is seen to have finished reads from the head and stops
at the end of the page where it saw each object it waits for, while ChartMogul still processes the
later imports; walks of later imports go beside it. The listings then cost about what one full
listing costs (one read per 200 objects, plus the page where two walks meet), and most of them are
read before the last import finishes instead of after it.

Imports are numbered as they are sent (one at a time, so in the order ChartMogul receives them).
An import seen to have finished means every earlier one did. A walk's first page shows the newest
import stored when it began: the imports between that one and those it was begun for lie between
its head and what it waits for, so it adopts them, and they get no walk of their own.

A walk proves presence only. What it did not see stays waiting, and the verification settles it
with a full listing (or lookups): an object ChartMogul did not store, or a listing in another
order. A walk whose first object is older than what it waits for, or none that this flush sent,
shows that the listing is not newest first; a walk that ends without seeing all it waits for
(after `budget` pages: what it waits for and what was in flight when it began) stops the others of
its listing, and no further walk of it is begun in the flush.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import functools
import queue
import threading
import typing as t

from target_chartmogul.api.answers import external_ids_in
from target_chartmogul.api.resources import listing
from target_chartmogul.memory.holdings import identified

if t.TYPE_CHECKING:
    from target_chartmogul.api.resources import Pages
    from target_chartmogul.bulk.entries import Entry

Obj = dict[str, t.Any]
Listing = tuple[str, str]  # (data source, kind)
PAGE = 200  # ChartMogul's largest page: the walk counts pages by it
NEWEST_FIRST = {"invoices": "invoice", "subscription_events": "subscription_event"}  # listings recorded newest first
AT_ONCE = 4  # walks reading at once (with the polls, within 40 requests/s)
SEEN, ORDER, BUDGET, END = "seen", "order", "budget", "end"  # how a walk ended
IDENTIFIERS = ("uuid", "id", "external_id", "external_ids", "data_source_uuid", "data_source_uuids")
NESTED = ("line_items", "transactions")
STOP_CHECK = 0.05  # how often a wait for pages looks whether walks are still under way


@dataclasses.dataclass(frozen=True)
class Ended:
    """The last item a walk puts on its queue: why it stopped, and how many pages it read."""

    outcome: str
    pages: int


def identified_only(obj: Obj) -> Obj:
    """What the matching of a walked object reads (its identifiers, and those of its line items and transactions):
    pages wait in memory until the main thread takes them, so they hold no more.
    """
    kept = {key: obj[key] for key in IDENTIFIERS if key in obj}
    for nested in NESTED:
        if isinstance(obj.get(nested), list):
            kept[nested] = [{key: one.get(key) for key in ("uuid", "external_id")} if isinstance(one, dict) else one
                            for one in obj[nested]]
    return identified(kept)


def pages_for(objects: int) -> int:
    """The most pages a walk for `objects` objects may read: theirs, and one where it meets older objects."""
    return -(-objects // PAGE) + 1


def walk(objects: t.Iterator[Obj], ds: str, wanted: t.AbstractSet[str], heads: t.Callable[[list[str]], bool], budget: int,
         put: t.Callable[[list[Obj]], None], stop: threading.Event, seen: t.Callable[[list[str]], None],
         adopt: t.Callable[[set[str]], set[str]] = lambda head: set()) -> Ended:
    """Read a listing (newest first) page by page, each handed to `put`, until every id in `wanted` was seen. `heads`:
    whether an object's ids may head the listing (else it is not newest first); `seen` is told each object's ids; `adopt`,
    told the ids of the first page, names more ids to wait for (those of imports that finished before the walk began,
    which lie between its head and what it waits for). Stops at the end of the page where the last wanted one was
    seen (the next page is never asked for), after `budget` pages, at the end of the listing, or when `stop` is set.
    """
    remaining = set(wanted)
    page: list[Obj] = []
    head: set[str] = set()
    pages = 0
    outcome = END
    for obj in objects:
        ids = external_ids_in(obj, ds)
        if not pages and not page and not heads(ids):
            outcome = ORDER  # the page read is matched all the same; no next one is asked for
        page.append(identified_only(obj))
        remaining.difference_update(ids)
        seen(ids)
        if not pages:
            head.update(ids)
        if len(page) == PAGE:
            put(page)
            page = []
            pages += 1
            if pages == 1 and outcome != ORDER:
                remaining |= adopt(head) - head
            if outcome == ORDER or not remaining or pages >= budget or stop.is_set():
                break
    if page:
        put(page)
        pages += 1
        if pages == 1 and outcome != ORDER:
            remaining |= adopt(head) - head
    if outcome != ORDER:
        outcome = SEEN if not remaining else BUDGET if pages >= budget else END
    return Ended(outcome, pages)


class Walks:
    """The walks of one flush, begun as its imports finish (in the thread that polled them) and read in worker threads;
    their pages wait until the main thread takes them (`pages`).

    Imports are numbered as they are sent. A walk waits for the imports it was begun for; its first page shows the
    newest import stored when it began, and every import sent between those was stored before it too (ChartMogul
    works on a data source's imports one after another), so lies between its head and what it waits for: the walk
    adopts them, and no walk of their own is begun when they are seen to finish. If that order does not hold, the
    walk does not see all it waits for and the full listing settles it.
    """

    def __init__(self, client: Pages, carrying: t.Callable[[str, str], int]) -> None:
        self.client = client
        self.carrying = carrying  # objects of a kind that imports being sent or processing carry into a data source
        self.pages_read = 0
        self.out: queue.Queue[t.Any] = queue.Queue()  # (data source, kind, page), Ended, or an exception
        self._lock = threading.Lock()
        self._sent: dict[str, int] = collections.defaultdict(int)  # imports sent per data source
        self._number: dict[Listing, dict[str, int]] = collections.defaultdict(dict)  # id -> its import's number
        self._ids: dict[Listing, dict[int, set[str]]] = collections.defaultdict(dict)  # number -> ids, until walked for
        self._covered: dict[Listing, set[int]] = collections.defaultdict(set)  # imports a walk waits for
        self._pending: dict[Listing, dict[int, set[str]]] = collections.defaultdict(dict)  # finished, not walked yet
        self._seen: dict[Listing, set[str]] = collections.defaultdict(set)  # read before their import was walked for
        self._walking: collections.Counter[Listing] = collections.Counter()
        self._heading: collections.Counter[Listing] = collections.Counter()  # walks whose first page is on its way
        self._stops: dict[Listing, threading.Event] = collections.defaultdict(threading.Event)
        self._refuted: set[Listing] = set()  # found not newest first
        self._missed: set[Listing] = set()  # a walk ended without seeing all it waited for
        self._closed = False
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=AT_ONCE, thread_name_prefix="bulk-walk")

    def sending(self, ds: str, entries: t.Iterable[Entry]) -> None:
        """An import is being sent: its objects may head the listings from now on."""
        with self._lock:
            number = self._sent[ds] = self._sent[ds] + 1
            for kind, ids in walked_ids(entries).items():
                self._ids[ds, kind][number] = ids
                self._number[ds, kind].update(dict.fromkeys(ids, number))

    def finished(self, ds: str, entries: t.Iterable[Entry]) -> None:
        """An import finished (called where it was polled): walk for what it brought, and for what the imports sent
        before it brought (finished before it), unless a walk waits for them already.
        """
        with self._lock:
            for kind, ids in walked_ids(entries).items():
                key = (ds, kind)
                number = self._number_of(key, ids)
                covered, pending = self._covered[key], self._pending[key]
                pending.update({earlier: self._ids[key][earlier] for earlier in self._ids[key]
                                if earlier <= number and earlier not in covered})
                self._begin(key)

    def refused(self, entries: t.Iterable[Entry]) -> None:
        """ChartMogul refused an import request: nothing it carried is walked for."""
        with self._lock:
            for kind, ids in walked_ids(entries).items():
                for key in [key for key in self._number if key[1] == kind]:
                    if number := self._number_of(key, ids):
                        self._ids[key].pop(number, None)
                        self._covered[key].add(number)

    def _number_of(self, key: Listing, ids: t.Iterable[str]) -> int:
        """The number of the import that sent these ids (0: none of this flush's)."""
        numbers = self._number[key]
        return next((numbers[one] for one in ids if one in numbers), 0)

    def last(self, ds: str, kind: str, wanted: t.Iterable[str]) -> None:
        """Walk for these ids too (nothing is in flight any more: what no walk looked for, or saw whole)."""
        with self._lock:
            self._pending[ds, kind][-1] = set(wanted)
            self._begin((ds, kind))

    def _begin(self, key: Listing) -> None:
        """A walk for the imports that finished and no walk waits for, unless `AT_ONCE` are under way; under `_lock`."""
        ds, kind = key
        stop = self._stops[key]
        if (self._closed or stop.is_set() or self._walking[key] >= AT_ONCE or self._heading[key]
                or not self._pending[key]):
            return  # (a walk whose first page is on its way may adopt what is pending: it begins after that page)
        pending = self._pending.pop(key)
        seen = self._seen[key]
        wanted = set().union(*pending.values()) - seen
        seen.difference_update(*pending.values())  # settled: seen, or wanted now
        self._covered[key].update(pending)
        for number in pending:
            self._ids[key].pop(number, None)
        if not wanted:
            return
        self._walking[key] += 1
        self._heading[key] += 1
        budget = pages_for(len(wanted) + self.carrying(ds, kind))
        pages = functools.partial(self._put, ds, kind)
        objects = listing(self.client, NEWEST_FIRST[kind], {"data_source_uuid": ds})
        self._pool.submit(self._walk, key, objects, wanted, (min(pending), max(pending)), budget, pages, stop)

    def _walk(self, key: Listing, objects: t.Iterator[Obj], wanted: set[str], imports: tuple[int, int], budget: int,
              pages: t.Callable[[list[Obj]], None], stop: threading.Event) -> None:
        """One walk (a worker thread); when it ends, the next begins for what finished meanwhile."""
        numbers = self._number[key]
        oldest, newest = imports  # the numbers of the imports it waits for
        headed = False

        def adopt(head: set[str]) -> set[str]:
            nonlocal headed
            headed = True
            return self._adopt(key, newest, head)

        def heads(ids: list[str]) -> bool:
            """What heads a newest-first listing: what the walk waits for, or what the flush sent after it."""
            return any(one in wanted or numbers.get(one, -2) >= oldest for one in ids)

        ended: Ended | BaseException
        try:
            ended = walk(objects, key[0], wanted, heads, budget, pages, stop, lambda ids: self._saw(key, ids), adopt)
        except BaseException as exc:  # raised again where the pages are taken
            ended = exc
        with self._lock:
            self._walking[key] -= 1
            self._heading[key] -= 0 if headed else 1
            if isinstance(ended, Ended):
                self.pages_read += ended.pages
                if ended.outcome == ORDER:
                    self._refuted.add(key)
                elif ended.outcome != SEEN:
                    self._missed.add(key)
            if not isinstance(ended, Ended) or ended.outcome != SEEN:
                stop.set()
            self._begin(key)
            self.out.put(ended)

    def _saw(self, key: Listing, ids: list[str]) -> None:
        """A walk read these: credited to imports no walk waits for yet."""
        numbers = self._number[key]
        with self._lock:
            covered = self._covered[key]
            self._seen[key].update(one for one in ids if one in numbers and numbers[one] not in covered)

    def _adopt(self, key: Listing, newest: int, head: set[str]) -> set[str]:
        """The ids of the imports sent after the newest a walk was begun for, up to the newest in its head (the walk
        waits for them too); the walks its first page held back may begin now.
        """
        numbers = self._number[key]
        with self._lock:
            self._heading[key] -= 1
            top = max((numbers.get(one, 0) for one in head), default=0)
            adopted = [number for number in range(newest + 1, top + 1) if number not in self._covered[key]]
            self._covered[key].update(adopted)
            for number in adopted:
                self._pending[key].pop(number, None)
            self._begin(key)
            return set().union(*(self._ids[key].pop(number, set()) for number in adopted))

    def _put(self, ds: str, kind: str, page: list[Obj]) -> None:
        """A walk's page, named by its listing, for the main thread."""
        self.out.put((ds, kind, page))

    def busy(self) -> bool:
        """Whether a walk is under way."""
        with self._lock:
            return any(self._walking.values())

    def pages(self, *, wait: bool = False) -> t.Iterator[tuple[str, str, list[Obj]]]:
        """(data source, kind, page) read so far, or (`wait`) every page until no walk is under way."""
        while True:
            try:
                item = self.out.get(timeout=STOP_CHECK) if wait else self.out.get_nowait()
            except queue.Empty:
                if wait and (self.busy() or not self.out.empty()):  # busy: more to come; else all of it was put
                    continue
                return
            if isinstance(item, BaseException):
                raise item
            if not isinstance(item, Ended):
                yield item

    def not_newest_first(self) -> list[tuple[str, str]]:
        """(data source, kind) of the listings a walk found not to begin with what the flush sent."""
        return sorted(self._refuted)

    def missed(self) -> list[tuple[str, str]]:
        """(data source, kind) of the listings where a walk ended without seeing all it waited for."""
        return sorted(self._missed)

    def close(self) -> None:
        """Stop every walk (a run that stops while imports are processing, or the end of the flush)."""
        with self._lock:
            self._closed = True
            for key in list(self._stops):
                self._stops[key].set()
        self._pool.shutdown(wait=True, cancel_futures=True)


def walked_ids(entries: t.Iterable[Entry]) -> dict[str, set[str]]:
    """The external ids of the entries' objects, per newest-first kind (what walks look for)."""
    found: dict[str, set[str]] = collections.defaultdict(set)
    for entry in entries:
        for kind, external_id in entry.objects:
            if kind in NEWEST_FIRST:
                found[kind].add(external_id)
    return found
