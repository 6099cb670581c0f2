"""Two paths to one outcome: the same input through the bulk import and through REST must leave ChartMogul the same.

`assert_same_in_both_lanes(scenario, tmp_path)` runs an end-to-end scenario twice, once with `bulk_import:
always` (or `auto`) and once with `never`, each against a fresh fake ChartMogul with a fresh sync memory, requires no
reject in the first run of either lane, and compares what the two fakes hold (`snapshot`). A scenario is a function
returning one `Run` (config tweaks and Singer messages) or several, run one after another on the same fake and
memory (`Run.before` may change the fake between runs). `configure` is called with each fake before its first run,
so a test can run both lanes under a switch of the fake: `configure=json_import_switches(status_shape="counts")`
sets `fake.json_imports.<switch>` and refuses a switch the fake does not have; any other callable works too
(`lambda fake: setattr(fake, "tag_case", "lower")`). The result (`Lanes`) keeps each lane's run results, fake,
request log and snapshot, for assertions of a test's own (`assert_bulk_used`, `rest_writes_per_customer`).

`snapshot(fake, ds)` is what the fake holds for a data source with everything the fake invents left out (uuids,
ids, timestamps of its own) and references named by external id, so two fakes can be compared:

- customers by external id, every stored field, custom attributes with their types, tags as a case-insensitive set;
  `""` and null are one value only where ChartMogul answers them alike (an unset `name`, `email`, `company` is
  answered `""`, an unset `city` either way: chartmogul-api.md §12, `views.TEXT_AS_EMPTY`, `unset_city`);
- plans; invoices with the customer's external id, line items by external id with the plan's external id instead of
  its uuid, transactions (payments and refunds) by external id; subscription events; contacts with their customer's
  external id. A field left out and a field stored as null are the same (answers carry null for both); a line
  item's unset quantity, prorated, discount, tax, fee and account code are answered with ChartMogul's defaults, so
  they are compared as answered.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import re
import typing as t
import uuid as uuidlib

from tests.fake_chartmogul import FakeChartMogul, RequestRecord
from tests.fake_chartmogul.views import TEXT_AS_EMPTY
from tests.running import API_KEY, RunResult, run_target

JSON = dict[str, t.Any]
BULK_PATH = re.compile(r"^/data_sources/[^/]+/json_imports$")
ABSENT = "<absent>"
# Unset on a line item, ChartMogul answers these (views.line_item_view): left out and sent as the default are one.
LINE_ITEM_DEFAULTS: JSON = {"quantity": 1, "prorated": False, "discount_code": "", "discount_amount_in_cents": 0,
                            "tax_amount_in_cents": 0, "transaction_fees_in_cents": 0, "account_code": ""}
EMPTY_IS_NULL = (*TEXT_AS_EMPTY, "city")  # customer fields whose unset value ChartMogul answers "" (city: either)
MAX_SHOWN = 8  # differences named in a failure message
MAX_VALUE = 70  # characters of a value shown


@dataclasses.dataclass
class Run:
    """One run of the target: its config tweaks (over the lane's config) and the Singer messages it reads.

    `before` is called with the lane's fake just before this run (to change a switch between runs).
    """

    messages: list[t.Any]
    config: JSON = dataclasses.field(default_factory=dict)
    before: t.Callable[[FakeChartMogul], None] | None = None


Scenario = t.Callable[[], "Run | t.Sequence[Run]"]


@dataclasses.dataclass
class Lane:
    """One lane's runs against its own fake: results, the fake's request log and what it holds afterwards."""

    mode: str
    fake: FakeChartMogul
    ds: str
    results: list[RunResult]
    errors: list[BaseException | None]
    snapshot: JSON
    rejects_per_run: list[int]  # lines the rejects file had after each run

    @property
    def requests(self) -> list[RequestRecord]:
        return self.fake.requests

    @property
    def bulk_posts(self) -> int:
        """`POST /data_sources/{ds}/json_imports` requests the fake received."""
        return sum(1 for r in self.requests if r.method == "POST" and BULK_PATH.search(r.path))

    def first_rejects(self) -> list[JSON]:
        """Rejects written by the first run (the file grows run by run)."""
        return self.results[0].rejects[: self.rejects_per_run[0]] if self.results else []


@dataclasses.dataclass
class Lanes:
    """Both lanes of one scenario."""

    bulk: Lane
    rest: Lane

    def assert_bulk_used(self) -> None:
        """The bulk lane really sent imports, the REST lane none."""
        assert self.bulk.bulk_posts >= 1, f"the {self.bulk.mode} lane sent no POST …/json_imports"
        assert self.rest.bulk_posts == 0, f"the REST lane sent {self.rest.bulk_posts} POST …/json_imports"


def json_import_switches(**switches: t.Any) -> t.Callable[[FakeChartMogul], None]:
    """A `configure` that sets `fake.json_imports.<switch>` for each keyword; an unknown switch is an error (setting
    it would only add an attribute nothing reads, and the test would prove nothing).
    """
    def configure(fake: FakeChartMogul) -> None:
        for name, value in switches.items():
            if not hasattr(fake.json_imports, name):
                raise AttributeError(f"the fake's json_imports has no switch {name!r}")
            setattr(fake.json_imports, name, value)

    return configure


CUSTOMER_WRITE = re.compile(r"^/customers(?:/(?P<uuid>[^/]+)(?:/.*)?)?$")


def rest_writes_per_customer(lane: Lane) -> dict[str, int]:
    """REST writes (POST, PUT, PATCH, DELETE on /customers and /customers/{uuid}/…) per customer external id."""
    with lane.fake.lock:
        by_uuid = {uuid: c["external_id"] for uuid, c in lane.fake.customers.items()}
    counts: dict[str, int] = {}
    for request in lane.requests:
        found = CUSTOMER_WRITE.match(request.path)
        if request.method == "GET" or found is None or found["uuid"] in ("merges", "unmerges", "attributes", "search"):
            continue
        if found["uuid"] is None:
            owner = str((request.body or {}).get("external_id")) if isinstance(request.body, dict) else "?"
        else:
            owner = by_uuid.get(found["uuid"], found["uuid"])
        counts[owner] = counts.get(owner, 0) + 1
    return counts


# ---------------------------------------------------------------------------------- snapshot


def _present(item: JSON, drop: t.Container[str] = ()) -> JSON:
    """The fields that hold a value (null and left out are one), minus `drop`."""
    return {k: v for k, v in item.items() if v is not None and k not in drop}


def _keyed(items: t.Iterable[JSON], key: str) -> JSON:
    """Items by their `key` field; a repeated key gets ` (2)`, ` (3)`; items without one are numbered in a stable order."""
    found: JSON = {}
    nameless = []
    for item in items:
        name = item.get(key)
        if name is None:
            nameless.append(item)
            continue
        label, n = str(name), 1
        while label in found:
            n += 1
            label = f"{name} ({n})"
        found[label] = item
    for n, item in enumerate(sorted(nameless, key=lambda i: json.dumps(i, sort_keys=True, default=str)), 1):
        found[f"(no {key} #{n})"] = item
    return dict(sorted(found.items()))


def _customer(fake: FakeChartMogul, customer: JSON) -> JSON:
    held = _present(customer, ("id", "uuid", "data_source_uuid", "data_source_uuids", "attributes", "external_ids"))
    for name in EMPTY_IS_NULL:
        if held.get(name) == "":
            del held[name]
    held["external_ids"] = sorted(customer["external_ids"])
    attributes = customer["attributes"]
    types = fake.custom_attribute_types(customer["uuid"])
    held["custom"] = {key: {"type": types.get(key, ABSENT), "value": value}
                      for key, value in sorted(attributes["custom"].items())}
    held["tags"] = sorted({str(tag).casefold() for tag in attributes["tags"]})
    for extra in ("stripe", "clearbit"):
        if attributes.get(extra):
            held[extra] = attributes[extra]
    return held


def _invoice(invoice: JSON, customers: dict[str, str], plans: dict[str, str]) -> JSON:
    held = _present(invoice, ("uuid", "customer_uuid", "data_source_uuid", "line_items", "transactions"))
    held["customer"] = customers.get(invoice["customer_uuid"], f"unknown customer {invoice['customer_uuid']}")
    items = []
    for item in invoice["line_items"]:
        line = {**LINE_ITEM_DEFAULTS, **_present(item, ("uuid", "subscription_uuid", "plan_uuid", "plan_external_id"))}
        if item.get("plan_uuid") is not None:
            line["plan_external_id"] = plans.get(item["plan_uuid"], f"unknown plan {item['plan_uuid']}")
        items.append(line)
    held["line_items"] = _keyed(items, "external_id")
    held["transactions"] = _keyed((_present(tx, ("uuid",)) for tx in invoice["transactions"]), "external_id")
    return held


def snapshot(fake: FakeChartMogul, ds: str) -> JSON:
    """What the fake holds for data source `ds`, normalised for comparison (see the module docstring)."""
    with fake.lock:
        customers = [c for c in fake.customers.values() if ds in c["data_source_uuids"]]
        customer_ids = {c["uuid"]: c["external_id"] for c in customers}
        plans = [p for p in fake.plans.values() if p["data_source_uuid"] == ds]
        plan_ids = {p["uuid"]: p["external_id"] for p in plans}
        invoices = [i for i in fake.invoices.values() if i["data_source_uuid"] == ds]
        events = [e for e in fake.subscription_events.items.values() if e["data_source_uuid"] == ds]
        contacts = [c for c in fake.contacts.items.values() if c["data_source_uuid"] == ds]
        return json.loads(json.dumps({
            "customers": _keyed((_customer(fake, c) for c in customers), "external_id"),
            "plans": _keyed((_present(p, ("uuid", "data_source_uuid")) for p in plans), "external_id"),
            "invoices": _keyed((_invoice(i, customer_ids, plan_ids) for i in invoices), "external_id"),
            "subscription_events": _keyed(
                (_present(e, ("id", "data_source_uuid", "created_at", "updated_at", "errors")) for e in events),
                "external_id"),
            "contacts": _keyed(
                (_present(c, ("uuid", "customer_uuid", "data_source_uuid"))
                 | {"customer": customer_ids.get(c["customer_uuid"], f"unknown customer {c['customer_uuid']}")}
                 for c in contacts), "external_id"),
        }, sort_keys=True))


# ---------------------------------------------------------------------------------- comparison


FIRST_SHOWN = ("customer", "customer_external_id", "type", "name")  # what says most of a whole object, shown first


def _show(value: t.Any) -> str:
    if isinstance(value, dict):
        value = {k: value[k] for k in sorted(value, key=lambda k: (k not in FIRST_SHOWN, FIRST_SHOWN.index(k)
                                                                   if k in FIRST_SHOWN else 0, k))}
    text = ABSENT if value is ABSENT else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= MAX_VALUE else text[: MAX_VALUE - 1] + "…"


def _same(a: t.Any, b: t.Any) -> bool:
    """Equal, and a boolean is never the number 1 or 0."""
    return a == b and isinstance(a, bool) == isinstance(b, bool)


def differences(left: t.Any, right: t.Any, names: tuple[str, str] = ("bulk", "rest"), path: str = "") -> list[str]:
    """Where two snapshots differ, one line each: `invoices[inv-1].line_items[li-1].quantity: bulk 2, rest 1`."""
    if isinstance(left, dict) and isinstance(right, dict):
        found: list[str] = []
        for key in sorted(set(left) | set(right), key=str):
            found += differences(left.get(key, ABSENT), right.get(key, ABSENT), names, _step(path, key))
        return found
    if isinstance(left, list) and isinstance(right, list) and len(left) == len(right):
        return [line for n, (a, b) in enumerate(zip(left, right, strict=True))
                for line in differences(a, b, names, f"{path}[{n}]")]
    if left is not ABSENT and right is not ABSENT and _same(left, right):
        return []
    return [f"{path}: {names[0]} {_show(left)}, {names[1]} {_show(right)}"]


COLLECTIONS = ("customers", "plans", "invoices", "subscription_events", "contacts", "line_items", "transactions")


def _step(path: str, key: t.Any) -> str:
    """`invoices[inv-1].line_items[li-1].quantity`: objects of a collection in brackets, fields after dots."""
    last = path.rsplit(".", 1)[-1] if path else ""
    if last in COLLECTIONS:
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def assert_same_snapshots(left: JSON, right: JSON, names: tuple[str, str] = ("bulk", "rest")) -> None:
    """The two snapshots are equal; else an assertion naming the first differences (object, field, both values)."""
    found = differences(left, right, names)
    assert not found, _report(found, names)


def _report(found: list[str], names: tuple[str, str]) -> str:
    shown = found[:MAX_SHOWN]
    more = f"\n  … and {len(found) - len(shown)} more" if len(found) > len(shown) else ""
    return f"{names[0]} and {names[1]} differ in {len(found)} places:\n  " + "\n  ".join(shown) + more


# ---------------------------------------------------------------------------------- running both lanes


def _runs(scenario: Scenario) -> list[Run]:
    made = scenario()
    runs = [made] if isinstance(made, Run) else list(made)
    assert runs and all(isinstance(r, Run) for r in runs), f"{scenario!r} must return a Run or Runs"
    for run in runs:
        if "bulk_import" in run.config:
            raise ValueError("a scenario leaves bulk_import to the lanes")
    return runs


def run_lane(scenario: Scenario, mode: str, workdir: pathlib.Path, ds_uuid: str,
             configure: t.Callable[[FakeChartMogul], None] | None = None) -> Lane:
    """Every run of `scenario` with `bulk_import: mode`, on a fresh fake and a fresh sync memory in `workdir`
    (a new directory: `workdir-2`, … when a test ran a lane there before).
    """
    base_dir, n = workdir, 1
    while workdir.exists():
        n += 1
        workdir = base_dir.with_name(f"{base_dir.name}-{n}")
    workdir.mkdir(parents=True)
    runs = _runs(scenario)
    with FakeChartMogul(api_key=API_KEY) as fake:
        ds = str(fake.add_data_source("warehouse", ds_uuid)["uuid"])
        if configure is not None:
            configure(fake)
        base = {
            "api_key": API_KEY,
            "api_url": fake.url,
            "data_source_uuid": ds,
            "rejects_path": str(workdir / "rejects.jsonl"),
            "ledger_url": f"sqlite:///{workdir / 'ledger.db'}",
            "request_timeout": 5,
            "max_retries": 6,
            "max_requests_per_second": 1000,  # the lanes' outcome, not ChartMogul's pace, is under test
        }
        results: list[RunResult] = []
        errors: list[BaseException | None] = []
        counts: list[int] = []
        for run in runs:
            if run.before is not None:
                run.before(fake)
            result = run_target({**base, **run.config, "bulk_import": mode}, run.messages, expect_error=True)
            results.append(result)
            errors.append(result.error)
            counts.append(len(result.rejects))
        held = snapshot(fake, ds)
    return Lane(mode, fake, ds, results, errors, held, counts)


def _reject_lines(lane: Lane) -> list[str]:
    problems = []
    for n, error in enumerate(lane.errors, 1):
        if error is not None:
            problems.append(f"{lane.mode} lane: run {n} failed: {type(error).__name__}: {str(error)[:200]}")
    if lane.results and lane.results[0].target is not None:
        skipped = {stream: counts["skipped"] for stream, counts in lane.results[0].target.summary.as_dict().items()
                   if counts["skipped"]}
        if skipped:
            problems.append(f"{lane.mode} lane: the first run skipped records of streams that map to no object: "
                            f"{skipped}")
    rejects = lane.first_rejects()
    if rejects:
        by_stream: dict[str, int] = {}
        for reject in rejects:
            by_stream[reject.get("stream", "?")] = by_stream.get(reject.get("stream", "?"), 0) + 1
        first = rejects[0]
        problems.append(f"{lane.mode} lane: the first run rejected {len(rejects)} records "
                        f"({', '.join(f'{s}: {n}' for s, n in sorted(by_stream.items()))}), e.g. {first.get('stream')} "
                        f"{json.dumps(first.get('key'), ensure_ascii=False)}: {str(first.get('reason'))[:200]}")
    return problems


def assert_same_in_both_lanes(scenario: Scenario, tmp_path: pathlib.Path, *,
                              configure: t.Callable[[FakeChartMogul], None] | None = None,
                              bulk: str = "always", bulk_used: bool = True) -> Lanes:
    """Run `scenario` with `bulk_import: bulk` (always or auto) and with `never`, each on a fresh fake, and assert:
    no reject and no error in the first run of either lane, no error in later runs, equal snapshots, and (with
    `bulk_used`) that the bulk lane sent at least one import and the REST lane none. Returns both lanes.
    """
    if bulk not in ("always", "auto"):
        raise ValueError("the bulk lane runs with bulk_import always or auto")
    ds_uuid = f"ds_{uuidlib.uuid4().hex}"  # both fakes name the data source alike
    lanes = Lanes(run_lane(scenario, bulk, tmp_path / f"lane-{bulk}", ds_uuid, configure),
                  run_lane(scenario, "never", tmp_path / "lane-never", ds_uuid, configure))
    problems = _reject_lines(lanes.bulk) + _reject_lines(lanes.rest)
    found = differences(lanes.bulk.snapshot, lanes.rest.snapshot, (bulk, "never"))
    if found:
        problems.append(_report(found, (bulk, "never")))
    if bulk_used and lanes.bulk.bulk_posts == 0:
        problems.append(f"the {bulk} lane sent no POST …/json_imports: it compared REST with REST")
    if lanes.rest.bulk_posts:
        problems.append(f"the never lane sent {lanes.rest.bulk_posts} POST …/json_imports")
    assert not problems, "\n".join(problems)
    return lanes
