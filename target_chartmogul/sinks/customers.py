"""Customers: upsert, update or insert, matched by external_id, email or uuid.

ChartMogul has no upsert call, so upsert is "create, and on 'already exists' find and
update" (the lifecycle's create). What is the customer's own: its custom attributes and
tags have endpoints of their own; `match_by: email` finds every customer of the data source
with that email (emails are not unique) and `match_by: uuid` (mode update) names it by
ChartMogul's uuid; `mode: update` never creates. A record the memory holds exactly is not
even mapped (`record_hash`).
"""

from __future__ import annotations

import dataclasses
import typing as t

from target_chartmogul.api.resources import get_or_none, search
from target_chartmogul.bulk.writers import CustomerEntries
from target_chartmogul.errors import RecordRejected
from target_chartmogul.mapping.common import data_source, optional_text
from target_chartmogul.mapping.customers import DATE_FIELDS, CustomerMapper, CustomerPayload
from target_chartmogul.memory.ledger import payload_hash
from target_chartmogul.sinks.base import Unnamed
from target_chartmogul.sinks.lifecycle import Changes, Item, Key, Rules
from target_chartmogul.values import attributes as attrs
from target_chartmogul.values import compare
from target_chartmogul.values.text import is_blank

if t.TYPE_CHECKING:
    from target_chartmogul.sinks.lifecycle import ObjectSink

Record = dict[str, t.Any]
Obj = dict[str, t.Any]
Customer = Item[CustomerPayload]


