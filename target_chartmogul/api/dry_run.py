"""Dry run: one client that reads from ChartMogul and answers every write itself.

A dry run must decide exactly as a real run would, so the sinks must meet the answers a real
run meets, and they run unchanged: the client is the seam (`run.context` builds this one for a
dry run). `DryRunClient` sends reads (GET) as usual and never sends a write: it asks ChartMogul
what it would say (does this external id exist? does this customer?), then answers in the shapes
of ChartMogul's recorded answers (`dry_run_answers`): the same duplicate refusals (the table's
messages, `config.registry`), the same 201/202/204s and 404s. What it "wrote" is remembered for
the rest of the run, so later reads and writes see it. Each decision of the lifecycle
(`client.change`) is shown once, as the change it makes: `DRY RUN: would update customers acct-1:
name: "Acme GmbH" → "Acme AG"`.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import datetime
import itertools
import json
import logging
import re
import threading
import typing as t

from target_chartmogul.api import dry_run_answers as shapes
from target_chartmogul.api.answers import external_ids_in
from target_chartmogul.api.client import Attempt, ChartMogulClient, Response
from target_chartmogul.api.errors import APIError
from target_chartmogul.api.resources import is_missing
from target_chartmogul.config.registry import RESOURCES
from target_chartmogul.values import compare
from target_chartmogul.values.encoding import dumps

if t.TYPE_CHECKING:
    from target_chartmogul.api.changes import Change

LOGGER = logging.getLogger("target_chartmogul.api.dry_run")
JSON = dict[str, t.Any]
FILTERS = ("data_source_uuid", "external_id", "customer_uuid", "customer_external_id", "email")
TAKEN = "has already been taken"  # a used external id where the table has no message (the fake's answer)
# Kinds that live inside another object (an invoice's) or are written by envelope: never created, changed or deleted
# by `{path}` and `{path}/{id}` here. Every other kind of the table is, recorded shapes where they differ.
NESTED = ("transaction", "subscription_event", "line_item")


class Refusal(Exception):
    """What ChartMogul would refuse a write with: its status and body (turned into the APIError a real answer gives)."""

    def __init__(self, status: int, body: JSON) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.body = body


def not_found(kind: str) -> Refusal:
    """404 in the resource's words (`{"error": "Customer not found"}`)."""
    return Refusal(404, RESOURCES[kind].not_found())


def missing(param: str) -> Refusal:
    """400 for a parameter a create cannot go without (recorded shape)."""
    return Refusal(400, {"code": 400, "message": f'Parameter "{param}" is missing', "param": param})


def taken(kind: str) -> Refusal:
    """422 for a used external id, in the resource's words."""
    return Refusal(422, {"errors": {"external_id": RESOURCES[kind].duplicate or TAKEN}})


def _required(body: t.Any, name: str) -> str:
    """A parameter ChartMogul refuses a create without (numbers are taken as text)."""
    value = body.get(name) if isinstance(body, dict) else None
    if value is None or value == "" or isinstance(value, bool | dict | list):
        raise missing(name)
    return str(value)


def _envelope(body: t.Any) -> JSON:
    sent = body.get("subscription_event") if isinstance(body, dict) else None
    if not isinstance(sent, dict):
        raise missing("subscription_event")
    return sent


def _query_as_body(params: dict[str, t.Any] | None) -> dict[str, t.Any] | None:
    """`subscription_event[id]=7` (how a DELETE names an event, recorded) as the body `{"subscription_event": {"id": 7}}`."""
    nested: dict[str, dict[str, t.Any]] = {}
    for name, value in (params or {}).items():
        outer, bracket, inner = str(name).partition("[")
        if bracket and inner.endswith("]"):
            nested.setdefault(outer, {})[inner[:-1]] = value
    return dict(nested) or None


@dataclasses.dataclass(frozen=True)
class Made:
    """An object this dry run created: its kind, data source, external id and owner (an invoice's customer)."""

    kind: str
    ds: str
    ext: str
    owner: str | None = None


