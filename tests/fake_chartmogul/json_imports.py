"""ChartMogul's bulk JSON import in the fake: submit a batch, poll it, see it applied later.

Evidence. ChartMogul's reference [D] (chartmogul-api.md §4): "Import Data in Bulk"
(``POST /data_sources/{ds}/json_imports``, https://dev.chartmogul.com/reference/import-data-bulk)
takes ``{external_id, customers[], plans[], invoices[], line_items[], transactions[],
subscription_events[]}``, flat arrays linked by external ids: ``invoices``
(``customer_external_id``), ``line_items`` (``invoice_external_id``, ``plan_external_id``),
``transactions`` (``invoice_external_id``), ``subscription_events`` (``customer_external_id``);
each kind corresponds to a single-object endpoint (customers: Create a Customer). "Track
Import Status" (``GET /data_sources/{ds}/json_imports/{import_id}``,
https://dev.chartmogul.com/reference/bulk-import/track-status) names ``import_id`` an
identifier the client chose (its ``external_id``); its example polls ``.../json_imports/ds_import_1``
(the external id) and answers ``{id: <uuid>, data_source_uuid, status: "completed", external_id,
status_details: {"plans": {status}, <customer external id>: {status, invoices: {status},
customers, line_items, transactions, subscription_events}}, created_at, updated_at}`` (kept as
data in ``tests/contract/fixtures/json_import_status_docs.json``); statuses ``queued``,
``processing``, ``completed``. The "Bulk Import" overview says validation runs asynchronously
after the import and invalid objects are imported and marked Failed, so ``completed`` with
``imported`` everywhere does not prove an object is in ChartMogul. Weaker: chartmogul-python's
hand-written mock ``test/api/test_json_import.py`` (``tests/contract/fixtures/json_import_mock.json``)
answers the create 200 ``{id, data_source_uuid, status: "queued", external_id, status_details: {},
created_at, updated_at}`` and polls by the answer's ``id`` (the only source that does);
chartmogul-ruby ``spec/chartmogul/json_import_spec.rb`` (also a mock) shows
``processed_count``/``error_count`` instead of ``status_details``. No source shows how a failed
object is reported.

Refusals on submission: a body of more than ``max_body_bytes`` (5,000,000: "5MB" read as bytes of
the body as received, not 5 MiB and not characters) answers 413; a body that is not an object, a
key that is not an array (or holds a non-object), or more than 1000 customers 422 ``{code,
message, param}`` (inferred); an ``external_id`` an earlier import of the data source used 422
``{"code": 422, "message": "External ID has already been taken", "param": "external_id"}``
(``duplicate_external_id``); an unknown data source 404 as everywhere. A poll naming no import
answers 404 ``{"code": 404, "message": "Import not found", "param": null}``.

Time: an import is ``queued`` for ``queue_delay`` seconds, ``processing`` for
``per_object_seconds`` per object in its body, then applied (bulk_apply.py: the REST
endpoints' rules, object by object) and ``completed``. The imports of one data source run one
after another: ``starts = max(submitted + queue_delay, previous import's completion)``,
``completes = starts + per_object_seconds * objects``; an import waits ``queued`` while an
earlier one of its data source is unfinished. By default nothing runs in the background: every
request the fake handles (and :meth:`JsonImports.advance`) first applies what is due, in
submission order, under the store lock, so tests see a deterministic order. The create answer
always says ``queued``; ``updated_at`` is the time of the last status change.

Switches (keyword arguments of :class:`JsonImports`, attributes ``fake.json_imports.<switch>``;
values are checked, a wrong one raises ValueError). ``fail_customers``, ``existing_customer``,
``unstored``, ``bulk_attributes`` and ``validation`` are read when an import is applied;
``queue_delay``, ``per_object_seconds``, ``max_body_bytes`` and ``duplicate_external_id`` when one
is submitted; ``poll_by``, ``forget_imports``, ``status_shape`` and ``failure_detail`` when one is
polled.

``queue_delay`` / ``per_object_seconds``: floats, default 0.0 (the next request sees it completed)
``status_shape``: ``"details"`` (default, python mock and the reference) | ``"counts"`` (ruby mock)
    ``counts`` answers no ``status_details`` (only ``{"error": …}`` when an import fails whole)
    but ``processed_count`` (objects imported) and ``error_count`` (objects failed); both 0
    until the import finishes (a whole failure counts every object as an error).
``failure_detail``: ``"errors"`` (default) | ``"message"`` | ``"bare"``
    How a failed kind says why (no source shows it): ``{"status": "failed", "errors":
    [{"external_id", "errors": {field: message}}]}``, ``{"status": "failed", "message": "1 invoice
    failed: inv_1: currency is invalid"}``, or ``{"status": "failed"}``.
``fail_customers``: set of customer external ids whose every object fails
    (``{"customer_external_id": "rejected by the fake's fail_customers switch"}``).
``existing_customer``: ``"update"`` (default) | ``"keep"`` | ``"fail"``
    A customer record whose external id the data source has: gets the sent fields (and
    attributes, as ``bulk_attributes`` says: sent tags, and sent custom attributes with their
    types, replace the customer's); is left as it was (reported imported); or fails with every
    object of that customer (``{"external_id": "has already been taken"}``).
``paused``: False (default) | True
    The imports' clock stops and no import completes; on unpause it runs on from where it stopped.
``whole_import_failure``: None (default) | message
    Imports finish ``"failed"`` with ``status_details`` ``{"error": message}``, nothing applied.
``background``: False (default) | True
    A worker thread applies each import as it starts processing (its objects appear during
    processing; it reports ``completed`` when its processing time has passed), as ChartMogul
    works on imports on its own, instead of the next request doing it at completion: the fake's
    own time to apply then falls inside the processing time instead of being added to whichever
    poll came first (benchmarks).
``poll_by``: ``"both"`` (default) | ``"external_id"`` | ``"id"``
    Which identifier ``GET .../json_imports/{import_id}`` accepts: the import's ``external_id``
    (the reference's example; the latest import of the data source that sent it), its ``id``
    (the python mock), or either (``id`` first). Any other answers the 404 above. ``polls``
    counts every GET by the identifier asked, found or not.
``forget_imports``: False (default) | True
    Every GET of an import answers the 404 above, whatever identifier (ChartMogul no longer
    knows the import; the reference promises nothing about how long it does); the import is
    still applied on its schedule.
``validation``: ``"sync"`` (default) | ``"async"``
    ``sync``: a failed object is reported failed in ``status_details`` (and ``error_count``).
    ``async``, as the reference's overview describes: every object is reported ``imported``
    (``status_details`` all imported, ``error_count`` 0, ``processed_count`` every object) while
    those that failed are simply not stored; ``imports[id].outcomes`` still tells the truth.
``unstored``: set of external ids (default empty), of any kind (customer, plan, invoice, line
    item, transaction, subscription event; every object with that external id): reported
    imported and never stored, although valid, so a later REST write of the same object
    succeeds. The fake does not check such an object's own fields (name valid ones); the rules
    that meet a whole customer first still apply (``fail_customers``, ``existing_customer="fail"``,
    refused attributes). An unstored invoice is not stored with its line items and transactions
    (all reported imported); an unstored line item or transaction of a stored invoice is left out
    of it. An unstored customer is not stored: its invoices and events then fail as any for an
    unknown customer (``{"customer_external_id": "Customer not found"}``) under ``sync``, or are
    reported imported and not stored under ``async``. ``Outcome.unstored`` marks them.
``bulk_attributes``: ``"kept"`` (default) | ``"ignored"`` | ``"refused"``
    A customer's ``attributes`` ``{tags: [...], custom: [{type, key, value, source}]}`` (Create a
    Customer's shape; no example shows them in a bulk body): applied exactly as ``POST
    /customers`` applies them, types kept; dropped (the customer is made without them and
    reported imported); or the customer fails with ``{"attributes": "is not accepted by the bulk
    import"}`` (a top-level ``tags`` key too), and with it its invoices and events (for a customer
    the data source did not have yet: ``Customer not found``). Every other field Create a
    Customer takes (``name``, ``email``, ``company``, ``country``, ``state``, ``city``, ``zip``,
    ``lead_created_at``, ``free_trial_started_at``, ``website_url``, ``owner``, ``status``,
    ``primary_contact``) is applied in all three modes, by the store code ``POST /customers``
    uses, so bulk and REST make identical customers.
``max_body_bytes``: int, default 5_000_000
    The largest body accepted, counted in bytes as received (UTF-8: a Japanese character is 3
    bytes); one byte more answers 413 with the body above (its message always says 5 MB).
``duplicate_external_id``: ``"refuse"`` (default) | ``"accept"``
    A POST whose ``external_id`` an earlier import of the same data source already used (an
    import without one is never a duplicate): refused with the 422 above, nothing scheduled; or
    accepted as a new import (polling the external id then finds the newest; sharing customers
    with an unfinished import is noted in ``violations`` as always). After a lost answer
    (faults ``drop_after``/``error_after``) the import exists and can be polled by its external id.

``status_details`` when completed (``details``): ``"plans"`` (when plans were sent), then one
entry per customer external id the import names, ``{"status", <kind>: {"status", ...}}`` with
only the kinds that customer had; a kind fails if any of its objects failed, a customer if any
kind did. Objects that name no known customer (a customer without ``external_id``, a line item
or transaction whose invoice is unknown, an invoice without ``customer_external_id``) are
reported under their kind's name at the top level, like ``"plans"``.

Observations for tests: ``submitted`` (accepted bodies, in order), ``polls`` (GETs per import id
asked for), ``imports`` (id -> :class:`ImportRecord`, whose ``outcomes`` say what became of each
object), ``violations`` (an import naming a customer that another unfinished import of the same
data source names, which ChartMogul asks clients never to do), ``completed_ids()``,
``find(ds, import_id)`` (the import a poll would answer, whatever ``forget_imports``).
``add_switch_options``/``apply_switch_options`` give every switch a ``--bulk-…`` command-line
option (``python -m tests.fake_chartmogul``, ``bench/fake_server.py``).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import re
import threading
import time
import uuid as uuidlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from .bulk_apply import (
    BULK_ATTRIBUTES,
    EXISTING_CUSTOMER,
    KINDS,
    Application,
    Outcome,
    Rules,
    customers_named,
    external_id,
    items_of,
)
from .request import Sent, sent
from .store import ApiError

if TYPE_CHECKING:
    from .store import Store

JSON = dict[str, Any]
Result = tuple[int, Any]

MAX_BODY_BYTES = 5_000_000  # "5MB": bytes of the body as received, not 5 MiB, not characters
MAX_CUSTOMERS = 1000
STATUS_SHAPES = ("details", "counts")
FAILURE_DETAILS = ("errors", "message", "bare")
POLL_BY = ("both", "external_id", "id")
VALIDATIONS = ("sync", "async")
DUPLICATE_EXTERNAL_IDS = ("refuse", "accept")
TOO_LARGE: JSON = {"code": 413, "message": "Request body exceeds 5 MB", "param": None}
IMPORT_NOT_FOUND: JSON = {"code": 404, "message": "Import not found", "param": None}
EXTERNAL_ID_TAKEN: JSON = {"code": 422, "message": "External ID has already been taken", "param": "external_id"}
# Kinds in a customer's entry, in the python mock's order.
CUSTOMER_KINDS = ("invoices", "customers", "line_items", "transactions", "subscription_events")
NOUNS = {"customers": "customer", "plans": "plan", "invoices": "invoice", "line_items": "line item",
         "transactions": "transaction", "subscription_events": "subscription event"}


def _stamp(moment: datetime) -> str:
    """Import timestamps as the mock shows them: ``2026-04-14T10:30:00Z``."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _invalid(message: str, param: str | None) -> ApiError:
    return ApiError(422, {"code": 422, "message": message, "param": param})


