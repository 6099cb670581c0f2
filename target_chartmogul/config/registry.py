"""The ChartMogul objects the target writes, one line each: the one table of objects and their resources.

Each line (`ObjectEntry`) says how a stream writes the object (modes, deletes, its sink and
rules) and how ChartMogul's API serves it (`Resource`: path, list endpoint and root key, id
field, duplicate-refusal message, 404 body noun). Every per-object table is derived from
`REGISTRY`, so an object cannot be half added: the stream options of `settings`, the write
order (`RANKS`: an entry's place in `REGISTRY` is its rank), `RESOURCES` (read by the client
helpers of `api.resources`, by `memory.holdings`, by the lifecycle of `sinks` and by the dry
run) and the target's sinks. Sinks and rules are named by path, not imported, so `settings`
and `holdings` can read this module without importing a sink. `register` adds an object at
run time (what a plug-in, or a test's toy object, does).
"""

from __future__ import annotations

import dataclasses
import typing as t

SINKS_PACKAGE = "target_chartmogul.sinks"


# ChartMogul's refusals of a used external id (chartmogul-api.md §9).
DUPLICATE_CUSTOMER = "The external ID for this customer already exists in our system."
DUPLICATE_PLAN = "A plan with this identifier already exists in our system."
DUPLICATE_INVOICE = "The external ID for this invoice already exists in our system."
DUPLICATE_LINE_ITEM = "The external ID for this line item already exists in our system."
DUPLICATE_TRANSACTION = "has already been taken"
DUPLICATE_DATA_SOURCE = "Has already been taken."


@dataclasses.dataclass(frozen=True)
class Resource:
    """One kind of ChartMogul object as its API serves it (chartmogul-api.md; the fake answers the same)."""

    kind: str  # singular, how references, holdings and the dry run name it ("customer")
    path: str | None  # GET/PATCH/DELETE `{path}/{id}`, POST `{path}`; None: no endpoint of its own (line items)
    root: str | None = None  # the key of a list answer that holds the objects; None: it cannot be listed
    id_field: str = "uuid"  # how answers name one ("id": subscription events)
    duplicate: str | None = None  # the refusal of a used external id; None: unrecorded, found by looking up
    noun: str = ""  # of 404 bodies: `{"error": "<noun> not found"}`
    create_path: str | None = None  # where a new one is POSTed, when not `path` (`{parent}`: what it belongs to)
    search_path: str | None = None  # a second list endpoint with the same root (customers by email)

    @property
    def list_path(self) -> str | None:
        """The list endpoint (filtered by `data_source_uuid`, `external_id`), or None."""
        return self.path if self.root is not None else None

    def created_at(self, parent: str | None = None) -> str:
        """The path a new one is POSTed to."""
        return (self.create_path or str(self.path)).format(parent=parent)

    def one(self, object_id: t.Any) -> str:
        """The path of one object."""
        return f"{self.path}/{object_id}"

    def not_found(self) -> dict[str, str]:
        """ChartMogul's 404 body for one that does not exist (recorded shape `{"error": "X not found"}`)."""
        return {"error": f"{self.noun} not found"}


@dataclasses.dataclass(frozen=True)
class ObjectEntry:
    """One object: its stream options, its sink (and the rules its lifecycle follows), its ChartMogul resource."""

    name: str  # the `object` setting, the sink's `object_name` and the sync memory's object name
    modes: t.Mapping[str, tuple[str, ...]]  # mode -> the match_by it allows, the first being the default
    default_mode: str
    sink: str  # "module:Class" under target_chartmogul.sinks (or a dotted module path outside it)
    resource: Resource | None = None
    rules: str | None = None  # "module:Class" of its lifecycle rules (`lifecycle:ObjectSink` runs them)
    deletable: bool = True  # whether `delete_missing` applies
    # listing kinds of what its records name (plans its lines need): with a lost memory, read as soon as a batch
    # holds a new object (`ChartMogulSink.bulk_partition`), not after the input when the stream that brings them
    # comes last (tap-postgres: accounts, invoices, price_plans)
    names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        """A default mode that is not a mode, or a sink path without a class, would fail only when a stream uses it."""
        if self.default_mode not in self.modes:
            msg = f"{self.name}: default mode {self.default_mode!r} is not one of its modes"
            raise ValueError(msg)
        for path in (self.sink, self.rules):
            if path is not None and path.count(":") != 1:
                msg = f"{self.name}: {path!r} is not a module:Class path"
                raise ValueError(msg)

    @property
    def sink_module(self) -> str:
        """The module that defines the sink class (imported by the target only)."""
        return _module(self.sink)

    @property
    def sink_class(self) -> str:
        """The name of the sink class in `sink_module`."""
        return self.sink.partition(":")[2]

    @property
    def listing(self) -> Resource | None:
        """Its resource, when a whole data source of it can be listed (`holdings`, after a lost memory)."""
        return self.resource if self.resource is not None and self.resource.root is not None else None


def _module(path: str) -> str:
    """`plans:X` is under target_chartmogul.sinks; `tests.toy:X` is where it says."""
    module = path.partition(":")[0]
    return module if "." in module else f"{SINKS_PACKAGE}.{module}"


