"""HTTP layer of the fake ChartMogul API: a real server on 127.0.0.1.

A real socket server (rather than mocking ``requests``) lets tests exercise the
target's HTTP client for real: keep-alive, timeouts, dropped connections,
throttling and parallel requests. Domain rules live in ``store.py``.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import socket
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

from .contacts import ROUTES as CONTACT_ROUTES
from .contacts import Contacts
from .events import ROUTES as EVENT_ROUTES
from .events import SubscriptionEvents
from .faults import Fault, FaultBook
from .invoice_lifecycle import InvoiceLifecycle
from .json_imports import ROUTES as JSON_IMPORT_ROUTES
from .json_imports import JsonImports
from .request import sending
from .store import JSON, ApiError, Page, Store, bad_parameter, missing_parameter
from .views import transaction_view

API_PREFIX = "/v1"
WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
RATE_LIMIT_BODY: JSON = {
    "code": 429,
    "message": "Your request rate has exceeded our rate limit.",
    "param": None,
}
UNAUTHORIZED_BODY: JSON = {"code": 401, "message": "No valid API key provided", "param": None}
NOT_FOUND_BODY: JSON = {"code": 404, "message": "Not found", "param": None}
INVALID_JSON_BODY: JSON = {"code": 400, "message": "Invalid JSON", "param": None}


@dataclass
class RequestRecord:
    """One request as the server saw it, for assertions in tests.

    ``status`` is what the client received (0 when the connection was dropped);
    ``applied_status`` is what the handler produced when a fault hid it.
    """

    method: str
    path: str
    query: dict[str, str]
    status: int
    body: Any
    authorized: bool
    time: float
    full_path: str = ""
    fault: str | None = None
    applied_status: int | None = None
    size: int = 0  # bytes of request body


@dataclass
class Reply:
    """What to send back; ``drop`` closes the socket without answering."""

    status: int
    body: bytes = b""
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False


def json_reply(status: int, payload: Any, headers: dict[str, str] | None = None) -> Reply:
    """JSON reply; 204 carries no body."""
    if status == 204 or payload is None:
        return Reply(status, headers=headers or {})
    data = json.dumps(payload).encode()
    return Reply(status, data, "application/json", headers or {})


# ChartMogul's own wording where it differs from the HTTP reason phrase (recorded).
TEXT_BODIES = {504: "504 Gateway Timeout Error"}


def text_reply(status: int) -> Reply:
    """text/plain reply like ChartMogul's 5xx pages, e.g. ``500 Internal Server Error``."""
    text = TEXT_BODIES.get(status)
    if text is None:
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "Error"
        text = f"{status} {phrase}"
    return Reply(status, text.encode(), "text/plain; charset=utf-8")


def drop_reply() -> Reply:
    """Close the connection with no answer at all."""
    return Reply(0, drop=True)


# ---------------------------------------------------------------------- routes

Result = tuple[int, Any]
Handler = Callable[[Store, "re.Match[str]", dict[str, str], JSON], Result]


def _page_args(query: dict[str, str]) -> tuple[str | None, str | None]:
    """Cursor paging arguments; ``page`` is refused as deprecated."""
    if "page" in query:
        raise bad_parameter("page", 'Parameter "page" is deprecated')
    return query.get("cursor"), query.get("per_page")


PageOf = Callable[[str | None, str | None], Page]  # (cursor, per_page) -> the page, its objects copied


def _paged(
    store: Store,
    items: list[JSON] | PageOf,
    query: dict[str, str],
    key: str,
    render: Callable[[list[JSON]], list[JSON]],
    legacy: str,
    extra: JSON | None = None,
) -> Result:
    """One page in the recorded shape of its endpoint.

    ``items`` is the whole listing, or a function that cuts the page itself (for the
    long listings, which copy only the page's objects rather than the whole store).
    A first page (no cursor sent) also carries the old page-number fields, and which
    ones depends on the endpoint (``legacy``); later pages carry only cursor and has_more.
    """
    cursor, per_page = _page_args(query)
    page: Page = items(cursor, per_page) if callable(items) else store.page(items, cursor, per_page)
    body: JSON = dict(extra or {})
    body[key] = render(page.items)
    tail: JSON = {"cursor": page.cursor, "has_more": page.has_more}
    if not page.first:
        body.update(tail)
    elif legacy in ("customers", "search"):
        total: int | None = max(page.total_pages, 1) if legacy == "customers" else None
        body.update({"current_page": 1, "total_pages": total, "has_more": page.has_more})
        body.update({"per_page": page.per_page, "page": 1, "cursor": page.cursor})
    elif legacy == "invoices":
        body.update({"total_pages": page.total_pages, "current_page": 1, **tail})
    else:  # plans, customer_invoices
        body.update({"current_page": 1, "total_pages": page.total_pages, **tail})
    return 200, body


