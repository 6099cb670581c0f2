"""Contact records (the people at a customer) to ChartMogul contact payloads.

Columns named like ChartMogul's contact fields map to them; the columns named in
`custom_attributes` (or every other column with `"*"`) become ChartMogul's `custom`
`[{key, value}]`, their values read by the type the stream's schema declares. A column
present with null clears its field; a column the stream lacks is left alone.
"""

from __future__ import annotations

import dataclasses
import typing as t

from target_chartmogul.errors import RecordRejected
from target_chartmogul.mapping.columns import ColumnMapper
from target_chartmogul.mapping.common import optional_text, required_data_source
from target_chartmogul.values.numbers import integer
from target_chartmogul.values.text import is_blank

TEXT_FIELDS = ("first_name", "last_name", "title", "email", "phone", "linked_in", "twitter", "notes")
STANDARD_FIELDS = frozenset(
    {"external_id", "data_source_uuid", "customer_uuid", "customer_external_id", "position", *TEXT_FIELDS}
)


@dataclasses.dataclass(frozen=True)
class ContactPayload:
    """One contact as a record asks ChartMogul to hold it."""

    data_source_uuid: str
    external_id: str | None
    customer_external_id: str | None
    customer_uuid: str | None
    fields: dict[str, t.Any]
    custom: dict[str, tuple[str, t.Any]]  # key -> (ChartMogul type, value)

    @property
    def email(self) -> str | None:
        """The email, the matching key of `match_by: email`."""
        return self.fields.get("email")

    def key(self, match_by: str) -> tuple[str, str]:
        """Its identity in the sync memory: external id, or its customer and email, within the data source."""
        if match_by == "email":
            customer = f"u:{self.customer_uuid}" if self.customer_external_id is None else f"x:{self.customer_external_id}"
            return (self.data_source_uuid, f"email:{customer}:{str(self.email).casefold()}")
        return (self.data_source_uuid, str(self.external_id))

    def custom_body(self, keys: t.Iterable[str]) -> list[dict[str, t.Any]]:
        """`custom` as ChartMogul takes it: `[{key, value}]` (a null value clears the key)."""
        return [{"key": key, "value": self.custom[key][1]} for key in keys]

    def create_body(self, customer_uuid: str) -> dict[str, t.Any]:
        """Body of POST /contacts: the fields and custom attributes that are set."""
        body: dict[str, t.Any] = {"customer_uuid": customer_uuid, "data_source_uuid": self.data_source_uuid}
        if self.external_id is not None:
            body["external_id"] = self.external_id
        body.update({k: v for k, v in self.fields.items() if v is not None})
        custom = self.custom_body(k for k, (_, v) in self.custom.items() if v is not None)
        if custom:
            body["custom"] = custom
        return body

    def patch_body(self) -> dict[str, t.Any]:
        """Body of PATCH /contacts/{uuid} when every managed field is sent (nulls clear them)."""
        body: dict[str, t.Any] = dict(self.fields)
        if self.external_id is not None:
            body["external_id"] = self.external_id
        if self.custom:
            body["custom"] = self.custom_body(self.custom)
        return body

    def fingerprint(self, match_by: str) -> dict[str, t.Any]:
        """What the sync memory hashes: identity, customer, fields and custom attributes."""
        return {
            "key": list(self.key(match_by)),
            "external_id": self.external_id,
            "customer": [self.customer_external_id, self.customer_uuid],
            "fields": self.fields,
            "custom": {k: list(v) for k, v in sorted(self.custom.items())},
        }


class ContactMapper(ColumnMapper):
    """Maps one contact stream's records."""

    OBJECT = "contact"
    STANDARD_FIELDS = STANDARD_FIELDS

    def map(self, record: t.Mapping[str, t.Any]) -> ContactPayload:
        """Build the payload, or raise RecordRejected naming the field at fault."""
        ds = required_data_source(record, self.default_data_source_uuid)
        customer_external_id = optional_text(record, "customer_external_id")
        customer_uuid = optional_text(record, "customer_uuid")
        if customer_external_id is None and customer_uuid is None:
            msg = "field 'customer_external_id' (or 'customer_uuid') is required: a contact belongs to a customer"
            raise RecordRejected(msg, field="customer_external_id")
        fields: dict[str, t.Any] = {name: optional_text(record, name) for name in TEXT_FIELDS if name in record}
        if "position" in record:
            fields["position"] = None if is_blank(record["position"]) else integer(record["position"], "position", minimum=1)
        payload = ContactPayload(
            data_source_uuid=ds,
            external_id=optional_text(record, "external_id"),
            customer_external_id=customer_external_id,
            customer_uuid=customer_uuid,
            fields=fields,
            custom={column: self._attribute(column, record[column]) for column in self._custom_columns(record)},
        )
        self._check_key(payload)
        self._note_ignored(record, payload.custom)
        return payload

    def _check_key(self, payload: ContactPayload) -> None:
        if self.settings.match_by == "email":
            if not payload.email:
                raise RecordRejected("field 'email' is required to match contacts by email", field="email")
        elif payload.external_id is None:
            msg = "field 'external_id' is required (or set match_by: email): without it a replayed contact would be doubled"
            raise RecordRejected(msg, field="external_id")

    def _attribute(self, key: str, value: t.Any) -> tuple[str, t.Any]:
        return self._typed(key, value, key, self.properties.get(key))