class CustomerRules(Rules[CustomerPayload]):
    """Customers: fields, typed custom attributes, tags."""

    kind = "customer"

    def __init__(self, sink: ObjectSink) -> None:
        super().__init__(sink)
        self.mapper = CustomerMapper(self.settings, sink.schema, self.default_data_source, self.logger)
        self.bulk = CustomerEntries(sink, self.map, sink.landed)

    # Mapping and memory --------------------------------------------------------------------------
    def map(self, record: Record) -> CustomerPayload:
        """`mapping.customers`."""
        return self.mapper.map(record)

    def dedupe_key(self, record: Record) -> t.Hashable | None:
        """By email or uuid, the same customer twice in a batch: the last record wins."""
        match_by = self.settings.match_by
        if match_by not in ("email", "uuid"):
            return None
        value = record.get(match_by)
        return Unnamed.of(record) if is_blank(value) else (match_by, str(value).strip().lower())

    def key(self, payload: CustomerPayload) -> Key:
        """(data source, external id); by uuid ("", "uuid:…")."""
        if self.settings.match_by == "uuid":
            return ("", f"uuid:{payload.uuid}")
        return (str(payload.data_source_uuid), str(payload.external_id))

    def raw_key(self, record: Record) -> Key | None:
        """The memory key read straight off the record (None when only mapping can tell)."""
        try:
            if self.settings.match_by == "uuid":
                uuid = optional_text(record, "uuid")
                return ("", f"uuid:{uuid}") if uuid else None
            ds = data_source(record, self.default_data_source)
            external_id = optional_text(record, "external_id")
        except RecordRejected:
            return None
        return (ds, external_id) if ds and external_id else None

    def record_hash(self, record: Record) -> str:
        """Hash of the incoming record (metadata left out) and of the options that shape its writes."""
        return payload_hash({
            "options": self.settings.options,
            "default_ds": self.default_data_source,
            "record": {k: v for k, v in record.items() if not k.startswith("_sdc_")},
        })

    def fingerprint(self, payload: CustomerPayload) -> dict[str, t.Any]:
        """The mapped payload and the options that shape the writes."""
        settings = self.settings
        return {
            "settings": [settings.mode, settings.match_by, settings.remove_null_custom_attributes, settings.tags_mode],
            "ds": payload.data_source_uuid,
            "external_id": payload.external_id,
            "uuid": payload.uuid,
            "fields": payload.fields,
            "custom": {k: [a.type, a.value] for k, a in sorted(payload.custom.items())},
            "tags": payload.tags,
        }

    def body(self, payload: CustomerPayload) -> Obj:
        """Create a Customer's body: fields, custom attributes as a typed array, tags."""
        return payload.create_body()

    def patch_body(self, payload: CustomerPayload) -> Obj:
        """The standard fields (nulls clear them); attributes and tags go to their own endpoints."""
        return payload.patch_body()

    def remember(self, item: Customer, written: t.Any, uuid: str | None) -> None:
        """With the tags the loader now answers for (managed tags): the record's, or what it owned before."""
        entry, tags = item.entry, item.payload.tags
        owned = tags if tags is not None and written is not None else (entry.tags if entry is not None else None)
        self.sink.remember(*item.key, uuid=uuid, payload=written, record_hash=item.record_hash, tags=owned)

    # Deciding ----------------------------------------------------------------------------------
    def ensure_listed(self, data_sources: t.Iterable[str]) -> None:
        """Listed by data source, unless customers are named by uuid."""
        if self.settings.match_by != "uuid":
            super().ensure_listed(data_sources)

    def knows(self, entry: t.Any) -> bool:
        """By email, every customer with the email is brought in line, whatever the memory knows."""
        return self.settings.match_by != "email" and super().knows(entry)

    def prepare(self, item: Customer) -> None:
        """A customer a bulk import wrote is remembered without its uuid (the answer names none): found once by
        external id, then remembered with it.
        """
        entry, payload = item.entry, item.payload
        if entry is None or entry.uuid or entry.payload_hash is None or not payload.external_id:
            return
        found = self.context.refs.find("customer", str(payload.data_source_uuid), payload.external_id)
        if found is not None:
            item.entry = dataclasses.replace(entry, uuid=str(found["uuid"]))

    def copy(self, item: Customer) -> Obj | None:
        """The listed copy of this run, where customers are listed (by external id)."""
        payload = item.payload
        if self.settings.match_by == "external_id" and payload.data_source_uuid and payload.external_id:
            return super().copy(item)
        return None

    def matches(self, item: Customer) -> list[Obj]:
        """`mode: update`: the customer by uuid or external id (none is a reject: update never creates);
        `match_by: email`: every customer of the data source with the email.
        """
        payload, settings = item.payload, self.settings
        if settings.mode == "update":
            if settings.match_by == "uuid":
                existing = get_or_none(self.client, "customer", payload.uuid) if payload.uuid else None
            else:
                existing = self.by_external_id(payload, fresh=False)
            if existing is None:
                raise RecordRejected(self._no_match(payload), field=settings.match_by)
            return [existing]
        if settings.mode == "upsert" and settings.match_by == "email":
            found = search(self.client, "customer", {"email": payload.email})
            ds = payload.data_source_uuid
            return [c for c in found if ds in (c.get("data_source_uuids") or [c.get("data_source_uuid")])]
        return []

    def look_up(self, item: Customer) -> Obj | None:
        """By external id in the data source, asked of ChartMogul now (never an earlier listing)."""
        return self.by_external_id(item.payload, fresh=True)

    def by_external_id(self, payload: CustomerPayload, *, fresh: bool) -> Obj | None:
        """The customer with this external_id in this data source (`fresh`: ask ChartMogul, not a listing)."""
        if not payload.data_source_uuid or not payload.external_id:
            return None
        return self.context.refs.held("customer", payload.data_source_uuid, payload.external_id, fresh=fresh)

    def changes(self, item: Customer, held: Obj) -> Changes:
        """Standard fields, custom attributes (`custom.<key>`) and tags ChartMogul holds otherwise.

        Fields ChartMogul never echoes (primary_contact) cannot be compared; they ride along with a PATCH.
        """
        payload = item.payload
        fields = payload.fields
        changes: Changes = {name: (held.get(name), fields[name])
                            for name in compare.customer_changes(fields, held, DATE_FIELDS)}
        custom: dict[str, t.Any] = (held.get("attributes") or {}).get("custom") or {}
        for a in payload.custom.values():
            if a.key not in custom:
                if a.value is not None:
                    changes[f"custom.{a.key}"] = (None, a.value)
            elif a.value is None and self.settings.remove_null_custom_attributes:
                changes[f"custom.{a.key}"] = (custom[a.key], None)
            elif not attrs.same_value(a.type, a.value, custom[a.key]):
                changes[f"custom.{a.key}"] = (custom[a.key], a.value)
        add, stale = self.tag_changes(item, held)
        if add or stale:
            have = self.held_tags(held)
            gone = {tag.casefold() for tag in stale}
            changes["tags"] = (have, [tag for tag in have if tag.casefold() not in gone] + add)
        return changes

    @staticmethod
    def held_tags(held: Obj) -> list[str]:
        """The tags ChartMogul's copy holds."""
        return [str(tag) for tag in (held.get("attributes") or {}).get("tags") or []]

    def tag_changes(self, item: Customer, held: Obj) -> tuple[list[str], list[str]]:
        """(tags to add, tags to remove): managed, only tags the loader set may go; exact, any."""
        if item.payload.tags is None:
            return [], []
        owned = item.entry.tags if item.entry is not None else None
        return compare.tag_changes(item.payload.tags, self.held_tags(held), owned,
                                   exact=self.settings.tags_mode == "exact")

    # Writing -----------------------------------------------------------------------------------
    def update(self, item: Customer, held: Obj, changes: Changes) -> Obj | None:
        """PATCH the differing fields (and those never echoed), then the custom attributes and tags."""
        uuid, fields = str(held["uuid"]), item.payload.fields
        differing = [name for name in changes if name in fields]
        if differing:
            unechoed = {k: v for k, v in fields.items() if k not in held and v is not None}
            held = self.client.patch(f"customers/{uuid}", {**unechoed, **{k: fields[k] for k in differing}}).body or held
        self.write_attributes(item, uuid, held)
        return held

    def update_known(self, item: Customer, uuid: str) -> Obj | None:
        """PATCH every field by the remembered uuid; then custom attributes and tags against the answer."""
        answer = self.client.patch(f"customers/{uuid}", item.payload.patch_body()).body or {}
        self.write_attributes(item, uuid, answer)
        return {**answer, "uuid": uuid}

    def write_attributes(self, item: Customer, uuid: str, held: Obj) -> None:
        """Custom attributes added, updated or removed, and tags added or removed, each on its own endpoint."""
        custom: dict[str, t.Any] = (held.get("attributes") or {}).get("custom") or {}
        changed = {name.removeprefix("custom."): new for name, (_, new) in self.changes(item, held).items()
                   if name.startswith("custom.")}
        add = [a for a in item.payload.custom.values() if a.key in changed and a.key not in custom]
        remove = [key for key, value in changed.items() if key in custom and value is None
                  and self.settings.remove_null_custom_attributes]
        update = {key: value for key, value in changed.items() if key in custom and key not in remove}
        path = f"customers/{uuid}/attributes/custom"
        if add:
            self.client.post(path, {"custom": [{"type": a.type, "key": a.key, "value": a.value, "source": "API"}
                                               for a in add]})
        if update:
            self.client.put(path, {"custom": update})
        if remove:
            self.client.delete(path, {"custom": remove})
        tags, stale = self.tag_changes(item, held)
        if tags:
            self.client.post(f"customers/{uuid}/attributes/tags", {"tags": tags})
        if stale:
            self.client.delete(f"customers/{uuid}/attributes/tags", {"tags": stale})

    def _no_match(self, payload: CustomerPayload) -> str:
        if self.settings.match_by == "uuid":
            return f'no customer with uuid "{payload.uuid}"'
        return f'no customer with external_id "{payload.external_id}" in data source {payload.data_source_uuid}'