def rules_path(entry: ObjectEntry) -> tuple[str, str] | None:
    """(module, class) of the entry's lifecycle rules, or None."""
    return (_module(entry.rules), entry.rules.partition(":")[2]) if entry.rules is not None else None


# In write order: what an object refers to ranks before it (plans and customers before
# invoices, invoices before their lines and transactions).
REGISTRY: list[ObjectEntry] = [
    ObjectEntry(
        name="plans",
        modes={"upsert": ("external_id",), "insert": ("external_id",)},
        default_mode="upsert",
        sink="lifecycle:ObjectSink",
        rules="plans:PlanRules",
        deletable=False,
        resource=Resource("plan", "plans", "plans", duplicate=DUPLICATE_PLAN, noun="Plan"),
    ),
    ObjectEntry(
        name="customers",
        modes={
            "upsert": ("external_id", "email"),
            "update": ("external_id", "uuid"),
            "insert": ("external_id",),
        },
        default_mode="upsert",
        sink="lifecycle:ObjectSink",
        rules="customers:CustomerRules",
        resource=Resource("customer", "customers", "entries", duplicate=DUPLICATE_CUSTOMER, noun="Customer",
                          search_path="customers/search"),
    ),
    ObjectEntry(
        name="line_items", modes={"insert": ("external_id",)}, default_mode="insert", sink="line_items:LineItemsSink",
        resource=Resource("line_item", None, duplicate=DUPLICATE_LINE_ITEM, noun="Line item"),
    ),
    ObjectEntry(
        name="invoices",
        modes={"insert": ("external_id",)},
        default_mode="insert",
        sink="invoices:InvoicesSink",
        rules="invoice_writing:InvoiceRules",
        resource=Resource("invoice", "invoices", "invoices", duplicate=DUPLICATE_INVOICE, noun="Invoice",
                          create_path="import/customers/{parent}/invoices"),
        names=("plan",),
    ),
    ObjectEntry(
        name="transactions",
        modes={"insert": ("external_id",)},
        default_mode="insert",
        sink="lifecycle:ObjectSink",
        rules="transactions:TransactionRules",
        resource=Resource("transaction", "transactions", duplicate=DUPLICATE_TRANSACTION, noun="Transaction",
                          create_path="import/invoices/{parent}/transactions"),
    ),
    ObjectEntry(
        name="subscription_events",
        modes={"upsert": ("external_id",)},
        default_mode="upsert",
        sink="lifecycle:ObjectSink",
        rules="subscription_events:EventRules",
        resource=Resource("subscription_event", "subscription_events", "subscription_events", id_field="id",
                          noun="Subscription event"),
        names=("plan",),
    ),
    ObjectEntry(
        name="contacts",
        modes={"upsert": ("external_id", "email")},
        default_mode="upsert",
        sink="lifecycle:ObjectSink",
        rules="contacts:ContactRules",
        resource=Resource("contact", "contacts", "entries", noun="Contact"),
    ),
]

# Resources of the account that no stream writes (found or created by `data_source_name`).
ACCOUNT_RESOURCES: tuple[Resource, ...] = (
    Resource("data_source", "data_sources", "data_sources", duplicate=DUPLICATE_DATA_SOURCE, noun="Data source"),
)

BY_NAME: dict[str, ObjectEntry] = {}
# An object's rank in the write order is its place in REGISTRY (`run.ordering`, the bulk lane's REST order).
RANKS: dict[str, int] = {}
# kind -> its resource; kind -> the object (sync-memory name) it is
RESOURCES: dict[str, Resource] = {}
OBJECT_OF: dict[str, str] = {}


def _derive() -> None:
    """Every table derived from REGISTRY, kept in place (modules hold references to these dicts)."""
    for table in (BY_NAME, RANKS, RESOURCES, OBJECT_OF):
        table.clear()
    RESOURCES.update({resource.kind: resource for resource in ACCOUNT_RESOURCES})
    for rank, entry in enumerate(REGISTRY):
        BY_NAME[entry.name] = entry
        RANKS[entry.name] = rank
        if entry.resource is not None:
            if entry.resource.kind in RESOURCES:
                msg = f"{entry.name}: resource kind {entry.resource.kind!r} is already {OBJECT_OF[entry.resource.kind]}'s"
                raise ValueError(msg)
            RESOURCES[entry.resource.kind] = entry.resource
            OBJECT_OF[entry.resource.kind] = entry.name


def register(entry: ObjectEntry) -> None:
    """Add an object (last in the write order); every derived table follows."""
    if entry.name in BY_NAME:
        msg = f"object {entry.name!r} is registered already"
        raise ValueError(msg)
    REGISTRY.append(entry)
    try:
        _derive()
    except ValueError:
        REGISTRY.remove(entry)
        _derive()
        raise


def unregister(name: str) -> None:
    """Remove an object `register` added."""
    REGISTRY[:] = [entry for entry in REGISTRY if entry.name != name]
    _derive()


_derive()


def rank_of(object_name: str) -> int:
    """Plans first, then customers, invoices, transactions; anything else last."""
    return RANKS.get(object_name, len(RANKS))
