"""Fake ChartMogul API for tests: a real HTTP server with in-memory state.

ChartMogul cannot be reached from CI, so the target is tested against this. Its answers
follow the client libraries' recorded exchanges (``tests/contract/``; the contract tests
prove the match). Where the recordings are silent or disagree, each plausible behaviour is
a switch, so tests can run the target against every one of them. Switches are keyword
arguments of :class:`FakeChartMogul` and can be changed later as attributes
(``fake.tag_case = "lower"``):

``invoice_batch_mode``: ``"save_valid"`` (default) | ``"save_none"``
    Whether an invoice import that answers 422 still saves its valid invoices.
``tag_case``: ``"keep"`` (default) | ``"lower"``
    Whether tags are stored as sent or lower-cased. Either way tags are unique
    case-insensitively (adding ``VIP`` next to ``vip`` changes nothing).
``auto_tags``: ``False`` (default) | ``True``
    ChartMogul's own tags: ``auto-churned-delinquent-subscription`` the first time
    invoices are imported for a customer, ``merged-customer`` on the survivor of a merge.
    ``fake.tag_in_app(customer_uuid, *tags)`` plants tags exactly as given, as a person
    in the app would add them (no HTTP, not subject to ``tag_case``).
``last_page_cursor``: ``"string"`` (default, as recorded) | ``"null"``
    The cursor on a last page (``has_more: false``). An empty page always has null.
``listing_order``: ``"recorded"`` (default) | ``"created"``
    The order of the invoice listings (``GET /invoices``, ``GET /import/customers/{uuid}/invoices``)
    and of ``GET /subscription_events``. ``"recorded"``: invoices newest first by creation (ties by
    uuid), as chartmogul-ruby's ``ChartMogul_Invoice/API_Actions/with_pagination/paginates_correctly``
    cassette shows (page 1 the invoice created last, its cursor base64 of
    ``<created_at>&<invoice uuid>``), and events newest first by id (``ChartMogul_SubscriptionEvent/
    API_interactions/should_paginate_using_cursor_when_called_with_next``: ids descending, cursor
    ``<created_at>&<id>``). ``"created"``: both oldest first (what the fake's invoice listing did
    before). Either way these cursors are keysets: base64 of ``{"listing": …, "after": <key of the
    page's last object>}``, the next page being the objects stored then that sort after that key,
    so an object created mid-walk that sorts before the cursor is not seen and none is seen twice.
    The other listings page by offset; a cursor of one listing is refused (400) by another.
``retry_after``: ``None`` (default: no header, as in every recorded answer) | seconds
    ``Retry-After`` on 429s (rate limit and ``status_429`` faults without their own value).
``unset_city``: ``""`` (default, 2017-2023 recordings) | ``None`` (2025 recording)
    What an unset customer ``city`` answers.
``line_item_order``: ``"sent"`` (default, 2023 recordings) | ``"reversed"`` (2017/2019)
    The order of line items in invoice answers.

Subscription events and contacts carry switches of their own, set as
``fake.subscription_events.<switch>`` and ``fake.contacts.<switch>`` (``events.py``,
``contacts.py``): how a second event with a used external id is met (two refusals, or
saved twice), whether unset event fields answer ``""``, how an event to update or delete may
be named (``naming``: ``"either"`` | ``"id"``, the recorded form only), which contact answers
carry ``external_id`` (``external_ids``: ``"writes"``, as recorded | ``"absent"`` |
``"answered"``), and which contact custom keys the account defines. Invoice statuses
(``invoice_lifecycle.py``, ``fake.lifecycle.<switch>``) answer a status PUT in the python
or the node mock's shape (``status_answer``) and meet a repeated status as refused or fine
(``status_repeat``).

Bulk JSON imports (``POST /data_sources/{ds}/json_imports``, polled by ``GET
…/json_imports/{import_id}``; ``json_imports.py``, known from ChartMogul's reference and client
mocks) carry switches set as ``fake.json_imports.<switch>``: ``queue_delay`` and
``per_object_seconds`` (0.0: how long an import stays ``queued``, then ``processing`` per
object, before it is applied and ``completed``), ``status_shape`` (``"details"``: the
per-customer ``status_details`` of the reference and the python mock | ``"counts"``: the ruby
mock's ``processed_count``/``error_count``), ``failure_detail`` (``"errors"`` | ``"message"`` |
``"bare"``: how a failed kind says why), ``fail_customers`` (customer external ids whose
objects all fail), ``existing_customer`` (``"update"`` | ``"keep"`` | ``"fail"``), ``paused`` (no
import completes), ``whole_import_failure`` (a message: imports fail whole), ``poll_by``
(``"both"`` | ``"external_id"``, as the reference polls | ``"id"``, as the python mock polls),
``forget_imports`` (every poll answers 404), ``validation`` (``"sync"``: failures reported |
``"async"``: everything reported imported, failures not stored), ``unstored`` (external ids
reported imported and never stored), ``bulk_attributes`` (customer ``attributes``
``"kept"`` | ``"ignored"`` | ``"refused"``), ``max_body_bytes`` (5,000,000: bytes as received)
and ``duplicate_external_id`` (``"refuse"``: 422 | ``"accept"``). Due imports are applied at
the start of each request (or ``fake.json_imports.advance()``), or by a worker thread when
they are due with ``background`` (benchmarks), with the REST endpoints' rules; tests can read
``submitted``, ``polls``, ``imports``, ``violations`` and ``completed_ids()``.

Answers never echo ``primary_contact``, an invoice's ``data_source_uuid``,
``customer_external_id`` or ``collection_method``, or a line item's
``plan_external_id``; the store keeps them, and tests may read the store directly.
"""

from .faults import FAULT_KINDS, Fault
from .server import FakeChartMogul, RequestRecord
from .store import ApiError, Store

__all__ = ["FAULT_KINDS", "ApiError", "FakeChartMogul", "Fault", "RequestRecord", "Store"]
