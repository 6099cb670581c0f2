"""Contacts against ChartMogul's contacts listing, paired as the writing path pairs them without a sync memory.

ChartMogul's contact reads answer no `external_id` (every recording), so a held contact is
recognised by what it answers, within its customer (`mapping/contacts.py`: `pair`, the surest
matches first: answered external id, email and name, email, name); with `match_by: email` by its
email within the customer. Fields go through `compare.contact_differences` and the custom
attributes through `compare.custom_attribute_differences`, the writing path's rule.

`extra`: where every contacts stream is a complete full-table version matched by external id, a
held contact of the data source that no row paired; a deleted row's contact, where ChartMogul
answers its external id.
"""

from __future__ import annotations

import typing as t

from target_chartmogul.mapping.contacts import answered_id, pair
from target_chartmogul.reconcile.findings import Finding, Findings, key_text
from target_chartmogul.reconcile.objects import brief
from target_chartmogul.values import compare

if t.TYPE_CHECKING:
    from target_chartmogul.mapping.contacts import ContactPayload
    from target_chartmogul.reconcile.listings import Listings
    from target_chartmogul.reconcile.source import Key, Row, Source

Obj = dict[str, t.Any]


def contact_body(payload: ContactPayload) -> Obj:
    """The contact's fields and custom attributes (its customer named as the row names it): a `missing` line."""
    body: Obj = {"customer_external_id": payload.customer_external_id, "customer_uuid": payload.customer_uuid,
                 "external_id": payload.external_id, **payload.fields}
    if payload.custom:
        body["custom"] = {key: value for key, (_, value) in payload.custom.items()}
    return {k: v for k, v in body.items() if v is not None}


def contact_differences(payload: ContactPayload, held: Obj) -> list[compare.Difference]:
    """Standard fields and custom attributes (`custom.<key>`) of one contact."""
    found = compare.contact_differences(payload.fields, held)
    found += [compare.Difference(f"custom.{d.name}", d.ours, d.held)
              for d in compare.custom_attribute_differences(payload.custom, held.get("custom"))]
    return found


def of_customer(payload: ContactPayload, listings: Listings, ds: str) -> list[Obj]:
    """The held contacts of the payload's customer (by the customer's external id, or its uuid)."""
    if payload.customer_external_id is not None:
        field, value = "customer_external_id", payload.customer_external_id
    else:
        field, value = "customer_uuid", str(payload.customer_uuid)
    return [c for c in listings.by_field("contact", ds, field).get(value.casefold(), []) if c.get(field) == value]


def paired(rows: list[tuple[Key, Row]], held: list[Obj], by_email: bool) -> dict[Key, Obj]:
    """Which held contact (of one customer) each row is: by email, or `mapping.contacts.pair`'s surest matches."""
    if by_email:
        found: dict[Key, Obj] = {}
        for key, row in rows:
            email = str(row.payload.email).casefold()
            match = next((c for c in held if str(c.get("email") or "").casefold() == email and c not in found.values()), None)
            if match is not None:
                found[key] = match
        return found
    pairs = pair([row.payload for _, row in rows], held)
    return {rows[i][0]: held[j] for i, j in pairs.items()}


class ContactComparison:
    """Compares the input's contacts with ChartMogul's, into findings."""

    def __init__(self, source: Source, listings: Listings, findings: Findings, default_ds: str | None) -> None:
        self.source = source
        self.listings = listings
        self.findings = findings
        self.default_ds = default_ds

    def run(self) -> None:
        """Pair every row within its customer, then: missing, or one finding per differing field; then extras."""
        rows = sorted(self.source.of("contacts").items())
        matches: dict[Key, Obj] = {}
        for ds in sorted(self.source.data_sources("contacts")):
            held = self.listings.objects("contact", ds)
            self.findings.tally("contacts").chartmogul += len(held)
            groups: dict[tuple[str | None, str | None, bool], list[tuple[Key, Row]]] = {}
            for key, row in rows:
                if key[0] == ds:
                    payload = row.payload
                    group = (payload.customer_external_id, payload.customer_uuid, row.settings.match_by == "email")
                    groups.setdefault(group, []).append((key, row))
            for (_, _, by_email), members in groups.items():
                matches.update(paired(members, of_customer(members[0][1].payload, self.listings, ds), by_email))
        for key, row in rows:
            self.findings.tally("contacts").source += 1
            text = key_text(key[0], key[1], self.default_ds)
            match = matches.get(key)
            if match is None:
                self.findings.add(Finding("contacts", text, "missing", source=contact_body(row.payload)))
                continue
            self.findings.extend(Finding("contacts", text, "different", d.name, d.ours, d.held)
                                 for d in contact_differences(row.payload, match))
        self.extras(rows, matches)

    def extras(self, rows: list[tuple[Key, Row]], matches: dict[Key, Obj]) -> None:
        """Held contacts that the source deleted (by answered external id), or that no row of a complete stream
        keyed by external id paired.
        """
        complete = self.source.is_complete("contacts") and all(r.settings.match_by == "external_id" for _, r in rows)
        taken = {str(c.get("uuid")) for c in matches.values()}
        present = {key for key, _ in rows} | self.source.refused.get("contacts", set())
        deleted = self.source.deleted.get("contacts", set())
        for ds in sorted(self.source.data_sources("contacts")):
            for contact in self.listings.objects("contact", ds):
                ext = answered_id(contact)
                gone = ext is not None and (ds, ext) in deleted
                unpaired = str(contact.get("uuid")) not in taken and (ext is None or (ds, ext) not in present)
                if gone or (complete and unpaired):
                    key = key_text(ds, ext or str(contact.get("uuid")), self.default_ds)
                    self.findings.add(Finding("contacts", key, "extra", chartmogul=brief(contact)))