class Memory:
    """What this dry run wrote: objects it created, real objects it changed, deletions. Every object handed out is a
    copy, so the sinks cannot change it by accident.
    """

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.objects: dict[str, JSON] = {}  # id -> the object as ChartMogul would now answer it
        self.made: dict[str, Made] = {}
        self.keys: dict[tuple[str, str, str], str] = {}  # (kind, data source, external id) -> id, of what it holds
        self.gone: set[str] = set()
        self.gone_keys: set[tuple[str, str, str]] = set()
        self.added: dict[str, list[JSON]] = {}  # real invoice -> transactions this dry run added
        self.seen: dict[str, JSON] = {}  # events as ChartMogul's listings answered them, by id
        self.subscriptions: dict[tuple[str, str], str] = {}
        self.numbers: dict[str, t.Iterator[int]] = {}

    def number(self, prefix: str) -> int:
        """The next number of a kind of id."""
        with self.lock:
            return next(self.numbers.setdefault(prefix, itertools.count(1)))

    def new_id(self, prefix: str) -> str:
        """`cus_dryrun_1`, …: plainly not ChartMogul's, and never sent to it."""
        return f"{prefix}_dryrun_{self.number(prefix)}"

    def subscription(self, customer_uuid: str, external_id: t.Any) -> str | None:
        """One synthetic subscription per customer and subscription external id."""
        if external_id is None:
            return None
        with self.lock:
            key = (customer_uuid, str(external_id))
            if key not in self.subscriptions:
                self.subscriptions[key] = self.new_id("sub")
            return self.subscriptions[key]

    def create(self, made: Made, object_id: str, obj: JSON) -> bool:
        """Remember a created object; False when this dry run holds that external id already."""
        with self.lock:
            key = (made.kind, made.ds, made.ext)
            if key in self.keys and self.keys[key] not in self.gone:
                return False
            self.keys[key] = object_id
            self.gone_keys.discard(key)
            self.made[object_id] = made
            self.objects[object_id] = copy.deepcopy(obj)
            return True

    def keep(self, object_id: str, obj: JSON, key: tuple[str, str, str] | None = None) -> None:
        """Remember an object as this dry run changed it."""
        with self.lock:
            self.objects[object_id] = copy.deepcopy(obj)
            if key is not None:
                self.keys[key] = object_id

    def get(self, object_id: str) -> JSON | None:
        """A copy of what it holds under this id."""
        with self.lock:
            obj = self.objects.get(object_id)
            return copy.deepcopy(obj) if obj is not None else None

    def by_key(self, key: tuple[str, str, str]) -> JSON | None:
        """What it holds under (kind, data source, external id)."""
        with self.lock:
            object_id = self.keys.get(key)
            return self.get(object_id) if object_id is not None and object_id not in self.gone else None

    def forget(self, object_id: str, key: tuple[str, str, str] | None = None) -> None:
        """An object this dry run deleted (with a created customer go the objects it created for it)."""
        with self.lock:
            self.gone.add(object_id)
            self.objects.pop(object_id, None)
            made = self.made.pop(object_id, None)
            for gone in [key, (made.kind, made.ds, made.ext) if made else None]:
                if gone is not None:
                    self.keys.pop(gone, None)
                    self.gone_keys.add(gone)
            for child, other in list(self.made.items()):
                if other.owner == object_id and other.kind == "invoice":
                    self.forget(child)

    def add_transaction(self, invoice_uuid: str, tx: JSON) -> None:
        """A transaction added to an invoice: kept in a created one, else beside the real one."""
        with self.lock:
            if invoice_uuid in self.made:
                self.objects[invoice_uuid]["transactions"].append(copy.deepcopy(tx))
            else:
                self.added.setdefault(invoice_uuid, []).append(copy.deepcopy(tx))

    def added_to(self, invoice_uuid: str) -> list[JSON]:
        with self.lock:
            return copy.deepcopy(self.added.get(invoice_uuid, []))

    def created(self, kind: str, query: dict[str, t.Any]) -> list[tuple[JSON, str | None]]:
        """Created objects of a kind that a list query selects, with their owner."""
        with self.lock:
            return [(copy.deepcopy(self.objects[object_id]), made.owner) for object_id, made in self.made.items()
                    if made.kind == kind and object_id in self.objects and _selected(query, made, self.objects[object_id])]