def checked_body(body: Any) -> JSON:
    """The submitted body when its shape is acceptable; else the 422 naming the key at fault."""
    if not isinstance(body, dict):
        raise _invalid("The request body must be a JSON object", None)
    for key in KINDS:
        if key not in body:
            continue
        if not isinstance(body[key], list):
            raise _invalid(f'"{key}" must be an array', key)
        if not all(isinstance(item, dict) for item in body[key]):
            raise _invalid(f'every entry of "{key}" must be an object', key)
    if len(body.get("customers") or []) > MAX_CUSTOMERS:
        raise _invalid(f"An import may hold at most {MAX_CUSTOMERS} customers", "customers")
    if body.get("external_id") is not None and not isinstance(body["external_id"], str):
        raise _invalid('"external_id" must be a string', "external_id")
    return body


def invoice_owners(body: JSON) -> dict[str, str]:
    """Invoice external id -> customer external id, for the invoices of a body."""
    owners: dict[str, str] = {}
    for invoice in items_of(body, "invoices"):
        ext, owner = external_id(invoice.get("external_id")), external_id(invoice.get("customer_external_id"))
        if ext is not None and owner is not None:
            owners.setdefault(ext, owner)
    return owners


def object_count(body: JSON) -> int:
    return sum(len(items_of(body, kind)) for kind in KINDS)


