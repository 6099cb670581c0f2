"""Contacts: the people at a customer, created, updated and deleted by external id (or by email).

What is the contacts' own: a contact belongs to a customer, found by `customer_uuid` or by
`customer_external_id` in the data source (waiting, like an invoice, for a customer later in
the input); a contact whose customer changed is created anew under that customer and the
old one deleted; ChartMogul may not keep a custom attribute it does not define for contacts
(warned once per key).

A lost memory: ChartMogul's contact reads answer no `external_id` (every recording), so the
data source's contacts are listed once and each row is paired with a held contact of its
customer by external id when one is answered, else by email, else by full name
(`mapping.contacts.pair`), each held contact going to one row at most; the pairs are
compared and remembered. A row paired with none is created only when no unpaired contact of
its customer could be it (`could_be`: none differs from it in a set email or full name);
otherwise it is rejected, and remembered without a uuid so that later runs read its
customer's contacts before creating it. A deleted row with no remembered uuid is matched the
same way (its customer's contacts, or the data source's when it names no customer: one match
only); what cannot be found is warned about and counted `skipped`. ChartMogul has no recorded
duplicate message for contacts: a refused create is a duplicate only if the contact is then
found among its customer's (the lifecycle looks it up).
"""

from __future__ import annotations

import threading
import typing as t

from target_chartmogul.api.resources import delete_if_present, get_or_none, listing
from target_chartmogul.errors import RecordRejected
from target_chartmogul.mapping.common import data_source, optional_text
from target_chartmogul.mapping.contacts import (
    ContactMapper,
    ContactPayload,
    best_matches,
    could_be,
    identity,
    is_copy,
    pair,
)
from target_chartmogul.sinks.base import Unnamed
from target_chartmogul.sinks.lifecycle import Changes, Item, Key, Rules
from target_chartmogul.values import compare

if t.TYPE_CHECKING:
    from target_chartmogul.api.client import Response
    from target_chartmogul.memory.ledger import Entry
    from target_chartmogul.sinks.lifecycle import ObjectSink

Record = dict[str, t.Any]
Contact = dict[str, t.Any]
Person = Item[ContactPayload]
KIND = "contact"


def _same_email(contact: t.Mapping[str, t.Any], email: str | None) -> bool:
    return email is not None and str(contact.get("email") or "").casefold() == email.casefold()