def _ping(store: Store, m: re.Match[str], q: dict[str, str], b: JSON) -> Result:
    return 200, {"data": "pong!"}


def _create_data_source(store: Store, m: re.Match[str], q: dict[str, str], b: JSON) -> Result:
    if "name" not in b:
        raise missing_parameter("name")
    return 201, store.add_data_source(b["name"])


def _list_data_sources(store: Store, m: re.Match[str], q: dict[str, str], b: JSON) -> Result:
    sources = store.list_data_sources(q.get("name"), q.get("system"))
    return 200, {"data_sources": [store.data_source_answer(ds, q) for ds in sources]}


def _get_data_source(store: Store, m: re.Match[str], q: dict[str, str], b: JSON) -> Result:
    return 200, store.data_source_answer(store.get_data_source(m["id"]), q)


def _delete_data_source(store: Store, m: re.Match[str], q: dict[str, str], b: JSON) -> Result:
    store.delete_data_source(m["id"])
    return 204, None


def _create_customer(store: Store, m: re.Match[str], q: dict[str, str], b: JSON) -> Result:
    return 201, store.customer_answer(store.create_customer(b))


def _list_customers(store: Store, m: re.Match[str], q: dict[str, str], b: JSON) -> Result:
    def page_of(cursor: str | None, per_page: str | None) -> Page:
        return store.customers_page(q.get("data_source_uuid"), q.get("external_id"), q.get("status"), cursor, per_page)

    return _paged(store, page_of, q, "entries", store.customer_answers, "customers")


def _search_customers(store: Store, m: re.Match[str], q: dict[str, str], b: JSON) -> Result:
    return _paged(store, store.search_customers(q.get("email")), q, "entries", store.customer_answers, "search")


def _get_customer(store: Store, m: re.Match[str], q: dict[str, str], b: JSON) -> Result:
    return 200, store.customer_answer(store.get_customer(m["id"]))


def _update_customer(store: Store, m: re.Match[str], q: dict[str, str], b: JSON) -> Result:
    return 200, store.customer_answer(store.update_customer(m["id"], b))


def _delete_customer(store: Store, m: re.Match[str], q: dict[str, str], b: JSON) -> Result:
    store.delete_customer(m["id"])
    return 204, None


def _merge_customers(store: Store, m: re.Match[str], q: dict[str, str], b: JSON) -> Result:
    store.merge_customers(b)
    return 202, {}


def _get_attributes(store: Store, m: re.Match[str], q: dict[str, str], b: JSON) -> Result:
    return 200, store.get_attributes(m["id"])


def _add_custom(store: Store, m: re.Match[str], q: dict[str, str], b: JSON) -> Result:
    return 200, store.add_custom_attributes(m["id"], b.get("custom"))


def _update_custom(store: Store, m: re.Match[str], q: dict[str, str], b: JSON) -> Result:
    return 200, store.update_custom_attributes(m["id"], b.get("custom"))


def _remove_custom(store: Store, m: re.Match[str], q: dict[str, str], b: JSON) -> Result:
    store.remove_custom_attributes(m["id"], b.get("custom"))
    return 204, None


def _add_tags(store: Store, m: re.Match[str], q: dict[str, str], b: JSON) -> Result:
    return 200, store.add_tags(m["id"], b.get("tags"))


def _remove_tags(store: Store, m: re.Match[str], q: dict[str, str], b: JSON) -> Result:
    return 200, store.remove_tags(m["id"], b.get("tags"))


def _create_plan(store: Store, m: re.Match[str], q: dict[str, str], b: JSON) -> Result:
    return 201, store.create_plan(b)


def _list_plans(store: Store, m: re.Match[str], q: dict[str, str], b: JSON) -> Result:
    items = store.list_plans(q.get("data_source_uuid"), q.get("external_id"))
    return _paged(store, items, q, "plans", list, "plans")


def _get_plan(store: Store, m: re.Match[str], q: dict[str, str], b: JSON) -> Result:
    return 200, store.get_plan(m["id"])


