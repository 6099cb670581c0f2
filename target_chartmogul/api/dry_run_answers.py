"""What a dry run answers for subscription events and contacts, as ChartMogul would.

`DryRunClient` (target_chartmogul/api/dry_run.py) sends no write; for these two objects it
asks this module, which reads what ChartMogul holds through the dry run's own reads and
answers in the recorded shapes: POST /subscription_events 201 with the event (an `id`),
PATCH 200, DELETE 204, an unknown event 404, a used external id 422; POST /contacts 201,
PATCH /contacts/{uuid} 200, DELETE 200 `{}`, an unknown contact 404. What it "wrote" is
kept for the rest of the run: later reads see it (`local`, `overlaid`).
"""

from __future__ import annotations

import copy
import itertools
import threading
import typing as t

from target_chartmogul.api.errors import APIError
from target_chartmogul.values import dates

JSON = dict[str, t.Any]
EventKey = tuple[str, str]  # (data source, external id)

EVENT_FIELDS = ("customer_external_id", "subscription_set_external_id", "subscription_external_id", "plan_external_id",
                "event_date", "effective_date", "event_type", "quantity", "currency", "amount_in_cents",
                "tax_amount_in_cents", "retracted_event_id")
CONTACT_FIELDS = ("external_id", "position", "first_name", "last_name", "title", "email", "phone", "linked_in",
                  "twitter", "notes")
EVENT_NOT_FOUND: JSON = {"error": "Subscription event not found"}
CONTACT_NOT_FOUND: JSON = {"error": "Contact not found"}
EVENT_TAKEN: JSON = {"errors": {"external_id": "has already been taken"}}


class Refusal(Exception):
    """A simulated refusal: ChartMogul's status and body."""

    def __init__(self, status: int, body: JSON) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.body = body


def _event_time(value: t.Any) -> t.Any:
    """A date as event answers carry it (`2022-02-16T00:00:00Z`, recorded); anything unreadable as sent."""
    return dates.as_answered(value, millis=False)


def _envelope(body: t.Any) -> JSON:
    sent = body.get("subscription_event") if isinstance(body, dict) else None
    if not isinstance(sent, dict):
        raise Refusal(400, {"code": 400, "message": 'Parameter "subscription_event" is missing', "param": "subscription_event"})
    return sent


def _custom_map(held: JSON, entries: t.Any) -> JSON:
    """`custom` `[{key, value}]` applied to a contact's `{key: value}` map (a null value clears the key)."""
    custom = dict(held)
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and isinstance(entry.get("key"), str):
            if entry.get("value") is None:
                custom.pop(entry["key"], None)
            else:
                custom[entry["key"]] = entry["value"]
    return custom