# Telling held contacts apart without the sync memory ------------------------------------
# ChartMogul's contact reads carry no `external_id` (every recording), so after a lost
# memory a held contact is recognised by what it does answer: email, then full name.


def _folded(value: t.Any) -> str | None:
    text = "" if value is None else str(value).strip()
    return text.casefold() or None


def full_name(fields: t.Mapping[str, t.Any]) -> tuple[str, str] | None:
    """First and last name, case-folded; None when neither is set (nothing to recognise a contact by)."""
    first, last = _folded(fields.get("first_name")), _folded(fields.get("last_name"))
    return None if first is None and last is None else (first or "", last or "")


def answered_id(contact: t.Mapping[str, t.Any]) -> str | None:
    """The external id a held contact answers, if any (reads answer none; one made in the app has none)."""
    value = contact.get("external_id")
    return None if value is None or value == "" else str(value)


def match_level(contact: t.Mapping[str, t.Any], payload: ContactPayload) -> int | None:
    """How surely a held contact is the payload's: 0 same external id, 1 same email and name, 2 same email,
    3 same name; None when it is not.

    A contact answering an external id is only ever matched by it: it is someone else's otherwise.
    """
    held_id = answered_id(contact)
    if held_id is not None:
        return 0 if held_id == payload.external_id else None
    email = _folded(payload.email)
    same_email = email is not None and email == _folded(contact.get("email"))
    name = full_name(payload.fields)
    same_name = name is not None and name == full_name(contact)
    if same_email:
        return 1 if same_name else 2
    return 3 if same_name else None


def could_be(contact: t.Mapping[str, t.Any], payload: ContactPayload) -> bool:
    """Whether nothing tells a held contact apart from the payload: then creating the payload may double it.

    Told apart by another answered external id, or by an email or a full name that both hold and that differ.
    """
    held_id = answered_id(contact)
    if held_id is not None:
        return held_id == payload.external_id
    email, held_email = _folded(payload.email), _folded(contact.get("email"))
    name, held_name = full_name(payload.fields), full_name(contact)
    differs = (email is not None and held_email is not None and email != held_email) or (
        name is not None and held_name is not None and name != held_name)
    return not differs


def is_copy(contact: t.Mapping[str, t.Any], payload: ContactPayload) -> bool:
    """Whether a held contact looks exactly like what creating the payload sent (a retried create's second copy)."""
    held_id = answered_id(contact)
    if held_id is not None:
        return held_id == payload.external_id
    return (_folded(contact.get("email")) == _folded(payload.email)
            and full_name(contact) == full_name(payload.fields))


def best_matches(payload: ContactPayload, held: t.Sequence[t.Mapping[str, t.Any]]) -> list[t.Mapping[str, t.Any]]:
    """The held contacts at the surest level that matches the payload (several: they cannot be told apart)."""
    levels = [(level, contact) for contact in held if (level := match_level(contact, payload)) is not None]
    best = min((level for level, _ in levels), default=None)
    return [contact for level, contact in levels if level == best]


def pair(payloads: t.Sequence[ContactPayload], held: t.Sequence[t.Mapping[str, t.Any]]) -> dict[int, int]:
    """Payload index -> held index, surest matches first; each held contact goes to one payload at most.

    Ties go to the earlier payload and the earlier held contact, so a rerun pairs the same way.
    """
    ranked = sorted(
        (level, i, j) for i, payload in enumerate(payloads) for j, contact in enumerate(held)
        if (level := match_level(contact, payload)) is not None
    )
    paired: dict[int, int] = {}
    taken: set[int] = set()
    for _, i, j in ranked:
        if i not in paired and j not in taken:
            paired[i] = j
            taken.add(j)
    return paired


def identity(record: t.Mapping[str, t.Any], data_source_uuid: str, external_id: str) -> ContactPayload:
    """What a (possibly partial) deleted row tells of its contact: customer, email and name, read leniently."""

    def text(name: str) -> str | None:
        try:
            return optional_text(record, name)
        except RecordRejected:
            return None

    fields = {name: text(name) for name in ("email", "first_name", "last_name") if name in record}
    return ContactPayload(data_source_uuid, external_id, text("customer_external_id"), text("customer_uuid"), fields, {})
