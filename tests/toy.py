"""A toy ChartMogul resource, to show what a new object kind needs: a table entry, an adapter and a mapping.

The three parts a new object brings to the target are `TOYS` (its line in the table of objects and
resources), `ToyRules` (its adapter: which resource, which mapping) and `map_toy` (its mapping). The
rest of this module is the fake's side: `/toys` endpoints answering as ChartMogul's usual REST
resources do (POST 201, GET, PATCH 200, DELETE 204, `{"entries": [...]}` listings, 404 `{"error":
"Toy not found"}`, 422 for a used external id), added to the fake by `toy_endpoints` for one test.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import re
import typing as t

from target_chartmogul.config import registry
from target_chartmogul.mapping.common import required_data_source, required_text
from target_chartmogul.sinks.lifecycle import Rules
from tests.fake_chartmogul import server
from tests.fake_chartmogul.store import ApiError, Store

JSON = dict[str, t.Any]
TOY_TAKEN = "The external ID for this toy already exists in our system."


# What the target needs: a mapping, an adapter, a table entry ----------------------------------
@dataclasses.dataclass
class ToyPayload:
    """One toy as a record asks ChartMogul to hold it."""

    data_source_uuid: str
    external_id: str
    name: str

    def body(self) -> JSON:
        """Body of POST /toys."""
        return dataclasses.asdict(self)


def map_toy(record: t.Mapping[str, t.Any], default_data_source_uuid: str | None) -> ToyPayload:
    """The mapping: a record to a toy, or RecordRejected naming the field."""
    return ToyPayload(required_data_source(record, default_data_source_uuid), required_text(record, "external_id"),
                      required_text(record, "name"))


class ToyRules(Rules[ToyPayload]):
    """The adapter: its resource and its mapping; the lifecycle does the rest."""

    kind = "toy"

    def map(self, record: dict[str, t.Any]) -> ToyPayload:
        return map_toy(record, self.default_data_source)


TOYS = registry.ObjectEntry(
    name="toys",
    modes={"upsert": ("external_id",)},
    default_mode="upsert",
    sink="lifecycle:ObjectSink",
    rules="tests.toy:ToyRules",
    resource=registry.Resource("toy", "toys", "entries", duplicate=TOY_TAKEN, noun="Toy"),
)


@contextlib.contextmanager
def toy_object() -> t.Iterator[registry.ObjectEntry]:
    """The toy registered for one test (an object added at run time, as a plug-in would)."""
    registry.register(TOYS)
    try:
        yield TOYS
    finally:
        registry.unregister(TOYS.name)


# The fake's side ------------------------------------------------------------------------------
class ToyShop:
    """The toys the fake holds: uuid -> toy."""

    def __init__(self) -> None:
        self.toys: dict[str, JSON] = {}
        self.numbers = itertools.count(1)

    def find(self, ds: str, external_id: str) -> JSON | None:
        return next((toy for toy in self.toys.values()
                     if toy["data_source_uuid"] == ds and toy["external_id"] == external_id), None)

    def plant(self, ds: str, external_id: str, name: str) -> JSON:
        """A toy made in ChartMogul without the target (in the app, or by another tool)."""
        toy = {"uuid": f"toy_{next(self.numbers)}", "data_source_uuid": ds, "external_id": external_id, "name": name}
        self.toys[toy["uuid"]] = toy
        return toy

    def held(self, uuid: str) -> JSON:
        if uuid not in self.toys:
            raise ApiError(404, {"error": "Toy not found"})
        return self.toys[uuid]


def _shop(store: Store) -> ToyShop:
    return t.cast("ToyShop", store.toys)  # type: ignore[attr-defined]


def _create(store: Store, m: re.Match[str], q: dict[str, str], b: JSON) -> tuple[int, t.Any]:
    shop = _shop(store)
    if shop.find(str(b.get("data_source_uuid")), str(b.get("external_id"))) is not None:
        raise ApiError(422, {"errors": {"external_id": TOY_TAKEN}})
    return 201, dict(shop.plant(str(b["data_source_uuid"]), str(b["external_id"]), str(b.get("name"))))


def _list(store: Store, m: re.Match[str], q: dict[str, str], b: JSON) -> tuple[int, t.Any]:
    found = [dict(toy) for toy in _shop(store).toys.values()
             if q.get("data_source_uuid") in (None, toy["data_source_uuid"])
             and q.get("external_id") in (None, toy["external_id"])]
    return 200, {"entries": found, "cursor": None, "has_more": False}


def _get(store: Store, m: re.Match[str], q: dict[str, str], b: JSON) -> tuple[int, t.Any]:
    return 200, dict(_shop(store).held(m["id"]))


def _update(store: Store, m: re.Match[str], q: dict[str, str], b: JSON) -> tuple[int, t.Any]:
    toy = _shop(store).held(m["id"])
    toy.update({k: v for k, v in b.items() if k == "name"})
    return 200, dict(toy)


def _delete(store: Store, m: re.Match[str], q: dict[str, str], b: JSON) -> tuple[int, t.Any]:
    _shop(store).held(m["id"])
    del _shop(store).toys[m["id"]]
    return 204, None


TOY_ROUTES = [
    ("POST", r"/toys", _create),
    ("GET", r"/toys", _list),
    ("GET", r"/toys/(?P<id>[^/]+)", _get),
    ("PATCH", r"/toys/(?P<id>[^/]+)", _update),
    ("DELETE", r"/toys/(?P<id>[^/]+)", _delete),
]


@contextlib.contextmanager
def toy_endpoints(fake: server.FakeChartMogul) -> t.Iterator[ToyShop]:
    """The fake answers /toys for the duration (routes added in front of its own)."""
    shop = ToyShop()
    fake.store.toys = shop  # type: ignore[attr-defined]
    added = [(method, re.compile(f"^{pattern}$"), handler) for method, pattern, handler in TOY_ROUTES]
    server.ROUTES[:0] = added
    try:
        yield shop
    finally:
        del server.ROUTES[: len(added)]
