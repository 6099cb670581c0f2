"""Contacts in the fake: the people at a customer, in the recorded shapes.

Recorded (``tests/contract/fixtures/contact*.json``): ``POST /contacts`` answers 201
(``con_…``, ``position`` 1 unless sent, unset text ``null``, ``customer_external_id`` of the
customer); ``PATCH /contacts/{uuid}`` takes ``custom`` as ``[{key, value}]`` and answers it
as a ``{key: value}`` map; ``DELETE`` answers 200 ``{}``; ``GET /contacts`` pages carry only
``entries``, ``cursor`` and ``has_more``; ``POST /contacts/{into}/merge/{from}`` answers 200
with the merged contact (``customer_uuid`` null in that answer).

The recordings disagree, so these are switches (attributes of :class:`Contacts`,
``fake.contacts.<switch>``):

``external_ids``: ``"writes"`` (default) | ``"answered"`` | ``"absent"``
    Which answers carry an ``external_id`` key. ``"writes"``, as the ruby recordings: the
    answers of ``POST /contacts`` and ``PATCH /contacts/{uuid}`` carry it (``null`` when
    unset), those of ``GET /contacts`` and ``GET /contacts/{uuid}`` do not (no recorded read
    answer has one). ``"absent"``: no answer carries it (the 2023 go recording, writes too).
    ``"answered"``: every answer carries it (seen in no read recording; kept to show the
    target works either way).
``custom_keys``: ``None`` (default: every key is kept) | a set of key names
    The contact custom attributes defined in the account: others are dropped without an
    error, as the go recording shows (custom sent, ``{}`` answered).

Inferred: a ``custom`` entry with value null removes that key; an unknown contact answers
404 ``{"error": "Contact not found"}``; a create without ``customer_uuid`` or
``data_source_uuid`` answers 400 (missing parameter), with an unknown customer 404
``{"error": "Customer not found"}``. Contacts' external ids are not checked for
uniqueness (no recording shows a refusal).
"""

from __future__ import annotations

import copy
import re
from typing import TYPE_CHECKING, Any

from .store import ApiError, bad_parameter, missing_parameter, new_id, not_found, unprocessable

if TYPE_CHECKING:
    from .store import Store

JSON = dict[str, Any]
Result = tuple[int, Any]

FIELDS = ("first_name", "last_name", "title", "email", "phone", "linked_in", "twitter", "notes")
EXTERNAL_IDS = ("writes", "answered", "absent")