def _selected(query: dict[str, t.Any], made: Made, obj: JSON) -> bool:
    """Whether a list query's filters select a created object."""
    have = {"data_source_uuid": made.ds, "external_id": made.ext, "customer_uuid": made.owner or obj.get("customer_uuid"),
            "customer_external_id": obj.get("customer_external_id")}
    if any(query.get(name) is not None and str(query[name]) != str(value) for name, value in have.items()):
        return False
    email = query.get("email")
    return email is None or str(obj.get("email") or "").casefold() == str(email).casefold()


_DATES = ("_at", "_date", "date")


def _flat(obj: JSON) -> JSON:
    """An answer's fields as a change names them: custom attributes as `custom.<key>`, tags as `tags`."""
    attributes: JSON = obj["attributes"] if isinstance(obj.get("attributes"), dict) else {}
    custom: JSON = obj["custom"] if isinstance(obj.get("custom"), dict) else attributes.get("custom") or {}
    flat = {k: v for k, v in obj.items() if not isinstance(v, dict | list) and k not in ("uuid", "id")}
    flat.update({f"custom.{key}": value for key, value in custom.items()})
    if "tags" in attributes:
        flat["tags"] = attributes["tags"]
    return flat


@dataclasses.dataclass
class _Frame:
    """One decision being answered: its change, and whether a write of it was answered (not refused)."""

    change: Change
    answered: bool = False


@dataclasses.dataclass
class _Route:
    """A path read off the table: the kind, an object's id, what follows it, and a parent (`{parent}` of a create)."""

    kind: str
    object_id: str | None = None
    rest: str | None = None
    parent: str | None = None


def parse_route(route: str) -> _Route | None:
    """Which resource a path is about (`customers/cus_1/attributes/tags`, `import/invoices/inv_1/transactions`)."""
    for kind, resource in RESOURCES.items():
        if resource.create_path is not None:
            pattern = re.escape(resource.create_path).replace(re.escape("{parent}"), "(?P<parent>[^/]+)")
            found = re.fullmatch(pattern, route)
            if found is not None:
                return _Route(kind, parent=found["parent"])
        if resource.path is None:
            continue
        if route in (resource.path, resource.search_path):
            return _Route(kind)
        if route.startswith(f"{resource.path}/"):
            object_id, _, rest = route[len(resource.path) + 1:].partition("/")
            return _Route(kind, object_id, rest or None)
    return None


def _form(found: _Route) -> str:
    """What a path names: a create under a parent ("into"), a customer's attributes, the events' envelope endpoint,
    a collection, one object; "" for anything else.
    """
    if found.parent is not None:
        return "into"
    if found.rest in ("attributes/custom", "attributes/tags"):
        return "attributes"
    if found.rest is not None:
        return ""
    if found.kind == "subscription_event":
        return "envelope" if found.object_id is None else ""
    return "one" if found.object_id is not None else "collection"