def _update_plan(store: Store, m: re.Match[str], q: dict[str, str], b: JSON) -> Result:
    return 202, store.update_plan(m["id"], b)


def _delete_plan(store: Store, m: re.Match[str], q: dict[str, str], b: JSON) -> Result:
    store.delete_plan(m["id"])
    return 204, None


def _import_invoices(store: Store, m: re.Match[str], q: dict[str, str], b: JSON) -> Result:
    return store.import_invoices(m["id"], b.get("invoices"))


def _list_customer_invoices(store: Store, m: re.Match[str], q: dict[str, str], b: JSON) -> Result:
    def page_of(cursor: str | None, per_page: str | None) -> Page:
        return store.customer_invoices_page(m["id"], cursor, per_page)

    def render(page: list[JSON]) -> list[JSON]:
        return store.invoice_answers(page, "customer_list")

    return _paged(store, page_of, q, "invoices", render, "customer_invoices", {"customer_uuid": m["id"]})


def _list_invoices(store: Store, m: re.Match[str], q: dict[str, str], b: JSON) -> Result:
    def page_of(cursor: str | None, per_page: str | None) -> Page:
        return store.invoices_page(q.get("data_source_uuid"), q.get("external_id"), q.get("customer_uuid"), cursor, per_page)

    def render(page: list[JSON]) -> list[JSON]:
        return store.invoice_answers(page, "list")

    return _paged(store, page_of, q, "invoices", render, "invoices")


def _get_invoice(store: Store, m: re.Match[str], q: dict[str, str], b: JSON) -> Result:
    return 200, store.invoice_answers([store.get_invoice(m["id"])], "get")[0]


def _delete_invoice(store: Store, m: re.Match[str], q: dict[str, str], b: JSON) -> Result:
    store.delete_invoice(m["id"])
    return 204, None


def _create_transaction(store: Store, m: re.Match[str], q: dict[str, str], b: JSON) -> Result:
    return 201, transaction_view(store.create_transaction(m["id"], b), standalone=True)


def _get_transaction(store: Store, m: re.Match[str], q: dict[str, str], b: JSON) -> Result:
    return 200, transaction_view(store.get_transaction(m["id"]), standalone=True)


def _delete_transaction(store: Store, m: re.Match[str], q: dict[str, str], b: JSON) -> Result:
    store.delete_transaction(m["id"])
    return 204, None


def _update_transaction(store: Store, m: re.Match[str], q: dict[str, str], b: JSON) -> Result:
    return 200, store.lifecycle.update_transaction(m["id"], b)  # the standalone answer plus `disabled` (mocked)


def _set_invoice_status(store: Store, m: re.Match[str], q: dict[str, str], b: JSON) -> Result:
    return 200, store.lifecycle.set_status(m["ds"], m["ext"], b)


_ID = r"(?P<id>[^/]+)"
_ROUTE_TABLE: list[tuple[str, str, Handler]] = [
    ("GET", r"/ping", _ping),
    ("POST", r"/data_sources", _create_data_source),
    ("GET", r"/data_sources", _list_data_sources),
    ("GET", rf"/data_sources/{_ID}", _get_data_source),
    ("DELETE", rf"/data_sources/{_ID}", _delete_data_source),
    ("POST", r"/customers", _create_customer),
    ("GET", r"/customers", _list_customers),
    ("GET", r"/customers/search", _search_customers),
    ("POST", r"/customers/merges", _merge_customers),
    ("GET", rf"/customers/{_ID}", _get_customer),
    ("PATCH", rf"/customers/{_ID}", _update_customer),
    ("DELETE", rf"/customers/{_ID}", _delete_customer),
    ("GET", rf"/customers/{_ID}/attributes", _get_attributes),
    ("POST", rf"/customers/{_ID}/attributes/custom", _add_custom),
    ("PUT", rf"/customers/{_ID}/attributes/custom", _update_custom),
    ("DELETE", rf"/customers/{_ID}/attributes/custom", _remove_custom),
    ("POST", rf"/customers/{_ID}/attributes/tags", _add_tags),
    ("DELETE", rf"/customers/{_ID}/attributes/tags", _remove_tags),
    ("POST", r"/plans", _create_plan),
    ("GET", r"/plans", _list_plans),
    ("GET", rf"/plans/{_ID}", _get_plan),
    ("PATCH", rf"/plans/{_ID}", _update_plan),
    ("DELETE", rf"/plans/{_ID}", _delete_plan),
    ("POST", rf"/import/customers/{_ID}/invoices", _import_invoices),
    ("GET", rf"/import/customers/{_ID}/invoices", _list_customer_invoices),
    ("GET", r"/invoices", _list_invoices),
    ("GET", rf"/invoices/{_ID}", _get_invoice),
    ("DELETE", rf"/invoices/{_ID}", _delete_invoice),
    ("POST", rf"/import/invoices/{_ID}/transactions", _create_transaction),
    ("GET", rf"/transactions/{_ID}", _get_transaction),
    ("DELETE", rf"/transactions/{_ID}", _delete_transaction),
    ("PATCH", rf"/transactions/{_ID}", _update_transaction),
    ("PUT", r"/data_sources/(?P<ds>[^/]+)/invoices/(?P<ext>[^/]+)/status", _set_invoice_status),
]
ROUTES: list[tuple[str, re.Pattern[str], Handler]] = [
    (method, re.compile(f"^{pattern}$"), handler)
    for method, pattern, handler in [*_ROUTE_TABLE, *EVENT_ROUTES, *CONTACT_ROUTES, *JSON_IMPORT_ROUTES]
]


