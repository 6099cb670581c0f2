"""Customers, plans and subscription events: each source row against ChartMogul's listed copy.

Every field goes through the writing path's one rule for "changed" (`values/compare.py`):
`""` equals null, dates to the second in UTC, amounts in cents, custom attributes by their
type, tags as the stream's `tags_mode` sees them (`exact`: ChartMogul's tags mirror the
column; `managed`: every tag of the column is there, tags ChartMogul or people added are
no difference). A row is found as a write finds it: by external id within its data source,
or by email (every customer of the data source with that email), or by uuid. Contacts, which
ChartMogul's reads answer without their external id, are paired in `reconcile/contacts.py`.
"""

from __future__ import annotations

import dataclasses
import typing as t

from target_chartmogul.api.answers import external_ids_in
from target_chartmogul.mapping.customers import DATE_FIELDS, CustomerPayload
from target_chartmogul.reconcile.findings import Finding, Findings, key_text
from target_chartmogul.values import compare
from target_chartmogul.values.text import is_blank

if t.TYPE_CHECKING:
    from target_chartmogul.mapping.plans import PlanPayload
    from target_chartmogul.mapping.subscription_events import EventPayload
    from target_chartmogul.reconcile.listings import Listings
    from target_chartmogul.reconcile.source import Key, Row, Source

Obj = dict[str, t.Any]
# What an extra object's line shows of ChartMogul's copy: enough to find it, nothing a comparison does not read.
BRIEF = ("uuid", "external_id", "name", "email", "first_name", "last_name", "customer_external_id", "event_type",
         "event_date", "date", "interval_count", "interval_unit")


def brief(held: Obj) -> Obj:
    """The identifying fields of a ChartMogul object, for an `extra` line."""
    return {name: held[name] for name in BRIEF if not is_blank(held.get(name))}


# What a write would send, for a `missing` line -------------------------------------------------
def customer_body(payload: CustomerPayload) -> Obj:
    """The customer as a create would send it."""
    return payload.create_body()


# Field by field ---------------------------------------------------------------------------------
def customer_differences(row: Row, held: Obj) -> list[compare.Difference]:
    """Standard fields, custom attributes (`custom.<key>`) and tags of one customer."""
    payload: CustomerPayload = row.payload
    found = compare.customer_differences(payload.fields, held, DATE_FIELDS)
    attributes = held.get("attributes") or {}
    custom = {key: (attribute.type, attribute.value) for key, attribute in payload.custom.items()}
    found += [compare.Difference(f"custom.{d.name}", d.ours, d.held)
              for d in compare.custom_attribute_differences(custom, attributes.get("custom"))]
    if payload.tags is not None:
        tags = [str(tag) for tag in attributes.get("tags") or []]
        add, remove = compare.tag_changes(payload.tags, tags, None, exact=row.settings.tags_mode == "exact")
        if add or remove:
            found.append(compare.Difference("tags", payload.tags, tags))
    return found


def plan_differences(row: Row, held: Obj) -> list[compare.Difference]:
    """Name and interval of one plan."""
    plan: PlanPayload = row.payload
    return compare.plan_differences(plan.body(), held)


def event_differences(row: Row, held: Obj) -> list[compare.Difference]:
    """Every field ChartMogul answers for one subscription event."""
    event: EventPayload = row.payload
    return compare.event_differences(event.fields, held)


# Finding the held copy ----------------------------------------------------------------------------
def find_customers(key: Key, row: Row, listings: Listings) -> list[Obj]:
    """The customers a write would update: by external id, by uuid, or every one with the email."""
    ds, name = key
    payload: CustomerPayload = row.payload
    if row.settings.match_by == "email":
        return listings.by_field("customer", ds, "email").get(str(payload.email).casefold(), [])
    if row.settings.match_by == "uuid":
        return listings.by_field("customer", ds, "uuid").get(str(payload.uuid).casefold(), [])
    found = listings.by_external_id("customer", ds).get(name)
    return [found] if found is not None else []


def find_by_external_id(kind: str) -> t.Callable[[Key, Row, Listings], list[Obj]]:
    """Plans and subscription events: by external id within the data source."""

    def find(key: Key, row: Row, listings: Listings) -> list[Obj]:
        found = listings.by_external_id(kind, key[0]).get(key[1])
        return [found] if found is not None else []

    return find


@dataclasses.dataclass(frozen=True)
class ObjectKind:
    """How one object kind is reconciled: the listing that holds it, how a row finds its copy, what is compared."""

    name: str  # the object ("customers")
    listing: str  # the listing kind ("customer")
    find: t.Callable[[Key, Row, Listings], list[Obj]]
    differences: t.Callable[[Row, Obj], list[compare.Difference]]
    body: t.Callable[[t.Any], Obj]  # what a write would send (a `missing` line's source)


KINDS = (
    ObjectKind("plans", "plan", find_by_external_id("plan"), plan_differences, lambda plan: plan.body()),
    ObjectKind("customers", "customer", find_customers, customer_differences, customer_body),
    ObjectKind("subscription_events", "subscription_event", find_by_external_id("subscription_event"),
               event_differences, lambda event: event.create_body()["subscription_event"]),
)


class Comparison:
    """Compares the rows of object kinds with ChartMogul's listed copies, into findings."""

    def __init__(self, source: Source, listings: Listings, findings: Findings, default_ds: str | None) -> None:
        self.source = source
        self.listings = listings
        self.findings = findings
        self.default_ds = default_ds

    def key(self, key: Key) -> str:
        """A finding's key for a source key."""
        return key_text(key[0], key[1], self.default_ds)

    def rows(self, kind: ObjectKind) -> None:
        """Each row of the kind: missing, or one finding per field that differs (per copy, when several match)."""
        tally = self.findings.tally(kind.name)
        for key, row in sorted(self.source.of(kind.name).items()):
            tally.source += 1
            copies = kind.find(key, row, self.listings)
            if not copies:
                self.findings.add(Finding(kind.name, self.key(key), "missing", source=kind.body(row.payload)))
            for held in copies:
                self.findings.extend(Finding(kind.name, self.key(key), "different", d.name, d.ours, d.held)
                                     for d in kind.differences(row, held))

    def extras(self, kind: ObjectKind, *, by_external_id: bool = True) -> None:
        """What ChartMogul holds that the source deleted, and, where every stream of the kind is a complete
        full-table version keyed by external id, what no row has.
        """
        complete = by_external_id and self.source.is_complete(kind.name)
        present = set(self.source.of(kind.name)) | self.source.refused.get(kind.name, set())
        deleted = self.source.deleted.get(kind.name, set())
        for ds in sorted(self.source.data_sources(kind.name)):
            held = self.listings.objects(kind.listing, ds)
            self.findings.tally(kind.name).chartmogul += len(held)
            for obj in held:
                ids = external_ids_in(obj, ds)
                gone = [ext for ext in ids if (ds, ext) in deleted]
                if gone or (complete and ids and not any((ds, ext) in present for ext in ids)):
                    self.findings.add(Finding(kind.name, self.key((ds, (gone or ids)[0])), "extra",
                                              chartmogul=brief(obj)))

    def run(self, kind: ObjectKind) -> None:
        """Rows, then extras, of one kind (extras only by external id: other keys cannot tell what is extra)."""
        self.rows(kind)
        by_external_id = all(row.settings.match_by == "external_id" for row in self.source.of(kind.name).values())
        self.extras(kind, by_external_id=by_external_id)
