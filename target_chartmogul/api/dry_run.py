"""Dry run: one client that reads from ChartMogul and answers every write itself.

A dry run must decide exactly as a real run would, so the sinks must meet the answers a
real run meets, and they run unchanged. `DryRunClient` sends reads (GET) as usual and
never sends a write: it asks ChartMogul what it would say (does this external id exist?
does this customer?), then answers in the shapes of ChartMogul's recorded answers
(tests/contract/fixtures): the same duplicate refusals, the same 201/202/204s. What it
"wrote" is remembered for the rest of the run, so later reads and writes see it.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import json
import logging
import re
import threading
import typing as t

from target_chartmogul.api.answers import external_ids_in
from target_chartmogul.api.client import Attempt, ChartMogulClient, Response
from target_chartmogul.api.dry_run_answers import EventsAndContacts, Refusal
from target_chartmogul.api.errors import APIError
from target_chartmogul.values import dates
from target_chartmogul.values.encoding import dumps

LOGGER = logging.getLogger("target_chartmogul.api.dry_run")

JSON = dict[str, t.Any]

# ChartMogul's refusals of a duplicate external id (chartmogul-api.md §9).
DUPLICATE_CUSTOMER = "The external ID for this customer already exists in our system."
DUPLICATE_PLAN = "A plan with this identifier already exists in our system."
DUPLICATE_INVOICE = "The external ID for this invoice already exists in our system."
DUPLICATE_LINE_ITEM = "The external ID for this line item already exists in our system."
DUPLICATE_TRANSACTION = "has already been taken"

NOUNS = {"customer": "Customer", "plan": "Plan", "invoice": "Invoice"}  # in ChartMogul's 404 bodies
PATHS = {"customer": "customers", "plan": "plans", "invoice": "invoices"}
_OBJECT = re.compile(r"(?P<path>customers|plans|invoices)/(?P<uuid>[^/]+)(?P<attributes>/attributes)?")
_CUSTOMER_INVOICES = re.compile(r"import/customers/(?P<uuid>[^/]+)/invoices")
_LISTINGS = {  # list endpoint -> (kind, root key of its answer)
    "customers": ("customer", "entries"),
    "customers/search": ("customer", "entries"),
    "plans": ("plan", "plans"),
    "invoices": ("invoice", "invoices"),
}
_FILTERS = ("data_source_uuid", "external_id", "customer_uuid", "email")

# How a customer answers its standard fields (recorded): unset text is "", the rest null.
_CUSTOMER_TEXT = ("name", "email", "company")
_CUSTOMER_NULLABLE = ("country", "state", "city", "zip", "lead_created_at", "free_trial_started_at", "owner", "website_url")
_CUSTOMER_DATES = ("lead_created_at", "free_trial_started_at")
_PLAN_FIELDS = ("name", "interval_count", "interval_unit")
# What a line item answers for a field it was not sent (recorded), and what it echoes as sent.
_LINE_ITEM_DEFAULTS: JSON = {
    "quantity": 1,
    "discount_code": "",
    "discount_amount_in_cents": 0,
    "tax_amount_in_cents": 0,
    "transaction_fees_in_cents": 0,
    "account_code": "",
}
_LINE_ITEM_ECHOED = ("transaction_fees_currency", "discount_description", "event_order")


@dataclasses.dataclass
class _Answer:
    """A simulated answer: status and JSON body."""

    status: int
    body: t.Any


class _Refused(Exception):
    """A simulated refusal; `DryRunClient.request` turns it into the APIError ChartMogul's answer would give."""

    def __init__(self, status: int, body: JSON) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.body = body


def _not_found(kind: str) -> _Refused:
    return _Refused(404, {"error": f"{NOUNS[kind]} not found"})


def _missing(param: str) -> _Refused:
    return _Refused(400, {"code": 400, "message": f'Parameter "{param}" is missing', "param": param})


def _required(body: t.Any, name: str) -> str:
    """A parameter ChartMogul refuses a create without (400, as recorded); numbers are taken as text."""
    value = body.get(name) if isinstance(body, dict) else None
    if value is None or value == "" or isinstance(value, bool | dict | list):
        raise _missing(name)
    return str(value)


def _query_as_body(params: dict[str, t.Any] | None) -> dict[str, t.Any] | None:
    """`subscription_event[id]=7` (how a DELETE names an event, recorded) as the body `{"subscription_event": {"id": 7}}`
    the simulated answers read; None without such parameters.
    """
    nested: dict[str, dict[str, t.Any]] = {}
    for name, value in (params or {}).items():
        outer, bracket, inner = str(name).partition("[")
        if bracket and inner.endswith("]"):
            nested.setdefault(outer, {})[inner[:-1]] = value
    return dict(nested) or None