@dataclass
class ImportRecord:
    """One submitted import; ``starts_at``/``completes_at`` are on the imports' clock."""

    id: str
    data_source_uuid: str
    external_id: str | None
    body: JSON
    customers: frozenset[str]
    objects: int
    created_at: str
    starts_at: float
    completes_at: float
    status: str = "queued"
    updated_at: str = ""
    outcomes: list[Outcome] = field(default_factory=list)  # what became of each object (the truth)
    error: str | None = None  # whole_import_failure's message
    details: dict[str, JSON] = field(default_factory=dict)  # status_details once completed, per failure_detail
    applied: bool = False
    validation: str = "sync"  # the validation switch when it was applied

    @property
    def finished(self) -> bool:
        return self.status in ("completed", "failed")

    @property
    def reported(self) -> list[Outcome]:
        """The outcomes as the import's answers tell them: with ``validation="async"`` every one imported."""
        if self.validation == "async":
            return [dataclasses.replace(outcome, errors={}) for outcome in self.outcomes]
        return self.outcomes


# ---------------------------------------------------------------------- status_details


def kind_entry(kind: str, outcomes: list[Outcome], detail: str) -> JSON:
    """``{"status": "imported"}``, or ``"failed"`` described as ``failure_detail`` says."""
    failed = [o for o in outcomes if o.failed]
    if not failed:
        return {"status": "imported"}
    if detail == "bare":
        return {"status": "failed"}
    if detail == "message":
        return {"status": "failed", "message": failure_message(kind, failed)}
    return {"status": "failed", "errors": [{"external_id": o.external_id, "errors": dict(o.errors)} for o in failed]}


