"""Contacts: the people at a customer, created, updated and deleted by external id (or by email).

A contact belongs to a customer, found by `customer_uuid` or by `customer_external_id`
in the data source (waiting, like an invoice, for a customer later in the input). The
sync memory keeps each contact's uuid, so updates go straight to it. Without a memory
entry, ChartMogul's contacts are matched: by external id, or with `match_by: email` by
email within the contact's customer (a customer can have several contacts). Contact
answers recorded in 2023 carry no `external_id` at all; where none does, a contact of
the same customer with the same email is taken for ours, so a lost memory still costs
reads only.
"""

from __future__ import annotations

import threading
import typing as t

from target_chartmogul import compare
from target_chartmogul.errors import APIError, RecordRejected
from target_chartmogul.ledger import Entry
from target_chartmogul.mapping.common import data_source, optional_text
from target_chartmogul.mapping.contacts import ContactMapper, ContactPayload
from target_chartmogul.sinks.deletions import DeletesMissing

Record = dict[str, t.Any]
Contact = dict[str, t.Any]
KIND = "contact"


def _same_email(contact: t.Mapping[str, t.Any], email: str | None) -> bool:
    return email is not None and str(contact.get("email") or "").casefold() == email.casefold()


class ContactsSink(DeletesMissing):
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
            return ("record", id(record))
        return ("record", id(record)) if email is None else (*parts, email.casefold())

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

    # Writing ----------------------------------------------------------------------------
    def write_one(self, payload: ContactPayload, customer_uuid: str, entry: Entry | None) -> tuple[str, str]:
        """Update the contact ChartMogul holds (remembered, or matched), else create it; returns (outcome, uuid)."""
        if entry is not None and entry.uuid:
            updated = self.update_remembered(payload, customer_uuid, entry)
            if updated is not None:
                return updated
        held = self.find(payload, customer_uuid)
        if held is not None:
            return self.bring_in_line(payload, customer_uuid, held)
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
            held = self.find(payload, customer_uuid, fresh=True)
            if held is None:
                raise
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
        for other in self.matching(self.customer_contacts(payload.data_source_uuid, customer_uuid, fresh=True), payload):
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
    def find(self, payload: ContactPayload, customer_uuid: str, *, fresh: bool = False) -> Contact | None:
        """The customer's contact that is this one, when ChartMogul's contacts were read (or `fresh`: read now)."""
        candidates = self.customer_contacts(payload.data_source_uuid, customer_uuid, fresh=fresh)
        found = self.matching(candidates, payload) if candidates is not None else []
        return found[0] if found else None

    def matching(self, candidates: t.Sequence[Contact] | None, payload: ContactPayload) -> list[Contact]:
        """The candidates that are this contact: same external id (or email, with `match_by: email`).

        Answers without any `external_id` key (recorded in 2023) fall back to the email.
        """
        contacts = list(candidates or [])
        if self.settings.match_by == "email":
            return [c for c in contacts if _same_email(c, payload.email)]
        by_id = [c for c in contacts if c.get("external_id") == payload.external_id]
        if by_id or any("external_id" in c for c in contacts):
            return by_id
        return [c for c in contacts if _same_email(c, payload.email)]

    def listed(self, data_source_uuid: str) -> dict[str, Contact]:
        """The data source's contacts by uuid, when this run listed them (a lost memory)."""
        with self._lock:
            if data_source_uuid not in self._by_uuid:
                objects = self.context.refs.holdings.objects(KIND, data_source_uuid)
                self._by_uuid[data_source_uuid] = {str(c["uuid"]): c for c in objects if c.get("uuid")}
            return self._by_uuid[data_source_uuid]

    def customer_contacts(self, data_source_uuid: str, customer_uuid: str, *, fresh: bool = False) -> list[Contact] | None:
        """A customer's contacts in the data source: from this run's listing, else read once (None: not needed).

        By external id the memory is trusted: a contact it does not know is created without a read.
        """
        if not fresh and self.context.refs.holdings.listed(KIND, data_source_uuid):
            return [c for c in self.listed(data_source_uuid).values() if c.get("customer_uuid") == customer_uuid]
        if not fresh and self.settings.match_by != "email":
            return None
        key = (data_source_uuid, customer_uuid)
        with self._lock:
            reading = self._reading.setdefault(key, threading.Lock())
        with reading:  # concurrent rows of one customer wait for one read
            with self._lock:
                if not fresh and key in self._customer_contacts:
                    return self._customer_contacts[key]
            params = {"customer_uuid": customer_uuid, "data_source_uuid": data_source_uuid}
            found = [dict(c) for c in self.client.paginate("contacts", "entries", params)]
            with self._lock:
                self._customer_contacts[key] = found
            return found

    # Deleting ---------------------------------------------------------------------------
    def delete_one(self, data_source_uuid: str, external_id: str) -> str:
        """Delete one contact (a 404 means it is already gone)."""
        entry = self.known.get((data_source_uuid, external_id))
        uuid = entry.uuid if entry is not None else None
        if uuid is None and self.context.refs.holdings.ensure(KIND, data_source_uuid):
            held = self.context.refs.holdings.get(KIND, data_source_uuid, external_id)
            uuid = held.get("uuid") if held else None
        if uuid is None:
            return "unchanged"
        self._delete_quietly(str(uuid))
        self.context.refs.forget(KIND, data_source_uuid, external_id, gone=True)
        return "deleted"
