"""In-memory ChartMogul state and its domain rules, with no HTTP in sight.

The HTTP layer (``server.py``) turns requests into calls on :class:`Store` and
turns :class:`ApiError` into error responses, so the rules here can be read and
tested without sockets. Error bodies and messages follow
``/work/shared/chartmogul-api.md``.
"""

from __future__ import annotations

import base64
import binascii
import copy
import itertools
import json
import re
import threading
import uuid as uuidlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from . import views

JSON = dict[str, Any]
UTC = timezone.utc

BATCH_MODES = ("save_valid", "save_none")
TAG_CASES = ("keep", "lower")
CURSOR_MODES = ("string", "null")
UNSET_CITIES = ("", None)
LINE_ITEM_ORDERS = ("sent", "reversed")
LISTING_ORDERS = ("recorded", "created")
AUTO_CHURN_TAG = "auto-churned-delinquent-subscription"
MERGED_TAG = "merged-customer"
NEW_LEAD = "New Lead"
ACTIVE = "Active"
MAX_PER_PAGE = 200
CUSTOM_TYPES = ("String", "Integer", "Decimal", "Timestamp", "Boolean")
INTERVAL_UNITS = ("day", "month", "year")
LINE_ITEM_TYPES = ("subscription", "one_time", "trial")
TRANSACTION_TYPES = ("payment", "refund")
TRANSACTION_RESULTS = ("successful", "failed")
COLLECTION_METHODS = ("automatic", "manual")

DUP_CUSTOMER = "The external ID for this customer already exists in our system."
DUP_INVOICE = "The external ID for this invoice already exists in our system."
DUP_LINE_ITEM = "The external ID for this line item already exists in our system."
DUP_TRANSACTION = "has already been taken"
DUP_PLAN = "A plan with this identifier already exists in our system."
DUP_DATA_SOURCE = "Has already been taken."
DATA_SOURCE_NAME_REQUIRED = "A name is required for each data source."
NOT_IN_LIST = "is not included in the list"
BLANK = "can't be blank"
INVALID = "is invalid"

CUSTOMER_FIELDS = (
    "name",
    "email",
    "company",
    "country",
    "state",
    "city",
    "zip",
    "lead_created_at",
    "free_trial_started_at",
    "website_url",
    "owner",
    "status",
    "primary_contact",
)
CUSTOMER_DATE_FIELDS = ("lead_created_at", "free_trial_started_at")
LINE_ITEM_DATE_FIELDS = ("service_period_start", "service_period_end", "cancelled_at")

_COUNTRY_RE = re.compile(r"^[A-Z]{2}$")
_CURRENCY_RE = re.compile(r"^[A-Z]{3}$")
_ATTR_KEY_RE = re.compile(r"^[A-Za-z0-9_]+$")
_INT_RE = re.compile(r"^[+-]?\d+$")
_TRUE = {"true", "t", "1"}
_FALSE = {"false", "f", "0"}


class ApiError(Exception):
    """A rule violation together with the status and body ChartMogul answers with."""

    def __init__(self, status: int, body: JSON) -> None:
        super().__init__(f"{status}: {body}")
        self.status = status
        self.body = body


def not_found(what: str) -> ApiError:
    """404 in the ``{"error": "X not found"}`` shape used by the Import API."""
    return ApiError(404, {"error": f"{what} not found"})


def missing_parameter(param: str) -> ApiError:
    """400 for a required parameter that was not sent."""
    return ApiError(400, {"code": 400, "message": f'Parameter "{param}" is missing', "param": param})


def bad_parameter(param: str, message: str) -> ApiError:
    """400 for a parameter with an unusable value (cursor, per_page, page)."""
    return ApiError(400, {"code": 400, "message": message, "param": param})


def unprocessable(errors: dict[str, str]) -> ApiError:
    """422 in the Import API's ``{"errors": {field: message}}`` shape."""
    return ApiError(422, {"errors": errors})


def new_id(prefix: str) -> str:
    """Make a ChartMogul-looking identifier such as ``cus_<hex>``."""
    return f"{prefix}_{uuidlib.uuid4().hex}"


def parse_timestamp(value: Any) -> datetime | None:
    """Parse the date forms ChartMogul accepts; None when unparseable.

    Naive times are taken as UTC, as the doc recommends assuming.
    """
    if isinstance(value, bool) or not isinstance(value, str):
        return None
    text = value.strip()
    if text.upper().endswith(" UTC"):
        text = text[:-4] + "+00:00"
    if text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def format_timestamp(moment: datetime) -> str:
    """Render a time the way ChartMogul returns it: ``YYYY-MM-DDTHH:MM:SS.mmmZ``."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def normalise_timestamp(value: Any) -> str | None:
    """Parse and re-render a timestamp; None when it cannot be parsed."""
    parsed = parse_timestamp(value)
    return None if parsed is None else format_timestamp(parsed)


def is_int(value: Any) -> bool:
    """True for real integers only (``bool`` is an int subclass in Python)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """True for ints and floats but not bools."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def coerce_custom(kind: str, value: Any) -> Any:
    """Convert a custom attribute value to its declared type.

    Raises ValueError with ChartMogul-style wording when it does not fit.
    """
    if value is None:
        return None
    if kind == "String":
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif is_number(value):
            text = str(value)
        elif isinstance(value, str):
            text = value
        else:
            raise ValueError(INVALID)
        if len(text) > 255:
            raise ValueError("is too long (maximum is 255 characters)")
        return text
    if kind == "Integer":
        if is_int(value):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str) and _INT_RE.match(value.strip()):
            return int(value.strip())
        raise ValueError("is not an integer")
    if kind == "Decimal":
        if is_number(value):
            return value
        if isinstance(value, str):
            try:
                return float(value.strip())
            except ValueError:
                pass
        raise ValueError("is not a number")
    if kind == "Boolean":
        if isinstance(value, bool):
            return value
        if is_int(value) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise ValueError("is not a boolean")
    if kind == "Timestamp":
        if is_number(value):
            return format_timestamp(datetime.fromtimestamp(value, UTC))
        stamp = normalise_timestamp(value)
        if stamp is None:
            raise ValueError("is not a valid timestamp")
        return stamp
    raise ValueError(f"has an unknown type {kind!r}")


def encode_cursor(offset: int) -> str:
    """Opaque cursor of an offset listing: base64 of the next offset."""
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode()


def decode_cursor(cursor: str | None) -> int:
    """Turn a cursor back into an offset; 400 when it was not made by us."""
    if not cursor:
        return 0
    try:
        text = base64.urlsafe_b64decode(cursor.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise bad_parameter("cursor", "Invalid cursor") from exc
    if not text.startswith("offset:") or not text[7:].isdigit():
        raise bad_parameter("cursor", "Invalid cursor")
    return int(text[7:])


SortKey = tuple[int | str, ...]


@dataclass(frozen=True)
class Keyset:
    """How a keyset listing is ordered: ``key`` of each object, ascending or (``descending``) not.

    ChartMogul's invoice and subscription event cursors name the sort key of the last object
    of a page (``<created_at>&<uuid>``, ``<created_at>&<id>``, recorded), so the next page is
    the objects that sort after it among those stored when it is asked for: an object created
    mid-walk that sorts before the cursor is not seen, and none is seen twice. ``listing``
    names the key's kind, so a cursor of another listing is refused.
    """

    listing: str
    key: Callable[[JSON], SortKey]
    descending: bool

    def sort(self, items: Iterable[JSON]) -> list[JSON]:
        """The objects in this listing's order (one sort)."""
        return sorted(items, key=self.key, reverse=self.descending)

    def cursor(self, item: JSON) -> str:
        """Opaque cursor after ``item``: base64 of ``{"listing": …, "after": <its key>}``."""
        text = json.dumps({"listing": self.listing, "after": list(self.key(item))}, separators=(",", ":"))
        return base64.urlsafe_b64encode(text.encode()).decode()

    def after(self, cursor: str, items: list[JSON]) -> SortKey:
        """The key a cursor of this listing names; 400 when it is not one (offset cursors included)."""
        try:
            decoded = json.loads(base64.urlsafe_b64decode(cursor.encode()).decode())
        except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
            raise bad_parameter("cursor", "Invalid cursor") from exc
        if not isinstance(decoded, dict) or decoded.get("listing") != self.listing:
            raise bad_parameter("cursor", "Invalid cursor")
        after = decoded.get("after")
        if not isinstance(after, list) or not after:
            raise bad_parameter("cursor", "Invalid cursor")
        key = tuple(after)
        if any(isinstance(part, bool) or not isinstance(part, int | str) for part in key):
            raise bad_parameter("cursor", "Invalid cursor")
        if items and [type(part) for part in self.key(items[0])] != [type(part) for part in key]:
            raise bad_parameter("cursor", "Invalid cursor")
        return key

    def start(self, items: list[JSON], after: SortKey) -> int:
        """Index of the first object that sorts strictly after ``after`` (binary search; ``items`` sorted)."""
        low, high = 0, len(items)
        while low < high:
            middle = (low + high) // 2
            key = self.key(items[middle])
            past = key < after if self.descending else key > after
            if past:
                high = middle
            else:
                low = middle + 1
        return low