def _chartmogul_time(value: t.Any) -> t.Any:
    """A date as ChartMogul answers it (`2016-01-01T12:00:00.000Z`, recorded); anything unreadable as sent."""
    return dates.as_answered(value, millis=True)


def _default(value: t.Any, default: t.Any) -> t.Any:
    return default if value is None else value


# Customers ------------------------------------------------------------------------------
def _typed_custom(entries: t.Any) -> JSON:
    """`[{type, key, value}]` (create, POST attributes/custom) as the `{key: value}` map answers hold."""
    values: JSON = {}
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and isinstance(entry.get("key"), str):
            value = entry.get("value")
            values[entry["key"]] = _chartmogul_time(value) if entry.get("type") == "Timestamp" else value
    return values


def _custom_map(values: t.Any) -> JSON:
    """`{key: value | {value, source}}` (PATCH, PUT attributes/custom) as values."""
    if not isinstance(values, dict):
        return {}
    return {str(k): v.get("value") if isinstance(v, dict) else v for k, v in values.items()}


def _tag_union(held: t.Sequence[t.Any], added: t.Iterable[t.Any]) -> list[t.Any]:
    """Tags after adding some: idempotent and case-insensitive, as ChartMogul keeps them."""
    tags = list(held)
    seen = {str(tag).casefold() for tag in tags}
    for tag in added:
        text = str(tag).strip()
        if text and text.casefold() not in seen:
            tags.append(text)
            seen.add(text.casefold())
    return tags


def _apply_customer_fields(customer: JSON, body: JSON, *, creating: bool) -> None:
    """Set the standard fields a create or PATCH sends (a create sets every one)."""
    for name in (*_CUSTOMER_TEXT, *_CUSTOMER_NULLABLE):
        if creating or name in body:
            value = _chartmogul_time(body.get(name)) if name in _CUSTOMER_DATES else body.get(name)
            customer[name] = ("" if value is None else value) if name in _CUSTOMER_TEXT else value
    if body.get("status"):
        customer["status"] = body["status"]
    if customer.get("country") not in (None, "US"):  # recorded: state "NY" with country DE came back null
        customer["state"] = None
    if isinstance(customer.get("address"), dict):  # a held customer's address: the parts answered as sent
        customer["address"].update(city=customer.get("city"), address_zip=customer.get("zip"))


def _apply_customer_attributes(customer: JSON, attributes: t.Any) -> None:
    """A PATCH's `attributes`: `custom` and `tags` replace what is held."""
    if not isinstance(attributes, dict):
        return
    held = customer.setdefault("attributes", {})
    if "custom" in attributes:
        held["custom"] = _custom_map(attributes["custom"])
    if "tags" in attributes:
        held["tags"] = _tag_union([], attributes["tags"] or [])


def _new_customer(uuid: str, ds: str, ext: str, body: JSON) -> JSON:
    """A created customer as the create answers it (recorded keys a dry run can know)."""
    given = body.get("attributes")
    attributes: JSON = given if isinstance(given, dict) else {}
    customer: JSON = {
        "uuid": uuid,
        "external_id": ext,
        "status": "New Lead",
        "customer-since": None,
        "attributes": {
            "custom": _typed_custom(attributes.get("custom")),
            "clearbit": {},
            "stripe": {},
            "tags": _tag_union([], attributes.get("tags") or []),
        },
        "data_source_uuid": ds,
        "data_source_uuids": [ds],
        "external_ids": [ext],
        "mrr": 0,
        "arr": 0,
        "billing-system-url": None,
    }
    _apply_customer_fields(customer, body, creating=True)
    return customer


# Invoices -------------------------------------------------------------------------------
def _transaction(uuid: str, sent: JSON) -> JSON:
    """A transaction as nested in an invoice answer (amount null when it was left out)."""
    return {
        "uuid": uuid,
        "external_id": sent.get("external_id"),
        "amount_in_cents": sent.get("amount_in_cents"),
        "type": sent.get("type"),
        "date": _chartmogul_time(sent.get("date")),
        "result": sent.get("result"),
        "transaction_fees_in_cents": sent.get("transaction_fees_in_cents"),
        "transaction_fees_currency": sent.get("transaction_fees_currency"),
    }


def _standalone(transaction: JSON) -> JSON:
    """A transaction as `POST /import/invoices/{uuid}/transactions` answers it (no fees currency, recorded)."""
    keys = ("external_id", "result", "amount_in_cents", "transaction_fees_in_cents", "uuid", "type", "date")
    return {key: transaction.get(key) for key in keys}


