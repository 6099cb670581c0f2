"""Customers: upsert, update or insert, matched by external_id, email or uuid.

ChartMogul has no upsert call, so upsert is "create, and on 'already exists' find and
update". That is also what makes a retried create safe: if the first attempt's answer
was lost, the retry meets the duplicate error, finds the customer and carries on.
"""

from __future__ import annotations

import dataclasses
import typing as t

from target_chartmogul.api.errors import APIError, is_already_exists
from target_chartmogul.api.resources import search
from target_chartmogul.bulk.entries import Entry as BulkEntry
from target_chartmogul.errors import RecordRejected
from target_chartmogul.mapping.common import data_source, optional_text
from target_chartmogul.mapping.customers import DATE_FIELDS, CustomerMapper, CustomerPayload
from target_chartmogul.memory.ledger import Entry, payload_hash
from target_chartmogul.sinks.base import ChartMogulSink, Unnamed
from target_chartmogul.values import attributes as attrs
from target_chartmogul.values import compare
from target_chartmogul.values.text import is_blank

Record = dict[str, t.Any]


class CustomersSink(ChartMogulSink):
    """Writes a stream into ChartMogul customers (fields, typed custom attributes, tags)."""

    object_name = "customers"

    def setup(self) -> None:
        """Build the record mapper once per stream schema."""
        self.mapper = CustomerMapper(
            self.settings,
            self.schema,
            self.config.get("data_source_uuid"),
            self.logger,
        )
        self.known: dict[tuple[str, str], Entry] = {}
        super().setup()

    def dedupe_key(self, record: Record) -> t.Hashable:
        """Same customer twice in a batch: the last record wins."""
        match_by = self.settings.match_by
        if match_by in ("email", "uuid"):
            value = record.get(match_by)
            return Unnamed.of(record) if is_blank(value) else (match_by, str(value).strip().lower())
        return super().dedupe_key(record)

    def write_records(self, records: list[Record]) -> None:
        """Map every record, consult the sync memory, then write concurrently; deletions last."""
        upserts = self.split_deletions(records)
        changed = self._changed(self._mapped(upserts))
        self.run_each(changed, lambda item: self.write_remembered(*item[1:]), records_of=lambda item: [item[0]])

    def _mapped(self, upserts: list[Record]) -> list[tuple[Record, CustomerPayload, str]]:
        """(record, payload, record hash) of each record not written exactly so last time; rejects the unmappable."""
        raw_keys = [self.raw_memory_key(r) for r in upserts]
        if self.settings.match_by != "uuid":  # a lost memory: read the data source's customers once
            for ds in sorted({key[0] for key in raw_keys if key is not None}):
                self.context.refs.holdings.ensure("customer", ds)
        self.known = self.memory_lookup(key for key in raw_keys if key is not None)
        items: list[tuple[Record, CustomerPayload, str]] = []
        for record, raw_key in zip(upserts, raw_keys, strict=True):
            digest = self.record_hash(record)
            entry = self.known.get(raw_key) if raw_key is not None else None
            if entry is not None and entry.record_hash == digest and entry.payload_hash is not None:
                self.count("unchanged")  # the very record written last time: not even mapped
                continue
            try:
                items.append((record, self.mapper.map(record), digest))
            except RecordRejected as exc:
                self.reject(record, exc.reason, field=exc.field)
        looked_up = set(raw_keys)  # mapping rarely moves a key: look up only the keys it did move
        self.known.update(self.memory_lookup({self.memory_key(p) for _, p, _ in items} - looked_up))
        return items

    def _changed(
        self, items: list[tuple[Record, CustomerPayload, str]]
    ) -> list[tuple[Record, CustomerPayload, str, dict[str, t.Any]]]:
        """The items whose payload the memory does not hold as written; the others count as unchanged."""
        changed: list[tuple[Record, CustomerPayload, str, dict[str, t.Any]]] = []
        for record, payload, digest in items:
            key = self.memory_key(payload)
            entry = self.known.get(key)
            fingerprint = self.fingerprint(payload)
            if self.is_current(entry, fingerprint):  # other columns changed, not what is sent
                self.count("unchanged")
                self.remember(*key, uuid=entry.uuid if entry else None, payload=fingerprint, record_hash=digest,
                              tags=entry.tags if entry else None)
            else:
                changed.append((record, payload, digest, fingerprint))
        return changed

    # Bulk import ------------------------------------------------------------------
    def bulk_split(self, records: list[Record]) -> tuple[list[tuple[str, str, str, Record]], list[Record]]:
        """Customers neither the memory nor ChartMogul's listing knows can ride in a bulk import (upsert by
        external_id only: a bulk import may update a customer it finds, which `insert` must not do).
        """
        if self.settings.mode != "upsert" or self.settings.match_by != "external_id":
            return [], records
        keyed = []
        for record in records:
            key = self.raw_memory_key(record)  # a customer is its own customer: (ds, external id, external id)
            keyed.append((record, (key[0], key[1], key[1]) if key is not None else None))
        return self.bulk_partition(keyed, "customer")

    def bulk_entries(self, records: list[Record]) -> tuple[list[list[BulkEntry]], list[Record]]:
        """One entry per customer, its body as Create a Customer takes it (ChartMogul's reference maps a bulk body's
        customers to that endpoint): every field, and its custom attributes and tags where the lane says they ride.
        The others are returned, for the lane to create through REST before the import with their invoices.
        """
        units: list[list[BulkEntry]] = []
        rest: list[Record] = []
        for record, payload in self.bulk_mapped(records, self.mapper.map):
            body = payload.create_body()
            ds = str(body.pop("data_source_uuid"))
            if "attributes" in body and not self.context.bulk.attributes_ride(ds):
                rest.append(record)
                continue
            entry = self.bulk_entry(record, str(payload.external_id))
            entry.add("customers", body)
            units.append([entry])
        return units, rest

    def bulk_attributes(self, record: Record) -> bool:
        """Whether the record's customer has custom attributes or tags to send (False when it cannot be mapped)."""
        try:
            return "attributes" in self.mapper.map(record).create_body()
        except RecordRejected:
            return False

    def bulk_follow_up(self, entries: list[BulkEntry], held: dict[str, Record]) -> None:
        """Customers a bulk import reported imported: compared with ChartMogul's copy, what differs (custom
        attributes, tags, a field an existing customer kept) written through REST, then remembered.
        """
        items = [(entry, record) for entry in entries if (record := self.revalidated(entry.record)) is not None]
        self.run_each(items, lambda item: self._imported(item[1], held.get(item[0].customer)),
                      records_of=lambda item: [item[1]])

    def _imported(self, record: Record, held: Record | None) -> str:
        payload = self.mapper.map(record)
        if held is None:
            msg = "ChartMogul's bulk import reported it imported, but the data source has no customer with this external_id"
            raise RecordRejected(msg, field="external_id")
        self.apply(held, payload, None)
        key = self.memory_key(payload)
        self.remember(*key, uuid=str(held["uuid"]), payload=self.fingerprint(payload), record_hash=self.record_hash(record),
                      tags=payload.tags)
        return "imported"

    # Sync memory ------------------------------------------------------------------
    def memory_key(self, payload: CustomerPayload) -> tuple[str, str]:
        """(data source, id) under which the memory keeps this customer."""
        if self.settings.match_by == "uuid":
            return ("", f"uuid:{payload.uuid}")
        return (str(payload.data_source_uuid), str(payload.external_id))

    def fingerprint(self, payload: CustomerPayload) -> dict[str, t.Any]:
        """What the memory hashes: the mapped payload and the options that shape the writes."""
        return {
            "settings": [
                self.settings.mode,
                self.settings.match_by,
                self.settings.remove_null_custom_attributes,
                self.settings.tags_mode,
            ],
            "ds": payload.data_source_uuid,
            "external_id": payload.external_id,
            "uuid": payload.uuid,
            "fields": payload.fields,
            "custom": {k: [a.type, a.value] for k, a in sorted(payload.custom.items())},
            "tags": payload.tags,
        }

    def write_remembered(self, payload: CustomerPayload, record_hash: str, fingerprint: dict[str, t.Any]) -> str:
        """Write one customer the memory does not hold as current, and remember it."""
        key = self.memory_key(payload)
        entry = self.known.get(key)
        outcome, uuid = self.write_one(payload, entry)
        written = None if outcome == "already_present" else fingerprint
        # The tags the loader now answers for (managed tags): the record's, or what it owned before.
        owned = payload.tags if payload.tags is not None and written is not None else (entry.tags if entry else None)
        self.remember(*key, uuid=uuid, payload=written, record_hash=record_hash, tags=owned)
        return outcome

    def raw_memory_key(self, record: Record) -> tuple[str, str] | None:
        """The memory key read straight off the record (None when only mapping can tell)."""
        try:
            if self.settings.match_by == "uuid":
                uuid = optional_text(record, "uuid")
                return ("", f"uuid:{uuid}") if uuid else None
            ds = data_source(record, self.config.get("data_source_uuid"))
            external_id = optional_text(record, "external_id")
        except RecordRejected:
            return None
        return (ds, external_id) if ds and external_id else None

    def record_hash(self, record: Record) -> str:
        """Hash of the incoming record (metadata left out) and of the options that shape its writes."""
        return payload_hash(
            {
                "options": self.settings.options,
                "default_ds": self.config.get("data_source_uuid"),
                "record": {k: v for k, v in record.items() if not k.startswith("_sdc_")},
            },
        )

    def delete_one(self, data_source_uuid: str, external_id: str) -> str:
        """Delete one customer (a 404 means it is already gone)."""
        entry = self.known.get((data_source_uuid, external_id))
        uuid = entry.uuid if entry else None
        if uuid is None:
            found = self.context.refs.held("customer", data_source_uuid, external_id)
            uuid = found["uuid"] if found else None
        if uuid is not None:
            try:
                self.client.delete(f"customers/{uuid}")
            except APIError as exc:
                if exc.status != 404:
                    raise
        self.context.refs.forget("customer", data_source_uuid, external_id, gone=True)
        return "deleted" if uuid is not None else "unchanged"

    # One customer ---------------------------------------------------------------
    def write_one(self, payload: CustomerPayload, entry: Entry | None = None) -> tuple[str, str | None]:
        """Write one customer; returns the outcome to count and the customer's uuid."""
        mode, match_by = self.settings.mode, self.settings.match_by
        entry = self._with_uuid(entry, payload)
        if entry is not None and entry.uuid:
            if mode == "insert":
                return "already_present", entry.uuid
            if match_by != "email":
                known = self.update_existing(entry, payload)
                if known is not None:
                    return known
        owned = entry.tags if entry is not None else None
        if mode == "update":
            if match_by == "uuid":
                existing = self.find_by_uuid(payload.uuid)
            else:
                existing = self.find_by_external_id(payload.data_source_uuid, payload.external_id)
            if existing is None:
                raise RecordRejected(self._no_match(payload, match_by), field=match_by)
            return ("updated" if self.apply(existing, payload, owned) else "unchanged"), existing["uuid"]
        if mode == "upsert" and match_by == "email":
            matches = self.find_by_email(payload)
            if matches:
                changed = [self.apply(customer, payload, owned) for customer in matches]
                return ("updated" if any(changed) else "unchanged"), matches[0]["uuid"]
        return self.create(payload, insert_only=(mode == "insert"))

    def _with_uuid(self, entry: Entry | None, payload: CustomerPayload) -> Entry | None:
        """A customer a bulk import wrote is remembered without its uuid (the answer names none): found once by
        external id, then remembered with it.
        """
        if entry is None or entry.uuid or entry.payload_hash is None or not payload.external_id:
            return entry
        found = self.context.refs.find("customer", str(payload.data_source_uuid), payload.external_id)
        return dataclasses.replace(entry, uuid=str(found["uuid"])) if found is not None else entry

    def update_existing(self, entry: Entry, payload: CustomerPayload) -> tuple[str, str] | None:
        """Update a customer the memory knows; None if ChartMogul no longer has it (then it is created).

        A change the memory proves (its hash differs) is PATCHed straight away; a customer
        the memory only adopted from ChartMogul (no hash) is compared first, so a lost
        memory costs reads, not writes.
        """
        uuid = str(entry.uuid)
        holdings = self.context.refs.holdings
        held = None
        if self.settings.match_by == "external_id" and payload.data_source_uuid and payload.external_id:
            held = holdings.get("customer", payload.data_source_uuid, payload.external_id)
            holdings.drop("customer", payload.data_source_uuid, payload.external_id)  # stale once written
        if held is None and entry.payload_hash is not None:
            return self.update_known(uuid, payload, entry.tags)
        if held is None:
            held = self.find_by_uuid(uuid)
        if held is None:
            self._gone(uuid, payload)
            return None
        return ("updated" if self.apply(held, payload, entry.tags) else "unchanged"), uuid

    def _gone(self, uuid: str, payload: CustomerPayload) -> None:
        self.logger.info("Customer %s is gone from ChartMogul; creating it again", uuid)
        self.context.ledger.deleted("customers", *self.memory_key(payload))
        if payload.data_source_uuid and payload.external_id:
            self.context.refs.forget("customer", payload.data_source_uuid, payload.external_id)

    def update_known(self, uuid: str, payload: CustomerPayload, owned: t.Sequence[str] | None) -> tuple[str, str] | None:
        """PATCH a customer the memory knows, no lookup; None if ChartMogul lost it (404)."""
        try:
            customer = self.client.patch(f"customers/{uuid}", payload.patch_body()).body or {}
        except APIError as exc:
            if exc.status != 404:
                raise
            self._gone(uuid, payload)
            return None
        self._sync_custom(uuid, customer, payload)
        self._sync_tags(uuid, customer, payload, owned)
        self.context.refs.remember("customer", payload.data_source_uuid, payload.external_id, customer or {"uuid": uuid})
        return "updated", uuid

    def create(self, payload: CustomerPayload, *, insert_only: bool) -> tuple[str, str | None]:
        """POST the customer; 'already exists' means present (insert) or update it (upsert)."""
        try:
            response = self.client.post("customers", payload.create_body())
        except APIError as exc:
            if not is_already_exists(exc):
                raise
            # A retried create that meets a duplicate wrote it on an earlier attempt.
            ours = exc.attempts > 1
            existing = self.find_by_external_id(payload.data_source_uuid, payload.external_id, fresh=True)
            uuid = existing["uuid"] if existing else None
            if insert_only:
                return ("created" if ours else "already_present"), uuid
            if existing is None:
                msg = f"ChartMogul says external_id {payload.external_id!r} exists but no such customer was found"
                raise RecordRejected(msg, field="external_id", status=exc.status) from None
            changed = self.apply(existing, payload, None)
            return ("created" if ours else ("updated" if changed else "unchanged")), uuid
        self.context.refs.remember("customer", payload.data_source_uuid, payload.external_id, response.body)
        return "created", (response.body or {}).get("uuid")

    def apply(self, existing: Record, payload: CustomerPayload, owned: t.Sequence[str] | None) -> bool:
        """Bring one existing customer in line with the payload; True if anything changed.

        Only fields ChartMogul holds differently are sent; fields it never echoes (such as
        primary_contact) cannot be compared, so they ride along with any PATCH that is sent.
        """
        uuid = existing["uuid"]
        changed = False
        differing = compare.customer_changes(payload.fields, existing, DATE_FIELDS)
        if differing:
            unechoed = {k: v for k, v in payload.fields.items() if k not in existing and v is not None}
            patch = {**unechoed, **{k: payload.fields[k] for k in differing}}
            existing = self.client.patch(f"customers/{uuid}", patch).body or existing
            changed = True
        changed |= self._sync_custom(uuid, existing, payload)
        changed |= self._sync_tags(uuid, existing, payload, owned)
        self.context.refs.remember("customer", payload.data_source_uuid, payload.external_id, existing)
        return changed

    def _sync_custom(self, uuid: str, existing: Record, payload: CustomerPayload) -> bool:
        held: dict[str, t.Any] = (existing.get("attributes") or {}).get("custom") or {}
        add = [a for a in payload.custom.values() if a.key not in held and a.value is not None]
        update: dict[str, t.Any] = {}
        remove: list[str] = []
        for a in payload.custom.values():
            if a.key not in held:
                continue
            if a.value is None and self.settings.remove_null_custom_attributes:
                remove.append(a.key)
            elif not attrs.same_value(a.type, a.value, held[a.key]):
                update[a.key] = a.value
        path = f"customers/{uuid}/attributes/custom"
        if add:
            body = [{"type": a.type, "key": a.key, "value": a.value, "source": "API"} for a in add]
            self.client.post(path, {"custom": body})
        if update:
            self.client.put(path, {"custom": update})
        if remove:
            self.client.delete(path, {"custom": remove})
        return bool(add or update or remove)

    def _sync_tags(self, uuid: str, existing: Record, payload: CustomerPayload, owned: t.Sequence[str] | None) -> bool:
        """Add the record's tags; remove those it dropped (managed: only tags the loader set; exact: any)."""
        if payload.tags is None:
            return False
        held = [str(tag) for tag in (existing.get("attributes") or {}).get("tags") or []]
        add, stale = compare.tag_changes(payload.tags, held, owned, exact=self.settings.tags_mode == "exact")
        path = f"customers/{uuid}/attributes/tags"
        if add:
            self.client.post(path, {"tags": add})
        if stale:
            self.client.delete(path, {"tags": stale})
        return bool(add or stale)

    # Lookups ----------------------------------------------------------------------
    def find_by_external_id(self, ds: str | None, ext: str | None, *, fresh: bool = False) -> Record | None:
        """The customer with this external_id in this data source (`fresh`: ask ChartMogul, not a listing)."""
        if not ds or not ext:
            return None
        return self.context.refs.held("customer", ds, ext, fresh=fresh)

    def find_by_uuid(self, uuid: str | None) -> Record | None:
        """The customer with this uuid, or None on 404."""
        try:
            return t.cast("Record", self.client.get(f"customers/{uuid}").body)
        except APIError as exc:
            if exc.status == 404:
                return None
            raise

    def find_by_email(self, payload: CustomerPayload) -> list[Record]:
        """Every customer of the payload's data source with this email (emails are not unique)."""
        found = search(self.client, "customer", {"email": payload.email})
        ds = payload.data_source_uuid
        return [c for c in found if ds in (c.get("data_source_uuids") or [c.get("data_source_uuid")])]

    def _no_match(self, payload: CustomerPayload, match_by: str) -> str:
        if match_by == "uuid":
            return f'no customer with uuid "{payload.uuid}"'
        return f'no customer with external_id "{payload.external_id}" in data source {payload.data_source_uuid}'