def parse_per_page(raw: str | None) -> int:
    """per_page defaults to 200 and anything above is treated as 200."""
    if raw is None or raw == "":
        return MAX_PER_PAGE
    if not _INT_RE.match(raw) or int(raw) < 1:
        raise bad_parameter("per_page", 'Parameter "per_page" is invalid')
    return min(int(raw), MAX_PER_PAGE)


@dataclass
class Page:
    """One page of a cursor-paginated listing.

    ``first`` is True when no cursor was sent: only such pages carry the legacy
    ``current_page``/``total_pages`` fields in real answers.
    """

    items: list[JSON]
    cursor: str | None
    has_more: bool
    per_page: int
    total_pages: int
    first: bool


def paginate(
    items: list[JSON],
    cursor: str | None,
    per_page: str | None,
    last_page_cursor: str = "string",
    keyset: Keyset | None = None,
) -> Page:
    """Cut a listing into pages.

    Without ``keyset`` the cursor is an offset into ``items``; with one, ``items`` are in
    the keyset's order and the cursor names the key of the last object of its page (the
    next page starts after that key, whatever was added or removed meanwhile).
    On the last page ``has_more`` is false; its cursor is a string pointing past the
    end (as recorded) unless ``last_page_cursor`` is ``"null"``. An empty page always
    has a null cursor (recorded too).
    """
    start = 0
    if keyset is None:
        start = decode_cursor(cursor)
    elif cursor:
        start = keyset.start(items, keyset.after(cursor, items))
    size = parse_per_page(per_page)
    chunk = items[start : start + size]
    has_more = start + size < len(items)
    next_cursor: str | None = None
    if chunk and (has_more or last_page_cursor == "string"):
        next_cursor = encode_cursor(start + len(chunk)) if keyset is None else keyset.cursor(chunk[-1])
    total_pages = -(-len(items) // size)
    return Page(chunk, next_cursor, has_more, size, total_pages, not cursor)


def _external_id(value: Any) -> str | None:
    """External IDs are strings; numbers are accepted and stringified."""
    if is_number(value):
        return str(value)
    if isinstance(value, str) and value != "":
        return value
    return None


@dataclass
class BatchKeys:
    """External IDs taken by earlier valid invoices of the same import call (or earlier items of one invoice)."""

    invoices: set[tuple[str, str]] = field(default_factory=set)
    line_items: set[tuple[str, str]] = field(default_factory=set)
    transactions: set[tuple[str, str]] = field(default_factory=set)


@dataclass
class _Prepared:
    """A validated invoice waiting to be saved, with the keys it will take."""

    invoice: JSON
    keys: BatchKeys


class Store:
    """All fake ChartMogul objects plus the rules the real API enforces.

    Every public method takes ``self.lock`` so the HTTP threads and the test
    thread see consistent state. Returned objects are deep copies, so callers
    may serialise them outside the lock.
    """

    def __init__(
        self,
        invoice_batch_mode: str = "save_valid",
        *,
        tag_case: str = "keep",
        auto_tags: bool = False,
        last_page_cursor: str = "string",
        unset_city: str | None = "",
        line_item_order: str = "sent",
        listing_order: str = "recorded",
    ) -> None:
        self.lock = threading.RLock()
        self.data_sources: dict[str, JSON] = {}
        self.customers: dict[str, JSON] = {}
        self.plans: dict[str, JSON] = {}
        self.invoices: dict[str, JSON] = {}
        self.transactions: dict[str, JSON] = {}
        # invoice uuid -> when it was created, as a number that only grows (its answers do not show it)
        self._invoice_created: dict[str, int] = {}
        self._creations = itertools.count(1)
        self.invoice_batch_mode = invoice_batch_mode
        self._next_customer_id = 1
        self._custom_types: dict[str, dict[str, str]] = {}
        self._customer_ext: dict[tuple[str, str], str] = {}
        self._plan_ext: dict[tuple[str, str], str] = {}
        self._invoice_ext: dict[tuple[str, str], str] = {}
        self._line_item_ext: dict[tuple[str, str], str] = {}
        self._transaction_ext: dict[tuple[str, str], str] = {}
        self._transaction_invoice: dict[str, str] = {}
        self._subscriptions: dict[tuple[str, str], str] = {}
        self._imported_customers: set[str] = set()
        self.tag_case = tag_case
        self.auto_tags = auto_tags
        self.last_page_cursor = last_page_cursor
        self.unset_city = unset_city
        self.line_item_order = line_item_order
        self.listing_order = listing_order
        self.invoice_status_in_answers = False  # no recorded invoice answer carries status
        self.lifecycle: Any = None  # the server attaches an InvoiceLifecycle (status, transaction updates)
        self.events: Any = None  # the server attaches SubscriptionEvents (events.py)
        self.contacts: Any = None  # the server attaches Contacts (contacts.py)
        self.json_imports: Any = None  # the server attaches JsonImports (json_imports.py)

    # ------------------------------------------------------------------ switches
    # Where the recordings do not settle a behaviour, each plausible one is a switch
    # (documented in the package docstring) so tests can run the target against all.

    @property
    def invoice_batch_mode(self) -> str:
        """Whether a 422 invoice import keeps its valid invoices."""
        return self._invoice_batch_mode

    @invoice_batch_mode.setter
    def invoice_batch_mode(self, mode: str) -> None:
        if mode not in BATCH_MODES:
            raise ValueError(f"invoice_batch_mode must be one of {BATCH_MODES}")
        self._invoice_batch_mode = mode

    @property
    def tag_case(self) -> str:
        """``keep`` stores tags as sent, ``lower`` lower-cases them (unknown which ChartMogul does)."""
        return self._tag_case

    @tag_case.setter
    def tag_case(self, mode: str) -> None:
        if mode not in TAG_CASES:
            raise ValueError(f"tag_case must be one of {TAG_CASES}")
        self._tag_case = mode

    @property
    def last_page_cursor(self) -> str:
        """``string``: the last page carries a string cursor (as recorded); ``null``: a null one."""
        return self._last_page_cursor

    @last_page_cursor.setter
    def last_page_cursor(self, mode: str) -> None:
        if mode not in CURSOR_MODES:
            raise ValueError(f"last_page_cursor must be one of {CURSOR_MODES}")
        self._last_page_cursor = mode

    @property
    def unset_city(self) -> str | None:
        """What an unset ``city`` answers: ``""`` (2017-2023 recordings) or None (2025)."""
        return self._unset_city

    @unset_city.setter
    def unset_city(self, value: str | None) -> None:
        if value not in UNSET_CITIES:
            raise ValueError(f"unset_city must be one of {UNSET_CITIES}")
        self._unset_city = value

    @property
    def line_item_order(self) -> str:
        """``sent`` answers line items in the order posted; ``reversed`` as the 2017/2019 recordings did."""
        return self._line_item_order

    @line_item_order.setter
    def line_item_order(self, mode: str) -> None:
        if mode not in LINE_ITEM_ORDERS:
            raise ValueError(f"line_item_order must be one of {LINE_ITEM_ORDERS}")
        self._line_item_order = mode

    @property
    def listing_order(self) -> str:
        """``recorded``: invoices newest first by creation, events newest first by id (as recorded);
        ``created``: both oldest first."""
        return self._listing_order

    @listing_order.setter
    def listing_order(self, mode: str) -> None:
        if mode not in LISTING_ORDERS:
            raise ValueError(f"listing_order must be one of {LISTING_ORDERS}")
        self._listing_order = mode

    def keyset(self, listing: str, key: Callable[[JSON], SortKey]) -> Keyset:
        """The order of a keyset listing under the current ``listing_order`` switch."""
        return Keyset(listing, key, descending=self.listing_order == "recorded")

    def invoice_keyset(self) -> Keyset:
        """Invoices by creation, ties by uuid; under ``self.lock``."""
        created = self._invoice_created
        return self.keyset("invoices", lambda invoice: (created[invoice["uuid"]], invoice["uuid"]))

    # ------------------------------------------------------------------ answers
    # HTTP answers are rendered here (the switches and derived fields live in the
    # store); tests that read the store directly keep seeing every stored field.

    def page(self, items: list[JSON], cursor: str | None, per_page: str | None, keyset: Keyset | None = None) -> Page:
        """Paginate with the current ``last_page_cursor`` switch (by offset, or by ``keyset``: items in its order)."""
        return paginate(items, cursor, per_page, self.last_page_cursor, keyset)

    def customer_answers(self, customers: list[JSON]) -> list[JSON]:
        """Customers as answered: ``""``/null for unset fields, derived status and customer-since."""
        with self.lock:
            since = self._customer_since({c["uuid"] for c in customers})
            return [
                views.customer_view(
                    customer,
                    status=self._status(customer, since),
                    since=since.get(customer["uuid"]),
                    unset_city=self.unset_city,
                )
                for customer in customers
            ]

    def _customer_since(self, wanted: set[str]) -> dict[str, datetime]:
        """Date of each customer's first subscription invoice (one pass over all invoices)."""
        since: dict[str, datetime] = {}
        for invoice in self.invoices.values():
            owner = invoice["customer_uuid"]
            if owner not in wanted or not any(i.get("type") != "one_time" for i in invoice["line_items"]):
                continue
            moment = parse_timestamp(invoice["date"])
            if moment is not None and (owner not in since or moment < since[owner]):
                since[owner] = moment
        return since

    @staticmethod
    def _status(customer: JSON, since: dict[str, datetime]) -> str:
        """Subscribers are Active (recorded with a customer-since); others keep their lead status."""
        return ACTIVE if customer["uuid"] in since else (customer.get("status") or NEW_LEAD)

    def customer_answer(self, customer: JSON) -> JSON:
        """One customer as answered."""
        return self.customer_answers([customer])[0]

    def invoice_answers(self, invoices: list[JSON], answer: views.InvoiceAnswer) -> list[JSON]:
        """Invoices as the given endpoint answers them (with ``status`` when that switch is on)."""
        reverse = self.line_item_order == "reversed"
        views_ = [views.invoice_view(i, answer, reverse_line_items=reverse) for i in invoices]
        if self.invoice_status_in_answers and answer in ("get", "list"):
            for view, invoice in zip(views_, invoices, strict=True):
                view["status"] = views.invoice_status(invoice)
        return views_

    def find_invoice_record(self, data_source_uuid: str, external_id: str) -> JSON | None:
        """The stored invoice itself (not a copy): for the lifecycle module, under ``self.lock``."""
        inv_uuid = self._invoice_ext.get((data_source_uuid, external_id))
        return None if inv_uuid is None else self.invoices[inv_uuid]

    def data_source_answer(self, source: JSON, query: dict[str, str]) -> JSON:
        """A data source with the blocks its ``with_*`` flags ask for."""
        with self.lock:
            processed = sum(1 for i in self.invoices.values() if i["data_source_uuid"] == source["uuid"])
        return views.data_source_view(source, query, processed=processed, auto_churn=self.auto_tags)

    # ------------------------------------------------------------------ data sources

    def add_data_source(self, name: Any, uuid: str | None = None) -> JSON:
        """Create a data source; names are unique per account.

        A null or blank name is a 422 (recorded 2016); leaving ``name`` out altogether is
        the 400 the HTTP layer answers (recorded 2023).
        """
        if not isinstance(name, str) or not name.strip():
            raise unprocessable({"name": DATA_SOURCE_NAME_REQUIRED})
        with self.lock:
            if any(ds["name"] == name for ds in self.data_sources.values()):
                raise unprocessable({"name": DUP_DATA_SOURCE})
            ds_uuid = uuid or new_id("ds")
            if ds_uuid in self.data_sources:
                raise unprocessable({"uuid": DUP_DATA_SOURCE})
            source = {
                "uuid": ds_uuid,
                "name": name,
                "system": "Custom",
                "created_at": format_timestamp(datetime.now(UTC)),
                "status": "idle",  # every recording since 2017 answers idle right after create
            }
            self.data_sources[ds_uuid] = source
            return copy.deepcopy(source)

    def list_data_sources(self, name: str | None = None, system: str | None = None) -> list[JSON]:
        """All data sources, optionally filtered; this listing is not paginated."""
        with self.lock:
            return [
                copy.deepcopy(ds)
                for ds in self.data_sources.values()
                if (name is None or ds["name"] == name) and (system is None or ds["system"] == system)
            ]

    def get_data_source(self, ds_uuid: str) -> JSON:
        """One data source or 404."""
        with self.lock:
            return copy.deepcopy(self._data_source(ds_uuid))

    def delete_data_source(self, ds_uuid: str) -> None:
        """Delete a data source and everything imported into it."""
        with self.lock:
            self._data_source(ds_uuid)
            for inv_uuid in [u for u, i in self.invoices.items() if i["data_source_uuid"] == ds_uuid]:
                self._drop_invoice(inv_uuid)
            for cus_uuid in [u for u, c in self.customers.items() if c["data_source_uuid"] == ds_uuid]:
                self._drop_customer(cus_uuid)
            for pl_uuid in [u for u, p in self.plans.items() if p["data_source_uuid"] == ds_uuid]:
                self._drop_plan(pl_uuid)
            del self.data_sources[ds_uuid]

    def _data_source(self, ds_uuid: str) -> JSON:
        source = self.data_sources.get(ds_uuid)
        if source is None:
            raise not_found("Data source")
        return source

    def _mark_imported(self, ds_uuid: str) -> None:
        """A source that received data is ``idle`` (covers sources made ``never_imported`` by tests)."""
        source = self.data_sources.get(ds_uuid)
        if source is not None:
            source["status"] = "idle"

    # ------------------------------------------------------------------ customers

    def create_customer(self, body: JSON) -> JSON:
        """Create a customer; external_id is unique within its data source."""
        ds_uuid = body.get("data_source_uuid")
        if not ds_uuid:
            raise missing_parameter("data_source_uuid")
        external_id = _external_id(body.get("external_id"))
        if external_id is None:
            raise missing_parameter("external_id")
        with self.lock:
            if not isinstance(ds_uuid, str) or ds_uuid not in self.data_sources:
                raise unprocessable({"data_source_uuid": "Data source not found"})
            updates, errors = self._validate_customer_fields(body)
            sent_tags, typed = self._create_attributes(body.get("attributes"), errors)
            tags = sent_tags or []
            custom = {key: value for key, (_, value) in (typed or {}).items()}
            types = {key: kind for key, (kind, _) in (typed or {}).items()}
            if errors:
                raise unprocessable(errors)
            if (ds_uuid, external_id) in self._customer_ext:
                raise unprocessable({"external_id": DUP_CUSTOMER})
            customer_id = self._next_customer_id
            self._next_customer_id += 1
            cus_uuid = new_id("cus")
            customer: JSON = {
                "id": customer_id,
                "uuid": cus_uuid,
                "external_id": external_id,
                "external_ids": [external_id],
                "data_source_uuid": ds_uuid,
                "data_source_uuids": [ds_uuid],
            }
            customer.update({name: None for name in CUSTOMER_FIELDS})
            customer.update(updates)
            customer["attributes"] = {"tags": tags, "custom": custom, "stripe": {}, "clearbit": {}}
            customer.update(
                {
                    "mrr": 0,
                    "arr": 0,
                    "currency": "USD",
                    "currency-sign": "$",
                    "billing-system-url": None,
                    "billing-system-type": self.data_sources[ds_uuid]["system"],
                }
            )
            self._drop_foreign_state(customer)
            self.customers[cus_uuid] = customer
            self._custom_types[cus_uuid] = types
            self._customer_ext[(ds_uuid, external_id)] = cus_uuid
            self._mark_imported(ds_uuid)
            return copy.deepcopy(customer)

    def list_customers(
        self,
        data_source_uuid: str | None = None,
        external_id: str | None = None,
        status: str | None = None,
    ) -> list[JSON]:
        """Customers matching the filters, oldest first."""
        with self.lock:
            return copy.deepcopy(self._select_customers(data_source_uuid, external_id, status))

    def customers_page(
        self,
        data_source_uuid: str | None,
        external_id: str | None,
        status: str | None,
        cursor: str | None,
        per_page: str | None,
    ) -> Page:
        """One page of ``list_customers``: only the page's customers are copied, so a page costs what it holds."""
        with self.lock:
            return self._copied_page(self._select_customers(data_source_uuid, external_id, status), cursor, per_page)

    def _select_customers(self, data_source_uuid: str | None, external_id: str | None, status: str | None) -> list[JSON]:
        """The stored customers (not copies) matching the filters, oldest first; under ``self.lock``."""
        wanted_status = status.replace("_", " ") if status else None
        candidates: Iterable[JSON] = self.customers.values()
        if data_source_uuid is not None and external_id is not None:
            hit = self._customer_ext.get((data_source_uuid, external_id))
            candidates = [] if hit is None else [self.customers[hit]]
        found = [
            c
            for c in candidates
            if (data_source_uuid is None or data_source_uuid in c["data_source_uuids"])
            and (external_id is None or external_id in c["external_ids"])
        ]
        if wanted_status is not None:
            since = self._customer_since({c["uuid"] for c in found})
            found = [c for c in found if self._status(c, since) == wanted_status]
        return found

    def _copied_page(
        self, selected: list[JSON], cursor: str | None, per_page: str | None, keyset: Keyset | None = None
    ) -> Page:
        """Cut stored objects into a page and copy only the page's; under ``self.lock``."""
        page = self.page(selected, cursor, per_page, keyset)
        page.items = copy.deepcopy(page.items)
        return page

    def search_customers(self, email: str | None) -> list[JSON]:
        """Customers by email (case-insensitive); 404 when none, as ChartMogul does."""
        if not email:
            raise missing_parameter("email")
        with self.lock:
            found = [c for c in self.customers.values() if isinstance(c["email"], str) and c["email"].lower() == email.lower()]
            found = copy.deepcopy(found)
        if not found:
            raise ApiError(
                404,
                {
                    "code": 404,
                    "message": f'Can\'t find any customers with email: "{email}"',
                    "param": "email",
                },
            )
        return found

    def get_customer(self, cus_uuid: str) -> JSON:
        """One customer or 404."""
        with self.lock:
            return copy.deepcopy(self._customer(cus_uuid))

    def update_customer(self, cus_uuid: str, body: JSON) -> JSON:
        """PATCH: change the given fields; ``attributes`` custom/tags replace."""
        with self.lock:
            customer = self._customer(cus_uuid)
            updates, errors = self._validate_customer_fields(body)
            new_tags: list[str] | None = None
            new_custom: dict[str, Any] | None = None
            new_types: dict[str, str] | None = None
            attributes = body.get("attributes")
            if attributes is not None:
                if not isinstance(attributes, dict):
                    errors["attributes"] = INVALID
                else:
                    if "tags" in attributes:
                        new_tags = self._tag_list(attributes["tags"] or [], errors)
                    if "custom" in attributes:
                        raw = attributes["custom"] or {}
                        if not isinstance(raw, dict):
                            errors["attributes.custom"] = "must be an object"
                        else:
                            known = self._custom_types.get(cus_uuid, {})
                            new_custom = self._coerce_map(raw, known, errors)
                            new_types = {key: known.get(key, "String") for key in new_custom}
            if errors:
                raise unprocessable(errors)
            customer.update(updates)
            if new_tags is not None:
                customer["attributes"]["tags"] = new_tags
            if new_custom is not None and new_types is not None:
                customer["attributes"]["custom"] = new_custom
                self._custom_types[cus_uuid] = new_types
            self._drop_foreign_state(customer)
            return copy.deepcopy(customer)

    def update_customer_from_import(self, cus_uuid: str, body: JSON) -> JSON:
        """A bulk import's record of a customer its data source has (json_imports.py, ``existing_customer="update"``).

        The fields as PATCH takes them; ``attributes`` in Create a Customer's shape (``custom`` a
        typed array): sent tags replace the customer's, as a PATCH's do, and sent custom
        attributes replace its custom attributes with their types kept. Nothing changes when
        anything is invalid.
        """
        with self.lock:
            customer = self._customer(cus_uuid)
            updates, errors = self._validate_customer_fields(body)
            tags, typed = self._create_attributes(body.get("attributes"), errors)
            if errors:
                raise unprocessable(errors)
            customer.update(updates)
            if tags is not None:
                customer["attributes"]["tags"] = tags
            if typed is not None:
                customer["attributes"]["custom"] = {key: value for key, (_, value) in typed.items()}
                self._custom_types[cus_uuid] = {key: kind for key, (kind, _) in typed.items()}
            self._drop_foreign_state(customer)
            return copy.deepcopy(customer)

    def merge_customers(self, body: JSON) -> None:
        """``POST /customers/merges``: ``from`` joins ``into`` (external ids, data sources, invoices).

        Each side is ``{customer_uuid}`` or ``{data_source_uuid, external_id}``. The survivor
        lists its data source once per external id (recorded: a source can repeat), and gets
        the ``merged-customer`` tag when ``auto_tags`` is on.
        """
        with self.lock:
            source = self._merge_side(body, "from")
            target = self._merge_side(body, "into")
            if source["uuid"] == target["uuid"]:
                raise unprocessable({"into": "must differ from from"})
            target["external_ids"] += source["external_ids"]
            target["data_source_uuids"] += source["data_source_uuids"]
            for key, owner in list(self._customer_ext.items()):
                if owner == source["uuid"]:
                    self._customer_ext[key] = target["uuid"]
            for invoice in self.invoices.values():
                if invoice["customer_uuid"] == source["uuid"]:
                    invoice["customer_uuid"] = target["uuid"]
            for (owner, sub_ext), sub_uuid in list(self._subscriptions.items()):
                if owner == source["uuid"]:
                    self._subscriptions.setdefault((target["uuid"], sub_ext), sub_uuid)
                    del self._subscriptions[(owner, sub_ext)]
            if source["uuid"] in self._imported_customers:
                self._imported_customers.add(target["uuid"])
            self._merge_tags(target, source["attributes"]["tags"])
            for key, value in source["attributes"]["custom"].items():
                target["attributes"]["custom"].setdefault(key, value)
            if self.auto_tags:
                self._merge_tags(target, [MERGED_TAG])
            del self.customers[source["uuid"]]
            self._custom_types.pop(source["uuid"], None)

    def _merge_side(self, body: JSON, side: str) -> JSON:
        ref = body.get(side)
        if not isinstance(ref, dict):
            raise missing_parameter(side)
        if ref.get("customer_uuid"):
            return self._customer(str(ref["customer_uuid"]))
        hit = self._customer_ext.get((str(ref.get("data_source_uuid")), str(ref.get("external_id"))))
        if hit is None:
            raise not_found("Customer")
        return self.customers[hit]

    def delete_customer(self, cus_uuid: str) -> None:
        """Delete a customer and its invoices."""
        with self.lock:
            self._customer(cus_uuid)
            for inv_uuid in [u for u, i in self.invoices.items() if i["customer_uuid"] == cus_uuid]:
                self._drop_invoice(inv_uuid)
            self._drop_customer(cus_uuid)

    def find_customers(self, data_source_uuid: str, external_id: str) -> list[JSON]:
        """Test helper: customers with this external_id in this data source."""
        with self.lock:
            return self.list_customers(data_source_uuid, external_id)

    def custom_attribute_types(self, cus_uuid: str) -> dict[str, str]:
        """Test helper: the declared type of each custom attribute of a customer."""
        with self.lock:
            self._customer(cus_uuid)
            return dict(self._custom_types.get(cus_uuid, {}))

    def _customer(self, cus_uuid: str) -> JSON:
        customer = self.customers.get(cus_uuid)
        if customer is None:
            raise not_found("Customer")
        return customer

    def _drop_customer(self, cus_uuid: str) -> None:
        customer = self.customers.pop(cus_uuid)
        self._custom_types.pop(cus_uuid, None)
        self._imported_customers.discard(cus_uuid)
        for ds_uuid in customer["data_source_uuids"]:
            for ext in customer["external_ids"]:
                if self._customer_ext.get((ds_uuid, ext)) == cus_uuid:
                    del self._customer_ext[(ds_uuid, ext)]
        for key in [k for k, v in self._subscriptions.items() if k[0] == cus_uuid]:
            del self._subscriptions[key]

    @staticmethod
    def _drop_foreign_state(customer: JSON) -> None:
        """``state`` is for US addresses: recorded, state "NY" sent with country DE came back null."""
        if customer.get("country") not in (None, "US"):
            customer["state"] = None

    @staticmethod
    def _validate_customer_fields(body: JSON) -> tuple[JSON, dict[str, str]]:
        """Check the writable customer fields; returns (normalised updates, errors)."""
        updates: JSON = {}
        errors: dict[str, str] = {}
        for name in CUSTOMER_FIELDS:
            if name not in body:
                continue
            value = body[name]
            if value is None:
                updates[name] = None
            elif name == "country":
                if isinstance(value, str) and _COUNTRY_RE.match(value):
                    updates[name] = value
                else:
                    errors[name] = "Country is invalid"
            elif name in CUSTOMER_DATE_FIELDS:
                stamp = normalise_timestamp(value)
                if stamp is None:
                    errors[name] = INVALID
                else:
                    updates[name] = stamp
            elif name == "primary_contact":
                if isinstance(value, dict):
                    updates[name] = copy.deepcopy(value)
                else:
                    errors[name] = INVALID
            else:
                updates[name] = value
        return updates, errors

    # ------------------------------------------------------------------ attributes

    def get_attributes(self, cus_uuid: str) -> JSON:
        """``GET /customers/{uuid}/attributes``."""
        with self.lock:
            attributes = self._customer(cus_uuid)["attributes"]
            # recorded keys: no clearbit here, unlike the customer object
            return copy.deepcopy({"tags": attributes["tags"], "stripe": attributes["stripe"], "custom": attributes["custom"]})

    def add_custom_attributes(self, cus_uuid: str, entries: Any) -> JSON:
        """POST custom attributes with explicit types; all or nothing."""
        with self.lock:
            customer = self._customer(cus_uuid)
            if not isinstance(entries, list):
                raise missing_parameter("custom")
            errors: dict[str, str] = {}
            typed = self._typed_attributes(entries, errors)
            if errors:
                raise unprocessable(errors)
            types = self._custom_types.setdefault(cus_uuid, {})
            for key, (kind, value) in typed.items():
                types[key] = kind
                customer["attributes"]["custom"][key] = value
            return {"custom": copy.deepcopy(customer["attributes"]["custom"])}

    def update_custom_attributes(self, cus_uuid: str, values: Any) -> JSON:
        """PUT: set values, coerced to each key's stored type (new keys are String)."""
        with self.lock:
            customer = self._customer(cus_uuid)
            if not isinstance(values, dict):
                raise missing_parameter("custom")
            errors: dict[str, str] = {}
            types = self._custom_types.setdefault(cus_uuid, {})
            coerced = self._coerce_map(values, types, errors)
            if errors:
                raise unprocessable(errors)
            for key, value in coerced.items():
                types.setdefault(key, "String")
                customer["attributes"]["custom"][key] = value
            return {"custom": copy.deepcopy(customer["attributes"]["custom"])}

    def remove_custom_attributes(self, cus_uuid: str, keys: Any) -> None:
        """DELETE custom attributes by key; unknown keys are ignored."""
        with self.lock:
            customer = self._customer(cus_uuid)
            if keys is None:
                return
            if not isinstance(keys, list):
                raise missing_parameter("custom")
            types = self._custom_types.setdefault(cus_uuid, {})
            for key in keys:
                if isinstance(key, str):
                    customer["attributes"]["custom"].pop(key, None)
                    types.pop(key, None)

    def add_tags(self, cus_uuid: str, tags: Any) -> JSON:
        """POST tags: idempotent union (case-insensitive), answered as the full set."""
        with self.lock:
            customer = self._customer(cus_uuid)
            if not isinstance(tags, list):
                raise missing_parameter("tags")
            errors: dict[str, str] = {}
            incoming = self._tag_list(tags, errors)
            if errors:
                raise unprocessable(errors)
            self._merge_tags(customer, incoming)
            return {"tags": list(customer["attributes"]["tags"])}

    def remove_tags(self, cus_uuid: str, tags: Any) -> JSON:
        """DELETE tags (matched case-insensitively): returns the remaining set."""
        with self.lock:
            customer = self._customer(cus_uuid)
            if not isinstance(tags, list):
                raise missing_parameter("tags")
            gone = {str(tag).strip().casefold() for tag in tags}
            remaining = [tag for tag in customer["attributes"]["tags"] if tag.casefold() not in gone]
            customer["attributes"]["tags"] = remaining
            return {"tags": list(remaining)}

    def tag_in_app(self, cus_uuid: str, *tags: str) -> list[str]:
        """Test helper: tags a person adds in the ChartMogul app (no HTTP); returns the new set.

        The target must live with tags it did not send, so tests plant them here, exactly
        as given (``tag_case`` is about what the API does with tags it is sent); a tag
        already present in another case is not added twice.
        """
        with self.lock:
            customer = self._customer(cus_uuid)
            if not all(isinstance(tag, str) and tag.strip() for tag in tags):
                raise ValueError(f"tags must be non-empty strings: {tags!r}")
            self._merge_tags(customer, [tag.strip() for tag in tags])
            return list(customer["attributes"]["tags"])

    def _merge_tags(self, customer: JSON, tags: Iterable[str]) -> None:
        """Append tags not yet present; uniqueness ignores case whatever ``tag_case`` says."""
        current = customer["attributes"]["tags"]
        seen = {tag.casefold() for tag in current}
        for tag in tags:
            if tag.casefold() not in seen:
                current.append(tag)
                seen.add(tag.casefold())

    def _tag_list(self, tags: Any, errors: dict[str, str]) -> list[str]:
        """Strip, apply ``tag_case`` and de-duplicate case-insensitively, keeping first-seen order."""
        if not isinstance(tags, list):
            errors["tags"] = "must be an array"
            return []
        result: list[str] = []
        seen: set[str] = set()
        for tag in tags:
            if not isinstance(tag, str | int | float) or isinstance(tag, bool):
                errors["tags"] = INVALID
                continue
            text = str(tag).strip()
            if self.tag_case == "lower":
                text = text.lower()
            if text and text.casefold() not in seen:
                result.append(text)
                seen.add(text.casefold())
        return result

    def _create_attributes(
        self, attributes: Any, errors: dict[str, str]
    ) -> tuple[list[str] | None, dict[str, tuple[str, Any]] | None]:
        """``attributes`` as Create a Customer takes them, ``{tags: [...], custom: [{type, key, value,
        source?}]}``: (tags, key -> (type, value)), None for a part not sent.
        """
        if attributes is None:
            return None, None
        if not isinstance(attributes, dict):
            errors["attributes"] = INVALID
            return None, None
        tags = self._tag_list(attributes.get("tags") or [], errors) if "tags" in attributes else None
        raw_custom = attributes.get("custom")
        if raw_custom is None:
            return tags, None
        if not isinstance(raw_custom, list):
            errors["attributes.custom"] = "must be an array of {type, key, value}"
            return tags, None
        return tags, self._typed_attributes(raw_custom, errors)

    @staticmethod
    def _typed_attributes(entries: list[Any], errors: dict[str, str]) -> dict[str, tuple[str, Any]]:
        """Validate ``[{type,key,value,source?}]``; returns key -> (type, value)."""
        result: dict[str, tuple[str, Any]] = {}
        for entry in entries:
            if not isinstance(entry, dict):
                errors["custom"] = INVALID
                continue
            key = entry.get("key")
            if not isinstance(key, str) or not _ATTR_KEY_RE.match(key):
                errors[str(key) if key is not None else "key"] = (
                    "is invalid: keys may contain only letters, digits and underscores"
                )
                continue
            kind = entry.get("type")
            if kind not in CUSTOM_TYPES:
                errors[key] = f"has an invalid type {kind!r}"
                continue
            try:
                result[key] = (kind, coerce_custom(kind, entry.get("value")))
            except ValueError as exc:
                errors[key] = str(exc)
        return result

    @staticmethod
    def _coerce_map(values: JSON, types: dict[str, str], errors: dict[str, str]) -> JSON:
        """Coerce ``{key: value | {value, source}}`` using stored types (default String)."""
        result: JSON = {}
        for key, raw in values.items():
            if not _ATTR_KEY_RE.match(key):
                errors[key] = "is invalid: keys may contain only letters, digits and underscores"
                continue
            value = raw.get("value") if isinstance(raw, dict) else raw
            try:
                result[key] = coerce_custom(types.get(key, "String"), value)
            except ValueError as exc:
                errors[key] = str(exc)
        return result

    # ------------------------------------------------------------------ plans

    def create_plan(self, body: JSON) -> JSON:
        """Create a plan; external_id is unique within its data source."""
        ds_uuid = body.get("data_source_uuid")
        if not ds_uuid:
            raise missing_parameter("data_source_uuid")
        with self.lock:
            if not isinstance(ds_uuid, str) or ds_uuid not in self.data_sources:
                raise unprocessable({"data_source_uuid": "Data source not found"})
            errors = self._validate_plan_fields(body, creating=True)
            external_id = _external_id(body.get("external_id")) or new_id("plan_ext")
            if errors:
                raise unprocessable(errors)
            if (ds_uuid, external_id) in self._plan_ext:
                raise unprocessable({"external_id": DUP_PLAN})
            plan = {
                "external_id": external_id,
                "name": body["name"],
                "interval_count": body["interval_count"],
                "interval_unit": body["interval_unit"],
                "data_source_uuid": ds_uuid,
                "uuid": new_id("pl"),
            }
            self.plans[plan["uuid"]] = plan
            self._plan_ext[(ds_uuid, external_id)] = plan["uuid"]
            self._mark_imported(ds_uuid)
            return copy.deepcopy(plan)

    def list_plans(self, data_source_uuid: str | None = None, external_id: str | None = None) -> list[JSON]:
        """Plans matching the filters, oldest first."""
        with self.lock:
            return [
                copy.deepcopy(p)
                for p in self.plans.values()
                if (data_source_uuid is None or p["data_source_uuid"] == data_source_uuid)
                and (external_id is None or p["external_id"] == external_id)
            ]

    def get_plan(self, pl_uuid: str) -> JSON:
        """One plan or 404."""
        with self.lock:
            return copy.deepcopy(self._plan(pl_uuid))

    def update_plan(self, pl_uuid: str, body: JSON) -> JSON:
        """PATCH name / interval_count / interval_unit."""
        with self.lock:
            plan = self._plan(pl_uuid)
            errors = self._validate_plan_fields(body, creating=False)
            if errors:
                raise unprocessable(errors)
            for name in ("name", "interval_count", "interval_unit"):
                if name in body:
                    plan[name] = body[name]
            return copy.deepcopy(plan)

    def delete_plan(self, pl_uuid: str) -> None:
        """Delete a plan (invoices that used it keep their line items)."""
        with self.lock:
            self._plan(pl_uuid)
            self._drop_plan(pl_uuid)

    def find_plan(self, data_source_uuid: str, external_id: str) -> JSON | None:
        """Test helper: the plan with this external_id in this data source."""
        with self.lock:
            pl_uuid = self._plan_ext.get((data_source_uuid, external_id))
            return None if pl_uuid is None else copy.deepcopy(self.plans[pl_uuid])

    def _plan(self, pl_uuid: str) -> JSON:
        plan = self.plans.get(pl_uuid)
        if plan is None:
            raise not_found("Plan")
        return plan

    def _drop_plan(self, pl_uuid: str) -> None:
        plan = self.plans.pop(pl_uuid)
        self._plan_ext.pop((plan["data_source_uuid"], plan["external_id"]), None)

    @staticmethod
    def _validate_plan_fields(body: JSON, *, creating: bool) -> dict[str, str]:
        errors: dict[str, str] = {}
        if creating or "name" in body:
            name = body.get("name")
            if not isinstance(name, str) or not name.strip():
                errors["name"] = BLANK
        if creating or "interval_count" in body:
            count: Any = body.get("interval_count")
            if not is_int(count) or count < 1:
                errors["interval_count"] = "must be an integer greater than 0"
        if (creating or "interval_unit" in body) and body.get("interval_unit") not in INTERVAL_UNITS:
            errors["interval_unit"] = NOT_IN_LIST
        return errors

    # ------------------------------------------------------------------ invoices

    def import_invoices(self, cus_uuid: str, raw_invoices: Any) -> tuple[int, JSON]:
        """Import a batch of invoices for a customer.

        Returns (201, body) when every invoice is valid, else (422, body) with
        one entry per posted invoice; whether the valid ones are kept depends
        on ``invoice_batch_mode``.
        """
        with self.lock:
            customer = self.customers.get(cus_uuid)
            if customer is None:
                raise not_found("Invoice")  # sic: the real API says "Invoice" here
            if not isinstance(raw_invoices, list):
                raise missing_parameter("invoices")
            batch = BatchKeys()
            outcomes: list[tuple[Any, _Prepared | None, dict[str, str]]] = []
            for raw in raw_invoices:
                prepared, errors = self._prepare_invoice(customer, raw, batch)
                if prepared is not None and not errors:
                    batch.invoices |= prepared.keys.invoices
                    batch.line_items |= prepared.keys.line_items
                    batch.transactions |= prepared.keys.transactions
                outcomes.append((raw, prepared, errors))
            failed = any(errors for _, _, errors in outcomes)
            save = not failed or self.invoice_batch_mode == "save_valid"
            entries: list[JSON] = []
            for raw, prepared, errors in outcomes:
                if prepared is not None and not errors and save:
                    saved = self._save_invoice(prepared)
                    entries.append(self.invoice_answers([saved], "import")[0])
                    self._first_import(customer)
                else:
                    entries.append(self._refused_invoice(raw, errors))
            return (422 if failed else 201), {"invoices": entries}

    # ------------------------------------------------------------------ one invoice at a time (bulk import)
    # The bulk JSON import (json_imports.py) applies the import endpoint's rules object by
    # object, so it can say which line item or transaction failed.

    def bulk_invoice(self, customer_uuid: str, raw: JSON, *, save: bool) -> dict[str, str]:
        """One invoice under ``POST /import/customers/{uuid}/invoices``'s rules: its errors
        (nested ones prefixed ``line_items.``/``transactions.``); saved when valid and ``save``.
        """
        with self.lock:
            customer = self._customer(customer_uuid)
            prepared, errors = self._prepare_invoice(customer, raw, BatchKeys())
            if prepared is not None and not errors and save:
                self._save_invoice(prepared)
                self._first_import(customer)
            return errors

    def line_item_errors(self, raw: Any, ds_uuid: str, seen: BatchKeys) -> dict[str, str]:
        """What the import endpoint says about one line item (``seen``: keys of the invoice's earlier items)."""
        errors: dict[str, str] = {}
        with self.lock:
            self._prepare_line_item(raw, ds_uuid, BatchKeys(), seen, errors)
        return {key.removeprefix("line_items."): message for key, message in errors.items()}

    def transaction_errors(self, raw: Any, ds_uuid: str, seen: BatchKeys) -> dict[str, str]:
        """What the import endpoint says about one nested transaction (``seen``: the invoice's earlier ones)."""
        errors: dict[str, str] = {}
        with self.lock:
            tx = self._prepare_transaction(raw, "", errors)
            if tx is not None and tx["external_id"] is not None:
                key = (ds_uuid, tx["external_id"])
                if key in self._transaction_ext or key in seen.transactions:
                    errors["external_id"] = DUP_TRANSACTION
                seen.transactions.add(key)
        return errors

    @staticmethod
    def _refused_invoice(raw: Any, errors: dict[str, str]) -> JSON:
        """An invoice that was not saved: echoed with its ``errors`` (shape unrecorded), minus
        the keys no recorded invoice answer carries.
        """
        echo = copy.deepcopy(raw) if isinstance(raw, dict) else {}
        for name in ("uuid", "data_source_uuid", "customer_external_id", "collection_method"):
            echo.pop(name, None)
        for item in echo.get("line_items") or []:
            if isinstance(item, dict):
                item.pop("plan_external_id", None)
        echo.setdefault("external_id", None)
        echo["errors"] = errors
        return echo

    def _first_import(self, customer: JSON) -> None:
        """With ``auto_tags``, ChartMogul's own tag arrives with a customer's first invoices (as recorded)."""
        if customer["uuid"] in self._imported_customers:
            return
        self._imported_customers.add(customer["uuid"])
        if self.auto_tags:
            self._merge_tags(customer, [AUTO_CHURN_TAG])

    def list_customer_invoices(self, cus_uuid: str) -> list[JSON]:
        """Invoices of one customer in listing order (404 "Invoice not found" for unknown customers)."""
        with self.lock:
            if cus_uuid not in self.customers:
                raise not_found("Invoice")
            return copy.deepcopy(self.invoice_keyset().sort(self._select_invoices(None, None, cus_uuid)))

    def customer_invoices_page(self, cus_uuid: str, cursor: str | None, per_page: str | None) -> Page:
        """One page of ``list_customer_invoices``, with the account-wide listing's order and cursors
        (the recorded cursor has the same ``<created_at>&<uuid>`` form)."""
        with self.lock:
            if cus_uuid not in self.customers:
                raise not_found("Invoice")
            keyset = self.invoice_keyset()
            return self._copied_page(keyset.sort(self._select_invoices(None, None, cus_uuid)), cursor, per_page, keyset)

    def list_invoices(
        self,
        data_source_uuid: str | None = None,
        external_id: str | None = None,
        customer_uuid: str | None = None,
    ) -> list[JSON]:
        """Account-wide invoice listing with filters, in listing order (switch ``listing_order``)."""
        with self.lock:
            selected = self._select_invoices(data_source_uuid, external_id, customer_uuid)
            return copy.deepcopy(self.invoice_keyset().sort(selected))

    def invoices_page(
        self,
        data_source_uuid: str | None,
        external_id: str | None,
        customer_uuid: str | None,
        cursor: str | None,
        per_page: str | None,
    ) -> Page:
        """One page of ``list_invoices``: the selection is sorted once and only the page's invoices are copied.

        Newest first by creation (``listing_order="recorded"``, as the ruby recording shows) or
        oldest first (``"created"``); the cursor names the last invoice's (creation, uuid).
        """
        with self.lock:
            keyset = self.invoice_keyset()
            selected = keyset.sort(self._select_invoices(data_source_uuid, external_id, customer_uuid))
            return self._copied_page(selected, cursor, per_page, keyset)

    def _select_invoices(
        self, data_source_uuid: str | None, external_id: str | None, customer_uuid: str | None
    ) -> list[JSON]:
        """The stored invoices (not copies) matching the filters, in stored order (not yet the listing's); under ``self.lock``."""
        return [
            i
            for i in self.invoices.values()
            if (data_source_uuid is None or i["data_source_uuid"] == data_source_uuid)
            and (external_id is None or i["external_id"] == external_id)
            and (customer_uuid is None or i["customer_uuid"] == customer_uuid)
        ]

    def get_invoice(self, inv_uuid: str) -> JSON:
        """One invoice or 404."""
        with self.lock:
            return copy.deepcopy(self._invoice(inv_uuid))

    def delete_invoice(self, inv_uuid: str) -> None:
        """Delete an invoice with its line items and transactions."""
        with self.lock:
            self._invoice(inv_uuid)
            self._drop_invoice(inv_uuid)

    def find_invoice(self, data_source_uuid: str, external_id: str) -> JSON | None:
        """Test helper: the invoice with this external_id in this data source."""
        with self.lock:
            inv_uuid = self._invoice_ext.get((data_source_uuid, external_id))
            return None if inv_uuid is None else copy.deepcopy(self.invoices[inv_uuid])

    def _invoice(self, inv_uuid: str) -> JSON:
        invoice = self.invoices.get(inv_uuid)
        if invoice is None:
            raise not_found("Invoice")
        return invoice

    def _drop_invoice(self, inv_uuid: str) -> None:
        invoice = self.invoices.pop(inv_uuid)
        self._invoice_created.pop(inv_uuid, None)
        ds_uuid = invoice["data_source_uuid"]
        self._invoice_ext.pop((ds_uuid, invoice["external_id"]), None)
        for item in invoice["line_items"]:
            if item.get("external_id") is not None:
                self._line_item_ext.pop((ds_uuid, item["external_id"]), None)
        for tx in invoice["transactions"]:
            self._forget_transaction(ds_uuid, tx)

    def _prepare_invoice(self, customer: JSON, raw: Any, batch: BatchKeys) -> tuple[_Prepared | None, dict[str, str]]:
        """Validate one posted invoice and normalise it, without saving."""
        if not isinstance(raw, dict):
            return None, {"invoice": INVALID}
        errors: dict[str, str] = {}
        keys = BatchKeys()
        external_id = _external_id(raw.get("external_id"))
        if external_id is None:
            errors["external_id"] = BLANK
        ds_uuid = raw.get("data_source_uuid") or customer["data_source_uuid"]
        if ds_uuid not in self.data_sources:
            errors["data_source_uuid"] = "Data source not found"
        date = normalise_timestamp(raw.get("date"))
        if date is None:
            errors["date"] = BLANK if raw.get("date") in (None, "") else INVALID
        due_date = None
        if raw.get("due_date") not in (None, ""):
            due_date = normalise_timestamp(raw.get("due_date"))
            if due_date is None:
                errors["due_date"] = INVALID
        currency = raw.get("currency")
        if not isinstance(currency, str) or not _CURRENCY_RE.match(currency):
            errors["currency"] = BLANK if currency in (None, "") else INVALID
        collection_method = raw.get("collection_method")
        if collection_method is not None and collection_method not in COLLECTION_METHODS:
            errors["collection_method"] = NOT_IN_LIST
        customer_external_id = raw.get("customer_external_id")
        if customer_external_id is None:
            customer_external_id = customer["external_id"]
        elif customer_external_id not in customer["external_ids"]:
            errors["customer_external_id"] = "Customer not found"
        if external_id is not None and isinstance(ds_uuid, str):
            key = (ds_uuid, external_id)
            if key in self._invoice_ext or key in batch.invoices:
                errors["external_id"] = DUP_INVOICE
            keys.invoices.add(key)

        line_items: list[JSON] = []
        raw_items = raw.get("line_items")
        if not isinstance(raw_items, list) or not raw_items:
            errors["line_items"] = BLANK
            raw_items = []
        for raw_item in raw_items:
            item = self._prepare_line_item(raw_item, str(ds_uuid), batch, keys, errors)
            if item is not None:
                line_items.append(item)

        transactions: list[JSON] = []
        raw_txs = raw.get("transactions")
        if raw_txs is None:
            raw_txs = []
        if not isinstance(raw_txs, list):
            errors["transactions"] = INVALID
            raw_txs = []
        for raw_tx in raw_txs:
            tx = self._prepare_transaction(raw_tx, "transactions.", errors)
            if tx is None:
                continue
            if tx["external_id"] is not None:
                key = (str(ds_uuid), tx["external_id"])
                taken = key in self._transaction_ext or key in batch.transactions
                if taken or key in keys.transactions:
                    errors["transactions.external_id"] = DUP_TRANSACTION
                keys.transactions.add(key)
            transactions.append(tx)

        invoice = {
            "uuid": None,
            "external_id": external_id,
            "date": date,
            "due_date": due_date,
            "currency": currency,
            "customer_uuid": customer["uuid"],
            "customer_external_id": customer_external_id,
            "data_source_uuid": ds_uuid,
            "collection_method": collection_method,
            "line_items": line_items,
            "transactions": transactions,
        }
        return _Prepared(invoice, keys), errors

    def _prepare_line_item(
        self,
        raw: Any,
        ds_uuid: str,
        batch: BatchKeys,
        keys: BatchKeys,
        errors: dict[str, str],
    ) -> JSON | None:
        """Validate one line item; errors go under ``line_items.<field>``."""
        if not isinstance(raw, dict):
            errors["line_items"] = INVALID
            return None
        item: JSON = copy.deepcopy(raw)
        kind = raw.get("type")
        if kind not in LINE_ITEM_TYPES:
            errors["line_items.type"] = NOT_IN_LIST
        if kind in ("subscription", "trial"):
            if _external_id(raw.get("subscription_external_id")) is None:
                errors["line_items.subscription_external_id"] = BLANK
            plan_uuid = raw.get("plan_uuid")
            if not plan_uuid:
                errors["line_items.plan_uuid"] = BLANK
            elif plan_uuid not in self.plans:
                errors["line_items.plan_uuid"] = "Plan not found"
        amount = raw.get("amount_in_cents")
        if amount is None:
            errors["line_items.amount_in_cents"] = BLANK
        elif not is_int(amount):
            errors["line_items.amount_in_cents"] = "must be an integer"
        quantity = raw.get("quantity")
        if quantity is not None and not is_int(quantity):
            errors["line_items.quantity"] = "must be an integer"
        for name in LINE_ITEM_DATE_FIELDS:
            if raw.get(name) not in (None, ""):
                stamp = normalise_timestamp(raw[name])
                if stamp is None:
                    errors[f"line_items.{name}"] = INVALID
                item[name] = stamp
        external_id = _external_id(raw.get("external_id"))
        if external_id is not None:
            key = (ds_uuid, external_id)
            taken = key in self._line_item_ext or key in batch.line_items
            if taken or key in keys.line_items:
                errors["line_items.external_id"] = DUP_LINE_ITEM
            keys.line_items.add(key)
        item["external_id"] = external_id
        item.setdefault("quantity", 1)
        return item

    @staticmethod
    def _prepare_transaction(raw: Any, prefix: str, errors: dict[str, str]) -> JSON | None:
        """Validate a transaction; ``prefix`` is ``transactions.`` when nested."""
        if not isinstance(raw, dict):
            errors[prefix.rstrip(".") or "transaction"] = INVALID
            return None
        if raw.get("type") not in TRANSACTION_TYPES:
            errors[f"{prefix}type"] = NOT_IN_LIST
        if raw.get("result") not in TRANSACTION_RESULTS:
            errors[f"{prefix}result"] = NOT_IN_LIST
        date = normalise_timestamp(raw.get("date"))
        if date is None:
            errors[f"{prefix}date"] = BLANK if raw.get("date") in (None, "") else INVALID
        for name in ("amount_in_cents", "transaction_fees_in_cents"):
            value = raw.get(name)
            if value is not None and not is_int(value):
                errors[f"{prefix}{name}"] = "must be an integer"
        fees_currency = raw.get("transaction_fees_currency")
        if fees_currency is not None and (not isinstance(fees_currency, str) or not _CURRENCY_RE.match(fees_currency)):
            errors[f"{prefix}transaction_fees_currency"] = INVALID
        return {
            "uuid": None,
            "external_id": _external_id(raw.get("external_id")),
            "type": raw.get("type"),
            "date": date,
            "result": raw.get("result"),
            "amount_in_cents": raw.get("amount_in_cents"),
            "transaction_fees_in_cents": raw.get("transaction_fees_in_cents"),
            "transaction_fees_currency": fees_currency,
        }

    def _save_invoice(self, prepared: _Prepared) -> JSON:
        """Give a validated invoice its UUIDs and index it; returns a copy."""
        invoice = prepared.invoice
        inv_uuid = new_id("inv")
        invoice["uuid"] = inv_uuid
        ds_uuid = invoice["data_source_uuid"]
        for item in invoice["line_items"]:
            item["uuid"] = new_id("li")
            sub_ext = _external_id(item.get("subscription_external_id"))
            if item.get("type") in ("subscription", "trial") and sub_ext is not None:
                sub_key = (invoice["customer_uuid"], sub_ext)
                item["subscription_uuid"] = self._subscriptions.setdefault(sub_key, new_id("sub"))
            else:
                item.setdefault("subscription_uuid", None)
            if item["external_id"] is not None:
                self._line_item_ext[(ds_uuid, item["external_id"])] = item["uuid"]
        for tx in invoice["transactions"]:
            self._index_transaction(ds_uuid, inv_uuid, tx)
        self.invoices[inv_uuid] = invoice
        self._invoice_created[inv_uuid] = next(self._creations)
        self._invoice_ext[(ds_uuid, invoice["external_id"])] = inv_uuid
        self._mark_imported(ds_uuid)
        return copy.deepcopy(invoice)

    # ------------------------------------------------------------------ transactions

    def create_transaction(self, inv_uuid: str, body: JSON) -> JSON:
        """Add a payment/refund to an existing invoice."""
        with self.lock:
            invoice = self.invoices.get(inv_uuid)
            if invoice is None:
                raise not_found("Invoice")
            errors: dict[str, str] = {}
            tx = self._prepare_transaction(body, "", errors)
            if errors or tx is None:
                raise unprocessable(errors)
            ds_uuid = invoice["data_source_uuid"]
            if tx["external_id"] is not None and (ds_uuid, tx["external_id"]) in self._transaction_ext:
                raise unprocessable({"external_id": DUP_TRANSACTION})
            invoice["transactions"].append(tx)
            self._index_transaction(ds_uuid, inv_uuid, tx)
            return copy.deepcopy(tx)

    def get_transaction(self, tr_uuid: str) -> JSON:
        """One transaction or 404."""
        with self.lock:
            tx = self.transactions.get(tr_uuid)
            if tx is None:
                raise not_found("Transaction")
            return copy.deepcopy(tx)

    def delete_transaction(self, tr_uuid: str) -> None:
        """Delete a transaction from the index and from its invoice."""
        with self.lock:
            tx = self.transactions.get(tr_uuid)
            if tx is None:
                raise not_found("Transaction")
            invoice = self.invoices[self._transaction_invoice[tr_uuid]]
            invoice["transactions"] = [t for t in invoice["transactions"] if t["uuid"] != tr_uuid]
            self._forget_transaction(invoice["data_source_uuid"], tx)

    def _index_transaction(self, ds_uuid: str, inv_uuid: str, tx: JSON) -> None:
        """Store a transaction (shared object with the invoice's list)."""
        tx["uuid"] = new_id("tr")
        self.transactions[tx["uuid"]] = tx
        self._transaction_invoice[tx["uuid"]] = inv_uuid
        if tx["external_id"] is not None:
            self._transaction_ext[(ds_uuid, tx["external_id"])] = tx["uuid"]

    def _forget_transaction(self, ds_uuid: str, tx: JSON) -> None:
        self.transactions.pop(tx["uuid"], None)
        self._transaction_invoice.pop(tx["uuid"], None)
        if tx["external_id"] is not None:
            self._transaction_ext.pop((ds_uuid, tx["external_id"]), None)

    # ------------------------------------------------------------------ whole state

    # Keys an older fake kept in its stored customers that this one renders in its answers instead.
    _RENDERED_CUSTOMER_KEYS = ("address", "customer-since", "chartmogul-url")

    def restore(self, state: JSON) -> None:
        """Hold exactly what a `snapshot` (of this fake or an older one) held, uuids included, indexes rebuilt:
        ChartMogul as it was when an older release of the target wrote its sync memory.
        """
        with self.lock:
            for source in state.get("data_sources", []):
                self.data_sources[source["uuid"]] = copy.deepcopy(source)
            for customer in state.get("customers", []):
                kept = {k: copy.deepcopy(v) for k, v in customer.items() if k not in self._RENDERED_CUSTOMER_KEYS}
                self.customers[kept["uuid"]] = kept
                for ds_uuid in kept["data_source_uuids"]:
                    for ext in kept["external_ids"]:
                        self._customer_ext[(ds_uuid, ext)] = kept["uuid"]
                self._next_customer_id = max(self._next_customer_id, int(kept["id"]) + 1)
            self._custom_types.update(copy.deepcopy(state.get("custom_attribute_types", {})))
            for plan in state.get("plans", []):
                self.plans[plan["uuid"]] = copy.deepcopy(plan)
                self._plan_ext[(plan["data_source_uuid"], plan["external_id"])] = plan["uuid"]
            for invoice in copy.deepcopy(state.get("invoices", [])):
                self._restore_invoice(invoice)

    def _restore_invoice(self, invoice: JSON) -> None:
        """One stored invoice with its line items' and transactions' indexes (transactions shared with its list)."""
        ds_uuid = invoice["data_source_uuid"]
        self.invoices[invoice["uuid"]] = invoice
        self._invoice_created[invoice["uuid"]] = next(self._creations)  # in the order the state lists them
        self._invoice_ext[(ds_uuid, invoice["external_id"])] = invoice["uuid"]
        self._imported_customers.add(invoice["customer_uuid"])
        for item in invoice["line_items"]:
            if item.get("external_id") is not None:
                self._line_item_ext[(ds_uuid, item["external_id"])] = item["uuid"]
            sub_ext = _external_id(item.get("subscription_external_id"))
            if item.get("subscription_uuid") and sub_ext is not None:
                self._subscriptions[(invoice["customer_uuid"], sub_ext)] = item["subscription_uuid"]
        for tx in invoice["transactions"]:
            self.transactions[tx["uuid"]] = tx
            self._transaction_invoice[tx["uuid"]] = invoice["uuid"]
            if tx.get("external_id") is not None:
                self._transaction_ext[(ds_uuid, tx["external_id"])] = tx["uuid"]

    def snapshot(self) -> JSON:
        """Everything as plain JSON (for ``--dump``)."""
        with self.lock:
            return copy.deepcopy(
                {
                    "data_sources": list(self.data_sources.values()),
                    "customers": list(self.customers.values()),
                    "custom_attribute_types": self._custom_types,
                    "plans": list(self.plans.values()),
                    "invoices": sorted(self.invoices.values(), key=lambda i: self._invoice_created[i["uuid"]]),
                    "transactions": list(self.transactions.values()),
                    "subscription_events": list(self.events.items.values()) if self.events else [],
                    "contacts": list(self.contacts.items.values()) if self.contacts else [],
                }
            )