def _duplicate_invoice_errors(sent: JSON, held: JSON) -> JSON:
    """The errors of an invoice whose external id is taken.

    Its line items and transactions that the held invoice has are taken too, named as
    ChartMogul names them (chartmogul-api.md §9).
    """
    errors: JSON = {"external_id": DUPLICATE_INVOICE}
    for name, message in (("line_items", DUPLICATE_LINE_ITEM), ("transactions", DUPLICATE_TRANSACTION)):
        taken = {part.get("external_id") for part in held.get(name) or [] if isinstance(part, dict)} - {None}
        if any(isinstance(part, dict) and part.get("external_id") in taken for part in sent.get(name) or []):
            errors[f"{name}.external_id"] = message
    return errors


def _refused_invoice(sent: t.Any, errors: JSON) -> JSON:
    """An invoice the import did not save: echoed with its errors (as the fake does; the shape is not recorded)."""
    echo = copy.deepcopy(sent) if isinstance(sent, dict) else {}
    for name in ("uuid", "data_source_uuid", "customer_external_id", "collection_method"):
        echo.pop(name, None)
    for item in echo.get("line_items") or []:
        if isinstance(item, dict):
            item.pop("plan_external_id", None)
    echo.setdefault("external_id", None)
    echo["errors"] = errors
    return echo


class _Memory:
    """What this dry run wrote: objects it created, real objects it changed, and deletions.

    Thread-safe; every object handed out is a copy, so the sinks cannot change it by accident.
    """

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._objects: dict[str, JSON] = {}  # uuid -> the object as ChartMogul would now answer it
        self._made: dict[str, tuple[str, str, str]] = {}  # synthetic uuid -> (kind, data source, external id)
        self._index: dict[tuple[str, str, str], str] = {}  # (kind, data source, external id) -> synthetic uuid
        self._owner: dict[str, str] = {}  # created invoice -> its customer
        self._added: dict[str, list[JSON]] = {}  # real invoice -> transactions this dry run added
        self._gone: set[str] = set()
        self._subscriptions: dict[tuple[str, str], str] = {}
        self._numbers: dict[str, int] = {}

    def new_uuid(self, prefix: str) -> str:
        """`cus_dryrun_1`, …: plainly not ChartMogul's, and never sent to it."""
        with self.lock:
            self._numbers[prefix] = number = self._numbers.get(prefix, 0) + 1
        return f"{prefix}_dryrun_{number}"

    def subscription(self, customer_uuid: str, external_id: t.Any) -> str | None:
        """One synthetic subscription per customer and subscription external id."""
        if external_id is None:
            return None
        with self.lock:
            key = (customer_uuid, str(external_id))
            if key not in self._subscriptions:
                self._subscriptions[key] = self.new_uuid("sub")
            return self._subscriptions[key]

    def create(self, kind: str, ds: str, ext: str, obj: JSON, owner: str | None = None) -> bool:
        """Remember a created object; False when this dry run already created that external id."""
        with self.lock:
            if (kind, ds, ext) in self._index:
                return False
            self._index[(kind, ds, ext)] = obj["uuid"]
            self._made[obj["uuid"]] = (kind, ds, ext)
            self._objects[obj["uuid"]] = copy.deepcopy(obj)
            if owner is not None:
                self._owner[obj["uuid"]] = owner
            return True

    def keep(self, uuid: str, obj: JSON) -> None:
        """Remember an object as this dry run changed it."""
        with self.lock:
            self._objects[uuid] = copy.deepcopy(obj)

    def get(self, uuid: str) -> JSON | None:
        with self.lock:
            obj = self._objects.get(uuid)
            return copy.deepcopy(obj) if obj is not None else None

    def owner(self, uuid: str) -> str | None:
        with self.lock:
            return self._owner.get(uuid)

    def made(self, uuid: str) -> bool:
        with self.lock:
            return uuid in self._made

    def is_gone(self, uuid: str) -> bool:
        with self.lock:
            return uuid in self._gone

    def forget(self, uuid: str) -> None:
        """An object this dry run deleted (with a created customer go the invoices it created for it)."""
        with self.lock:
            self._gone.add(uuid)
            self._objects.pop(uuid, None)
            key = self._made.pop(uuid, None)
            if key is not None:
                self._index.pop(key, None)
            for invoice, owner in list(self._owner.items()):
                if owner == uuid:
                    self.forget(invoice)

    def add_transaction(self, invoice_uuid: str, transaction: JSON) -> None:
        """A transaction added to an invoice: kept in a created one, else beside the real one."""
        with self.lock:
            if invoice_uuid in self._made:
                self._objects[invoice_uuid]["transactions"].append(copy.deepcopy(transaction))
            else:
                self._added.setdefault(invoice_uuid, []).append(copy.deepcopy(transaction))

    def added(self, invoice_uuid: str) -> list[JSON]:
        with self.lock:
            return copy.deepcopy(self._added.get(invoice_uuid, []))

    def created(self, kind: str, query: dict[str, str]) -> list[tuple[JSON, str | None]]:
        """Created objects of a kind that a list query selects, with their owner (invoices)."""
        with self.lock:
            if query.get("data_source_uuid") and query.get("external_id"):
                found = self._index.get((kind, query["data_source_uuid"], query["external_id"]))
                uuids = [found] if found is not None else []
            else:
                uuids = [uuid for uuid, made in self._made.items() if made[0] == kind]
            return [
                (copy.deepcopy(self._objects[uuid]), self._owner.get(uuid))
                for uuid in uuids
                if _selected(query, self._made[uuid], self._objects[uuid], self._owner.get(uuid))
            ]


