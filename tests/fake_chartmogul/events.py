"""Subscription events in the fake: the Import API's second path, in the recorded shapes.

Recorded (``tests/contract/fixtures/subscription_event*.json``): ``POST /subscription_events``
with a ``subscription_event`` envelope answers 201 with the event (an integer ``id``,
``errors: {}``); ``PATCH`` with the envelope (by ``id``) answers 200 with it; ``DELETE`` by
``?subscription_event[id]=`` answers 204; ``GET`` pages carry ``meta`` on the first page and
``cursor``/``has_more``, newest first by id (the store's ``listing_order`` switch, ``"created"``: oldest
first), the cursor naming the last event's key (a keyset, as the recorded ``<created_at>&<id>``
is). Dates come back as ``…T00:00:00Z`` (no milliseconds); fields
are echoed as sent, so a field sent as ``""`` comes back ``""`` and one left out ``null``
(the ruby and go recordings); ``event_order`` is never answered.

Not recorded, so played by switches (attributes of :class:`SubscriptionEvents`,
``fake.subscription_events.<switch>``):

``duplicates``: ``"errors"`` (default) | ``"message"`` | ``"accepted"``
    How a second event with an external id already used in the data source is met:
    422 ``{"errors": {"external_id": "has already been taken"}}``, 422
    ``{"code": 422, "message": …, "param": "external_id"}``, or saved as a second event.
``unset``: ``"as_sent"`` (default, as recorded) | ``"empty"``
    ``"empty"`` answers ``""`` for every unset text and number field (what
    chartmogul-api.md §12 describes), whatever was sent.
``naming``: ``"either"`` (default) | ``"id"``
    How a PATCH or DELETE may name its event. Every recording names it by ``id`` (the PATCH
    envelope; DELETE ``?subscription_event[id]=``). Naming it by ``data_source_uuid`` +
    ``external_id`` in the envelope, and a DELETE with the envelope as its body, are shown only
    by chartmogul-python's mocks (``test/api/test_subscription_event.py``; the n8n node sends
    them too): ``"either"`` accepts both forms, ``"id"`` only the recorded one (any other
    answers 400 ``Parameter "id" is missing``), to prove a client names events by id.

Also inferred: an unknown event answers 404 ``{"error": "Subscription event not found"}``;
an event naming a customer or plan the data source lacks, or missing what its type needs,
answers 422 ``{"errors": {field: message}}``.
"""

from __future__ import annotations

import copy
import itertools
import re
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from .store import ApiError, Keyset, bad_parameter, missing_parameter, not_found, parse_timestamp, unprocessable

if TYPE_CHECKING:
    from .store import Store

JSON = dict[str, Any]
Result = tuple[int, Any]

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
PRICED = ("subscription_start", "subscription_start_scheduled", "subscription_updated", "subscription_update_scheduled")
PRICE_FIELDS = ("plan_external_id", "currency", "amount_in_cents", "quantity")
REQUIRED = ("data_source_uuid", "customer_external_id", "subscription_external_id", "event_type", "event_date",
            "effective_date")
TEXT = ("customer_external_id", "subscription_set_external_id", "subscription_external_id", "plan_external_id",
        "event_type", "external_id", "currency")
NUMBERS = ("quantity", "amount_in_cents", "tax_amount_in_cents", "retracted_event_id", "event_order")
DATES = ("event_date", "effective_date")
ANSWERED = ("id", "data_source_uuid", "customer_external_id", "subscription_set_external_id", "subscription_external_id",
            "plan_external_id", "event_date", "effective_date", "event_type", "external_id", "errors", "created_at",
            "updated_at", "quantity", "currency", "amount_in_cents", "tax_amount_in_cents", "retracted_event_id")
EMPTY_WHEN_UNSET = ("subscription_set_external_id", "plan_external_id", "currency", "quantity", "amount_in_cents")
DUPLICATES = ("errors", "message", "accepted")
NAMINGS = ("either", "id")
UNSET = ("as_sent", "empty")
TAKEN = "has already been taken"
NOT_FOUND = "Subscription event not found"


def _event_time(value: Any) -> str | None:
    """Dates as event answers carry them: ``2022-02-16T00:00:00Z`` (no milliseconds, recorded)."""
    moment = parse_timestamp(value)
    return None if moment is None else moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _blank(value: Any) -> bool:
    return value is None or value == ""


