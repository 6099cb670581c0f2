"""Customer records to ChartMogul customer payloads.

Column names that equal ChartMogul customer fields map to them; `tags` and typed
custom attributes are gathered separately because ChartMogul writes them through
their own endpoints when a customer already exists.
"""

from __future__ import annotations

import dataclasses
import logging
import typing as t

from target_chartmogul.config.settings import StreamSettings
from target_chartmogul.errors import RecordRejected
from target_chartmogul.mapping.columns import ColumnMapper
from target_chartmogul.mapping.common import data_source, json_value, optional_text
from target_chartmogul.values.attributes import CustomAttribute
from target_chartmogul.values.dates import timestamp_text
from target_chartmogul.values.text import country, is_blank, text

TEXT_FIELDS = ("name", "email", "company", "state", "city", "zip", "website_url", "owner")
DATE_FIELDS = ("lead_created_at", "free_trial_started_at")
CONTACT_FIELDS = ("first_name", "last_name", "email", "title", "phone", "linked_in", "twitter", "notes")
STANDARD_FIELDS = frozenset(
    {
        "external_id",
        "uuid",
        "data_source_uuid",
        "country",
        "primary_contact",
        "tags",
        "attributes",
        *TEXT_FIELDS,
        *DATE_FIELDS,
    },
)


@dataclasses.dataclass
class CustomerPayload:
    """What one record asks ChartMogul to hold for one customer."""

    external_id: str | None
    uuid: str | None
    data_source_uuid: str | None
    fields: dict[str, t.Any]
    custom: dict[str, CustomAttribute]
    tags: list[str] | None

    @property
    def email(self) -> str | None:
        """The email, used as a matching key."""
        return self.fields.get("email")

    def create_body(self) -> dict[str, t.Any]:
        """Body of POST /customers: fields, custom attributes as a typed array, tags."""
        body: dict[str, t.Any] = {
            "data_source_uuid": self.data_source_uuid,
            "external_id": self.external_id,
            **{k: v for k, v in self.fields.items() if v is not None},
        }
        attributes: dict[str, t.Any] = {}
        custom = [
            {"type": a.type, "key": a.key, "value": a.value, "source": "API"}
            for a in self.custom.values()
            if a.value is not None
        ]
        if custom:
            attributes["custom"] = custom
        if self.tags:
            attributes["tags"] = self.tags
        if attributes:
            body["attributes"] = attributes
        return body

    def patch_body(self) -> dict[str, t.Any]:
        """Body of PATCH /customers/{uuid}: the standard fields only (nulls clear them)."""
        return dict(self.fields)


def _tags(value: t.Any, field: str) -> list[str]:
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list):
        raise RecordRejected(f"field '{field}' must be an array of strings or a comma-separated string", field=field)
    tags: list[str] = []
    seen: set[str] = set()
    for item in items:
        tag = text(item, field).strip()
        if tag and tag.casefold() not in seen:  # sent as written; ChartMogul compares tags case-insensitively
            seen.add(tag.casefold())
            tags.append(tag)
    return tags


def _contact(value: t.Any) -> dict[str, t.Any] | None:
    if value is None:
        return None
    contact = json_value(value, "primary_contact")
    if not isinstance(contact, dict):
        raise RecordRejected("field 'primary_contact' must be an object", field="primary_contact")
    return {k: text(contact[k], f"primary_contact.{k}") for k in CONTACT_FIELDS if not is_blank(contact.get(k))}


def _standard_fields(record: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
    """The ChartMogul customer fields the record has columns for (a null column clears the field)."""
    fields: dict[str, t.Any] = {}
    for name in TEXT_FIELDS:
        if name in record:
            fields[name] = optional_text(record, name)
    for name in DATE_FIELDS:
        if name in record:
            fields[name] = None if is_blank(record[name]) else timestamp_text(record[name], name)
    if "country" in record:
        fields["country"] = None if is_blank(record["country"]) else country(record["country"])
    if "primary_contact" in record:
        fields["primary_contact"] = _contact(record["primary_contact"])
    return fields


class CustomerMapper(ColumnMapper):
    """Maps one customer stream's records, also from a nested `attributes: {custom, tags}` column."""

    OBJECT = "customer"
    STANDARD_FIELDS = STANDARD_FIELDS

    def __init__(
        self,
        settings: StreamSettings,
        schema: dict[str, t.Any],
        default_data_source_uuid: str | None,
        logger: logging.Logger,
    ) -> None:
        super().__init__(settings, schema, default_data_source_uuid, logger)
        nested = self.properties.get("attributes", {}).get("properties", {}).get("custom", {})
        self.nested_custom_properties: dict[str, t.Any] = nested.get("properties") or {}

    def _attribute(self, key: str, value: t.Any, field: str, *, nested: bool = False) -> CustomAttribute:
        schema = (self.nested_custom_properties if nested else self.properties).get(key)
        return CustomAttribute(key, *self._typed(key, value, field, schema))

    def map(self, record: t.Mapping[str, t.Any]) -> CustomerPayload:
        """Build the payload, or raise RecordRejected naming the field at fault."""
        fields = _standard_fields(record)
        custom = {column: self._attribute(column, record[column], column) for column in self._custom_columns(record)}
        tags: list[str] | None = _tags(record["tags"], "tags") if "tags" in record else None
        nested_custom, nested_tags = self._nested_attributes(record)
        custom.update(nested_custom)
        if tags is None:
            tags = nested_tags
        self._note_ignored(record, custom)
        payload = CustomerPayload(
            external_id=optional_text(record, "external_id"),
            uuid=optional_text(record, "uuid"),
            data_source_uuid=data_source(record, self.default_data_source_uuid),
            fields=fields,
            custom=custom,
            tags=tags,
        )
        self._check_required(payload)
        return payload

    def _nested_attributes(self, record: t.Mapping[str, t.Any]) -> tuple[dict[str, CustomAttribute], list[str] | None]:
        """Custom attributes and tags from an `attributes: {custom: {...}, tags: [...]}` column."""
        nested = record.get("attributes")
        if nested is None:
            return {}, None
        nested = json_value(nested, "attributes")
        if not isinstance(nested, dict):
            raise RecordRejected("field 'attributes' must be an object {custom: {...}, tags: [...]}", field="attributes")
        nested_custom = nested.get("custom") or {}
        if not isinstance(nested_custom, dict):
            raise RecordRejected("field 'attributes.custom' must be an object of key: value", field="attributes.custom")
        custom = {
            key: self._attribute(key, value, f"attributes.custom.{key}", nested=True)
            for key, value in nested_custom.items()
        }
        tags = _tags(nested["tags"], "attributes.tags") if "tags" in nested else None
        return custom, tags

    def _check_required(self, payload: CustomerPayload) -> None:
        mode, match_by = self.settings.mode, self.settings.match_by
        if not payload.fields.get("name"):
            raise RecordRejected("field 'name' is required", field="name")
        if mode == "update" and match_by == "uuid":
            if not payload.uuid:
                raise RecordRejected("field 'uuid' is required to update by uuid", field="uuid")
            return
        if not payload.external_id:
            raise RecordRejected("field 'external_id' is required", field="external_id")
        if not payload.data_source_uuid:
            raise RecordRejected(
                "no data source: set data_source_uuid in the record or in the target's settings",
                field="data_source_uuid",
            )
        if match_by == "email" and not payload.email:
            raise RecordRejected("field 'email' is required to match by email", field="email")
