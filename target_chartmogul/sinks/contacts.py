"""Contacts: the people at a customer, created, updated and deleted by external id (or by email).

A contact belongs to a customer, found by `customer_uuid` or by `customer_external_id`
in the data source (waiting, like an invoice, for a customer later in the input). The
sync memory keeps each contact's uuid, so updates and deletes go straight to it.

A lost memory: ChartMogul's contact reads answer no `external_id` (every recording), so
the data source's contacts are listed once and each row is paired with a held contact of
its customer by external id when one is answered, else by email, else by full name
(`mapping.contacts.pair`), each held contact going to one row at most; the pairs are
compared and remembered. A row paired with none is created only when no unpaired
contact of its customer could be it (`could_be`: none differs from it in a set email or
full name); otherwise it is rejected, and remembered without a uuid so that later runs
read its customer's contacts before creating it. A deleted row with no remembered uuid
is matched the same way (its customer's contacts, or the data source's when it names no
customer: one match only); what cannot be found is warned about and counted `skipped`.
"""

from __future__ import annotations

import threading
import typing as t

from target_chartmogul.api.errors import APIError
from target_chartmogul.api.resources import listing
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
from target_chartmogul.memory.ledger import Entry
from target_chartmogul.sinks.base import ChartMogulSink, Unnamed
from target_chartmogul.values import compare

Record = dict[str, t.Any]
Contact = dict[str, t.Any]
KIND = "contact"


def _same_email(contact: t.Mapping[str, t.Any], email: str | None) -> bool:
    return email is not None and str(contact.get("email") or "").casefold() == email.casefold()