def failure_message(kind: str, failed: list[Outcome]) -> str:
    """``1 invoice failed: inv_1: currency is invalid`` (objects joined by ``; ``)."""
    noun = NOUNS[kind] + ("" if len(failed) == 1 else "s")
    parts = []
    for outcome in failed:
        name = "(no external id)" if outcome.external_id is None else outcome.external_id
        parts.append(f"{name}: " + ", ".join(f"{key} {message}" for key, message in outcome.errors.items()))
    return f"{len(failed)} {noun} failed: " + "; ".join(parts)


def status_details(outcomes: list[Outcome], detail: str) -> JSON:
    """Top-level kinds (``plans``, unattributed objects), then one entry per customer external id."""
    details: JSON = {}
    loose = [o for o in outcomes if o.customer is None]
    for kind in ("plans", *(k for k in KINDS if k != "plans")):
        of_kind = [o for o in loose if o.kind == kind]
        if of_kind:
            details[kind] = kind_entry(kind, of_kind, detail)
    for customer in dict.fromkeys(o.customer for o in outcomes if o.customer is not None):
        mine = [o for o in outcomes if o.customer == customer]
        entry: JSON = {"status": "failed" if any(o.failed for o in mine) else "imported"}
        for kind in CUSTOMER_KINDS:
            of_kind = [o for o in mine if o.kind == kind]
            if of_kind:
                entry[kind] = kind_entry(kind, of_kind, detail)
        details[customer] = entry
    return details


# ---------------------------------------------------------------------- the imports


