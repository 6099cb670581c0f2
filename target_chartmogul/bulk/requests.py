"""Packing entries into import requests: by customer, within ChartMogul's size and customer limits.

ChartMogul takes at most 5 MB of JSON (5,000,000 bytes of the UTF-8 body as sent: each object is
encoded once, its bytes counted with the separator before it, and the body is those bytes joined)
and recommends at most 1,000 customers per import,
and asks that one customer's records never be in two imports processed at once. Entries
arrive customer by customer (from the spool); a request is closed as soon as the next
customer would not fit. A customer whose records alone exceed the size goes in several
requests, sent one after another (`wave` > 0 waits for everything before it).
"""

from __future__ import annotations

import dataclasses
import typing as t

from target_chartmogul.bulk.entries import KINDS, Entry
from target_chartmogul.values.encoding import dumps

MAX_BYTES = 5_000_000  # "should not exceed 5MB": bytes of the body as sent
MAX_CUSTOMERS = 1000
MIN_CUSTOMERS = 100  # ChartMogul's advice: 100 to 1,000 customers per import
SPREAD = 8  # a flush's customers go in at least this many imports (within the advice)
EXTERNAL_ID_PREFIX = "target-chartmogul-"
EXTERNAL_ID_LENGTH = len(EXTERNAL_ID_PREFIX) + 32  # a uuid4 in hex after the prefix
SEPARATOR = b", "
Unit = list[Entry]  # an entry and the entries that fail with it (an invoice and its lines)
Record = dict[str, t.Any]


def _array_head(kind: str) -> bytes:
    return f', "{kind}": ['.encode()


def encode_body(external_id: str, arrays: t.Mapping[str, list[bytes]]) -> bytes:
    """The request body: `{"external_id": …, "<kind>": [objects…], …}`, each object already encoded."""
    parts = [b'{"external_id": ', dumps(external_id).encode()]
    for kind in KINDS:
        if arrays.get(kind):
            parts += [_array_head(kind), SEPARATOR.join(arrays[kind]), b"]"]
    parts.append(b"}")
    return b"".join(parts)


# The body without objects but with every kind's array and an external id of the length sent: what a request's
# objects are added to (each counted with a separator, so at most one separator per array is counted in excess).
ENVELOPE_BYTES = len(encode_body("x" * EXTERNAL_ID_LENGTH, {})) + sum(len(_array_head(kind)) + 1 for kind in KINDS)


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
    """Bytes the unit's objects add to a request body, each with the separator before it; each object is encoded
    here, once, and kept encoded in its entry for the body.
    """
    size = 0
    for entry in unit:
        entry.encoded = {kind: [dumps(body).encode("utf-8") for body in bodies] for kind, bodies in entry.bodies.items()}
        size += sum(len(data) + len(SEPARATOR) for encoded in entry.encoded.values() for data in encoded)
    return size


@dataclasses.dataclass
class ImportRequest:
    """One import request of one data source."""

    data_source_uuid: str
    wave: int = 0
    entries: list[Entry] = dataclasses.field(default_factory=list)
    customers: set[str] = dataclasses.field(default_factory=set)
    size: int = ENVELOPE_BYTES
    # (stream, record) of what its objects depend on and the body cannot carry: written through REST before it is sent
    before: list[tuple[str, Record]] = dataclasses.field(default_factory=list)

    def add(self, unit: Unit, size: int) -> None:
        """Add a unit; its children point at its first entry."""
        base = len(self.entries)
        for offset, entry in enumerate(unit):
            entry.parent = base if offset else None
            self.entries.append(entry)
        self.customers.add(unit[0].customer)
        self.size += size

    def body(self, external_id: str) -> bytes:
        """The JSON body as sent (flat arrays of every kind present); never more than `size` bytes."""
        arrays: dict[str, list[bytes]] = {}
        for entry in self.entries:
            for kind, encoded in entry.encoded.items():
                arrays.setdefault(kind, []).extend(encoded)
        return encode_body(external_id, arrays)

    def counts(self) -> dict[str, int]:
        """Objects per kind (for progress lines)."""
        counts: dict[str, int] = {}
        for entry in self.entries:
            for kind, _ in entry.objects:
                counts[kind] = counts.get(kind, 0) + 1
        return counts


def pack(
    customers: t.Iterable[tuple[str, str, list[Unit], list[tuple[str, Record]]]],
    *,
    max_bytes: int = MAX_BYTES,
    max_customers: int = MAX_CUSTOMERS,
    first_customers: int | None = None,
    too_large: t.Callable[[Unit], None],
) -> t.Iterator[ImportRequest]:
    """Requests of wave 0 as they fill up, then the later waves of customers too large for one request.

    A data source's first request closes at `first_customers` (default `max_customers`): a small first import
    reaches ChartMogul's queue sooner, and its wait there overlaps the building of the others. A customer's
    `before` records go with the request that holds its first unit (or the one being filled).
    """
    current: dict[str, ImportRequest] = {}
    opened: set[str] = set()
    later: list[ImportRequest] = []
    for ds, _customer, units, before in customers:
        sized = _sized(units, max_bytes, too_large)
        total = sum(size for _, size in sized)
        request = current.get(ds)
        limit = max_customers if ds in opened or first_customers is None else min(first_customers, max_customers)
        full = sized and (request is not None and (request.size + total > max_bytes or len(request.customers) >= limit))
        if request is not None and (full or len(request.before) >= max_customers):
            yield request
            opened.add(ds)
            request = None
        if request is None:
            request = current[ds] = ImportRequest(ds)
        request.before.extend(before)
        if not sized:
            continue
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