class ContactsSink(ChartMogulSink):
    """Writes a stream into ChartMogul contacts."""

    object_name = "contacts"

    def setup(self) -> None:
        """Build the record mapper once per stream schema."""
        self.mapper = ContactMapper(self.settings, self.schema, self.config.get("data_source_uuid"), self.logger)
        self.known: dict[tuple[str, str], Entry] = {}
        self._customer_contacts: dict[tuple[str, str], list[Contact]] = {}
        self._by_uuid: dict[str, dict[str, Contact]] = {}
        self._reading: dict[tuple[str, str], threading.Lock] = {}
        self._unkept: set[str] = set()
        self._lock = threading.Lock()
        self._claimed: set[str] = set()  # held contacts paired with a row (or deleted) in this run
        self._paired: dict[tuple[str, str], Contact | None] = {}  # this batch: row key -> its held contact
        self._doubts: dict[tuple[str, str], list[str]] = {}  # this batch: row key -> contacts that could be it
        self._deleting: dict[tuple[str, str], Record] = {}
        self._ours: set[str] | None = None
        super().setup()

    def dedupe_key(self, record: Record) -> t.Hashable:
        """By email, two rows of one customer with one email are one contact: the last wins."""
        if self.settings.match_by != "email":
            return super().dedupe_key(record)
        try:
            email = optional_text(record, "email")
            parts = (data_source(record, self.config.get("data_source_uuid")), optional_text(record, "customer_external_id"),
                     optional_text(record, "customer_uuid"))
        except RecordRejected:
            return Unnamed.of(record)
        return Unnamed.of(record) if email is None else (*parts, email.casefold())

    def write_records(self, records: list[Record]) -> None:
        """Map, consult the sync memory (a lost one: list the data source once), then write concurrently."""
        items: list[tuple[Record, ContactPayload]] = []
        for record in self.split_deletions(records):
            try:
                items.append((record, self.mapper.map(record)))
            except RecordRejected as exc:
                self.reject(record, exc.reason, field=exc.field)
        for ds in sorted({payload.data_source_uuid for _, payload in items}):
            self.context.refs.holdings.ensure(KIND, ds)
        self.known = self.memory_lookup(payload.key(self.settings.match_by) for _, payload in items)
        self.pair_unremembered([payload for _, payload in items])
        self.run_each(items, lambda item: self.write_remembered(item[1]), records_of=lambda item: [item[0]])

    def write_remembered(self, payload: ContactPayload) -> str:
        """Skip a contact the memory holds as it is; else find its customer, write it and remember it."""
        key = payload.key(self.settings.match_by)
        entry = self.known.get(key)
        fingerprint = payload.fingerprint(self.settings.match_by)
        if self.is_current(entry, fingerprint):
            return "unchanged"
        customer_uuid = self.customer_uuid(payload)
        outcome, uuid = self.write_one(payload, customer_uuid, entry)
        self.remember(*key, uuid=uuid, payload=fingerprint)
        return outcome

    def customer_uuid(self, payload: ContactPayload) -> str:
        """The contact's customer: as given, or found by external id (waiting for it when the input brings it later)."""
        if payload.customer_uuid is not None:
            return payload.customer_uuid
        ds, external_id = payload.data_source_uuid, str(payload.customer_external_id)
        return str(self.context.refs.require("customer", ds, external_id, field="customer_external_id")["uuid"])

    # Pairing rows with held contacts (a lost memory) -------------------------------------
    def pair_unremembered(self, payloads: list[ContactPayload]) -> None:
        """Before writing: pair the rows the memory has no uuid for with held contacts of their customer.

        Only where ChartMogul's contacts were listed in this run (a lost memory), or for a row
        remembered without a uuid (left unwritten as ambiguous): a row the memory does not know
        in a data source it does know is a new contact, created without a read.
        """
        self._paired, self._doubts, self._ours = {}, {}, None
        if self.settings.match_by == "email":
            return
        groups: dict[tuple[str, str], list[ContactPayload]] = {}
        for payload in payloads:
            entry = self.known.get(payload.key(self.settings.match_by))
            if entry is not None and entry.uuid:
                self._claim(entry.uuid)
            elif entry is not None or self.context.refs.holdings.listed(KIND, payload.data_source_uuid):
                try:
                    customer = self.customer_uuid(payload)
                except RecordRejected:
                    continue  # waits for its customer (or is rejected): paired when it comes back
                groups.setdefault((payload.data_source_uuid, customer), []).append(payload)
        for (ds, customer), group in groups.items():
            self.pair_group(ds, customer, group)

    def pair_group(self, data_source_uuid: str, customer_uuid: str, payloads: list[ContactPayload]) -> None:
        """Pair one customer's rows, surest first; note for each unpaired row the contacts that could be it."""
        held = self.candidates(data_source_uuid, customer_uuid)
        paired = pair(payloads, held)
        for index, payload in enumerate(payloads):
            found = held[paired[index]] if index in paired else None
            self._paired[payload.key(self.settings.match_by)] = found
            if found is not None:
                self._claim(str(found["uuid"]))
        free = [c for c in held if str(c["uuid"]) not in self._claimed]
        for index, payload in enumerate(payloads):
            doubts = [str(c["uuid"]) for c in free if index not in paired and could_be(c, payload)]
            if doubts:
                self._doubts[payload.key(self.settings.match_by)] = doubts

    def candidates(self, data_source_uuid: str, customer_uuid: str) -> list[Contact]:
        """The customer's held contacts that no row of this run (nor, without a listing, of the memory) has taken."""
        listed = self.context.refs.holdings.listed(KIND, data_source_uuid)
        contacts = self.customer_contacts(data_source_uuid, customer_uuid, read=True) or []
        taken = set(self._claimed) if listed else self._claimed | self.ours()
        return [c for c in contacts if c.get("uuid") and str(c["uuid"]) not in taken]

    def ours(self) -> set[str]:
        """The uuids of every contact this stream's memory holds (read once per batch, when needed)."""
        if self._ours is None:
            objects = self.context.ledger.stream_objects(self.object_name, self.stream_name)
            self._ours = {uuid for uuid in objects.values() if uuid}
        return self._ours

    def _claim(self, uuid: str) -> None:
        with self._lock:
            self._claimed.add(uuid)

    def refuse_doubtful(self, payload: ContactPayload) -> None:
        """Reject a row that held contacts could be; remember it without a uuid so later runs look before creating."""
        key = payload.key(self.settings.match_by)
        doubts = self._doubts.get(key)
        if not doubts:
            return
        self.remember(*key, uuid=None, payload=None)
        msg = (f"not created: the sync memory holds no uuid for it, and ChartMogul's contact(s) {', '.join(doubts)} "
               "of its customer could be this person (no email or name tells them apart); give the row an email "
               "or a name, or delete the stray contact in ChartMogul")
        raise RecordRejected(msg, field="email")

    # Writing ----------------------------------------------------------------------------
    def write_one(self, payload: ContactPayload, customer_uuid: str, entry: Entry | None) -> tuple[str, str]:
        """Update the contact ChartMogul holds (remembered, or paired), else create it when safe; returns (outcome, uuid)."""
        if entry is not None and entry.uuid:
            updated = self.update_remembered(payload, customer_uuid, entry)
            if updated is not None:
                return updated
        key = payload.key(self.settings.match_by)
        held = self._paired[key] if key in self._paired else self.find(payload, customer_uuid)
        if held is not None:
            return self.bring_in_line(payload, customer_uuid, held)
        self.refuse_doubtful(payload)
        return self.create(payload, customer_uuid)

    def update_remembered(self, payload: ContactPayload, customer_uuid: str, entry: Entry) -> tuple[str, str] | None:
        """A change the memory proves is PATCHed at once; a contact it only adopted is compared first.

        None when ChartMogul no longer holds the contact (then it is created again).
        """
        uuid = str(entry.uuid)
        held = self.listed(payload.data_source_uuid).get(uuid)
        try:
            if held is None and entry.payload_hash is not None:
                answer = self.client.patch(f"contacts/{uuid}", payload.patch_body()).body or {}
                self.check_kept(payload, answer)
                return self.moved(payload, customer_uuid, {**answer, "uuid": uuid}) or ("updated", uuid)
            if held is None:
                held = self.client.get(f"contacts/{uuid}").body or {}
        except APIError as exc:
            if exc.status != 404:
                raise
            self.logger.info("Contact %s is gone from ChartMogul; creating it again", uuid)
            self.context.ledger.deleted(self.object_name, *payload.key(self.settings.match_by))
            return None
        return self.bring_in_line(payload, customer_uuid, {**held, "uuid": uuid})

    def bring_in_line(self, payload: ContactPayload, customer_uuid: str, held: Contact) -> tuple[str, str]:
        """PATCH what ChartMogul holds differently; 'unchanged' when nothing differs."""
        moved = self.moved(payload, customer_uuid, held)
        if moved is not None:
            return moved
        uuid = str(held["uuid"])
        body: dict[str, t.Any] = {name: payload.fields[name] for name in compare.contact_changes(payload.fields, held)}
        if payload.external_id is not None and held.get("external_id", payload.external_id) != payload.external_id:
            body["external_id"] = payload.external_id  # matched by email: it takes the record's external id
        custom = compare.contact_custom_changes(payload.custom, held.get("custom"))
        if custom:
            body["custom"] = payload.custom_body(custom)
        if not body:
            return "unchanged", uuid
        self.check_kept(payload, self.client.patch(f"contacts/{uuid}", body).body or {})
        return "updated", uuid

    def create(self, payload: ContactPayload, customer_uuid: str) -> tuple[str, str]:
        """POST the contact; a refusal is a duplicate only if the contact is then found among its customer's."""
        try:
            response = self.client.post("contacts", payload.create_body(customer_uuid))
        except APIError as exc:
            copies = self.copies(payload, customer_uuid)
            if not copies:
                raise
            held = copies[0]
            if exc.attempts > 1:  # our own earlier attempt saved it; its answer was lost
                return "created", str(held["uuid"])
            return self.bring_in_line(payload, customer_uuid, held)
        answer = response.body if isinstance(response.body, dict) else {}
        uuid = str(answer.get("uuid"))
        if response.attempts > 1:
            self.drop_doubles(payload, customer_uuid, uuid)
        self.check_kept(payload, answer)
        return "created", uuid

    def drop_doubles(self, payload: ContactPayload, customer_uuid: str, kept: str) -> None:
        """A create answered only on a retry: delete any second copy ChartMogul saved."""
        for other in self.copies(payload, customer_uuid):
            if other.get("uuid") != kept:
                self.logger.warning("Contact %s was saved twice by a retried create; deleting the copy %s",
                                    payload.external_id or payload.email, other.get("uuid"))
                self._delete_quietly(str(other["uuid"]))

    def _delete_quietly(self, uuid: str) -> None:
        """DELETE a contact; a 404 (a retried delete whose first answer was lost) means it is gone."""
        try:
            self.client.delete(f"contacts/{uuid}")
        except APIError as exc:
            if exc.status != 404:
                raise

    def moved(self, payload: ContactPayload, customer_uuid: str, held: Contact) -> tuple[str, str] | None:
        """A contact whose customer changed is created anew under that customer and the old one deleted."""
        if held.get("customer_uuid") in (None, customer_uuid):
            return None
        self._delete_quietly(str(held["uuid"]))
        return "updated", self.create(payload, customer_uuid)[1]

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
                                    "define it for contacts in ChartMogul", self.stream_name, key)

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
    def delete_rows(self, keys: list[tuple[str, str]], records: list[Record]) -> None:
        """Keep each deleted row by key: without a remembered uuid, its email or name is what finds its contact."""
        self._deleting = dict(zip(keys, records, strict=True))
        super().delete_rows(keys, records)

    def delete_one(self, data_source_uuid: str, external_id: str) -> str:
        """Delete one contact (a 404 means it is already gone); one that cannot be found is warned about and skipped."""
        entry = self.known.get((data_source_uuid, external_id))
        uuid, why = (entry.uuid, "") if entry is not None and entry.uuid else self.find_deleted(data_source_uuid, external_id)
        if uuid is None:
            self.logger.warning("Stream '%s': contact external_id '%s' (data source %s) deleted in the source was not "
                                "deleted in ChartMogul: %s", self.stream_name, external_id, data_source_uuid, why)
            if entry is not None:
                self.context.ledger.deleted(self.object_name, data_source_uuid, external_id)
            return "skipped"
        self._claim(str(uuid))
        self._delete_quietly(str(uuid))
        self.context.refs.forget(KIND, data_source_uuid, external_id, gone=True)
        return "deleted"

    def find_deleted(self, data_source_uuid: str, external_id: str) -> tuple[str | None, str]:
        """(uuid, "") of a deleted row's contact the memory has no uuid for, else (None, why it was not found)."""
        holdings = self.context.refs.holdings
        if not holdings.ensure(KIND, data_source_uuid):
            return None, "the sync memory holds no uuid for it (deleted already, or never written with this memory)"
        held = holdings.get(KIND, data_source_uuid, external_id)  # only where ChartMogul answered external ids
        if held is not None and held.get("uuid") and str(held["uuid"]) not in self._claimed:
            return str(held["uuid"]), ""
        row = identity(self._deleting.get((data_source_uuid, external_id), {}), data_source_uuid, external_id)
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