class DryRunClient(ChartMogulClient):
    """Sends every read, no write: each write is logged, shown to the observers, and answered as ChartMogul would.

    POST customers, plans, contacts, subscription events: 201, or the table's duplicate refusal (422) when the external
    id is used in the data source (or this dry run used it); invoice imports: 201, 404 "Invoice not found" for an
    unknown customer, 422 with the taken invoices refused and the others saved; transactions: 201 or 422 "has already
    been taken". PATCH: the object with the body applied (plans 202). DELETE: 204 (contacts 200 `{}`), 404 when there
    is no such object. Custom attributes and tags as ChartMogul answers them. POST data_sources (`data_source_name`
    names none): 201 with `ds_dryrun_1`, whose reads answer empty. Any other write: 200 with its body.
    Reads of objects this dry run created or changed are answered from its memory, never sent; listings leave out
    what it deleted and add what it created.
    """

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        super().__init__(*args, **kwargs)
        self.memory = Memory()
        self._local = threading.local()
        self.new_sources: set[str] = set()  # data sources this dry run "created": ChartMogul holds nothing in them

    # Decisions ----------------------------------------------------------------------------
    @contextlib.contextmanager
    def change(self, change: Change) -> t.Iterator[None]:
        """Answer the decision's writes, then show it once: `DRY RUN: would update <stream> <key>: field: old → new`."""
        frames: list[_Frame] = self._local.__dict__.setdefault("frames", [])
        frame = _Frame(change)
        frames.append(frame)
        try:
            yield
        finally:
            frames.pop()
            if frame.answered:
                LOGGER.info("DRY RUN: would %s", change.described())

    def _frame(self) -> _Frame | None:
        frames: list[_Frame] = self._local.__dict__.get("frames", [])
        return frames[-1] if frames else None

    def _note(self, before: JSON, after: JSON) -> None:
        """What a write changed in an object (`values.compare`), for the decision that made it, where it named none."""
        frame = self._frame()
        if frame is None:
            return
        held, now = _flat(before), _flat(after)
        for name in dict.fromkeys([*held, *now]):
            old, new = held.get(name), now.get(name)
            if name not in frame.change.fields and not compare.same_value(new, old, is_date=name.endswith(_DATES)):
                frame.change.fields[name] = (old, new)

    # Requests ------------------------------------------------------------------------------
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
            try:
                return self._read(path, route, params)
            except Refusal as refused:
                raise self._refusal("GET", path, refused.status, dumps(refused.body), 1) from None
        try:
            status, answer = self._write(method.upper(), route, body if body is not None else _query_as_body(params))
        except Refusal as refused:
            self._report(method, path, params, body, refused.status, refused.body)
            raise self._refusal(method, path, refused.status, dumps(refused.body), 1) from None
        self._report(method, path, params, body, status, answer)
        # As ChartMogulClient reads answers: 202 and 204 carry no usable body.
        return Response(status, None if status in (202, 204) else copy.deepcopy(answer), 1)

    def _report(self, method: str, path: str, params: t.Any, body: t.Any, status: int, answer: t.Any) -> None:
        """Log the write (at INFO when no decision shows it) and hand it to the observers (status None: not sent)."""
        frame = self._frame()
        level = logging.DEBUG if frame is not None else logging.INFO
        LOGGER.log(level, "DRY RUN: would %s %s %s", method, path, dumps(body)[:500] if body is not None else "")
        error = None
        if status >= 400:
            error = f"ChartMogul would refuse it: HTTP {status}"
            LOGGER.log(level, "DRY RUN: %s %s: %s %s", method, path, error, dumps(answer)[:500])
        elif frame is not None:
            frame.answered = True
        text = dumps(answer) if answer is not None else None
        self._notify(Attempt(method, path, params, body, 1, None, 0.0, text, error, dry_run=True))

    # Writes --------------------------------------------------------------------------------
    def _write(self, method: str, route: str, body: t.Any) -> tuple[int, t.Any]:
        """The answer to one write, found by what the table says the path is about (anything else: 200, echoed)."""
        if route == "data_sources" and method == "POST":
            return self._create_data_source(body)
        found = parse_route(route)
        form = _form(found) if found is not None else ""
        if found is not None and form == "into" and method == "POST":
            parent = str(found.parent)
            return self._import_invoices(parent, body) if found.kind == "invoice" else self._add_transaction(parent, body)
        if found is not None and form == "attributes":
            return self._attributes(method, str(found.object_id), str(found.rest).rpartition("/")[2], body)
        if form == "envelope":
            return self._event(method, body)
        answer = self._own(method, found, form, body) if found is not None else None
        return answer if answer is not None else (200, body)

    def _own(self, method: str, found: _Route, form: str, body: t.Any) -> tuple[int, t.Any] | None:
        """A create in a collection, a PATCH or DELETE of one object; None for any other write."""
        kind, object_id = found.kind, str(found.object_id)
        if form == "collection" and method == "POST" and kind not in (*NESTED, "invoice"):
            return 201, self._create(kind, body)
        if form == "one" and kind not in NESTED and method in ("PATCH", "DELETE"):
            return self._patch(kind, object_id, body) if method == "PATCH" else self._delete(kind, object_id)
        return None

    def _create(self, kind: str, body: t.Any) -> JSON:
        """A new object (a customer, plan and contact in their recorded shapes; any other kind of the table as sent,
        with an id); the table's refusal when its external id is used.
        """
        sent: JSON = body if isinstance(body, dict) else {}
        if kind not in ("customer", "plan", "contact"):
            return self._create_as_sent(kind, sent)
        if kind == "contact":
            for name in ("customer_uuid", "data_source_uuid"):
                _required(sent, name)
            uuid = self.memory.new_id("con")
            contact = shapes.new_contact(uuid, sent)
            made = Made(kind, str(sent["data_source_uuid"]), str(sent.get("external_id") or uuid), str(sent["customer_uuid"]))
            self.memory.create(made, uuid, contact)
            return contact
        ds = _required(sent, "data_source_uuid")
        ext = _required(sent, "external_id") if kind == "customer" else str(sent.get("external_id") or "")
        prefix = "cus" if kind == "customer" else "pl"
        uuid = self.memory.new_id(prefix)
        ext = ext or uuid.removeprefix(f"{prefix}_")  # recorded: a plan without external id gets the uuid's tail
        if sent.get("external_id") not in (None, "") and self._find(kind, ds, ext) is not None:
            raise taken(kind)
        obj = shapes.new_customer(uuid, ds, ext, sent) if kind == "customer" else shapes.new_plan(uuid, ds, ext, sent)
        if not self.memory.create(Made(kind, ds, ext), uuid, obj):
            raise taken(kind)
        return obj

    def _create_as_sent(self, kind: str, sent: JSON) -> JSON:
        resource = RESOURCES[kind]
        ds, ext = _required(sent, "data_source_uuid"), _required(sent, "external_id")
        if (resource.root is not None and self._find(kind, ds, ext) is not None) or self.memory.by_key((kind, ds, ext)):
            raise taken(kind)
        obj = {**sent, resource.id_field: self.memory.new_id(kind)}
        self.memory.create(Made(kind, ds, ext), obj[resource.id_field], obj)
        return obj

    def _patch(self, kind: str, object_id: str, body: t.Any) -> tuple[int, JSON]:
        held = self._held(kind, object_id)
        changed = copy.deepcopy(held)
        if kind == "customer":
            shapes.apply_customer(changed, body)
        elif kind == "plan":
            shapes.apply_plan(changed, body)
        elif kind == "contact":
            shapes.apply_contact(changed, body)
        else:
            changed.update(body if isinstance(body, dict) else {})
        self._note(held, changed)
        self.memory.keep(object_id, changed)
        return (202 if kind == "plan" else 200), changed  # recorded: a plan PATCH answers 202

    def _delete(self, kind: str, object_id: str) -> tuple[int, JSON | None]:
        self._held(kind, object_id)  # 404 when there is no such object
        self.memory.forget(object_id)
        return (200, {}) if kind == "contact" else (204, None)  # recorded: a contact DELETE answers 200 {}

    def _attributes(self, method: str, uuid: str, part: str, body: t.Any) -> tuple[int, t.Any]:
        """Custom attributes (POST adds typed, PUT sets, DELETE removes keys) and tags (POST adds, DELETE removes)."""
        customer = self._held("customer", uuid)  # ChartMogul looks for the customer first
        values = body.get(part) if isinstance(body, dict) else None
        changed = copy.deepcopy(customer)
        attributes = changed.setdefault("attributes", {})
        if part == "custom":
            attributes["custom"] = self._custom(method, dict(attributes.get("custom") or {}), values)
        else:
            attributes["tags"] = self._tags(method, list(attributes.get("tags") or []), values)
        self._note(customer, changed)
        self.memory.keep(uuid, changed)
        if part == "custom" and method == "DELETE":
            return 204, None
        return 200, {part: attributes[part]}

    @staticmethod
    def _custom(method: str, held: JSON, values: t.Any) -> JSON:
        if method == "DELETE":
            if values is not None and not isinstance(values, list):
                raise missing("custom")
            gone = {key for key in values or [] if isinstance(key, str)}  # unknown keys are ignored
            return {k: v for k, v in held.items() if k not in gone}
        if not isinstance(values, list if method == "POST" else dict):
            raise missing("custom")
        return {**held, **(shapes.typed_custom(values) if method == "POST" else shapes.custom_map(values))}

    @staticmethod
    def _tags(method: str, held: list[t.Any], values: t.Any) -> list[t.Any]:
        if not isinstance(values, list):
            raise missing("tags")
        if method == "POST":
            return shapes.tag_union(held, values)
        dropped = {str(tag).strip().casefold() for tag in values}
        return [tag for tag in held if str(tag).casefold() not in dropped]

    def _create_data_source(self, body: t.Any) -> tuple[int, JSON]:
        """201 with a stand-in uuid (`ds_dryrun_1`); reads about it are answered here, as about an empty one."""
        name = _required(body, "name")
        uuid = self.memory.new_id("ds")
        self.new_sources.add(uuid)
        now = shapes.answered_time(datetime.datetime.now(datetime.timezone.utc))
        return 201, {"uuid": uuid, "name": name, "system": "Custom", "status": "never_imported", "created_at": now}

    # Subscription events -------------------------------------------------------------------
    def _event(self, method: str, body: t.Any) -> tuple[int, t.Any]:
        sent = _envelope(body)
        held = self._held_event(sent)
        if method == "POST":
            if sent.get("external_id") is not None and held is not None:
                raise taken("subscription_event")
            event = shapes.new_event(f"dryrun_{self.memory.number('event')}", sent)
            self.memory.create(Made("subscription_event", str(sent.get("data_source_uuid")), str(sent.get("external_id"))),
                               event["id"], event)
            return 201, event
        if held is None:
            raise not_found("subscription_event")
        key = ("subscription_event", str(held.get("data_source_uuid")), str(held.get("external_id")))
        if method == "DELETE":
            self.memory.forget(str(held.get("id")), key)
            return 204, None
        changed = copy.deepcopy(held)
        shapes.apply_event(changed, sent)
        self._note(held, changed)
        self.memory.keep(str(held.get("id")), changed, key)
        return 200, changed

    def _held_event(self, sent: JSON) -> JSON | None:
        """The event an envelope names (by id, or by data source and external id), as it stands now.

        An id this dry run neither made nor saw listed is taken as held: the target names an event by id only when
        ChartMogul gave it that id (in an answer or a listing that the sync memory kept).
        """
        key = ("subscription_event", str(sent.get("data_source_uuid")), str(sent.get("external_id")))
        memory = self.memory
        with memory.lock:
            if sent.get("id") is not None:
                event_id = str(sent["id"])
                if event_id in memory.gone:
                    return None
                return memory.get(event_id) or copy.deepcopy(memory.seen.get(event_id, {"id": sent["id"]}))
            if key in memory.gone_keys or sent.get("data_source_uuid") is None:
                return None
            held = memory.by_key(key)
        return held if held is not None else self._find("subscription_event", key[1], key[2])

    # Invoices and transactions ---------------------------------------------------------------
    def _import_invoices(self, customer_uuid: str, body: t.Any) -> tuple[int, JSON]:
        try:
            customer = self._held("customer", customer_uuid)
        except Refusal:
            raise not_found("invoice") from None  # sic: ChartMogul answers "Invoice not found" here
        invoices = body.get("invoices") if isinstance(body, dict) else None
        if not isinstance(invoices, list):
            raise missing("invoices")
        default_ds = str(customer.get("data_source_uuid") or "")
        saved: dict[tuple[str, str], JSON] = {}  # this call's saved invoices: a repeated external id is taken too
        entries = [self._import_one(sent if isinstance(sent, dict) else {}, customer_uuid, default_ds, saved)
                   for sent in invoices]
        if any(entry["errors"] for entry in entries):
            raise Refusal(422, {"invoices": entries})
        return 201, {"invoices": entries}

    def _import_one(self, sent: JSON, customer_uuid: str, default_ds: str, saved: dict[tuple[str, str], JSON]) -> JSON:
        """One invoice of an import call: refused when its external id is taken in the data source, else saved."""
        ds = str(sent.get("data_source_uuid") or default_ds)
        key = (ds, str(sent.get("external_id")))
        held = (saved.get(key) or self._find("invoice", *key)) if sent.get("external_id") is not None else None
        if held is not None:
            return shapes.refused_invoice(sent, shapes.duplicate_invoice_errors(sent, held))
        memory = self.memory
        lines = [shapes.line_item(memory.new_id("li"), memory.subscription(customer_uuid, item.get("subscription_external_id")
                                                                              if isinstance(item, dict) else None), item)
                 for item in sent.get("line_items") or []]
        transactions = [shapes.transaction(memory.new_id("tr"), tx) for tx in sent.get("transactions") or []]
        invoice = shapes.new_invoice(memory.new_id("inv"), sent, lines, transactions)
        ext = str(sent.get("external_id")) if sent.get("external_id") is not None else invoice["uuid"]
        memory.create(Made("invoice", ds, ext, customer_uuid), invoice["uuid"], invoice)
        saved[key] = invoice
        return invoice

    def _add_transaction(self, invoice_uuid: str, body: t.Any) -> tuple[int, JSON]:
        sent: JSON = body if isinstance(body, dict) else {}
        invoice = self._held("invoice", invoice_uuid)
        ext = sent.get("external_id")
        if ext is not None and any(tx.get("external_id") == ext for tx in invoice.get("transactions") or []):
            raise taken("transaction")
        tx = shapes.transaction(self.memory.new_id("tr"), sent)
        self.memory.add_transaction(invoice_uuid, tx)
        return 201, shapes.standalone(tx)

    # Reads ----------------------------------------------------------------------------------
    def _held(self, kind: str, object_id: str) -> JSON:
        """The object as ChartMogul (or this dry run) holds it; 404 in ChartMogul's words when there is none."""
        try:
            body = self.get(RESOURCES[kind].one(object_id)).body
        except APIError as exc:
            if is_missing(exc):
                raise not_found(kind) from None
            raise
        return body if isinstance(body, dict) else {}

    def _find(self, kind: str, ds: str, ext: str) -> JSON | None:
        """The object with this external id in the data source, as this dry run sees it."""
        resource = RESOURCES[kind]
        params = {"data_source_uuid": ds, "external_id": ext}
        found = self.paginate(str(resource.list_path), str(resource.root), params)
        return next((obj for obj in found if ext in external_ids_in(obj, ds)), None)

    def _read(self, path: str, route: str, params: dict[str, t.Any] | None) -> Response:
        """From memory when this dry run made, changed or deleted what is read, else from ChartMogul, overlaid."""
        found = parse_route(route)
        local = self._local_read(found, params) if found is not None else None
        if local is not None:
            return Response(200, local, 1)
        try:
            response = self._empty(found) if self._in_new_source(route, params) else super().request("GET", path, params=params)
        except APIError as exc:
            created = self._created_listed(found, params) if is_missing(exc) and found and found.object_id is None else []
            if not created or route != RESOURCES["customer"].search_path:
                raise
            return Response(200, {"entries": created, "cursor": None, "has_more": False}, exc.attempts)
        if found is None or not isinstance(response.body, dict):
            return response
        return Response(response.status, self._overlaid(found, params, response.body), response.attempts)

    def _in_new_source(self, route: str, params: dict[str, t.Any] | None) -> bool:
        """Whether a read is about a data source this dry run created (ChartMogul has never heard of it)."""
        return bool(self.new_sources & {str((params or {}).get("data_source_uuid")), *route.split("/")})

    @staticmethod
    def _empty(found: _Route | None) -> Response:
        """What ChartMogul holds in a new data source: nothing (an empty listing in the resource's root key)."""
        root = RESOURCES[found.kind].root if found is not None else None
        return Response(200, {**({root: []} if root else {}), "cursor": None, "has_more": False}, 1)

    def _local_read(self, found: _Route, params: dict[str, t.Any] | None) -> JSON | None:
        """A read about an object this dry run created, changed or deleted, or the children of a customer it created;
        None to ask ChartMogul.
        """
        memory, resource = self.memory, RESOURCES[found.kind]
        if found.object_id is not None and found.rest in (None, "attributes"):
            if found.object_id in memory.gone:
                raise not_found(found.kind)
            obj = memory.get(found.object_id)
            if obj is None:
                return None
            if found.rest == "attributes":
                return shapes.attributes_view(obj)
            made = memory.made.get(found.object_id)
            return shapes.invoice_view(obj, made.owner if made else None) if found.kind == "invoice" else obj
        customer = found.parent or (params or {}).get("customer_uuid")
        if found.kind in ("invoice", "contact") and isinstance(customer, str) and customer in memory.made:
            root: JSON = {"customer_uuid": customer} if found.parent else {}
            return {**root, str(resource.root): self._created_listed(found, params), "cursor": None, "has_more": False}
        return None

    def _overlaid(self, found: _Route, params: dict[str, t.Any] | None, body: JSON) -> JSON:
        """ChartMogul's answer as it would be after this dry run's writes."""
        root = RESOURCES[found.kind].root if found.object_id is None else None
        if root is None or not isinstance(body.get(root), list):
            current = self._current(found.kind, body) if found.object_id is not None and found.rest is None else body
            return current if current is not None else body
        if found.kind == "subscription_event":
            with self.memory.lock:
                self.memory.seen.update({str(e["id"]): dict(e) for e in body[root] if isinstance(e, dict) and "id" in e})
        entries = [now for entry in body[root] if (now := self._current(found.kind, entry)) is not None]
        if not body.get("has_more"):  # the last page: what this dry run created that the query selects
            entries += self._created_listed(found, params)
        return {**body, root: entries}

    def _current(self, kind: str, entry: t.Any) -> t.Any:
        """A listed object as this dry run left it: None when it deleted it."""
        object_id = entry.get(RESOURCES[kind].id_field) if isinstance(entry, dict) else None
        if object_id is None:
            return entry
        object_id = str(object_id)
        if object_id in self.memory.gone:
            return None
        changed = self.memory.get(object_id)
        if changed is not None:
            return changed
        added = self.memory.added_to(object_id)
        return {**entry, "transactions": [*(entry.get("transactions") or []), *added]} if added else entry

    def _created_listed(self, found: _Route | None, params: dict[str, t.Any] | None) -> list[JSON]:
        """Objects this dry run created that a list endpoint and its filters select, in its answer's shape."""
        if found is None:
            return []
        query = {k: v for k, v in (params or {}).items() if k in FILTERS and v is not None}
        if found.parent is not None:
            query["customer_uuid"] = found.parent
        objects = self.memory.created(found.kind, query)
        if found.kind == "invoice" and found.parent is None:  # the account-wide listing names the customer
            return [shapes.invoice_view(obj, owner) for obj, owner in objects]
        return [obj for obj, _ in objects]

