"""Applying one bulk JSON import to the store, object by object, with the REST endpoints' rules.

ChartMogul validates a bulk import asynchronously: each object is imported or marked failed
(chartmogul-api.md §4). No recording shows how, so this follows the fake's REST endpoints
exactly: a customer, plan, invoice or event imported in bulk is made by the same store
functions as one sent through REST, and answers the same in every listing and GET.

The order is plans, customers, invoices (each with its line items and transactions, saved
together or not at all, as ``POST /import/customers/{uuid}/invoices`` does), transactions
for invoices already in the data source (as ``POST /import/invoices/{uuid}/transactions``),
then subscription events (``store.events``, so they list in ``GET /subscription_events``).
Every object gives one :class:`Outcome`, attributed to the customer external id it belongs
to: its own (customers), ``customer_external_id`` (invoices, events), or its invoice's
(line items, transactions). Plans, and objects that cannot be attributed, belong to none.

Customers are made (or, with ``existing_customer="update"``, changed) from every field Create
a Customer takes, by the store code ``POST /customers`` uses; only their ``attributes`` depend
on the ``bulk_attributes`` switch. Objects whose external id is in ``unstored`` are reported
imported and never stored (see json_imports.py for the switches).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .store import BLANK, ApiError, BatchKeys, is_number

if TYPE_CHECKING:
    from .store import Store

JSON = dict[str, Any]
Errors = dict[str, str]

KINDS = ("customers", "plans", "invoices", "line_items", "transactions", "subscription_events")
EXISTING_CUSTOMER = ("update", "keep", "fail")
BULK_ATTRIBUTES = ("kept", "ignored", "refused")
REFUSED_CUSTOMER_KEYS = ("attributes", "tags")  # refused with bulk_attributes="refused"
FAIL_SWITCH = "rejected by the fake's fail_customers switch"
TAKEN = "has already been taken"
NOT_IN_BULK = "is not accepted by the bulk import"
INVOICE_NOT_IMPORTED: Errors = {"invoice_external_id": "invoice was not imported"}
INVOICE_NOT_FOUND: Errors = {"invoice_external_id": "Invoice not found"}
INVOICE_IMPORTED_BEFORE: Errors = {"invoice_external_id": "invoice was imported before; line items come with their invoice"}


@dataclass(frozen=True)
class Outcome:
    """What became of one object: imported (no errors) or failed (field -> message)."""

    kind: str
    customer: str | None  # its customer external id; None for plans and objects that name no known owner
    external_id: Any
    errors: Errors
    unstored: bool = False  # reported imported but never stored (the unstored switch, or its invoice was)

    @property
    def failed(self) -> bool:
        return bool(self.errors)

    @property
    def stored(self) -> bool:
        """True when the object is in the store now (or was kept as it was: a known plan or customer)."""
        return not self.failed and not self.unstored


@dataclass(frozen=True)
class Rules:
    """The switches that decide how objects are met (see json_imports.py)."""

    fail_customers: frozenset[str] = frozenset()
    existing_customer: str = "update"
    unstored: frozenset[str] = frozenset()
    attributes: str = "kept"


def external_id(value: Any) -> str | None:
    """External ids as the store takes them: strings, numbers stringified, blank is none."""
    if is_number(value):
        return str(value)
    return value if isinstance(value, str) and value != "" else None


def errors_of(error: ApiError) -> Errors:
    """An API refusal as ``{field: message}``, whichever error shape the endpoint answers."""
    body = error.body
    if isinstance(body.get("errors"), dict):
        return {str(key): str(message) for key, message in body["errors"].items()}
    if "message" in body:
        return {str(body.get("param") or "base"): str(body["message"])}
    return {"base": str(body.get("error", body))}


def attempt(action: Callable[[], Any]) -> Errors:
    """Run a store call; its refusal as errors, ``{}`` when it succeeded."""
    try:
        action()
    except ApiError as exc:
        return errors_of(exc)
    return {}


def items_of(body: JSON, kind: str) -> list[JSON]:
    return [item for item in body.get(kind) or [] if isinstance(item, dict)]


def customers_named(body: JSON) -> list[str]:
    """Customer external ids the import names, first appearance first (customers, invoices, events)."""
    named = [external_id(c.get("external_id")) for c in items_of(body, "customers")]
    named += [external_id(i.get("customer_external_id")) for i in items_of(body, "invoices")]
    named += [external_id(e.get("customer_external_id")) for e in items_of(body, "subscription_events")]
    return list(dict.fromkeys(name for name in named if name is not None))


@dataclass
class _Invoice:
    """An invoice of the import with the line items and transactions that name it."""

    raw: JSON
    owner: str | None
    line_items: list[JSON] = field(default_factory=list)
    transactions: list[JSON] = field(default_factory=list)


class Application:
    """One import applied to one data source; ``run()`` returns an outcome per object."""

    def __init__(self, store: Store, data_source_uuid: str, body: JSON, rules: Rules) -> None:
        self.store = store
        self.ds = data_source_uuid
        self.body = body
        self.rules = rules
        self.outcomes: list[Outcome] = []
        self.blocked: dict[str, Errors] = {}

    def run(self) -> list[Outcome]:
        with self.store.lock:
            self._block()
            for plan in items_of(self.body, "plans"):
                self._plan(plan)
            for customer in items_of(self.body, "customers"):
                self._customer(customer)
            invoices, loose_items, loose_transactions = self._invoices()
            for invoice in invoices:
                self._invoice(invoice)
            for item in loose_items:
                self._loose_line_item(item)
            for tx in loose_transactions:
                self._loose_transaction(tx)
            for event in items_of(self.body, "subscription_events"):
                self._event(event)
        return self.outcomes

    # ------------------------------------------------------------------ bookkeeping

    def _note(self, kind: str, customer: str | None, raw: JSON, errors: Errors, *, unstored: bool = False) -> None:
        self.outcomes.append(Outcome(kind, customer, raw.get("external_id"), dict(errors), unstored))

    def _unstored(self, raw: JSON) -> bool:
        """Whether an object's external id is in the ``unstored`` switch (any kind)."""
        ext = external_id(raw.get("external_id"))
        return ext is not None and ext in self.rules.unstored

    def _customer_uuid(self, customer: str | None) -> str | None:
        if customer is None:
            return None
        found = self.store.find_customers(self.ds, customer)
        return str(found[0]["uuid"]) if found else None

    def _block(self) -> None:
        """Customers whose every object fails: ``fail_customers``, and with ``existing_customer="fail"``
        those sent as customer records that the data source already has.
        """
        for customer in customers_named(self.body):
            if customer in self.rules.fail_customers:
                self.blocked[customer] = {"customer_external_id": FAIL_SWITCH}
        if self.rules.existing_customer != "fail":
            return
        for raw in items_of(self.body, "customers"):
            sent = external_id(raw.get("external_id"))
            if sent is not None and self._customer_uuid(sent) is not None:
                self.blocked.setdefault(sent, {"external_id": TAKEN})

    # ------------------------------------------------------------------ plans and customers

    def _plan(self, raw: JSON) -> None:
        """A plan external id the data source already has is kept as it is (reported imported)."""
        if self._unstored(raw):
            self._note("plans", None, raw, {}, unstored=True)
            return
        ext = external_id(raw.get("external_id"))
        if ext is not None and self.store.find_plan(self.ds, ext) is not None:
            self._note("plans", None, raw, {})
            return
        self._note("plans", None, raw, attempt(lambda: self.store.create_plan({**raw, "data_source_uuid": self.ds})))

    def _customer(self, raw: JSON) -> None:
        customer = external_id(raw.get("external_id"))
        if customer is None:
            self._note("customers", None, raw, {"external_id": BLANK})
        elif customer in self.blocked:
            self._note("customers", customer, raw, self.blocked[customer])
        elif self.rules.attributes == "refused" and (
                refused := {key: NOT_IN_BULK for key in REFUSED_CUSTOMER_KEYS if key in raw}):
            self._note("customers", customer, raw, refused)
        elif customer in self.rules.unstored:
            self._note("customers", customer, raw, {}, unstored=True)
        else:
            self._note("customers", customer, raw, self._save_customer(customer, raw))

    def _save_customer(self, customer: str, raw: JSON) -> Errors:
        """Made by ``POST /customers``'s store code from every field sent (``attributes`` unless ignored)."""
        existing = self._customer_uuid(customer)
        dropped = ("data_source_uuid", "external_id", *(("attributes",) if self.rules.attributes == "ignored" else ()))
        sent = {key: value for key, value in raw.items() if key not in dropped}
        if existing is None:
            return attempt(lambda: self.store.create_customer({**sent, "external_id": customer, "data_source_uuid": self.ds}))
        if self.rules.existing_customer == "update":
            return attempt(lambda: self.store.update_customer_from_import(existing, sent))
        if self.rules.existing_customer == "keep":
            return {}
        return {"external_id": TAKEN}  # "fail": sent twice in this import

    # ------------------------------------------------------------------ invoices

    def _invoices(self) -> tuple[list[_Invoice], list[JSON], list[JSON]]:
        """The import's invoices with their children (the first invoice of an external id claims them),
        and the line items and transactions that name no invoice of this import.
        """
        invoices: list[_Invoice] = []
        by_id: dict[str, _Invoice] = {}
        for raw in items_of(self.body, "invoices"):
            invoice = _Invoice(raw, external_id(raw.get("customer_external_id")))
            invoices.append(invoice)
            ext = external_id(raw.get("external_id"))
            if ext is not None:
                by_id.setdefault(ext, invoice)
        loose: dict[str, list[JSON]] = {"line_items": [], "transactions": []}
        for kind, unclaimed in loose.items():
            for child in items_of(self.body, kind):
                parent = by_id.get(external_id(child.get("invoice_external_id")) or "")
                (unclaimed if parent is None else getattr(parent, kind)).append(child)
        return invoices, loose["line_items"], loose["transactions"]

    def _invoice(self, invoice: _Invoice) -> None:
        """Saved with all its line items and transactions, or none of them is.

        An unstored invoice is reported imported with its children and nothing of it is stored;
        unstored children of a stored invoice are reported imported and left out of it.
        """
        owner = invoice.owner
        if owner is not None and owner in self.blocked:
            self._note_invoice(invoice, self.blocked[owner], [self.blocked[owner]] * len(invoice.line_items),
                               [self.blocked[owner]] * len(invoice.transactions))
            return
        if self._unstored(invoice.raw):
            self._note_invoice(invoice, {}, [{}] * len(invoice.line_items), [{}] * len(invoice.transactions),
                               unstored=True)
            return
        kept = _Invoice(invoice.raw, owner, [i for i in invoice.line_items if not self._unstored(i)],
                        [t for t in invoice.transactions if not self._unstored(t)])
        own, item_errors, tx_errors = self._checked_and_saved(kept)
        self._note("invoices", owner, invoice.raw, own)
        for kind, children, found in (("line_items", invoice.line_items, iter(item_errors)),
                                      ("transactions", invoice.transactions, iter(tx_errors))):
            for child in children:
                if self._unstored(child):
                    self._note(kind, owner, child, {}, unstored=True)
                else:
                    self._note(kind, owner, child, next(found))

    def _checked_and_saved(self, invoice: _Invoice) -> tuple[Errors, list[Errors], list[Errors]]:
        """The invoice's own errors and its children's; it is saved (with them) when there are none."""
        seen = BatchKeys()
        item_errors = [self._line_item_errors(item, seen) for item in invoice.line_items]
        tx_errors = [self.store.transaction_errors(self._rest_child(tx), self.ds, seen) for tx in invoice.transactions]
        children_ok = not any(item_errors) and not any(tx_errors)
        errors = self._save_invoice(invoice, save=children_ok)
        own = {key: message for key, message in errors.items() if not key.startswith(("line_items.", "transactions."))}
        if errors or not children_ok:
            nested = any(item_errors) or any(key.startswith("line_items.") for key in errors)
            own = own or ({"line_items": "is invalid"} if nested else {"transactions": "is invalid"})
            item_errors = [found or INVOICE_NOT_IMPORTED for found in item_errors]
            tx_errors = [found or INVOICE_NOT_IMPORTED for found in tx_errors]
        return own, item_errors, tx_errors

    def _save_invoice(self, invoice: _Invoice, *, save: bool) -> Errors:
        """The import endpoint's errors for the invoice (nested ones prefixed); saved when valid and ``save``."""
        if invoice.owner is None:
            return {"customer_external_id": BLANK}
        customer_uuid = self._customer_uuid(invoice.owner)
        if customer_uuid is None:
            return {"customer_external_id": "Customer not found"}
        raw = {key: value for key, value in invoice.raw.items() if key not in ("line_items", "transactions")}
        raw.update(data_source_uuid=self.ds, customer_external_id=invoice.owner,
                   line_items=[self._rest_line_item(item) for item in invoice.line_items],
                   transactions=[self._rest_child(tx) for tx in invoice.transactions])
        return self.store.bulk_invoice(customer_uuid, raw, save=save)

    def _note_invoice(self, invoice: _Invoice, own: Errors, items: list[Errors], txs: list[Errors], *,
                      unstored: bool = False) -> None:
        self._note("invoices", invoice.owner, invoice.raw, own, unstored=unstored)
        for item, errors in zip(invoice.line_items, items, strict=True):
            self._note("line_items", invoice.owner, item, errors, unstored=unstored)
        for tx, errors in zip(invoice.transactions, txs, strict=True):
            self._note("transactions", invoice.owner, tx, errors, unstored=unstored)

    def _line_item_errors(self, item: JSON, seen: BatchKeys) -> Errors:
        """The import endpoint's errors for this line item, its plan named by ``plan_external_id``."""
        errors = self.store.line_item_errors(self._rest_line_item(item), self.ds, seen)
        if "plan_uuid" in errors:
            errors["plan_external_id"] = errors.pop("plan_uuid")
        plan = external_id(item.get("plan_external_id"))
        if plan is not None and self.store.find_plan(self.ds, plan) is None:
            errors["plan_external_id"] = "Plan not found"
        return errors

    def _rest_line_item(self, item: JSON) -> JSON:
        """A bulk line item as the REST import takes it: ``plan_uuid`` for its ``plan_external_id``."""
        rest = self._rest_child(item)
        plan_ext = external_id(item.get("plan_external_id"))
        plan = None if plan_ext is None else self.store.find_plan(self.ds, plan_ext)
        if plan is not None:
            rest["plan_uuid"] = plan["uuid"]
        return rest

    @staticmethod
    def _rest_child(child: JSON) -> JSON:
        return {key: value for key, value in child.items() if key != "invoice_external_id"}

    def _loose_line_item(self, item: JSON) -> None:
        """A line item for no invoice of this import fails (its invoice's owner gets it when known)."""
        known = self.store.find_invoice(self.ds, external_id(item.get("invoice_external_id")) or "")
        owner = None if known is None else external_id(known.get("customer_external_id"))
        if self._unstored(item):
            self._note("line_items", owner, item, {}, unstored=True)
            return
        self._note("line_items", owner, item, INVOICE_NOT_FOUND if known is None else INVOICE_IMPORTED_BEFORE)

    def _loose_transaction(self, tx: JSON) -> None:
        """A transaction for an invoice already in the data source is added to it."""
        known = self.store.find_invoice(self.ds, external_id(tx.get("invoice_external_id")) or "")
        owner = None if known is None else external_id(known.get("customer_external_id"))
        if owner is not None and owner in self.blocked:
            self._note("transactions", owner, tx, self.blocked[owner])
            return
        if self._unstored(tx):
            self._note("transactions", owner, tx, {}, unstored=True)
            return
        if known is None:
            self._note("transactions", None, tx, INVOICE_NOT_FOUND)
            return
        errors = attempt(lambda: self.store.create_transaction(known["uuid"], self._rest_child(tx)))
        self._note("transactions", owner, tx, errors)

    # ------------------------------------------------------------------ events

    def _event(self, raw: JSON) -> None:
        owner = external_id(raw.get("customer_external_id"))
        if owner is not None and owner in self.blocked:
            self._note("subscription_events", owner, raw, self.blocked[owner])
            return
        if self._unstored(raw):
            self._note("subscription_events", owner, raw, {}, unstored=True)
            return
        envelope = {"subscription_event": {**raw, "data_source_uuid": self.ds}}
        self._note("subscription_events", owner, raw, attempt(lambda: self.store.events.create(envelope)))