class ContactRules(Rules[ContactPayload]):
    """Contacts, matched by external id or by email within their customer."""

    kind = KIND

    def __init__(self, sink: ObjectSink) -> None:
        super().__init__(sink)
        self.mapper = ContactMapper(self.settings, sink.schema, self.default_data_source, self.logger)
        self._customer_contacts: dict[tuple[str, str], list[Contact]] = {}
        self._by_uuid: dict[str, dict[str, Contact]] = {}
        self._reading: dict[tuple[str, str], threading.Lock] = {}
        self._unkept: set[str] = set()
        self._lock = threading.Lock()
        self._claimed: set[str] = set()  # held contacts paired with a row (or deleted) in this run
        self._paired: dict[Key, Contact | None] = {}  # this batch: row key -> its held contact
        self._doubts: dict[Key, list[str]] = {}  # this batch: row key -> contacts that could be it
        self._unfound: dict[Key, str] = {}  # deleted rows: why their contact was not found
        self._ours: set[str] | None = None

    # Mapping -----------------------------------------------------------------------------------
    def map(self, record: Record) -> ContactPayload:
        """`mapping.contacts`."""
        return self.mapper.map(record)

    def dedupe_key(self, record: Record) -> t.Hashable | None:
        """By email, two rows of one customer with one email are one contact: the last wins."""
        if self.settings.match_by != "email":
            return None
        try:
            email = optional_text(record, "email")
            parts = (data_source(record, self.default_data_source), optional_text(record, "customer_external_id"),
                     optional_text(record, "customer_uuid"))
        except RecordRejected:
            return Unnamed.of(record)
        return Unnamed.of(record) if email is None else (*parts, email.casefold())

    def key(self, payload: ContactPayload) -> Key:
        """External id, or its customer and email, within the data source."""
        return payload.key(self.settings.match_by)

    def fingerprint(self, payload: ContactPayload) -> t.Any:
        """Identity, customer, fields and custom attributes."""
        return payload.fingerprint(self.settings.match_by)

    def body(self, payload: ContactPayload) -> Contact:
        """Create body without a customer (the customer's uuid is found per row: `create`)."""
        return payload.create_body("")

    def patch_body(self, payload: ContactPayload) -> Contact:
        """Every managed field (nulls clear them) and custom attribute."""
        return payload.patch_body()

    # Deciding ----------------------------------------------------------------------------------
    def prepare(self, item: Person) -> None:
        """The contact's customer: as given, or found by external id (waiting for it when the input brings it later)."""
        item.facts["customer"] = self.customer_uuid(item.payload)

    def customer_uuid(self, payload: ContactPayload) -> str:
        """The contact's customer uuid (`Unresolved` while it is not in ChartMogul)."""
        if payload.customer_uuid is not None:
            return payload.customer_uuid
        ds, external_id = payload.data_source_uuid, str(payload.customer_external_id)
        return str(self.context.refs.require("customer", ds, external_id, field="customer_external_id")["uuid"])

    def copy(self, item: Person) -> Contact | None:
        """The listed copy of this run (a lost memory), by the remembered uuid."""
        uuid = str(item.entry.uuid) if item.entry else ""
        held = self.listed(item.payload.data_source_uuid).get(uuid)
        return {**held, "uuid": uuid} if held is not None else None

    def read(self, item: Person) -> Contact | None:
        """ChartMogul's copy by the remembered uuid (None: gone)."""
        uuid = str(item.entry.uuid) if item.entry else ""
        held = get_or_none(self.client, KIND, uuid)
        return {**held, "uuid": uuid} if held is not None else None

    def matches(self, item: Person) -> list[Contact]:
        """The held contact this row was paired with (a lost memory), or found among its customer's by email."""
        key = item.key
        held = self._paired[key] if key in self._paired else self.find(item.payload, item.facts["customer"])
        return [held] if held is not None else []

    def changes(self, item: Person, held: Contact) -> Changes:
        """Its customer (a move), else the fields, the external id (matched by email it takes the record's) and the
        custom attributes ChartMogul holds otherwise.
        """
        payload, customer = item.payload, item.facts["customer"]
        if held.get("customer_uuid") not in (None, customer):
            return {"customer_uuid": (held.get("customer_uuid"), customer)}
        changes: Changes = {name: (held.get(name), payload.fields[name])
                            for name in compare.contact_changes(payload.fields, held)}
        if payload.external_id is not None and held.get("external_id", payload.external_id) != payload.external_id:
            changes["external_id"] = (held.get("external_id"), payload.external_id)
        custom = held.get("custom") or {}
        for key in compare.contact_custom_changes(payload.custom, held.get("custom")):
            changes[f"custom.{key}"] = (custom.get(key), payload.custom[key][1])
        return changes

    def look_up(self, item: Person) -> Contact | None:
        """After a refused create: the customer's contact, read now, that looks exactly like it."""
        copies = self.copies(item.payload, item.facts["customer"])
        return copies[0] if copies else None

    # Writing -----------------------------------------------------------------------------------
    def create(self, item: Person) -> Response:
        """POST the contact, unless held contacts of its customer could be this person (then it is refused)."""
        self.refuse_doubtful(item)
        return self.client.post(str(self.resource.path), item.payload.create_body(item.facts["customer"]))

    def created(self, item: Person, response: Response) -> None:
        """A create answered only on a retry: any second copy ChartMogul saved is deleted."""
        answer = response.body if isinstance(response.body, dict) else {}
        if response.attempts > 1:
            kept = str(answer.get("uuid"))
            for other in self.copies(item.payload, item.facts["customer"]):
                if other.get("uuid") != kept:
                    self.logger.warning("Contact %s was saved twice by a retried create; deleting the copy %s",
                                        item.payload.external_id or item.payload.email, other.get("uuid"))
                    delete_if_present(self.client, KIND, other["uuid"])
        self.check_kept(item.payload, answer)

    def update(self, item: Person, held: Contact, changes: Changes) -> Contact | None:
        """PATCH what differs; a contact whose customer changed is created anew under it, the old one deleted."""
        if "customer_uuid" in changes:
            return self.moved(item, str(held["uuid"]))
        payload = item.payload
        body: Contact = {name: new for name, (_, new) in changes.items() if name in payload.fields or name == "external_id"}
        custom = [name.removeprefix("custom.") for name in changes if name.startswith("custom.")]
        if custom:
            body["custom"] = payload.custom_body(custom)
        answer = self.client.patch(f"contacts/{held['uuid']}", body).body or {}
        self.check_kept(payload, answer)
        return None

    def update_known(self, item: Person, uuid: str) -> Contact | None:
        """PATCH every field by the remembered uuid (moved when ChartMogul's answer names another customer)."""
        answer = self.client.patch(f"contacts/{uuid}", item.payload.patch_body()).body or {}
        self.check_kept(item.payload, answer)
        if answer.get("customer_uuid") not in (None, item.facts["customer"]):
            return self.moved(item, uuid)
        return {**answer, "uuid": uuid}

    def moved(self, item: Person, uuid: str) -> Contact:
        """Delete the contact under its old customer and create it under the record's."""
        delete_if_present(self.client, KIND, uuid)
        answer = self.client.post(str(self.resource.path), item.payload.create_body(item.facts["customer"])).body or {}
        self.check_kept(item.payload, answer)
        return t.cast("Contact", answer)

    def check_kept(self, payload: ContactPayload, answer: Contact) -> None:
        """Warn once per key when ChartMogul did not keep a custom attribute (one not defined for contacts)."""
        held = answer.get("custom")
        if not isinstance(held, dict):
            return
        for key, (_, value) in payload.custom.items():
            if value is not None and key not in held:
                with self._lock:
                    if key in self._unkept:
                        continue
                    self._unkept.add(key)
                self.logger.warning("Stream '%s': ChartMogul did not keep the contact custom attribute '%s'; "
                                    "define it for contacts in ChartMogul", self.sink.stream_name, key)

    # Pairing rows with held contacts (a lost memory) -------------------------------------
    def before(self, items: list[Person]) -> None:
        """Before writing: pair the rows the memory has no uuid for with held contacts of their customer.

        Only where ChartMogul's contacts were listed in this run (a lost memory), or for a row
        remembered without a uuid (left unwritten as ambiguous): a row the memory does not know
        in a data source it does know is a new contact, created without a read.
        """
        self._paired, self._doubts, self._ours = {}, {}, None
        if self.settings.match_by == "email":
            return
        groups: dict[tuple[str, str], list[Person]] = {}
        for item in items:
            entry = item.entry
            if entry is not None and entry.uuid:
                self._claim(entry.uuid)
            elif entry is not None or self.context.refs.holdings.listed(KIND, item.payload.data_source_uuid):
                try:
                    customer = self.customer_uuid(item.payload)
                except RecordRejected:
                    continue  # waits for its customer (or is rejected): paired when it comes back
                groups.setdefault((item.payload.data_source_uuid, customer), []).append(item)
        for (ds, customer), group in groups.items():
            self.pair_group(ds, customer, group)

    def pair_group(self, data_source_uuid: str, customer_uuid: str, items: list[Person]) -> None:
        """Pair one customer's rows, surest first; note for each unpaired row the contacts that could be it."""
        held = self.candidates(data_source_uuid, customer_uuid)
        paired = pair([item.payload for item in items], held)
        for index, item in enumerate(items):
            found = held[paired[index]] if index in paired else None
            self._paired[item.key] = found
            if found is not None:
                self._claim(str(found["uuid"]))
        free = [c for c in held if str(c["uuid"]) not in self._claimed]
        for index, item in enumerate(items):
            doubts = [str(c["uuid"]) for c in free if index not in paired and could_be(c, item.payload)]
            if doubts:
                self._doubts[item.key] = doubts

    def candidates(self, data_source_uuid: str, customer_uuid: str) -> list[Contact]:
        """The customer's held contacts that no row of this run (nor, without a listing, of the memory) has taken."""
        listed = self.context.refs.holdings.listed(KIND, data_source_uuid)
        contacts = self.customer_contacts(data_source_uuid, customer_uuid, read=True) or []
        taken = set(self._claimed) if listed else self._claimed | self.ours()
        return [c for c in contacts if c.get("uuid") and str(c["uuid"]) not in taken]

    def ours(self) -> set[str]:
        """The uuids of every contact this stream's memory holds (read once per batch, when needed)."""
        if self._ours is None:
            objects = self.context.ledger.stream_objects(self.sink.object_name, self.sink.stream_name)
            self._ours = {uuid for uuid in objects.values() if uuid}
        return self._ours

    def _claim(self, uuid: str) -> None:
        with self._lock:
            self._claimed.add(uuid)

    def refuse_doubtful(self, item: Person) -> None:
        """Reject a row that held contacts could be; remember it without a uuid so later runs look before creating."""
        doubts = self._doubts.get(item.key)
        if not doubts:
            return
        self.sink.remember(*item.key, uuid=None, payload=None)
        msg = (f"not created: the sync memory holds no uuid for it, and ChartMogul's contact(s) {', '.join(doubts)} "
               "of its customer could be this person (no email or name tells them apart); give the row an email "
               "or a name, or delete the stray contact in ChartMogul")
        raise RecordRejected(msg, field="email")

    # Finding ----------------------------------------------------------------------------
    def find(self, payload: ContactPayload, customer_uuid: str) -> Contact | None:
        """The customer's contact that is this one, when its contacts were read; it is then taken for this row."""
        candidates = self.customer_contacts(payload.data_source_uuid, customer_uuid)
        if candidates is None:
            return None
        with self._lock:
            found = self.matching(candidates, payload)
            if found:
                self._claimed.add(str(found[0]["uuid"]))
        return found[0] if found else None

    def matching(self, candidates: t.Sequence[Contact], payload: ContactPayload) -> list[Contact]:
        """The untaken candidates that are this contact: same email with `match_by: email`, else the surest matches."""
        free = [c for c in candidates if str(c.get("uuid")) not in self._claimed]
        if self.settings.match_by == "email":
            return [c for c in free if _same_email(c, payload.email)]
        return [dict(c) for c in best_matches(payload, free)]

    def copies(self, payload: ContactPayload, customer_uuid: str) -> list[Contact]:
        """The customer's contacts, read now, that look exactly like this create (what a lost answer left)."""
        held = self.customer_contacts(payload.data_source_uuid, customer_uuid, fresh=True) or []
        with self._lock:
            return [c for c in held if str(c.get("uuid")) not in self._claimed and is_copy(c, payload)]

    def listed(self, data_source_uuid: str) -> dict[str, Contact]:
        """The data source's contacts by uuid, when this run listed them (a lost memory)."""
        with self._lock:
            if data_source_uuid not in self._by_uuid:
                objects = self.context.refs.holdings.objects(KIND, data_source_uuid)
                self._by_uuid[data_source_uuid] = {str(c["uuid"]): c for c in objects if c.get("uuid")}
            return self._by_uuid[data_source_uuid]

    def customer_contacts(self, data_source_uuid: str, customer_uuid: str, *, fresh: bool = False,
                          read: bool = False) -> list[Contact] | None:
        """A customer's contacts in the data source: from this run's listing, else read once (None: not needed).

        By external id the memory is trusted: a contact it does not know is created without a read
        (`read`: a row it remembers without a uuid, left unwritten as ambiguous, is looked for first).
        """
        if not fresh and self.context.refs.holdings.listed(KIND, data_source_uuid):
            return [c for c in self.listed(data_source_uuid).values() if c.get("customer_uuid") == customer_uuid]
        if not fresh and not read and self.settings.match_by != "email":
            return None
        key = (data_source_uuid, customer_uuid)
        with self._lock:
            reading = self._reading.setdefault(key, threading.Lock())
        with reading:  # concurrent rows of one customer wait for one read
            with self._lock:
                if not fresh and key in self._customer_contacts:
                    return self._customer_contacts[key]
            params = {"customer_uuid": customer_uuid, "data_source_uuid": data_source_uuid}
            found = [dict(c) for c in listing(self.client, KIND, params)]
            with self._lock:
                self._customer_contacts[key] = found
            return found

    # Deleting ---------------------------------------------------------------------------
    def to_delete(self, key: Key, record: Record, entry: Entry | None) -> str | None:
        """The uuid of a deleted row's contact the memory has no uuid for, matched by its email or name."""
        uuid, why = self.find_deleted(key, record)
        if uuid is None:
            with self._lock:
                self._unfound[key] = why
        return uuid

    def find_deleted(self, key: Key, record: Record) -> tuple[str | None, str]:
        """(uuid, "") of a deleted row's contact, else (None, why it was not found)."""
        data_source_uuid, external_id = key
        holdings = self.context.refs.holdings
        if not holdings.ensure(KIND, data_source_uuid):
            return None, "the sync memory holds no uuid for it (deleted already, or never written with this memory)"
        held = holdings.get(KIND, data_source_uuid, external_id)  # only where ChartMogul answered external ids
        if held is not None and held.get("uuid") and str(held["uuid"]) not in self._claimed:
            return str(held["uuid"]), ""
        row = identity(record, data_source_uuid, external_id)
        candidates = self.deleted_candidates(row)
        with self._lock:
            found = self.matching(candidates, row)
            if len(found) == 1:
                self._claimed.add(str(found[0]["uuid"]))
                return str(found[0]["uuid"]), ""
        if found:
            return None, f"{len(found)} contacts ({', '.join(str(c['uuid']) for c in found)}) could be it"
        return None, ("no contact ChartMogul holds matches it by external id, email or full name (ChartMogul's "
                      "contact reads carry no external id; a deleted row carrying only its key cannot be matched)")

    def deleted_candidates(self, row: ContactPayload) -> list[Contact]:
        """Its customer's listed contacts, or the data source's when the row names no customer this run can find."""
        customer = row.customer_uuid
        if customer is None and row.customer_external_id is not None:
            found = self.context.refs.find("customer", row.data_source_uuid, row.customer_external_id)
            customer = str(found["uuid"]) if found and found.get("uuid") else None
        listed = self.listed(row.data_source_uuid).values()
        return [c for c in listed if customer is None or c.get("customer_uuid") == customer]

    def not_to_delete(self, key: Key, entry: Entry | None) -> bool:
        """A deleted row whose contact cannot be found: warned about (the lifecycle counts it skipped)."""
        with self._lock:
            why = self._unfound.pop(key, "")
        self.logger.warning("Stream '%s': contact external_id '%s' (data source %s) deleted in the source was not "
                            "deleted in ChartMogul: %s", self.sink.stream_name, key[1], key[0], why)
        if entry is not None:
            self.context.ledger.deleted(self.sink.object_name, *key)
        return True

    def delete(self, key: Key, uuid: str) -> None:
        """DELETE the contact (gone already is fine); it is taken for this row."""
        self._claim(uuid)
        delete_if_present(self.client, KIND, uuid)
