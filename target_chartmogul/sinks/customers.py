"""Customers: upsert, update or insert, matched by external_id, email or uuid.

ChartMogul has no upsert call, so upsert is "create, and on 'already exists' find and
update". That is also what makes a retried create safe: if the first attempt's answer
was lost, the retry meets the duplicate error, finds the customer and carries on.
"""

from __future__ import annotations

import typing as t

from target_chartmogul import attributes as attrs
from target_chartmogul.errors import APIError, RecordRejected, is_already_exists
from target_chartmogul.mapping.customers import DATE_FIELDS, CustomerMapper, CustomerPayload
from target_chartmogul.references import matches
from target_chartmogul.sinks.base import ChartMogulSink
from target_chartmogul.values import timestamp

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

    def dedupe_key(self, record: Record) -> t.Hashable:
        """Same customer twice in a batch: the last record wins."""
        if self.settings.match_by == "email":
            return ("email", str(record.get("email", "")).strip().lower())
        if self.settings.match_by == "uuid":
            return ("uuid", str(record.get("uuid")))
        ds = record.get("data_source_uuid") or self.config.get("data_source_uuid")
        return ("external_id", str(ds), str(record.get("external_id")))

    def write_records(self, records: list[Record]) -> None:
        """Map every record, then write them concurrently."""
        items: list[tuple[Record, CustomerPayload]] = []
        for record in records:
            try:
                items.append((record, self.mapper.map(record)))
            except RecordRejected as exc:
                self.reject(record, exc.reason, field=exc.field)
        self.run_each(items, lambda item: self.write_one(item[1]), records_of=lambda item: [item[0]])

    # One customer ---------------------------------------------------------------
    def write_one(self, payload: CustomerPayload) -> str:
        """Write one customer; returns the outcome to count."""
        mode, match_by = self.settings.mode, self.settings.match_by
        if mode == "update":
            existing = self.find_by_uuid(payload.uuid) if match_by == "uuid" else self.find_by_external_id(payload)
            if existing is None:
                raise RecordRejected(self._no_match(payload, match_by), field=match_by)
            return "updated" if self.apply(existing, payload) else "unchanged"
        if mode == "upsert" and match_by == "email":
            matches = self.find_by_email(payload)
            if matches:
                changed = [self.apply(customer, payload) for customer in matches]
                return "updated" if any(changed) else "unchanged"
        return self.create(payload, insert_only=(mode == "insert"))

    def create(self, payload: CustomerPayload, *, insert_only: bool) -> str:
        """POST the customer; 'already exists' means present (insert) or update it (upsert)."""
        try:
            response = self.client.post("customers", payload.create_body())
        except APIError as exc:
            if not is_already_exists(exc):
                raise
            # A retried create that meets a duplicate wrote it on an earlier attempt.
            ours = exc.attempts > 1
            if insert_only:
                return "created" if ours else "already_present"
            existing = self.find_by_external_id(payload)
            if existing is None:
                msg = f"ChartMogul says external_id {payload.external_id!r} exists but no such customer was found"
                raise RecordRejected(msg, field="external_id", status=exc.status) from None
            changed = self.apply(existing, payload)
            return "created" if ours else ("updated" if changed else "unchanged")
        self.owner.refs.remember("customer", payload.data_source_uuid, payload.external_id, response.body)
        return "created"

    def apply(self, existing: Record, payload: CustomerPayload) -> bool:
        """Bring one existing customer in line with the payload; True if anything changed."""
        uuid = existing["uuid"]
        changed = False
        patch = {k: v for k, v in payload.fields.items() if _differs(existing, k, v)}
        if patch:
            existing = self.client.patch(f"customers/{uuid}", patch).body or existing
            changed = True
        changed |= self._sync_custom(uuid, existing, payload)
        changed |= self._sync_tags(uuid, existing, payload)
        self.owner.refs.remember("customer", payload.data_source_uuid, payload.external_id, existing)
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

    def _sync_tags(self, uuid: str, existing: Record, payload: CustomerPayload) -> bool:
        if payload.tags is None:
            return False
        held = [str(tag).lower() for tag in (existing.get("attributes") or {}).get("tags") or []]
        add = [tag for tag in payload.tags if tag not in held]
        stale = [tag for tag in held if tag not in payload.tags]
        path = f"customers/{uuid}/attributes/tags"
        if add:
            self.client.post(path, {"tags": add})
        if stale:
            self.client.delete(path, {"tags": stale})
        return bool(add or stale)

    # Lookups ----------------------------------------------------------------------
    def find_by_external_id(self, payload: CustomerPayload) -> Record | None:
        """The customer with this external_id in the payload's data source."""
        ds, ext = payload.data_source_uuid, payload.external_id
        if not ds or not ext:
            return None
        params = {"data_source_uuid": ds, "external_id": ext}
        return next((c for c in self.client.paginate("customers", "entries", params) if matches(c, ds, ext)), None)

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
        try:
            found = list(self.client.paginate("customers/search", "entries", {"email": payload.email}))
        except APIError as exc:
            if exc.status == 404:
                return []
            raise
        ds = payload.data_source_uuid
        return [c for c in found if ds in (c.get("data_source_uuids") or [c.get("data_source_uuid")])]

    def _no_match(self, payload: CustomerPayload, match_by: str) -> str:
        if match_by == "uuid":
            return f'no customer with uuid "{payload.uuid}"'
        return f'no customer with external_id "{payload.external_id}" in data source {payload.data_source_uuid}'


def _differs(existing: Record, field: str, value: t.Any) -> bool:
    """Whether a standard field must be sent; absent in the answer counts as different."""
    if field not in existing:
        return value is not None
    held = existing[field]
    if value is None or held is None:
        return (value is None) != (held is None)
    if field in DATE_FIELDS:
        try:
            return timestamp(value, field) != timestamp(held, field)
        except RecordRejected:
            return True
    if field == "primary_contact" and isinstance(held, dict):
        return any(held.get(k) != v for k, v in value.items())
    return bool(held != value)