class JsonImports:
    """The bulk imports of a store, their schedule, switches and what tests may observe."""

    def __init__(
        self,
        store: Store,
        *,
        queue_delay: float = 0.0,
        per_object_seconds: float = 0.0,
        status_shape: str = "details",
        failure_detail: str = "errors",
        fail_customers: Iterable[str] = (),
        existing_customer: str = "update",
        paused: bool = False,
        whole_import_failure: str | None = None,
        background: bool = False,
        poll_by: str = "both",
        forget_imports: bool = False,
        validation: str = "sync",
        unstored: Iterable[str] = (),
        bulk_attributes: str = "kept",
        max_body_bytes: int = MAX_BODY_BYTES,
        duplicate_external_id: str = "refuse",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self._clock = clock
        self._paused_since: float | None = None
        self._paused_total = 0.0
        self.queue_delay = queue_delay
        self.per_object_seconds = per_object_seconds
        self.status_shape = status_shape
        self.failure_detail = failure_detail
        self.fail_customers = set(fail_customers)
        self.existing_customer = existing_customer
        self.paused = paused
        self.whole_import_failure = whole_import_failure
        self.poll_by = poll_by
        self.forget_imports = forget_imports
        self.validation = validation
        self.unstored = unstored  # any iterable of strings, kept as a set
        self.bulk_attributes = bulk_attributes
        self.max_body_bytes = max_body_bytes
        self.duplicate_external_id = duplicate_external_id
        self.submitted: list[JSON] = []
        self.polls: dict[str, int] = {}
        self.violations: list[str] = []
        self._imports: dict[str, ImportRecord] = {}
        self._by_external_id: dict[tuple[str, str], str] = {}  # (data source, external id) -> latest import id
        self._completed: list[str] = []
        self.background = background
        self._wake = threading.Event()
        self._worker: threading.Thread | None = None

    # ------------------------------------------------------------------ switches

    @property
    def queue_delay(self) -> float:
        return self._queue_delay

    @queue_delay.setter
    def queue_delay(self, seconds: float) -> None:
        self._queue_delay = _seconds("queue_delay", seconds)

    @property
    def per_object_seconds(self) -> float:
        return self._per_object_seconds

    @per_object_seconds.setter
    def per_object_seconds(self, seconds: float) -> None:
        self._per_object_seconds = _seconds("per_object_seconds", seconds)

    @property
    def status_shape(self) -> str:
        return self._status_shape

    @status_shape.setter
    def status_shape(self, shape: str) -> None:
        self._status_shape = _choice("status_shape", shape, STATUS_SHAPES)

    @property
    def failure_detail(self) -> str:
        return self._failure_detail

    @failure_detail.setter
    def failure_detail(self, detail: str) -> None:
        self._failure_detail = _choice("failure_detail", detail, FAILURE_DETAILS)

    @property
    def existing_customer(self) -> str:
        return self._existing_customer

    @existing_customer.setter
    def existing_customer(self, mode: str) -> None:
        self._existing_customer = _choice("existing_customer", mode, EXISTING_CUSTOMER)

    @property
    def poll_by(self) -> str:
        return self._poll_by

    @poll_by.setter
    def poll_by(self, mode: str) -> None:
        self._poll_by = _choice("poll_by", mode, POLL_BY)

    @property
    def forget_imports(self) -> bool:
        return self._forget_imports

    @forget_imports.setter
    def forget_imports(self, on: bool) -> None:
        self._forget_imports = _flag("forget_imports", on)

    @property
    def validation(self) -> str:
        return self._validation

    @validation.setter
    def validation(self, mode: str) -> None:
        self._validation = _choice("validation", mode, VALIDATIONS)

    @property
    def unstored(self) -> set[str]:
        return self._unstored

    @unstored.setter
    def unstored(self, external_ids: Iterable[str]) -> None:
        if isinstance(external_ids, str | bytes) or not isinstance(external_ids, Iterable):
            raise ValueError("unstored must be a collection of external ids (strings), not a single value")
        ids = list(external_ids)
        if not all(isinstance(ext, str) and ext for ext in ids):
            raise ValueError("unstored must hold non-empty strings (external ids)")
        self._unstored = set(ids)

    @property
    def bulk_attributes(self) -> str:
        return self._bulk_attributes

    @bulk_attributes.setter
    def bulk_attributes(self, mode: str) -> None:
        self._bulk_attributes = _choice("bulk_attributes", mode, BULK_ATTRIBUTES)

    @property
    def max_body_bytes(self) -> int:
        return self._max_body_bytes

    @max_body_bytes.setter
    def max_body_bytes(self, size: int) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError("max_body_bytes must be a whole number of bytes >= 1")
        self._max_body_bytes = size

    @property
    def duplicate_external_id(self) -> str:
        return self._duplicate_external_id

    @duplicate_external_id.setter
    def duplicate_external_id(self, mode: str) -> None:
        self._duplicate_external_id = _choice("duplicate_external_id", mode, DUPLICATE_EXTERNAL_IDS)

    @property
    def paused(self) -> bool:
        return self._paused_since is not None

    @paused.setter
    def paused(self, on: bool) -> None:
        """Pausing stops the imports' clock; unpausing runs it on from where it stopped."""
        with self.store.lock:
            if on and self._paused_since is None:
                self._paused_since = self._clock()
            elif not on and self._paused_since is not None:
                self._paused_total += self._clock() - self._paused_since
                self._paused_since = None

    # ------------------------------------------------------------------ observations

    @property
    def imports(self) -> dict[str, ImportRecord]:
        """Every import by id, brought up to date first."""
        with self.store.lock:
            self.advance()
            return dict(self._imports)

    def completed_ids(self) -> list[str]:
        """Ids of the imports that completed (not those failed whole), in completion order."""
        with self.store.lock:
            self.advance()
            return list(self._completed)

    # ------------------------------------------------------------------ requests

    def submit(self, data_source_uuid: str, request: Sent) -> JSON:
        """``POST /data_sources/{ds}/json_imports``: checked, scheduled, answered ``queued``."""
        if request.size > self.max_body_bytes:
            raise ApiError(413, dict(TOO_LARGE))
        with self.store.lock:
            self.store.get_data_source(data_source_uuid)
            body = checked_body(request.body)
            self.advance()
            ext = external_id(body.get("external_id"))
            taken = ext is not None and (data_source_uuid, ext) in self._by_external_id
            if taken and self.duplicate_external_id == "refuse":
                raise ApiError(422, dict(EXTERNAL_ID_TAKEN))
            record = self._schedule(data_source_uuid, copy.deepcopy(body))
            self._note_overlaps(record)
            self._imports[record.id] = record
            if ext is not None:
                self._by_external_id[(data_source_uuid, ext)] = record.id
            self.submitted.append(copy.deepcopy(body))
            if self.background:
                self._start_worker()
            return self.view(record)

    def _start_worker(self) -> None:
        """Wake the worker (started if none runs): a new import may be due before the one it waits for."""
        self._wake.set()
        if self._worker is None:
            self._worker = threading.Thread(target=self._work, name="fake-json-imports", daemon=True)
            self._worker.start()

    def _work(self) -> None:
        """Apply imports as they come due; stop when none is unfinished (the next submit starts it again)."""
        while True:
            with self.store.lock:
                self.advance()
                due = [r.completes_at if r.applied else r.starts_at for r in self._imports.values() if not r.finished]
                if not due:
                    self._worker = None
                    return
                wait = 0.05 if self.paused else max(0.0, min(due) - self._now())
            self._wake.wait(wait)
            self._wake.clear()

    def get(self, data_source_uuid: str, import_id: str) -> JSON:
        """``GET /data_sources/{ds}/json_imports/{import_id}``: the import as it stands now."""
        with self.store.lock:
            self.polls[import_id] = self.polls.get(import_id, 0) + 1
            self.store.get_data_source(data_source_uuid)
            self.advance()
            record = self.find(data_source_uuid, import_id)
            if record is None or self.forget_imports:
                raise ApiError(404, dict(IMPORT_NOT_FOUND))
            return self.view(record)

    def find(self, data_source_uuid: str, import_id: str) -> ImportRecord | None:
        """The import of this data source that ``import_id`` names, as ``poll_by`` reads it: its ``id``
        first, then its ``external_id`` (the latest import that used it); None when none.
        """
        with self.store.lock:
            if self.poll_by != "external_id":
                record = self._imports.get(import_id)
                if record is not None and record.data_source_uuid == data_source_uuid:
                    return record
            if self.poll_by != "id":
                latest = self._by_external_id.get((data_source_uuid, import_id))
                if latest is not None:
                    return self._imports[latest]
            return None

    def view(self, record: ImportRecord) -> JSON:
        """An import as answered, in the shape ``status_shape`` picks."""
        answer: JSON = {"id": record.id, "data_source_uuid": record.data_source_uuid, "status": record.status,
                        "external_id": record.external_id}
        if self.status_shape == "details":
            answer["status_details"] = self._details(record)
        else:
            if record.error is not None:
                answer["status_details"] = {"error": record.error}
            answer.update(self._counts(record))
        answer.update(created_at=record.created_at, updated_at=record.updated_at)
        return answer

    def _details(self, record: ImportRecord) -> JSON:
        if record.error is not None:
            return {"error": record.error}
        if record.status != "completed":
            return {}
        if self.failure_detail not in record.details:  # built once: a poll costs its answer only
            record.details[self.failure_detail] = status_details(record.reported, self.failure_detail)
        return record.details[self.failure_detail]

    @staticmethod
    def _counts(record: ImportRecord) -> JSON:
        if record.error is not None:
            return {"processed_count": 0, "error_count": record.objects}
        reported = record.reported
        failed = sum(1 for o in reported if o.failed)
        return {"processed_count": len(reported) - failed, "error_count": failed}

    # ------------------------------------------------------------------ time

    def advance(self) -> None:
        """Move every import on to where the clock says it is; apply those due, in submission order."""
        with self.store.lock:
            now = self._now()
            busy: set[str] = set()  # data sources with an unfinished import ahead in the queue
            for record in [r for r in self._imports.values() if not r.finished]:
                if record.data_source_uuid not in busy:
                    self._step(record, now)
                if not record.finished:
                    busy.add(record.data_source_uuid)

    def _now(self) -> float:
        """The imports' clock: stopped while paused, and not counting the time spent paused."""
        current = self._clock() if self._paused_since is None else self._paused_since
        return current - self._paused_total

    def _wall(self, moment: float) -> str:
        """The wall-clock time of a moment on the imports' clock (now, for moments in the future)."""
        return _stamp(datetime.now(timezone.utc) - timedelta(seconds=max(0.0, self._now() - moment)))

    def _schedule(self, data_source_uuid: str, body: JSON) -> ImportRecord:
        now = self._now()
        starts = now + self.queue_delay
        earlier = [r for r in self._imports.values() if r.data_source_uuid == data_source_uuid]
        if earlier:
            starts = max(starts, earlier[-1].completes_at)
        objects = object_count(body)
        created = _stamp(datetime.now(timezone.utc))
        return ImportRecord(id=str(uuidlib.uuid4()), data_source_uuid=data_source_uuid,
                            external_id=external_id(body.get("external_id")), body=body,
                            customers=self._customers_of(data_source_uuid, body), objects=objects, created_at=created,
                            starts_at=starts, completes_at=starts + self.per_object_seconds * objects, updated_at=created)

    def _customers_of(self, data_source_uuid: str, body: JSON) -> frozenset[str]:
        """The customer external ids a body has records of, in any array: line items and transactions
        count for their invoice's customer (an invoice of this body, of an earlier import, or stored).
        """
        owners: dict[str, str] = {}
        for earlier in self._imports.values():
            if earlier.data_source_uuid == data_source_uuid:
                owners.update(invoice_owners(earlier.body))
        owners.update(invoice_owners(body))
        named = set(customers_named(body))
        for child in [*items_of(body, "line_items"), *items_of(body, "transactions")]:
            invoice = external_id(child.get("invoice_external_id")) or ""
            stored = self.store.find_invoice(data_source_uuid, invoice)
            owner = owners.get(invoice) or (external_id(stored.get("customer_external_id")) if stored else None)
            if owner is not None:
                named.add(owner)
        return frozenset(named)

    def _step(self, record: ImportRecord, now: float) -> None:
        if now < record.starts_at:
            return
        if self.paused or now < record.completes_at:
            if record.status == "queued":
                record.status, record.updated_at = "processing", self._wall(record.starts_at)
            if self.background and not self.paused:
                self._apply(record)  # its objects appear while it is processing; "completed" waits for the clock
            return
        self._finish(record)

    def _apply(self, record: ImportRecord) -> None:
        """Apply the body (or fail it whole) once; `error` or `outcomes` say how it went."""
        if record.applied:
            return
        record.applied = True
        if self.whole_import_failure is not None:
            record.error = str(self.whole_import_failure)
        elif record.data_source_uuid not in self.store.data_sources:
            record.error = "Data source not found"
        else:
            rules = Rules(frozenset(self.fail_customers), self.existing_customer, frozenset(self.unstored),
                          self.bulk_attributes)
            record.validation = self.validation
            record.outcomes = Application(self.store, record.data_source_uuid, record.body, rules).run()

    def _finish(self, record: ImportRecord) -> None:
        record.updated_at = self._wall(record.completes_at)
        self._apply(record)
        if record.error is not None:
            record.status = "failed"
        else:
            record.status = "completed"
            self._completed.append(record.id)

    def _note_overlaps(self, record: ImportRecord) -> None:
        """ChartMogul asks that one customer's records never sit in two unfinished imports at once."""
        for other in self._imports.values():
            shared = record.customers & other.customers
            if other.data_source_uuid == record.data_source_uuid and not other.finished and shared:
                self.violations.append(f"import {record.id} sent customers {sorted(shared)} while import "
                                       f"{other.id} with them was still {other.status}")


def _seconds(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"{name} must be a number of seconds >= 0")
    return float(value)


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}")
    return value


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False")
    return value