def route(method: str, path: str) -> tuple[Handler, re.Match[str]] | None:
    """Find the handler for a path below /v1 (first match wins)."""
    for route_method, pattern, handler in ROUTES:
        if route_method == method:
            match = pattern.match(path)
            if match is not None:
                return handler, match
    return None


# ---------------------------------------------------------------------- sockets


class _Server(ThreadingHTTPServer):
    """Threaded server whose worker threads never block shutdown."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], fake: FakeChartMogul) -> None:
        self.fake = fake
        super().__init__(address, _RequestHandler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients vanishing mid-request is normal here; stay quiet."""


class _RequestHandler(BaseHTTPRequestHandler):
    """Reads one request at a time on a keep-alive connection and answers it."""

    protocol_version = "HTTP/1.1"
    timeout = 5  # idle keep-alive sockets give up after this, so stop() never hangs

    @property
    def fake(self) -> FakeChartMogul:
        return cast(_Server, self.server).fake

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without NODELAY, Nagle plus
        # delayed ACKs add ~40 ms to every keep-alive response.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.fake._track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.fake._untrack(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default one-line-per-request stderr log."""

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def _handle(self) -> None:
        raw = self._read_body()
        with self.fake._in_flight() as in_flight:
            reply = self.fake._serve(self.command, self.path, self.headers.get("Authorization"), raw, in_flight)
            self._send(reply)

    def _read_body(self) -> bytes:
        """Read the whole body so the keep-alive stream stays in sync."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send(self, reply: Reply) -> None:
        if reply.drop:
            self.close_connection = True
            with suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if reply.status != 204:
            if reply.content_type:
                self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        if reply.body and reply.status != 204:
            self.wfile.write(reply.body)


# ---------------------------------------------------------------------- facade


class FakeChartMogul:
    """A fake ChartMogul API server for tests; see the module docstring."""

    def __init__(
        self,
        api_key: str = "test-key",
        rate_limit: int | None = None,
        max_connections: int = 20,
        latency: float = 0.0,
        invoice_batch_mode: str = "save_valid",
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        tag_case: str = "keep",
        auto_tags: bool = False,
        last_page_cursor: str = "string",
        retry_after: float | None = None,
        unset_city: str | None = "",
        line_item_order: str = "sent",
        listing_order: str = "recorded",
    ) -> None:
        self.api_key = api_key
        self.max_connections = max_connections
        self.host = host
        self.port = port
        self.url: str | None = None
        self.store = Store(
            invoice_batch_mode,
            tag_case=tag_case,
            auto_tags=auto_tags,
            last_page_cursor=last_page_cursor,
            unset_city=unset_city,
            line_item_order=line_item_order,
            listing_order=listing_order,
        )
        self.store.lifecycle = InvoiceLifecycle(self.store)
        self.store.events = SubscriptionEvents(self.store)
        self.store.contacts = Contacts(self.store)
        self.store.json_imports = JsonImports(self.store)
        self.retry_after = retry_after
        self.faults = FaultBook()
        self._rate_limit = rate_limit
        self._latency = latency
        self._meta = threading.Lock()
        self._requests: list[RequestRecord] = []
        # notified after each request is recorded: tests wait on it instead of polling (`wait_until`)
        self.changed = threading.Condition()
        self._window: deque[float] = deque()
        self._in_flight_now = 0
        self._max_concurrent_seen = 0
        self._rate_limited_count = 0
        self._connections: set[socket.socket] = set()
        self._connections_opened = 0
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle

    def start(self) -> str:
        """Bind, serve in a daemon thread, and return ``http://127.0.0.1:<port>/v1``."""
        if self._server is not None:
            raise RuntimeError("fake ChartMogul is already running")
        self._stopping.clear()
        self._server = _Server((self.host, self.port), self)
        port = self._server.server_address[1]
        self.url = f"http://{self.host}:{port}{API_PREFIX}"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.005},  # how long stop() waits for the loop to see it: tests stop hundreds of fakes
            name="fake-chartmogul",
            daemon=True,
        )
        self._thread.start()
        return self.url

    def stop(self) -> None:
        """Stop promptly: close the listener and every open connection."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        with self._meta:
            connections = list(self._connections)
        for conn in connections:
            with suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeChartMogul:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- state access for tests

    @property
    def lifecycle(self) -> InvoiceLifecycle:
        """Invoice status and transaction updates, with their switches (see invoice_lifecycle.py)."""
        return self.store.lifecycle

    @property
    def subscription_events(self) -> SubscriptionEvents:
        """Stored subscription events (``.items``), with their switches (see events.py)."""
        return self.store.events

    @property
    def contacts(self) -> Contacts:
        """Stored contacts (``.items``), with their switches (see contacts.py)."""
        return self.store.contacts

    @property
    def json_imports(self) -> JsonImports:
        """Bulk JSON imports (``.imports``, ``.submitted``, ``.violations``...), with their switches (json_imports.py)."""
        return self.store.json_imports

    @property
    def lock(self) -> threading.RLock:
        """Hold this while reading the state dicts below."""
        return self.store.lock

    @property
    def data_sources(self) -> dict[str, JSON]:
        return self.store.data_sources

    @property
    def customers(self) -> dict[str, JSON]:
        return self.store.customers

    @property
    def plans(self) -> dict[str, JSON]:
        return self.store.plans

    @property
    def invoices(self) -> dict[str, JSON]:
        return self.store.invoices

    @property
    def transactions(self) -> dict[str, JSON]:
        return self.store.transactions

    @property
    def invoice_batch_mode(self) -> str:
        return self.store.invoice_batch_mode

    @invoice_batch_mode.setter
    def invoice_batch_mode(self, mode: str) -> None:
        self.store.invoice_batch_mode = mode

    @property
    def tag_case(self) -> str:
        return self.store.tag_case

    @tag_case.setter
    def tag_case(self, mode: str) -> None:
        self.store.tag_case = mode

    @property
    def auto_tags(self) -> bool:
        return self.store.auto_tags

    @auto_tags.setter
    def auto_tags(self, on: bool) -> None:
        self.store.auto_tags = on

    @property
    def last_page_cursor(self) -> str:
        return self.store.last_page_cursor

    @last_page_cursor.setter
    def last_page_cursor(self, mode: str) -> None:
        self.store.last_page_cursor = mode

    @property
    def unset_city(self) -> str | None:
        return self.store.unset_city

    @unset_city.setter
    def unset_city(self, value: str | None) -> None:
        self.store.unset_city = value

    @property
    def line_item_order(self) -> str:
        return self.store.line_item_order

    @line_item_order.setter
    def line_item_order(self, mode: str) -> None:
        self.store.line_item_order = mode

    @property
    def listing_order(self) -> str:
        """``recorded`` (invoices newest first by creation, events by id) or ``created`` (oldest first)."""
        return self.store.listing_order

    @listing_order.setter
    def listing_order(self, mode: str) -> None:
        self.store.listing_order = mode

    @property
    def retry_after(self) -> float | None:
        """Seconds sent as ``Retry-After`` on 429s; None (default) sends no header, as recorded."""
        return self._retry_after

    @retry_after.setter
    def retry_after(self, seconds: float | None) -> None:
        if seconds is not None and (isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0):
            raise ValueError("retry_after must be None or a number of seconds >= 0")
        self._retry_after = seconds

    def _throttled(self, retry_after: float | None) -> Reply:
        """A 429; the ``Retry-After`` header only when a number of seconds is configured."""
        headers = {} if retry_after is None else {"Retry-After": f"{retry_after:g}"}
        return json_reply(429, RATE_LIMIT_BODY, headers)

    def add_data_source(self, name: str, uuid: str | None = None) -> JSON:
        """Create a data source directly (no HTTP)."""
        return self.store.add_data_source(name, uuid)

    def find_customers(self, data_source_uuid: str, external_id: str) -> list[JSON]:
        return self.store.find_customers(data_source_uuid, external_id)

    def find_invoice(self, data_source_uuid: str, external_id: str) -> JSON | None:
        return self.store.find_invoice(data_source_uuid, external_id)

    def find_plan(self, data_source_uuid: str, external_id: str) -> JSON | None:
        return self.store.find_plan(data_source_uuid, external_id)

    def custom_attribute_types(self, customer_uuid: str) -> dict[str, str]:
        return self.store.custom_attribute_types(customer_uuid)

    def tag_in_app(self, customer_uuid: str, *tags: str) -> list[str]:
        """Tags a person adds in the ChartMogul app (no HTTP); returns the customer's tags."""
        return self.store.tag_in_app(customer_uuid, *tags)

    def dump_state(self) -> JSON:
        """All stored objects as JSON-ready data."""
        return self.store.snapshot()

    def load_state(self, state: JSON) -> None:
        """Hold what `dump_state` gave (of this fake or an older one), uuids included."""
        self.store.restore(state)

    # -- request log and counters

    @property
    def requests(self) -> list[RequestRecord]:
        with self._meta:
            return list(self._requests)

    def clear_requests(self) -> None:
        with self._meta:
            self._requests.clear()

    def reset_stats(self) -> None:
        """Zero ``max_concurrent_seen`` and ``rate_limited_count``."""
        with self._meta:
            self._max_concurrent_seen = 0
            self._rate_limited_count = 0

    def count(self, method: str | None = None, path_regex: str | None = None, status: int | None = None) -> int:
        """Count logged requests; path_regex is searched in the path with or without /v1."""
        pattern = re.compile(path_regex) if path_regex else None
        return sum(
            1
            for r in self.requests
            if (method is None or r.method == method.upper())
            and (status is None or r.status == status)
            and (pattern is None or bool(pattern.search(r.path) or pattern.search(r.full_path)))
        )

    def writes(self) -> list[RequestRecord]:
        """Successful (2xx) POST/PUT/PATCH/DELETE requests as the client saw them."""
        return [r for r in self.requests if r.method in WRITE_METHODS and 200 <= r.status < 300]

    @property
    def max_concurrent_seen(self) -> int:
        with self._meta:
            return self._max_concurrent_seen

    @property
    def connections_opened(self) -> int:
        """TCP connections accepted so far (shows whether clients keep them alive)."""
        with self._meta:
            return self._connections_opened

    @property
    def rate_limited_count(self) -> int:
        with self._meta:
            return self._rate_limited_count

    # -- knobs

    def inject(self, fault: Fault) -> None:
        self.faults.inject(fault)

    def clear_faults(self) -> None:
        self.faults.clear()

    def random_faults(
        self,
        rate: float = 0.3,
        kinds: Iterable[str] = ("error_before", "error_after", "drop_after", "status_429"),
        seed: int = 1,
        methods: Iterable[str] = ("POST", "PUT", "PATCH", "DELETE", "GET"),
        path_regex: str | None = None,
        delay: float = 0.5,
    ) -> None:
        """Fail a seeded-random fraction of matching requests (``delay`` is for ``latency``)."""
        self.faults.set_random(rate, kinds, seed, methods, path_regex, delay)

    def set_latency(self, seconds: float) -> None:
        self._latency = seconds

    def set_rate_limit(self, per_second: int | None) -> None:
        with self._meta:
            self._rate_limit = per_second
            self._window.clear()

    # -- internals used by the request handler

    def _track(self, conn: socket.socket) -> None:
        with self._meta:
            self._connections.add(conn)
            self._connections_opened += 1

    def _untrack(self, conn: socket.socket) -> None:
        with self._meta:
            self._connections.discard(conn)

    @contextmanager
    def _in_flight(self) -> Iterator[int]:
        """Count a request as in flight while it is handled and answered."""
        with self._meta:
            self._in_flight_now += 1
            current = self._in_flight_now
            self._max_concurrent_seen = max(self._max_concurrent_seen, current)
        try:
            yield current
        finally:
            with self._meta:
                self._in_flight_now -= 1

    def _admit_rate(self) -> bool:
        """Sliding one-second window over admitted request arrivals."""
        now = time.monotonic()
        with self._meta:
            if self._rate_limit is None:
                return True
            while self._window and self._window[0] <= now - 1.0:
                self._window.popleft()
            if len(self._window) >= self._rate_limit:
                self._rate_limited_count += 1
                return False
            self._window.append(now)
            return True

    def _authorized(self, header: str | None) -> bool:
        """Basic auth with the key as username (or as password)."""
        if not header or not header.lower().startswith("basic "):
            return False
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return False
        user, _, password = decoded.partition(":")
        return self.api_key in (user, password)

    def _serve(self, method: str, raw_path: str, auth: str | None, raw_body: bytes, in_flight: int) -> Reply:
        """Decide the reply for one request and log it."""
        arrived = time.time()
        parts = urlsplit(raw_path)
        full_path = parts.path.rstrip("/") or "/"
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        api_path: str | None = None
        if full_path == API_PREFIX or full_path.startswith(API_PREFIX + "/"):
            api_path = full_path[len(API_PREFIX) :] or "/"
        body: Any = None
        bad_json = False
        if raw_body.strip():
            try:
                body = json.loads(raw_body)
            except (ValueError, UnicodeDecodeError):
                bad_json = True
        authorized = self._authorized(auth)
        record = RequestRecord(
            method=method,
            path=api_path if api_path is not None else full_path,
            query=query,
            status=0,
            body=body,
            authorized=authorized,
            time=arrived,
            full_path=full_path,
            size=len(raw_body),
        )

        if in_flight > self.max_connections:
            reply = text_reply(503)
        elif not self._admit_rate():
            reply = self._throttled(self.retry_after)
        else:
            if self._latency > 0:
                self._stopping.wait(self._latency)
            if self._stopping.is_set():
                reply = drop_reply()  # stopped while sleeping: behave like a dead server
            elif not authorized:
                reply = json_reply(401, UNAUTHORIZED_BODY)
            else:
                fault = self.faults.take(method, record.path)
                reply = self._apply(fault, method, api_path, query, body, bad_json, record)

        record.status = reply.status
        with self._meta:
            self._requests.append(record)
        with self.changed:
            self.changed.notify_all()
        return reply

    def _apply(
        self,
        fault: Fault | None,
        method: str,
        api_path: str | None,
        query: dict[str, str],
        body: Any,
        bad_json: bool,
        record: RequestRecord,
    ) -> Reply:
        """Run the request through a fault (if any) and the router."""
        if fault is None:
            return self._dispatch(method, api_path, query, body, bad_json, record.size)
        record.fault = fault.kind
        if fault.kind == "latency":
            if self._stopping.wait(fault.delay):
                return drop_reply()
            return self._dispatch(method, api_path, query, body, bad_json, record.size)
        if fault.kind == "error_before" or fault.kind == "status_503":
            return text_reply(fault.effective_status)
        if fault.kind == "drop_before":
            return drop_reply()
        if fault.kind == "status_429":
            return self._throttled(fault.retry_after if fault.retry_after is not None else self.retry_after)
        applied = self._dispatch(method, api_path, query, body, bad_json, record.size)
        record.applied_status = applied.status
        if fault.kind == "error_after":
            return text_reply(fault.effective_status)
        return drop_reply()

    def _dispatch(
        self, method: str, api_path: str | None, query: dict[str, str], body: Any, bad_json: bool, size: int = 0
    ) -> Reply:
        """Route to a handler and turn ApiError into the documented error reply.

        Bulk imports that are due are applied first, so every answer sees them (json_imports.py);
        the body as sent (any JSON, and its size) is there for handlers that need it (request.py).
        """
        found = route(method, api_path) if api_path is not None else None
        if found is None:
            return json_reply(404, NOT_FOUND_BODY)
        if bad_json:
            return json_reply(400, INVALID_JSON_BODY)
        handler, match = found
        try:
            self.store.json_imports.advance()
            with sending(body, size):
                status, payload = handler(self.store, match, query, body if isinstance(body, dict) else {})
        except ApiError as exc:
            return json_reply(exc.status, exc.body)
        except Exception:  # a bug in the fake: say so loudly rather than drop the connection
            traceback.print_exc()
            return text_reply(500)
        return json_reply(status, payload)
