"""The ChartMogul objects the target writes: one entry each, the one place a new object is registered.

Every per-object table is derived from `REGISTRY`, so an object cannot be half added: the
stream options of `settings` (`OBJECTS`, `MODES`, `DEFAULT_MODE`, `DELETABLE`), the write
order (`RANKS` here: an entry's place in `REGISTRY` is its rank, used by `run.ordering` and the
bulk lane), the listings of `memory.holdings` (`LISTS`, and the bulk lane's reference kinds
built from them) and the target's `SINK_CLASSES`. Sinks are named by path, not imported, so
`settings` and `holdings` can read this module without importing a sink (and the sinks can
import them without a cycle).
"""

from __future__ import annotations

import dataclasses
import typing as t

SINKS_PACKAGE = "target_chartmogul.sinks"


@dataclasses.dataclass(frozen=True)
class Listing:
    """How a whole data source of this object is listed when the sync memory holds none of it (`holdings`)."""

    kind: str  # the reference kind of `references` and `holdings` ("customer"), one object, singular
    path: str  # the list endpoint
    root: str  # the key of the list answer that holds the objects


@dataclasses.dataclass(frozen=True)
class ObjectEntry:
    """One object: its stream options, its sink and, if the loader can list it after a lost memory, how."""

    name: str  # the `object` setting, the sink's `object_name` and the sync memory's object name
    modes: t.Mapping[str, tuple[str, ...]]  # mode -> the match_by it allows, the first being the default
    default_mode: str
    sink: str  # "module:Class" under target_chartmogul.sinks
    deletable: bool = True  # whether `delete_missing` applies
    listing: Listing | None = None
    # listing kinds of what its records name (plans its lines need): with a lost memory, read as soon as a batch
    # holds a new object (`ChartMogulSink.bulk_partition`), not after the input when the stream that brings them
    # comes last (tap-postgres: accounts, invoices, price_plans)
    names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        """A default mode that is not a mode, or a sink path without a class, would fail only when a stream uses it."""
        if self.default_mode not in self.modes:
            msg = f"{self.name}: default mode {self.default_mode!r} is not one of its modes"
            raise ValueError(msg)
        if self.sink.count(":") != 1:
            msg = f"{self.name}: sink {self.sink!r} is not a module:Class path"
            raise ValueError(msg)

    @property
    def sink_module(self) -> str:
        """The module that defines the sink class (imported by the target only)."""
        return f"{SINKS_PACKAGE}.{self.sink.partition(':')[0]}"

    @property
    def sink_class(self) -> str:
        """The name of the sink class in `sink_module`."""
        return self.sink.partition(":")[2]


# In write order: what an object refers to ranks before it (plans and customers before
# invoices, invoices before their lines and transactions).
REGISTRY: tuple[ObjectEntry, ...] = (
    ObjectEntry(
        name="plans",
        modes={"upsert": ("external_id",), "insert": ("external_id",)},
        default_mode="upsert",
        sink="plans:PlansSink",
        deletable=False,
        listing=Listing(kind="plan", path="plans", root="plans"),
    ),
    ObjectEntry(
        name="customers",
        modes={
            "upsert": ("external_id", "email"),
            "update": ("external_id", "uuid"),
            "insert": ("external_id",),
        },
        default_mode="upsert",
        sink="customers:CustomersSink",
        listing=Listing(kind="customer", path="customers", root="entries"),
    ),
    ObjectEntry(
        name="line_items", modes={"insert": ("external_id",)}, default_mode="insert", sink="line_items:LineItemsSink",
    ),
    ObjectEntry(
        name="invoices",
        modes={"insert": ("external_id",)},
        default_mode="insert",
        sink="invoices:InvoicesSink",
        listing=Listing(kind="invoice", path="invoices", root="invoices"),
        names=("plan",),
    ),
    ObjectEntry(
        name="transactions",
        modes={"insert": ("external_id",)},
        default_mode="insert",
        sink="transactions:TransactionsSink",
    ),
    ObjectEntry(
        name="subscription_events",
        modes={"upsert": ("external_id",)},
        default_mode="upsert",
        sink="subscription_events:SubscriptionEventsSink",
        listing=Listing(kind="subscription_event", path="subscription_events", root="subscription_events"),
        names=("plan",),
    ),
    ObjectEntry(
        name="contacts",
        modes={"upsert": ("external_id", "email")},
        default_mode="upsert",
        sink="contacts:ContactsSink",
        listing=Listing(kind="contact", path="contacts", root="entries"),
    ),
)

BY_NAME: dict[str, ObjectEntry] = {entry.name: entry for entry in REGISTRY}
# An object's rank in the write order is its place in REGISTRY (`run.ordering`, the bulk lane's REST order).
RANKS: dict[str, int] = {entry.name: rank for rank, entry in enumerate(REGISTRY)}


def rank_of(object_name: str) -> int:
    """Plans first, then customers, invoices, transactions; anything else last."""
    return RANKS.get(object_name, len(RANKS))