def _selected(query: dict[str, str], made: tuple[str, str, str], obj: JSON, owner: str | None) -> bool:
    """Whether a list query's filters select a created object."""
    _, ds, ext = made
    email = query.get("email")
    return (
        query.get("data_source_uuid") in (None, ds)
        and query.get("external_id") in (None, ext)
        and query.get("customer_uuid") in (None, owner)
        and (email is None or str(obj.get("email") or "").casefold() == email.casefold())
    )


def _invoice_view(invoice: JSON, customer_uuid: str | None) -> JSON:
    """A created invoice as `GET /invoices` and `GET /invoices/{uuid}` answer it (with `customer_uuid`)."""
    view = {key: value for key, value in invoice.items() if key not in ("errors", "line_items", "transactions")}
    return {**view, "customer_uuid": customer_uuid, **{k: invoice[k] for k in ("errors", "line_items", "transactions")}}


Handler = t.Callable[[str, t.Any], _Answer]


class DryRunClient(ChartMogulClient):
    """Sends every read, no write: each write is logged, shown to the observers, and answered as ChartMogul would.

    The answers follow what the reads say ChartMogul holds, plus what this dry run "wrote":

    - POST customers / plans: 422 duplicate refusal when the external id exists in the data
      source (or this dry run created it), else 201 with a synthetic object (`cus_dryrun_1`).
    - POST import/customers/{uuid}/invoices: 404 "Invoice not found" for an unknown customer;
      201 with every invoice saved, or 422 when any external id exists, those refused and the
      others saved (ChartMogul's "save the valid ones", as the fake does by default).
    - POST import/invoices/{uuid}/transactions: 422 "has already been taken" when the invoice
      holds that external id, else 201.
    - PATCH customers/{uuid} (200) and plans/{uuid} (202): the object with the body applied.
    - custom attributes POST/PUT (200 `{"custom"}`), DELETE (204); tags POST/DELETE (200 `{"tags"}`).
    - DELETE customers/{uuid}, invoices/{uuid}: 204 (404 when there is no such object).
    - subscription events (POST 201, PATCH 200, DELETE 204) and contacts (POST 201, PATCH 200,
      DELETE 200 `{}`): answered by `target_chartmogul/api/dry_run_answers.py`.
    - POST data_sources (`data_source_name` names none): 201 with `ds_dryrun_1`, whose reads answer empty.
    - Any other write: 200 with the body echoed (no sink sends one today).

    GETs of objects this dry run created or changed are answered from its memory, never
    sent; listings leave out what it deleted and add what it created.
    """

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        super().__init__(*args, **kwargs)
        self.memory = _Memory()
        self._writes: list[tuple[str, re.Pattern[str], Handler]] = [
            ("POST", re.compile(r"customers"), self._create_customer),
            ("POST", re.compile(r"plans"), self._create_plan),
            ("PATCH", re.compile(r"customers/([^/]+)"), self._patch_customer),
            ("PATCH", re.compile(r"plans/([^/]+)"), self._patch_plan),
            ("DELETE", re.compile(r"customers/([^/]+)"), lambda uuid, _: self._delete("customer", uuid)),
            ("DELETE", re.compile(r"invoices/([^/]+)"), lambda uuid, _: self._delete("invoice", uuid)),
            ("POST", re.compile(r"customers/([^/]+)/attributes/custom"), self._add_custom),
            ("PUT", re.compile(r"customers/([^/]+)/attributes/custom"), self._update_custom),
            ("DELETE", re.compile(r"customers/([^/]+)/attributes/custom"), self._remove_custom),
            ("POST", re.compile(r"customers/([^/]+)/attributes/tags"), self._add_tags),
            ("DELETE", re.compile(r"customers/([^/]+)/attributes/tags"), self._remove_tags),
            ("POST", re.compile(r"import/customers/([^/]+)/invoices"), self._import_invoices),
            ("POST", re.compile(r"import/invoices/([^/]+)/transactions"), self._add_transaction),
            ("POST", re.compile(r"data_sources"), self._create_data_source),
        ]
        self.new_sources: set[str] = set()  # data sources this dry run "created": ChartMogul holds nothing in them
        self.more = EventsAndContacts(lambda path, params: self.get(path, params).body, self.memory.made)
        for verb, pattern, handler in self.more.routes():
            self._writes.append((verb, re.compile(pattern), self._simulated_by(handler)))

    @staticmethod
    def _simulated_by(handler: t.Callable[[str, t.Any], tuple[int, t.Any]]) -> Handler:
        """A handler of `dry_run_answers` in this module's terms (its refusals become `_Refused`)."""

        def answer(arg: str, body: t.Any) -> _Answer:
            try:
                return _Answer(*handler(arg, body))
            except Refusal as refused:
                raise _Refused(refused.status, refused.body) from None

        return answer

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, t.Any] | None = None,
        body: t.Any = None,
        data: bytes | None = None,
        once: bool = False,
    ) -> Response:
        """GET: ChartMogul's answer (or this dry run's own); any other method: the simulated answer (`data`, a body
        already encoded, is read back; `once` changes nothing: nothing is sent).
        """
        self._run_preflight()
        if data is not None and body is None:
            body = json.loads(data)
        route = path.strip("/")
        if method.upper() == "GET":
            return self._read(path, route, params)
        try:
            answer = self._simulate(method.upper(), route, body if body is not None else _query_as_body(params))
        except _Refused as refused:
            self._report(method, path, params, body, refused.status, refused.body)
            raise self._refusal(method, path, refused.status, dumps(refused.body), 1) from None
        self._report(method, path, params, body, answer.status, answer.body)
        # As ChartMogulClient reads answers: 202 and 204 carry no usable body.
        return Response(answer.status, None if answer.status in (202, 204) else copy.deepcopy(answer.body), 1)

    def _report(self, method: str, path: str, params: t.Any, body: t.Any, status: int, answer: t.Any) -> None:
        """Log the write and hand it to the observers (status None: nothing was sent; the answer as text)."""
        LOGGER.info("DRY RUN: would %s %s %s", method, path, dumps(body)[:500] if body is not None else "")
        error = None
        if status >= 400:
            error = f"ChartMogul would refuse it: HTTP {status}"
            LOGGER.info("DRY RUN: %s %s: %s %s", method, path, error, dumps(answer)[:500])
        text = dumps(answer) if answer is not None else None
        self._notify(Attempt(method, path, params, body, 1, None, 0.0, text, error, dry_run=True))

    def _simulate(self, method: str, route: str, body: t.Any) -> _Answer:
        for verb, pattern, handler in self._writes:
            match = pattern.fullmatch(route)
            if verb == method and match is not None:
                return handler(match.group(1) if pattern.groups else "", body)
        return _Answer(200, body)

    # Reads ------------------------------------------------------------------------------
    def _read(self, path: str, route: str, params: dict[str, t.Any] | None) -> Response:
        """From memory when this dry run made or changed the object, else from ChartMogul, overlaid."""
        local = self._local_read(path, route, params) or self._local_more(path, route, params)
        if local is not None:
            return local
        try:
            response = self._empty(route) if self._in_new_source(route, params) else super().request("GET", path, params=params)
        except APIError as exc:
            found = self._created_listed(route, params) if exc.status == 404 and route == "customers/search" else []
            if not found:
                raise
            return Response(200, {"entries": found, "cursor": None, "has_more": False}, exc.attempts)
        overlaid = self._overlaid(route, params, response)
        return Response(overlaid.status, self.more.overlaid(route, params, overlaid.body), overlaid.attempts)

    def _local_more(self, path: str, route: str, params: dict[str, t.Any] | None) -> Response | None:
        """A contact this dry run created or changed, or a created customer's contacts (events: listings only)."""
        try:
            mine = self.more.local(route, params)
        except Refusal as refused:
            raise self._refusal("GET", path, refused.status, dumps(refused.body), 1) from None
        return Response(200, mine, 1) if mine is not None else None

    def _local_read(self, path: str, route: str, params: dict[str, t.Any] | None) -> Response | None:
        """A read about an object this dry run created, changed or deleted; None to ask ChartMogul."""
        single = _OBJECT.fullmatch(route)
        if single is not None:
            return self._local_object(path, single)
        listing = _CUSTOMER_INVOICES.fullmatch(route)
        customer = listing["uuid"] if listing is not None else None
        if route == "invoices":  # an account-wide listing filtered by a customer this dry run created
            customer = (params or {}).get("customer_uuid")
        if isinstance(customer, str) and self.memory.made(customer):
            root: JSON = {"customer_uuid": customer} if listing is not None else {}
            invoices = self._created_listed(route, params)
            return Response(200, {**root, "invoices": invoices, "cursor": None, "has_more": False}, 1)
        return None

    def _local_object(self, path: str, single: re.Match[str]) -> Response | None:
        kind = next(k for k, p in PATHS.items() if p == single["path"])
        uuid = single["uuid"]
        if self.memory.is_gone(uuid):
            raise self._refusal("GET", path, 404, dumps(_not_found(kind).body), 1)
        obj = self.memory.get(uuid)
        if obj is None:
            return None
        if single["attributes"]:
            held = obj.get("attributes") or {}  # recorded keys: no clearbit here, unlike the customer
            answer = {"tags": held.get("tags", []), "stripe": held.get("stripe", {}), "custom": held.get("custom", {})}
            return Response(200, answer, 1)
        if kind == "invoice":
            obj = _invoice_view(obj, self.memory.owner(uuid))
        return Response(200, obj, 1)

    def _overlaid(self, route: str, params: dict[str, t.Any] | None, response: Response) -> Response:
        """ChartMogul's answer as it would be after this dry run's writes."""
        if not isinstance(response.body, dict):
            return response
        root = _LISTINGS.get(route, ("", "invoices" if _CUSTOMER_INVOICES.fullmatch(route) else ""))[1]
        if not root:
            current = self._current(response.body) if _OBJECT.fullmatch(route) is not None else None
            return Response(response.status, current, response.attempts) if current is not None else response
        if not isinstance(response.body.get(root), list):
            return response
        entries = [self._current(entry) for entry in response.body[root]]
        body = {**response.body, root: [entry for entry in entries if entry is not None]}
        if not body.get("has_more"):  # the last page: what this dry run created that the query selects
            body[root] += self._created_listed(route, params)
        return Response(response.status, body, response.attempts)

    def _current(self, entry: t.Any) -> t.Any:
        """A listed object as this dry run left it: None when it deleted it."""
        uuid = entry.get("uuid") if isinstance(entry, dict) else None
        if not isinstance(uuid, str):
            return entry
        if self.memory.is_gone(uuid):
            return None
        changed = self.memory.get(uuid)
        if changed is not None:
            return changed
        added = self.memory.added(uuid)
        if added:
            return {**entry, "transactions": [*(entry.get("transactions") or []), *added]}
        return entry

    def _created_listed(self, route: str, params: dict[str, t.Any] | None) -> list[JSON]:
        """Objects this dry run created that a list endpoint and its filters select, in its answer's shape."""
        listing = _CUSTOMER_INVOICES.fullmatch(route)
        kind = "invoice" if listing is not None else _LISTINGS.get(route, ("", ""))[0]
        if not kind:
            return []
        query = {k: str(v) for k, v in (params or {}).items() if k in _FILTERS and v is not None}
        if listing is not None:
            query["customer_uuid"] = listing["uuid"]
        found = self.memory.created(kind, query)
        if kind == "invoice" and listing is None:  # the account-wide listing names the customer
            return [_invoice_view(obj, owner) for obj, owner in found]
        return [obj for obj, _ in found]

    def _held(self, kind: str, uuid: str) -> JSON:
        """The object as ChartMogul (or this dry run) holds it; 404 in ChartMogul's words when there is none."""
        try:
            body = self.get(f"{PATHS[kind]}/{uuid}").body
        except APIError as exc:
            if exc.status == 404:
                raise _not_found(kind) from None
            raise
        return body if isinstance(body, dict) else {}

    def _find(self, kind: str, ds: str, ext: str) -> JSON | None:
        """The object with this external id in the data source (ChartMogul's filter is trusted for invoices)."""
        params = {"data_source_uuid": ds, "external_id": ext}
        for obj in self.paginate(PATHS[kind], _LISTINGS[PATHS[kind]][1], params):
            if kind == "customer" and ext in external_ids_in(obj, ds):
                return obj
            if kind != "customer" and obj.get("external_id") == ext and obj.get("data_source_uuid") in (None, ds):
                return obj
        return None

    # A data source this dry run would create ------------------------------------------------
    def _create_data_source(self, _: str, body: t.Any) -> _Answer:
        """201 with a stand-in uuid (`ds_dryrun_1`); reads about it are answered here, as about an empty one."""
        name = _required(body, "name")
        uuid = self.memory.new_uuid("ds")
        self.new_sources.add(uuid)
        return _Answer(201, {"uuid": uuid, "name": name, "system": "Custom", "status": "never_imported",
                             "created_at": _chartmogul_time(datetime.datetime.now(datetime.timezone.utc))})

    def _in_new_source(self, route: str, params: dict[str, t.Any] | None) -> bool:
        """Whether a read is about a data source this dry run created (ChartMogul has never heard of it)."""
        named = {str((params or {}).get("data_source_uuid")), *route.split("/")}
        return bool(self.new_sources & named)

    @staticmethod
    def _empty(route: str) -> Response:
        """What ChartMogul holds in a new data source: nothing (listings of every root key, empty)."""
        roots: JSON = {"entries": [], "plans": [], "invoices": [], "subscription_events": [], "contacts": []}
        return Response(200, {**roots, "cursor": None, "has_more": False}, 1)

    # Customers and plans --------------------------------------------------------------------
    def _create_customer(self, _: str, body: t.Any) -> _Answer:
        ds, ext = _required(body, "data_source_uuid"), _required(body, "external_id")
        duplicate = _Refused(422, {"errors": {"external_id": DUPLICATE_CUSTOMER}})
        if self._find("customer", ds, ext) is not None:
            raise duplicate
        customer = _new_customer(self.memory.new_uuid("cus"), ds, ext, body)
        if not self.memory.create("customer", ds, ext, customer):
            raise duplicate
        return _Answer(201, customer)

    def _create_plan(self, _: str, body: t.Any) -> _Answer:
        ds = _required(body, "data_source_uuid")
        duplicate = _Refused(422, {"errors": {"external_id": DUPLICATE_PLAN}})
        uuid = self.memory.new_uuid("pl")
        given = body.get("external_id")
        ext = str(given) if given not in (None, "") else uuid.removeprefix("pl_")  # recorded: the uuid's tail
        if given not in (None, "") and self._find("plan", ds, ext) is not None:
            raise duplicate
        plan = {"external_id": ext, **{name: body.get(name) for name in _PLAN_FIELDS}, "data_source_uuid": ds, "uuid": uuid}
        if not self.memory.create("plan", ds, ext, plan):
            raise duplicate
        return _Answer(201, plan)

    def _patch_customer(self, uuid: str, body: t.Any) -> _Answer:
        customer = self._held("customer", uuid)
        if isinstance(body, dict):
            _apply_customer_fields(customer, body, creating=False)
            _apply_customer_attributes(customer, body.get("attributes"))
        self.memory.keep(uuid, customer)
        return _Answer(200, customer)

    def _patch_plan(self, uuid: str, body: t.Any) -> _Answer:
        plan = self._held("plan", uuid)
        if isinstance(body, dict):
            plan.update({name: body[name] for name in _PLAN_FIELDS if name in body})
        self.memory.keep(uuid, plan)
        return _Answer(202, plan)  # recorded: a plan PATCH answers 202 (with the plan)

    def _delete(self, kind: str, uuid: str) -> _Answer:
        self._held(kind, uuid)  # 404 when there is no such object
        self.memory.forget(uuid)
        return _Answer(204, None)

    def _changed_attributes(self, uuid: str, customer: JSON, name: str, change: t.Callable[[t.Any], t.Any]) -> t.Any:
        """Apply a change to a customer's `custom` map or `tags` list, remember it; returns the new value."""
        attributes = customer.setdefault("attributes", {})
        attributes[name] = change(copy.deepcopy(attributes.get(name) or ({} if name == "custom" else [])))
        self.memory.keep(uuid, customer)
        return attributes[name]

    def _add_custom(self, uuid: str, body: t.Any) -> _Answer:
        customer = self._held("customer", uuid)  # ChartMogul looks for the customer first
        entries = body.get("custom") if isinstance(body, dict) else None
        if not isinstance(entries, list):
            raise _missing("custom")
        custom = self._changed_attributes(uuid, customer, "custom", lambda held: {**held, **_typed_custom(entries)})
        return _Answer(200, {"custom": custom})

    def _update_custom(self, uuid: str, body: t.Any) -> _Answer:
        customer = self._held("customer", uuid)
        values = body.get("custom") if isinstance(body, dict) else None
        if not isinstance(values, dict):
            raise _missing("custom")
        custom = self._changed_attributes(uuid, customer, "custom", lambda held: {**held, **_custom_map(values)})
        return _Answer(200, {"custom": custom})

    def _remove_custom(self, uuid: str, body: t.Any) -> _Answer:
        customer = self._held("customer", uuid)
        keys = body.get("custom") if isinstance(body, dict) else None
        if keys is not None and not isinstance(keys, list):
            raise _missing("custom")
        gone = {key for key in keys or [] if isinstance(key, str)}  # unknown keys are ignored
        self._changed_attributes(uuid, customer, "custom", lambda held: {k: v for k, v in held.items() if k not in gone})
        return _Answer(204, None)

    def _add_tags(self, uuid: str, body: t.Any) -> _Answer:
        customer = self._held("customer", uuid)
        tags = body.get("tags") if isinstance(body, dict) else None
        if not isinstance(tags, list):
            raise _missing("tags")
        return _Answer(200, {"tags": self._changed_attributes(uuid, customer, "tags", lambda held: _tag_union(held, tags))})

    def _remove_tags(self, uuid: str, body: t.Any) -> _Answer:
        customer = self._held("customer", uuid)
        tags = body.get("tags") if isinstance(body, dict) else None
        if not isinstance(tags, list):
            raise _missing("tags")
        gone = {str(tag).strip().casefold() for tag in tags}
        remaining = self._changed_attributes(
            uuid, customer, "tags", lambda held: [tag for tag in held if str(tag).casefold() not in gone]
        )
        return _Answer(200, {"tags": remaining})

    # Invoices and transactions ---------------------------------------------------------------
    def _import_invoices(self, customer_uuid: str, body: t.Any) -> _Answer:
        try:
            customer = self._held("customer", customer_uuid)
        except _Refused:
            raise _not_found("invoice") from None  # sic: ChartMogul answers "Invoice not found" here
        invoices = body.get("invoices") if isinstance(body, dict) else None
        if not isinstance(invoices, list):
            raise _missing("invoices")
        default_ds = str(customer.get("data_source_uuid") or "")
        saved: dict[tuple[str, str], JSON] = {}  # this call's saved invoices: a repeated external id is taken too
        entries = [
            self._import_one(sent if isinstance(sent, dict) else {}, customer_uuid, default_ds, saved) for sent in invoices
        ]
        if any(entry["errors"] for entry in entries):
            raise _Refused(422, {"invoices": entries})
        return _Answer(201, {"invoices": entries})

    def _import_one(self, sent: JSON, customer_uuid: str, default_ds: str, saved: dict[tuple[str, str], JSON]) -> JSON:
        """One invoice of an import call: refused when its external id is taken in the data source, else saved."""
        ds = str(sent.get("data_source_uuid") or default_ds)
        key = (ds, str(sent.get("external_id")))
        held = None
        if sent.get("external_id") is not None:
            held = saved.get(key) or self._find("invoice", *key)
        if held is not None:
            return _refused_invoice(sent, _duplicate_invoice_errors(sent, held))
        saved[key] = invoice = self._save_invoice(sent, customer_uuid, ds)
        return invoice

    def _save_invoice(self, sent: JSON, customer_uuid: str, ds: str) -> JSON:
        """An invoice as the import answers it once saved (no `customer_uuid`, no data source: recorded)."""
        invoice = {
            "uuid": self.memory.new_uuid("inv"),
            "external_id": sent.get("external_id"),
            "date": _chartmogul_time(sent.get("date")),
            "due_date": _chartmogul_time(sent.get("due_date")),
            "currency": sent.get("currency"),
            "errors": {},
            "line_items": [self._line_item(item, customer_uuid) for item in sent.get("line_items") or []],
            "transactions": [_transaction(self.memory.new_uuid("tr"), tx) for tx in sent.get("transactions") or []],
        }
        ext = str(sent.get("external_id")) if sent.get("external_id") is not None else invoice["uuid"]
        self.memory.create("invoice", ds, ext, invoice, owner=customer_uuid)
        return invoice

    def _line_item(self, sent: t.Any, customer_uuid: str) -> JSON:
        """A line item as answered: defaults for what was not sent, never `plan_external_id` (recorded)."""
        item: JSON = sent if isinstance(sent, dict) else {}
        view: JSON = {"uuid": self.memory.new_uuid("li"), "external_id": item.get("external_id"), "type": item.get("type")}
        if item.get("type") == "one_time":
            view["description"] = item.get("description")
        else:
            view["subscription_uuid"] = self.memory.subscription(customer_uuid, item.get("subscription_external_id"))
            view["subscription_external_id"] = item.get("subscription_external_id")
            view["prorated"] = _default(item.get("prorated"), False)
            view["proration_type"] = item.get("proration_type")
            for name in ("service_period_start", "service_period_end"):
                view[name] = _chartmogul_time(item.get(name))
            if item.get("subscription_set_external_id") is not None:
                view["subscription_set_external_id"] = item["subscription_set_external_id"]
            view["plan_uuid"] = item.get("plan_uuid")
        view["amount_in_cents"] = item.get("amount_in_cents")
        view.update({name: _default(item.get(name), default) for name, default in _LINE_ITEM_DEFAULTS.items()})
        view.update({name: item.get(name) for name in _LINE_ITEM_ECHOED})
        return view

    def _add_transaction(self, invoice_uuid: str, body: t.Any) -> _Answer:
        sent: JSON = body if isinstance(body, dict) else {}
        invoice = self._held("invoice", invoice_uuid)
        ext = sent.get("external_id")
        if ext is not None and any(tx.get("external_id") == ext for tx in invoice.get("transactions") or []):
            raise _Refused(422, {"errors": {"external_id": DUPLICATE_TRANSACTION}})
        transaction = _transaction(self.memory.new_uuid("tr"), sent)
        self.memory.add_transaction(invoice_uuid, transaction)
        return _Answer(201, _standalone(transaction))
