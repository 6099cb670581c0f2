"""Packing entries into import requests: by customer, within ChartMogul's size and customer limits.

ChartMogul takes at most 5 MB of JSON and recommends at most 1,000 customers per import,
and asks that one customer's records never be in two imports processed at once. Entries
arrive customer by customer (from the spool); a request is closed as soon as the next
customer would not fit. A customer whose records alone exceed the size goes in several
requests, sent one after another (`wave` > 0 waits for everything before it).
"""

from __future__ import annotations

import dataclasses
import typing as t

from target_chartmogul.bulk.entries import KINDS, Entry, Obj
from target_chartmogul.values.encoding import dumps

MAX_BYTES = 5_000_000  # "up to 5 MB"; below 5 MiB too
MAX_CUSTOMERS = 1000
MIN_CUSTOMERS = 100  # ChartMogul's advice: 100 to 1,000 customers per import
SPREAD = 8  # a flush's customers go in at least this many imports (within the advice)
ENVELOPE_BYTES = 200  # the body's keys, brackets and external_id
Unit = list[Entry]  # an entry and the entries that fail with it (an invoice and its lines)


def customers_per_request(waiting: int) -> tuple[int, int]:
    """Customers in the first import and in each of the others, for a flush of `waiting` customers: up to eight
    imports of at least 100 customers (or as many of 1,000 as it takes), the first and the last of 100.

    ChartMogul works on one data source's imports one after another, each after its own wait in the queue: a small
    first import is queued soonest, and its wait overlaps the building of the others; a small last one is built
    and processed soonest once the others are sent (a first load of 2,000 customers: 100, 6 of 300, then the
    100 left; 250: 100 and 150; 120: one of 120).
    """
    imports = max(1, min(SPREAD, waiting // MIN_CUSTOMERS), -(-waiting // MAX_CUSTOMERS))
    if imports == 1:
        return max(1, waiting), max(1, waiting)
    if imports == 2:
        return MIN_CUSTOMERS, waiting - MIN_CUSTOMERS
    middle = waiting - 2 * MIN_CUSTOMERS  # the first and the last
    return MIN_CUSTOMERS, -(-middle // max(imports - 2, -(-middle // MAX_CUSTOMERS)))


def unit_size(unit: Unit) -> int:
    """Bytes the unit's objects add to a request body (each object and its comma): encoded as one list, whose
    brackets and `, ` separators are taken off again (one encoder call per unit, not per object).
    """
    bodies = [body for entry in unit for kind_bodies in entry.bodies.values() for body in kind_bodies]
    return len(dumps(bodies)) - len(bodies) if bodies else 0


@dataclasses.dataclass
class ImportRequest:
    """One import request of one data source."""

    data_source_uuid: str
    wave: int = 0
    entries: list[Entry] = dataclasses.field(default_factory=list)
    customers: set[str] = dataclasses.field(default_factory=set)
    size: int = ENVELOPE_BYTES

    def add(self, unit: Unit, size: int) -> None:
        """Add a unit; its children point at its first entry."""
        base = len(self.entries)
        for offset, entry in enumerate(unit):
            entry.parent = base if offset else None
            self.entries.append(entry)
        self.customers.add(unit[0].customer)
        self.size += size

    def body(self, external_id: str) -> dict[str, t.Any]:
        """The JSON body: flat arrays of every kind present."""
        arrays: dict[str, list[Obj]] = {}
        for entry in self.entries:
            for kind, bodies in entry.bodies.items():
                arrays.setdefault(kind, []).extend(bodies)
        return {"external_id": external_id, **{kind: arrays[kind] for kind in KINDS if kind in arrays}}

    def counts(self) -> dict[str, int]:
        """Objects per kind (for progress lines)."""
        counts: dict[str, int] = {}
        for entry in self.entries:
            for kind, _ in entry.objects:
                counts[kind] = counts.get(kind, 0) + 1
        return counts


def pack(
    customers: t.Iterable[tuple[str, str, list[Unit]]],
    *,
    max_bytes: int = MAX_BYTES,
    max_customers: int = MAX_CUSTOMERS,
    first_customers: int | None = None,
    too_large: t.Callable[[Unit], None],
) -> t.Iterator[ImportRequest]:
    """Requests of wave 0 as they fill up, then the later waves of customers too large for one request.

    A data source's first request closes at `first_customers` (default `max_customers`): a small first import
    reaches ChartMogul's queue sooner, and its wait there overlaps the building of the others.
    """
    current: dict[str, ImportRequest] = {}
    opened: set[str] = set()
    later: list[ImportRequest] = []
    for ds, _customer, units in customers:
        sized = _sized(units, max_bytes, too_large)
        if not sized:
            continue
        total = sum(size for _, size in sized)
        request = current.get(ds)
        limit = max_customers if ds in opened or first_customers is None else min(first_customers, max_customers)
        if request is not None and (request.size + total > max_bytes or len(request.customers) >= limit):
            yield request
            opened.add(ds)
            request = None
        if request is None:
            request = current[ds] = ImportRequest(ds)
        if request.size + total <= max_bytes:
            for unit, size in sized:
                request.add(unit, size)
            continue
        later.extend(_split(ds, sized, request, max_bytes))  # one customer larger than a request
    yield from current.values()
    yield from later


def _sized(units: list[Unit], max_bytes: int, too_large: t.Callable[[Unit], None]) -> list[tuple[Unit, int]]:
    """Each unit with its size; one that no request could hold is handed to `too_large` instead."""
    sized = []
    for unit in units:
        size = unit_size(unit)
        if size + ENVELOPE_BYTES > max_bytes:
            too_large(unit)
        else:
            sized.append((unit, size))
    return sized


def _split(ds: str, sized: list[tuple[Unit, int]], first: ImportRequest, max_bytes: int) -> list[ImportRequest]:
    """Fill `first`, then one request per wave with the rest of this customer's units."""
    waves: list[ImportRequest] = []
    request = first
    for unit, size in sized:
        if request.size + size > max_bytes:
            request = ImportRequest(ds, wave=len(waves) + 1)
            waves.append(request)
        request.add(unit, size)
    return waves