class Contacts:
    """The contacts of a store."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.items: dict[str, JSON] = {}
        self.external_ids = "writes"
        self.custom_keys: set[str] | None = None

    # ------------------------------------------------------------------ answers

    def answer(self, contact: JSON, *, written: bool = False) -> JSON:
        """One contact as answered (``external_id`` only where that switch says so; ``written``: a POST/PATCH answer)."""
        customer = self.store.customers.get(contact["customer_uuid"]) or {}
        view: JSON = {
            "uuid": contact["uuid"],
            "customer_uuid": contact["customer_uuid"],
            "customer_external_id": customer.get("external_id"),
            "data_source_uuid": contact["data_source_uuid"],
        }
        if self.external_ids == "answered" or (written and self.external_ids == "writes"):
            view["external_id"] = contact["external_id"]
        view["position"] = contact["position"]
        view.update({name: contact[name] for name in FIELDS})
        view["custom"] = dict(contact["custom"])
        return view

    def of_customer(self, customer_uuid: str) -> list[JSON]:
        """Test helper: a customer's stored contacts (copies), oldest first."""
        with self.store.lock:
            return [copy.deepcopy(c) for c in self.items.values() if c["customer_uuid"] == customer_uuid]

    # ------------------------------------------------------------------ writes

    def create(self, body: JSON) -> JSON:
        """POST /contacts."""
        for name in ("customer_uuid", "data_source_uuid"):
            if not body.get(name):
                raise missing_parameter(name)
        with self.store.lock:
            if body["customer_uuid"] not in self.store.customers:
                raise not_found("Customer")
            if body["data_source_uuid"] not in self.store.data_sources:
                raise unprocessable({"data_source_uuid": "Data source not found"})
            contact: JSON = {
                "uuid": new_id("con"),
                "customer_uuid": body["customer_uuid"],
                "data_source_uuid": body["data_source_uuid"],
                "external_id": body.get("external_id"),
                "position": 1,
                "custom": {},
                **dict.fromkeys(FIELDS),
            }
            self._apply(contact, body)
            self.items[contact["uuid"]] = contact
            return self.answer(contact, written=True)

    def update(self, uuid: str, body: JSON) -> JSON:
        """PATCH /contacts/{uuid}: the fields sent change (null clears), custom entries merge."""
        with self.store.lock:
            contact = self._contact(uuid)
            self._apply(contact, body)
            if "external_id" in body:
                contact["external_id"] = body["external_id"]
            return self.answer(contact, written=True)

    def delete(self, uuid: str) -> JSON:
        """DELETE /contacts/{uuid}: 200 with an empty object (recorded)."""
        with self.store.lock:
            self._contact(uuid)
            del self.items[uuid]
        return {}

    def merge(self, into: str, other: str) -> JSON:
        """POST /contacts/{into}/merge/{from}: unset fields of ``into`` taken from ``from``, which goes."""
        with self.store.lock:
            kept, gone = self._contact(into), self._contact(other)
            for name in (*FIELDS, "external_id"):
                if kept.get(name) is None:
                    kept[name] = gone.get(name)
            kept["custom"] = {**gone["custom"], **kept["custom"]}
            del self.items[other]
            return {**self.answer(kept), "customer_uuid": None}  # sic: the recorded merge answer

    # ------------------------------------------------------------------ reads

    def page(self, query: dict[str, str]) -> JSON:
        """``GET /contacts`` filtered by data source, customer or email: entries, cursor, has_more."""
        if "page" in query:
            raise bad_parameter("page", 'Parameter "page" is deprecated')
        with self.store.lock:
            found = [c for c in self.items.values() if self._selected(c, query)]
            page = self.store.page(found, query.get("cursor"), query.get("per_page"))
            return {"entries": [self.answer(c) for c in page.items], "cursor": page.cursor, "has_more": page.has_more}

    def get(self, uuid: str) -> JSON:
        with self.store.lock:
            return self.answer(self._contact(uuid))

    # ------------------------------------------------------------------ rules

    def _contact(self, uuid: str) -> JSON:
        contact = self.items.get(uuid)
        if contact is None:
            raise ApiError(404, {"error": "Contact not found"})
        return contact

    def _apply(self, contact: JSON, body: JSON) -> None:
        errors: dict[str, str] = {}
        for name in FIELDS:
            if name in body:
                value = body[name]
                if value is not None and not isinstance(value, str):
                    errors[name] = "is invalid"
                contact[name] = value
        if "position" in body:
            position = body["position"]
            if isinstance(position, bool) or not isinstance(position, int):
                errors["position"] = "is not a number"
            contact["position"] = position
        custom = body.get("custom")
        if custom is not None:
            self._apply_custom(contact, custom, errors)
        if errors:
            raise unprocessable(errors)

    def _apply_custom(self, contact: JSON, custom: Any, errors: dict[str, str]) -> None:
        if not isinstance(custom, list) or not all(isinstance(e, dict) and isinstance(e.get("key"), str) for e in custom):
            errors["custom"] = "must be an array of {key, value}"
            return
        for entry in custom:
            key = entry["key"]
            if not re.fullmatch(r"[A-Za-z0-9_]+", key):
                errors[f"custom.{key}"] = "is invalid"
            elif self.custom_keys is not None and key not in self.custom_keys:
                continue  # not defined in the account: dropped without a word (the go recording)
            elif entry.get("value") is None:
                contact["custom"].pop(key, None)
            else:
                contact["custom"][key] = entry["value"]

    def _selected(self, contact: JSON, query: dict[str, str]) -> bool:
        if "data_source_uuid" in query and contact["data_source_uuid"] != query["data_source_uuid"]:
            return False
        if "customer_uuid" in query and contact["customer_uuid"] != query["customer_uuid"]:
            return False
        if "customer_external_id" in query:
            customer = self.store.customers.get(contact["customer_uuid"]) or {}
            if query["customer_external_id"] not in customer.get("external_ids", []):
                return False
        email = query.get("email")
        return email is None or (contact["email"] or "").casefold() == email.casefold()


# ---------------------------------------------------------------------- routes (registered in server.py)


def _create(store: Store, m: re.Match[str], q: dict[str, str], b: JSON) -> Result:
    return 201, store.contacts.create(b)


def _list(store: Store, m: re.Match[str], q: dict[str, str], b: JSON) -> Result:
    return 200, store.contacts.page(q)


def _get(store: Store, m: re.Match[str], q: dict[str, str], b: JSON) -> Result:
    return 200, store.contacts.get(m["id"])


def _update(store: Store, m: re.Match[str], q: dict[str, str], b: JSON) -> Result:
    return 200, store.contacts.update(m["id"], b)


def _delete(store: Store, m: re.Match[str], q: dict[str, str], b: JSON) -> Result:
    return 200, store.contacts.delete(m["id"])


def _merge(store: Store, m: re.Match[str], q: dict[str, str], b: JSON) -> Result:
    return 200, store.contacts.merge(m["id"], m["other"])


_ID = r"(?P<id>[^/]+)"
ROUTES = [
    ("POST", r"/contacts", _create),
    ("GET", r"/contacts", _list),
    ("POST", rf"/contacts/{_ID}/merge/(?P<other>[^/]+)", _merge),
    ("GET", rf"/contacts/{_ID}", _get),
    ("PATCH", rf"/contacts/{_ID}", _update),
    ("DELETE", rf"/contacts/{_ID}", _delete),
]