# ---------------------------------------------------------------------- command-line options (__main__.py, bench)


def add_switch_options(parser: argparse.ArgumentParser) -> None:
    """The bulk import's switches as ``--bulk-<switch>`` options (defaults: the switches' own)."""
    bulk = parser.add_argument_group("bulk JSON import switches (tests/fake_chartmogul/json_imports.py)")
    bulk.add_argument("--bulk-queue-delay", type=float, default=0.0, help="seconds a bulk JSON import stays queued")
    bulk.add_argument("--bulk-per-object-seconds", type=float, default=0.0,
                      help="seconds a bulk JSON import processes per object in its body")
    bulk.add_argument("--bulk-poll-by", choices=POLL_BY, default="both",
                      help="which identifier GET .../json_imports/{import_id} accepts")
    bulk.add_argument("--bulk-forget-imports", action="store_true", help="every GET of an import answers 404")
    bulk.add_argument("--bulk-validation", choices=VALIDATIONS, default="sync",
                      help="async: every object is reported imported, failed ones are not stored")
    bulk.add_argument("--bulk-unstored", default="", metavar="EXT,EXT,...",
                      help="external ids reported imported but never stored (comma-separated)")
    bulk.add_argument("--bulk-attributes", choices=BULK_ATTRIBUTES, default="kept",
                      help="what a bulk customer's attributes do")
    bulk.add_argument("--bulk-max-body-bytes", type=int, default=MAX_BODY_BYTES,
                      help="largest accepted body in bytes (413 above)")
    bulk.add_argument("--bulk-duplicate-external-id", choices=DUPLICATE_EXTERNAL_IDS, default="refuse",
                      help="a POST reusing an import external_id of its data source: refused 422 or accepted")


