"""Subscription-event records to ChartMogul event payloads, checked per event type before any call.

Column names equal ChartMogul's event fields. What each of the ten event types needs is
checked here, so a start without a plan costs one reject line naming `plan_external_id`
instead of an API call ChartMogul would refuse.
"""

from __future__ import annotations

import dataclasses
import typing as t

from target_chartmogul.errors import RecordRejected
from target_chartmogul.mapping.common import amount_column, optional_text, required_data_source, required_text
from target_chartmogul.values.dates import timestamp_text
from target_chartmogul.values.numbers import amount_cents, integer
from target_chartmogul.values.text import choice, currency, is_blank

EVENT_TYPES = (
    "subscription_start",
    "subscription_start_scheduled",
    "scheduled_subscription_start_retracted",
    "subscription_updated",
    "subscription_update_scheduled",
    "scheduled_subscription_update_retracted",
    "subscription_cancelled",
    "subscription_cancellation_scheduled",
    "scheduled_subscription_cancellation_retracted",
    "subscription_event_retracted",
)
# A start or an update (scheduled or not) sets a price: it needs all of these.
PRICED = ("subscription_start", "subscription_start_scheduled", "subscription_updated", "subscription_update_scheduled")
PRICE_FIELDS = ("plan_external_id", "currency", "amount_in_cents", "quantity")
RETRACTION = "subscription_event_retracted"
TEXT_FIELDS = ("customer_external_id", "subscription_external_id", "subscription_set_external_id", "plan_external_id")
DATE_FIELDS = ("event_date", "effective_date")
AMOUNT_FIELDS = ("amount_in_cents", "tax_amount_in_cents")
# Every field an event payload manages; unset ones are None (left out of a create, cleared by a full update).
FIELDS = (*TEXT_FIELDS, "event_type", *DATE_FIELDS, "currency", *AMOUNT_FIELDS, "quantity", "retracted_event_id",
          "event_order")


@dataclasses.dataclass(frozen=True)
class EventPayload:
    """One subscription event as a record asks ChartMogul to hold it."""

    data_source_uuid: str
    external_id: str
    fields: dict[str, t.Any]

    @property
    def key(self) -> tuple[str, str]:
        """Its identity: external id within the data source (also its sync-memory key)."""
        return (self.data_source_uuid, self.external_id)

    def envelope(self, fields: t.Mapping[str, t.Any], event_id: int | None = None) -> dict[str, t.Any]:
        """`{"subscription_event": {...}}` for a PATCH or DELETE body, naming the event by its ChartMogul id.

        Every recorded PATCH names the event by `id` alone (ruby cassette `update/updates_the_subscription_event`);
        data source and external id instead are shown only by chartmogul-python's hand-written mocks, so that
        form is the fallback for an event whose id cannot be known.
        """
        if event_id is not None:
            return {"subscription_event": {"id": event_id, **fields}}
        return {"subscription_event": {"data_source_uuid": self.data_source_uuid, "external_id": self.external_id, **fields}}

    def create_body(self) -> dict[str, t.Any]:
        """Body of POST /subscription_events: data source, external id and the fields that are set."""
        return self.envelope({k: v for k, v in self.fields.items() if v is not None})

    def fingerprint(self) -> dict[str, t.Any]:
        """What the sync memory hashes: identity and every managed field."""
        return {"ds": self.data_source_uuid, "external_id": self.external_id, "fields": self.fields}


def known_event_id(value: t.Any) -> int | None:
    """ChartMogul's integer id of an event, from an answer's `id` or the sync memory's text copy of it.

    None when it is not a whole number (no id known): the event is then named by data source and external id.
    """
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    text = str(value).strip()
    return int(text) if text.isdigit() else None


def delete_query(event_id: int) -> dict[str, str]:
    """The query of a DELETE naming the event by id: `?subscription_event[id]=` is how every recording deletes one."""
    return {"subscription_event[id]": str(event_id)}


def _required_for_type(event_type: str, fields: dict[str, t.Any]) -> None:
    """A start or update needs plan, currency, amount and quantity; a retraction the event it retracts."""
    needed = PRICE_FIELDS if event_type in PRICED else ("retracted_event_id",) if event_type == RETRACTION else ()
    for name in needed:
        if fields[name] is None:
            raise RecordRejected(f"field '{name}' is required for a {event_type} event", field=name)


def _amounts(record: t.Mapping[str, t.Any], unit: str, currency_code: str | None) -> dict[str, int | None]:
    found: dict[str, int | None] = {}
    for name in AMOUNT_FIELDS:
        column = amount_column(record, name, unit)
        found[name] = None if column is None else amount_cents(record[column], column, unit=unit, currency=currency_code)
    return found


def _whole(record: t.Mapping[str, t.Any], name: str, minimum: int | None = None) -> int | None:
    return None if is_blank(record.get(name)) else integer(record[name], name, minimum=minimum)


def map_event(record: t.Mapping[str, t.Any], default_data_source_uuid: str | None, *, amount_unit: str) -> EventPayload:
    """Build the payload, or raise RecordRejected naming the field at fault."""
    external_id = required_text(record, "external_id", "without it a replayed event would be doubled")
    ds = required_data_source(record, default_data_source_uuid)
    if is_blank(record.get("event_type")):
        raise RecordRejected("field 'event_type' is required", field="event_type")
    event_type = choice(record["event_type"], "event_type", EVENT_TYPES)
    fields: dict[str, t.Any] = {name: optional_text(record, name) for name in TEXT_FIELDS}
    fields["event_type"] = event_type
    for name in ("customer_external_id", "subscription_external_id"):
        if fields[name] is None:
            raise RecordRejected(f"field '{name}' is required", field=name)
    for name in DATE_FIELDS:
        if is_blank(record.get(name)):
            raise RecordRejected(f"field '{name}' is required", field=name)
        fields[name] = timestamp_text(record[name], name)
    fields["currency"] = None if is_blank(record.get("currency")) else currency(record["currency"])
    fields.update(_amounts(record, amount_unit, fields["currency"]))
    fields["quantity"] = _whole(record, "quantity", minimum=0)
    fields["retracted_event_id"] = _whole(record, "retracted_event_id", minimum=1)
    fields["event_order"] = _whole(record, "event_order")
    _required_for_type(event_type, fields)
    return EventPayload(ds, external_id, {name: fields[name] for name in FIELDS})