class EventsAndContacts:
    """The subscription events and contacts of one dry run; `read(path, params)` is its GET (the body)."""

    def __init__(self, read: t.Callable[[str, dict[str, t.Any] | None], t.Any], made: t.Callable[[str], bool]) -> None:
        self._read = read
        self._made = made  # whether the dry run created this customer (it is then unknown to ChartMogul)
        self._lock = threading.RLock()
        self._numbers = itertools.count(1)
        self._events: dict[EventKey, JSON] = {}  # created or changed by this dry run
        self._gone_events: set[EventKey] = set()
        self._seen_events: dict[t.Any, JSON] = {}  # by id, as ChartMogul's listings answered them in this run
        self._contacts: dict[str, JSON] = {}
        self._gone_contacts: set[str] = set()
        self._created_contacts: set[str] = set()

    def routes(self) -> list[tuple[str, str, t.Callable[[str, t.Any], tuple[int, t.Any]]]]:
        """(method, path pattern, handler) of every write this module answers."""
        return [
            ("POST", r"subscription_events", self.create_event),
            ("PATCH", r"subscription_events", self.update_event),
            ("DELETE", r"subscription_events", self.delete_event),
            ("POST", r"contacts", self.create_contact),
            ("PATCH", r"contacts/([^/]+)", self.update_contact),
            ("DELETE", r"contacts/([^/]+)", self.delete_contact),
        ]

    # Events -------------------------------------------------------------------------------
    def held_event(self, sent: JSON) -> JSON | None:
        """The event an envelope names (by data source and external id, or by id), as it stands now.

        An id this dry run neither made nor saw listed is taken as held: the target names an event by id only when
        ChartMogul gave it that id (in an answer or a listing that the sync memory kept).
        """
        with self._lock:
            for key, event in self._events.items():
                if (sent.get("id") is not None and event["id"] == sent["id"]) or key == self._key(sent):
                    return copy.deepcopy(event)
            if sent.get("id") is not None:
                seen = self._seen_events.get(sent["id"], {"id": sent["id"]})
                return None if self._key(seen) in self._gone_events else copy.deepcopy(seen)
            if self._key(sent) in self._gone_events or sent.get("data_source_uuid") is None:
                return None
        params = {"data_source_uuid": sent["data_source_uuid"], "external_id": sent.get("external_id")}
        found = (self._read("subscription_events", params) or {}).get("subscription_events") or []
        return next((dict(e) for e in found if e.get("external_id") == sent.get("external_id")), None)

    @staticmethod
    def _key(sent: JSON) -> EventKey:
        return (str(sent.get("data_source_uuid")), str(sent.get("external_id")))

    def create_event(self, _: str, body: t.Any) -> tuple[int, JSON]:
        sent = _envelope(body)
        if sent.get("external_id") is not None and self.held_event(sent) is not None:
            raise Refusal(422, EVENT_TAKEN)
        event: JSON = {"id": f"dryrun_{next(self._numbers)}", "data_source_uuid": sent.get("data_source_uuid"),
                       "external_id": sent.get("external_id"), "errors": {}}
        event.update({name: _event_time(sent.get(name)) if name.endswith("_date") else sent.get(name)
                      for name in EVENT_FIELDS})
        with self._lock:
            self._events[self._key(sent)] = event
            self._gone_events.discard(self._key(sent))
        return 201, copy.deepcopy(event)

    def update_event(self, _: str, body: t.Any) -> tuple[int, JSON]:
        sent = _envelope(body)
        event = self.held_event(sent)
        if event is None:
            raise Refusal(404, EVENT_NOT_FOUND)
        event.update({k: _event_time(v) if k.endswith("_date") else v for k, v in sent.items() if k in EVENT_FIELDS})
        with self._lock:
            self._events[self._key(event)] = event
        return 200, copy.deepcopy(event)

    def delete_event(self, _: str, body: t.Any) -> tuple[int, None]:
        event = self.held_event(_envelope(body))
        if event is None:
            raise Refusal(404, EVENT_NOT_FOUND)
        with self._lock:
            self._events.pop(self._key(event), None)
            self._gone_events.add(self._key(event))
        return 204, None

    # Contacts -----------------------------------------------------------------------------
    def held_contact(self, uuid: str) -> JSON:
        with self._lock:
            if uuid in self._gone_contacts:
                raise Refusal(404, CONTACT_NOT_FOUND)
            if uuid in self._contacts:
                return copy.deepcopy(self._contacts[uuid])
        try:
            held = self._read(f"contacts/{uuid}", None)
        except APIError as exc:
            if exc.status == 404:
                raise Refusal(404, CONTACT_NOT_FOUND) from None
            raise
        return dict(held) if isinstance(held, dict) else {}

    def create_contact(self, _: str, body: t.Any) -> tuple[int, JSON]:
        sent: JSON = body if isinstance(body, dict) else {}
        for name in ("customer_uuid", "data_source_uuid"):
            if not sent.get(name):
                raise Refusal(400, {"code": 400, "message": f'Parameter "{name}" is missing', "param": name})
        contact: JSON = {"uuid": f"con_dryrun_{next(self._numbers)}", "customer_uuid": sent["customer_uuid"],
                         "customer_external_id": None, "data_source_uuid": sent["data_source_uuid"]}
        contact.update({name: sent.get(name) for name in CONTACT_FIELDS})
        contact["position"] = sent.get("position") or 1
        contact["custom"] = _custom_map({}, sent.get("custom"))
        with self._lock:
            self._contacts[contact["uuid"]] = contact
            self._created_contacts.add(contact["uuid"])
        return 201, copy.deepcopy(contact)

    def update_contact(self, uuid: str, body: t.Any) -> tuple[int, JSON]:
        contact = self.held_contact(uuid)
        sent: JSON = body if isinstance(body, dict) else {}
        contact.update({name: sent[name] for name in CONTACT_FIELDS if name in sent})
        if "custom" in sent:
            contact["custom"] = _custom_map(contact.get("custom") or {}, sent["custom"])
        with self._lock:
            self._contacts[uuid] = contact
        return 200, copy.deepcopy(contact)

    def delete_contact(self, uuid: str, _: t.Any) -> tuple[int, JSON]:
        self.held_contact(uuid)
        with self._lock:
            self._contacts.pop(uuid, None)
            self._gone_contacts.add(uuid)
        return 200, {}

    # Reads --------------------------------------------------------------------------------
    def local(self, route: str, params: dict[str, t.Any] | None) -> JSON | None:
        """GET contacts/{uuid} of a contact this dry run created or changed (a deleted one: 404).

        Also the contacts of a customer it created: never asked of ChartMogul, which cannot know them.
        """
        customer = (params or {}).get("customer_uuid")
        if route == "contacts" and isinstance(customer, str) and self._made(customer):
            with self._lock:
                entries = [copy.deepcopy(c) for c in self._contacts.values() if c["customer_uuid"] == customer]
            return {"entries": entries, "cursor": None, "has_more": False}
        if not route.startswith("contacts/"):
            return None
        uuid = route.removeprefix("contacts/")
        with self._lock:
            if uuid in self._gone_contacts:
                raise Refusal(404, CONTACT_NOT_FOUND)
            return copy.deepcopy(self._contacts[uuid]) if uuid in self._contacts else None

    def overlaid(self, route: str, params: dict[str, t.Any] | None, body: t.Any) -> t.Any:
        """A listing of events or contacts as it would be after this dry run's writes."""
        root = {"subscription_events": "subscription_events", "contacts": "entries"}.get(route)
        if root is None or not isinstance(body, dict) or not isinstance(body.get(root), list):
            return body
        with self._lock:
            changed: dict[t.Any, JSON] = {**self._events, **self._contacts}
            gone: set[t.Any] = self._gone_events | self._gone_contacts
            created = [e for e in self._events.values() if isinstance(e["id"], str)]
            created += [self._contacts[u] for u in self._created_contacts if u in self._contacts]
        entries = []
        if root == "subscription_events":
            with self._lock:
                self._seen_events.update({e["id"]: dict(e) for e in body[root] if isinstance(e, dict) and "id" in e})
        for entry in body[root]:
            name = entry.get("uuid") if root == "entries" else (str(entry.get("data_source_uuid")), str(entry.get("external_id")))
            if name not in gone:
                entries.append(copy.deepcopy(changed.get(name, entry)))
        if not body.get("has_more"):
            entries += [copy.deepcopy(c) for c in created if c not in entries and _selected(c, params or {})]
        return {**body, root: entries}


def _selected(obj: JSON, params: dict[str, t.Any]) -> bool:
    """Whether a list query's filters select an object this dry run created."""
    filters = ("data_source_uuid", "external_id", "customer_uuid", "customer_external_id", "email")
    return all(str(obj.get(name)) == str(params[name]) for name in filters if params.get(name) is not None)