def apply_switch_options(imports: JsonImports, args: argparse.Namespace) -> None:
    """Set the switches :func:`add_switch_options` parsed."""
    imports.queue_delay = args.bulk_queue_delay
    imports.per_object_seconds = args.bulk_per_object_seconds
    imports.poll_by = args.bulk_poll_by
    imports.forget_imports = args.bulk_forget_imports
    imports.validation = args.bulk_validation
    imports.unstored = [ext for ext in (part.strip() for part in args.bulk_unstored.split(",")) if ext]
    imports.bulk_attributes = args.bulk_attributes
    imports.max_body_bytes = args.bulk_max_body_bytes
    imports.duplicate_external_id = args.bulk_duplicate_external_id


# ---------------------------------------------------------------------- routes (registered in server.py)


def _create(store: Store, m: re.Match[str], q: dict[str, str], b: JSON) -> Result:
    return 200, store.json_imports.submit(m["ds"], sent())


def _get(store: Store, m: re.Match[str], q: dict[str, str], b: JSON) -> Result:
    return 200, store.json_imports.get(m["ds"], m["id"])


ROUTES = [
    ("POST", r"/data_sources/(?P<ds>[^/]+)/json_imports", _create),
    ("GET", r"/data_sources/(?P<ds>[^/]+)/json_imports/(?P<id>[^/]+)", _get),
]