class SubscriptionEvents:
    """The events of a store, with the rules of the Import API's event endpoints."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.items: dict[int, JSON] = {}
        self._ids = itertools.count(138979000)
        self.duplicates = "errors"
        self.unset = "as_sent"
        self.naming = "either"

    # ------------------------------------------------------------------ answers

    def answer(self, event: JSON) -> JSON:
        """One event as answered: the recorded keys, ``event_order`` left out."""
        view = {key: copy.deepcopy(event.get(key)) for key in ANSWERED}
        if self.unset == "empty":
            for key in EMPTY_WHEN_UNSET:
                if view[key] is None:
                    view[key] = ""
        return view

    def next_id(self, event_id: int) -> None:
        """Test helper: number the next events from ``event_id`` (a replay then meets the recorded ids)."""
        with self.store.lock:
            self._ids = itertools.count(event_id)

    def find(self, data_source_uuid: str, external_id: str) -> list[JSON]:
        """Test helper: the stored events with this external id in this data source (copies)."""
        with self.store.lock:
            return [copy.deepcopy(e) for e in self.items.values()
                    if e["data_source_uuid"] == data_source_uuid and e["external_id"] == external_id]

    # ------------------------------------------------------------------ writes

    def create(self, body: JSON) -> JSON:
        """POST: validate, refuse (or keep) a duplicate external id, save."""
        sent = self._envelope(body)
        with self.store.lock:
            event = self._validated(sent)
            if event["external_id"] is not None and self._taken(event["data_source_uuid"], event["external_id"]):
                self._refuse_duplicate()
            event["id"] = next(self._ids)
            event["errors"] = {}
            event["created_at"] = event["updated_at"] = _now()
            self.items[event["id"]] = event
            return self.answer(event)

    def update(self, body: JSON) -> JSON:
        """PATCH: the event by ``id`` or by data source and external id; the fields sent change."""
        sent = self._envelope(body)
        with self.store.lock:
            event = self._target(sent)[0]
            changed = {**event, **{k: v for k, v in sent.items() if k not in ("id", "data_source_uuid")}}
            if "external_id" not in sent:
                changed["external_id"] = event["external_id"]
            validated = self._validated({**changed, "data_source_uuid": event["data_source_uuid"]})
            if validated["external_id"] != event["external_id"] and validated["external_id"] is not None:
                others = [e for e in self.items.values() if e["id"] != event["id"]]
                if any(e["data_source_uuid"] == event["data_source_uuid"] and e["external_id"] == validated["external_id"]
                       for e in others):
                    self._refuse_duplicate()
            event.update({k: v for k, v in validated.items() if k not in ("id", "errors", "created_at")})
            event["updated_at"] = _now()
            return self.answer(event)

    def delete(self, query: JSON, body: JSON) -> None:
        """DELETE by ``?subscription_event[id]=`` (recorded) or by the envelope in the body."""
        sent = body.get("subscription_event") if isinstance(body.get("subscription_event"), dict) else {}
        if query.get("subscription_event[id]"):
            sent = {"id": query["subscription_event[id]"]}
        for key in ("data_source_uuid", "external_id"):
            if query.get(f"subscription_event[{key}]"):
                sent[key] = query[f"subscription_event[{key}]"]
        with self.store.lock:
            for event in self._target(sent):
                del self.items[event["id"]]

    # ------------------------------------------------------------------ reads

    def keyset(self) -> Keyset:
        """Events by id: newest first (``listing_order="recorded"``, as the paging recording shows) or oldest first."""
        return self.store.keyset("subscription_events", lambda event: (event["id"],))

    def listing(self, query: dict[str, str]) -> list[JSON]:
        """Events matching the list filters, in the store's ``listing_order``."""
        with self.store.lock:
            customers = self._customer_keys(query.get("customer_uuid"))
            found = [e for e in self.items.values() if self._selected(e, query, customers)]
            return self.keyset().sort(found)

    def page(self, query: dict[str, str]) -> JSON:
        """One page: ``meta`` (deprecated, recorded) only on a first page, then cursor and has_more.

        The cursor names the id of the page's last event (the recorded one is ``<created_at>&<id>``):
        the next page is the events stored then that sort after it.
        """
        if "page" in query:
            raise bad_parameter("page", 'Parameter "page" is deprecated')
        items = self.listing(query)
        page = self.store.page(items, query.get("cursor"), query.get("per_page"), self.keyset())
        body: JSON = {"subscription_events": [self.answer(e) for e in page.items]}
        if page.first:
            last = page.items[-1]["id"] if page.items and page.has_more else None
            body["meta"] = {"next_key": last, "prev_key": None, "before_key": _now().replace("Z", ".000Z"),
                            "page": 1 if items else 0, "total_pages": page.total_pages}
        body.update(cursor=page.cursor, has_more=page.has_more)
        return body

    # ------------------------------------------------------------------ rules

    @staticmethod
    def _envelope(body: JSON) -> JSON:
        sent = body.get("subscription_event")
        if not isinstance(sent, dict):
            raise missing_parameter("subscription_event")
        return sent

    def _validated(self, sent: JSON) -> JSON:
        """The event as stored (dates normalised, ``""`` kept as sent), or 422 naming each field."""
        errors: dict[str, str] = {}
        event: JSON = {"data_source_uuid": sent.get("data_source_uuid")}
        for key in (*TEXT, *NUMBERS):
            event[key] = sent.get(key)
        for key in DATES:
            event[key] = _event_time(sent.get(key)) if not _blank(sent.get(key)) else None
            if not _blank(sent.get(key)) and event[key] is None:
                errors[key] = "is invalid"
        for key in REQUIRED:
            if _blank(sent.get(key)):
                errors[key] = "can't be blank"
        self._check_type(event, errors)
        self._check_references(event, errors)
        if errors:
            raise unprocessable(errors)
        return event

    @staticmethod
    def _check_type(event: JSON, errors: dict[str, str]) -> None:
        kind = event["event_type"]
        if not _blank(kind) and kind not in EVENT_TYPES:
            errors["event_type"] = "is not included in the list"
        if kind in PRICED:
            errors.update({key: "can't be blank" for key in PRICE_FIELDS if _blank(event[key])})
        if kind == "subscription_event_retracted" and _blank(event["retracted_event_id"]):
            errors["retracted_event_id"] = "can't be blank"
        for key in ("quantity", "amount_in_cents", "tax_amount_in_cents"):
            value = event[key]
            if not _blank(value) and (isinstance(value, bool) or not isinstance(value, int)):
                errors[key] = "is not a number"
        currency = event["currency"]
        if not _blank(currency) and not (isinstance(currency, str) and re.fullmatch(r"[A-Z]{3}", currency)):
            errors["currency"] = "is invalid"

    def _check_references(self, event: JSON, errors: dict[str, str]) -> None:
        ds = event["data_source_uuid"]
        if _blank(ds):
            return
        if ds not in self.store.data_sources:
            errors["data_source_uuid"] = "Data source not found"
            return
        customer = event["customer_external_id"]
        if not _blank(customer) and not self.store.find_customers(ds, str(customer)):
            errors["customer_external_id"] = "Customer not found"
        plan = event["plan_external_id"]
        if not _blank(plan) and self.store.find_plan(ds, str(plan)) is None:
            errors["plan_external_id"] = "Plan not found"

    def _taken(self, data_source_uuid: str, external_id: Any) -> bool:
        return any(e["data_source_uuid"] == data_source_uuid and e["external_id"] == external_id
                   for e in self.items.values())

    def _refuse_duplicate(self) -> None:
        if self.duplicates == "errors":
            raise unprocessable({"external_id": TAKEN})
        if self.duplicates == "message":
            raise ApiError(422, {"code": 422, "message": "Subscription event already exists", "param": "external_id"})

    def _target(self, sent: JSON) -> list[JSON]:
        """The events an envelope names: by ``id``, else (switch ``naming``) by data source and external id; 404 when none."""
        if not _blank(sent.get("id")):
            try:
                found = self.items.get(int(sent["id"]))
            except (TypeError, ValueError):
                found = None
            events = [found] if found is not None else []
        elif self.naming == "either" and not _blank(sent.get("data_source_uuid")) and not _blank(sent.get("external_id")):
            events = [e for e in self.items.values()
                      if e["data_source_uuid"] == sent["data_source_uuid"] and e["external_id"] == sent["external_id"]]
        else:
            raise missing_parameter("id")
        if not events:
            raise ApiError(404, {"error": NOT_FOUND})
        return events

    def _customer_keys(self, customer_uuid: str | None) -> set[tuple[str, str]] | None:
        """(data source, external id) pairs of the customer a ``customer_uuid`` filter names."""
        if customer_uuid is None:
            return None
        customer = self.store.customers.get(customer_uuid)
        if customer is None:
            raise not_found("Customer")
        return {(ds, ext) for ds in customer["data_source_uuids"] for ext in customer["external_ids"]}

    @staticmethod
    def _selected(event: JSON, query: dict[str, str], customers: set[tuple[str, str]] | None) -> bool:
        filters = ("data_source_uuid", "external_id", "customer_external_id", "subscription_external_id",
                   "plan_external_id", "event_type")
        if any(key in query and str(event.get(key)) != query[key] for key in filters):
            return False
        return customers is None or (event["data_source_uuid"], event["customer_external_id"]) in customers


# ---------------------------------------------------------------------- routes (registered in server.py)


def _create(store: Store, m: re.Match[str], q: dict[str, str], b: JSON) -> Result:
    return 201, store.events.create(b)


def _list(store: Store, m: re.Match[str], q: dict[str, str], b: JSON) -> Result:
    return 200, store.events.page(q)


def _update(store: Store, m: re.Match[str], q: dict[str, str], b: JSON) -> Result:
    return 200, store.events.update(b)


def _delete(store: Store, m: re.Match[str], q: dict[str, str], b: JSON) -> Result:
    store.events.delete(q, b)
    return 204, None


ROUTES = [
    ("POST", r"/subscription_events", _create),
    ("GET", r"/subscription_events", _list),
    ("PATCH", r"/subscription_events", _update),
    ("DELETE", r"/subscription_events", _delete),
]
