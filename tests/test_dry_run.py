"""DryRunClient answers every write as ChartMogul would, and sends none.

Each simulated answer is held against the fake's answer to the same write, sent for real
on a twin object (a second data source holding the same records): same status, same
body with ids masked, same APIError for a duplicate.
"""

from __future__ import annotations

import json
import re
import typing as t

import pytest

from target_chartmogul.api.client import Attempt, ChartMogulClient, Response
from target_chartmogul.api.dry_run import DryRunClient
from target_chartmogul.api.errors import APIError
from target_chartmogul.api.request_log import RequestLog
from tests.fake_chartmogul import FakeChartMogul
from tests.running import API_KEY

ID = re.compile(r"^(ds|cus|pl|inv|li|sub|tr)_")
CUSTOMER = {"external_id": "c1", "name": "Acme", "email": "ops@acme.test", "country": "DE", "city": "Berlin",
            "lead_created_at": "2024-01-02 03:04:05", "attributes": {"tags": ["vip", "Beta"],
            "custom": [{"type": "Integer", "key": "seats", "value": 3, "source": "API"},
                       {"type": "Timestamp", "key": "renewal", "value": "2025-06-30T00:00:00+02:00"}]}}
PLAN = {"external_id": "gold", "name": "Gold", "interval_count": 1, "interval_unit": "month"}


def invoice(external_id: str, plan_uuid: str, *, transactions: tuple[str, ...] = ()) -> dict[str, t.Any]:
    return {
        "external_id": external_id, "date": "2024-03-01T00:00:00Z", "currency": "EUR", "due_date": "2024-03-15",
        "line_items": [
            {"type": "subscription", "subscription_external_id": "s1", "plan_uuid": plan_uuid, "amount_in_cents": 1000,
             "service_period_start": "2024-03-01", "service_period_end": "2024-04-01", "external_id": f"{external_id}-li"},
            {"type": "one_time", "amount_in_cents": 250, "description": "Setup"},
        ],
        "transactions": [{"type": "payment", "date": "2024-03-02", "result": "successful", "external_id": tx}
                         for tx in transactions],
    }


def masked(value: t.Any) -> t.Any:
    """An answer with ChartMogul's own ids (and the fields derived from them) replaced by their kind."""
    if isinstance(value, dict):
        return {k: "<id>" if k in ("id", "chartmogul-url") else masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [masked(v) for v in value]
    if isinstance(value, str) and ID.match(value):
        return ID.match(value).group(1)  # type: ignore[union-attr]
    return value


def refusal(call: t.Callable[[], t.Any]) -> APIError:
    with pytest.raises(APIError) as caught:
        call()
    return caught.value


def same_refusal(dry: APIError, real: APIError) -> None:
    """The sinks read status, message, fields and body: all must be what ChartMogul says."""
    assert (dry.status, dry.message, dry.fields, dry.method) == (real.status, real.message, real.fields, real.method)
    assert masked(dry.body) == masked(real.body)


def assert_nothing_written(fake: FakeChartMogul) -> None:
    assert fake.writes() == []
    assert [(r.method, r.path) for r in fake.requests if r.method != "GET"] == []


def dry_run_ids_sent(fake: FakeChartMogul) -> list[str]:
    """Requests that named an object only this dry run holds: there must be none."""
    return [r.full_path or r.path for r in fake.requests
            if "dryrun" in r.path or any("dryrun" in str(v) for v in r.query.values())]


class Twins:
    """The same records in two data sources: writes go dry to the first, for real to the second."""

    def __init__(self, fake: FakeChartMogul, ds: str) -> None:
        self.fake = fake
        self.attempts: list[Attempt] = []
        self.real = ChartMogulClient(fake.url, API_KEY, max_retries=2, backoff_base=0.01, timeout=5)
        self.dry = DryRunClient(fake.url, API_KEY, max_retries=2, backoff_base=0.01, timeout=5,
                                observers=[self.attempts.append])
        self.ds = {"dry": ds, "real": str(fake.add_data_source("twin")["uuid"])}
        self.customer: dict[str, str] = {}
        self.plan: dict[str, str] = {}

    def seed(self, *, invoices: t.Sequence[dict[str, t.Any]] = ()) -> None:
        """The customer and plan (and invoices) in both data sources, written for real."""
        for side, ds in self.ds.items():
            self.customer[side] = self.real.post("customers", {**CUSTOMER, "data_source_uuid": ds}).body["uuid"]
            self.plan[side] = self.real.post("plans", {**PLAN, "data_source_uuid": ds}).body["uuid"]
            if invoices:
                batch = [{**i, "line_items": [{**li, "plan_uuid": self.plan[side]} if "plan_uuid" in li else li
                                              for li in i["line_items"]]} for i in invoices]
                self.real.post(f"import/customers/{self.customer[side]}/invoices", {"invoices": batch})
        self.fake.clear_requests()

    def both(self, call: t.Callable[[ChartMogulClient, str], Response]) -> tuple[Response, Response]:
        """The dry answer (nothing may be written), then the real one."""
        dry = call(self.dry, "dry")
        assert_nothing_written(self.fake)
        real = call(self.real, "real")
        self.fake.clear_requests()
        return dry, real

    def both_refused(self, call: t.Callable[[ChartMogulClient, str], Response]) -> tuple[APIError, APIError]:
        dry = refusal(lambda: call(self.dry, "dry"))
        assert_nothing_written(self.fake)
        real = refusal(lambda: call(self.real, "real"))
        self.fake.clear_requests()
        return dry, real


@pytest.fixture
def twins(fake: FakeChartMogul, ds: str) -> Twins:
    fake.unset_city = None  # as the latest (2025) recording answers; the dry run answers so
    return Twins(fake, ds)


# Reads ------------------------------------------------------------------------------------
def test_reads_go_to_chartmogul(fake, twins):
    assert twins.dry.get("ping").body == {"data": "pong!"}
    assert fake.count("GET", r"^/ping$") == 1
    assert twins.attempts[0].dry_run is False and twins.attempts[0].status == 200


# Customers --------------------------------------------------------------------------------
def test_a_new_customer_is_answered_201_in_the_recorded_shape(fake, twins):
    dry, real = twins.both(lambda client, side: client.post("customers", {**CUSTOMER, "data_source_uuid": twins.ds[side]}))
    assert (dry.status, real.status) == (201, 201)
    assert dry.body["uuid"] == "cus_dryrun_1"
    # Keys a dry run cannot know (id, address, currency, billing system, url) are left out; the rest is as answered.
    assert set(real.body) - set(dry.body) == {"id", "address", "chartmogul-url", "billing-system-type", "currency",
                                              "currency-sign"}
    assert masked(dry.body) == {k: v for k, v in masked(real.body).items() if k in dry.body}
    assert dry.body["company"] == "" and dry.body["state"] is None and dry.body["lead_created_at"] == "2024-01-02T03:04:05.000Z"
    assert dry.body["attributes"] == {"custom": {"seats": 3, "renewal": "2025-06-29T22:00:00.000Z"},
                                      "clearbit": {}, "stripe": {}, "tags": ["vip", "Beta"]}


def test_a_duplicate_customer_raises_what_chartmogul_raises(fake, twins):
    twins.seed()
    dry, real = twins.both_refused(
        lambda client, side: client.post("customers", {**CUSTOMER, "data_source_uuid": twins.ds[side]}))
    same_refusal(dry, real)
    assert dry.status == 422 and dry.fields == {"external_id": "The external ID for this customer already exists in our system."}
    lookups = [a for a in twins.attempts if a.method == "GET" and a.path == "customers"]
    assert lookups[0].params is not None and lookups[0].params["external_id"] == "c1"


def test_a_customer_this_dry_run_created_is_a_duplicate_too_and_is_read_from_memory(fake, twins):
    body = {**CUSTOMER, "data_source_uuid": twins.ds["dry"]}
    created = twins.dry.post("customers", body).body
    error = refusal(lambda: twins.dry.post("customers", body))
    assert error.fields == {"external_id": "The external ID for this customer already exists in our system."}
    assert twins.dry.get(f"customers/{created['uuid']}").body == created
    listed = list(twins.dry.paginate("customers", "entries", {"data_source_uuid": twins.ds["dry"], "external_id": "c1"}))
    assert listed == [created]
    assert dry_run_ids_sent(fake) == []
    assert_nothing_written(fake)


def test_a_create_without_external_id_is_refused_as_chartmogul_refuses_it(twins):
    dry, real = twins.both_refused(lambda client, side: client.post("customers", {"data_source_uuid": twins.ds[side]}))
    same_refusal(dry, real)
    assert dry.status == 400


def test_patch_answers_the_customer_with_the_body_applied(twins):
    twins.seed()
    change = {"name": "Acme GmbH", "state": "NY", "zip": "10115", "attributes": {"tags": ["gold"]}}
    dry, real = twins.both(lambda client, side: client.patch(f"customers/{twins.customer[side]}", change))
    assert (dry.status, masked(dry.body)) == (real.status, masked(real.body))
    assert dry.body["state"] is None  # a state is for US addresses (recorded)
    assert masked(twins.dry.get(f"customers/{twins.customer['dry']}").body) == masked(
        twins.real.get(f"customers/{twins.customer['real']}").body)


def test_custom_attributes_and_tags_answer_what_chartmogul_would_hold(twins):
    twins.seed()
    steps: list[tuple[str, str, t.Any]] = [
        ("POST", "custom", {"custom": [{"type": "String", "key": "channel", "value": "ads", "source": "API"},
                                       {"type": "Timestamp", "key": "since", "value": "2024-01-02 03:04:05"}]}),
        ("PUT", "custom", {"custom": {"channel": "partner", "seats": 5}}),
        ("DELETE", "custom", {"custom": ["since", "unknown"]}),
        ("POST", "tags", {"tags": ["VIP", "new"]}),
        ("DELETE", "tags", {"tags": ["beta"]}),
    ]
    for method, kind, body in steps:
        dry, real = twins.both(lambda client, side, m=method, k=kind, b=body: client.request(
            m, f"customers/{twins.customer[side]}/attributes/{k}", body=b))
        assert (dry.status, dry.body) == (real.status, real.body), (method, kind)
    dry_attributes, real_attributes = twins.both(
        lambda client, side: client.get(f"customers/{twins.customer[side]}/attributes"))
    assert dry_attributes.body == real_attributes.body == {
        "tags": ["vip", "new"], "stripe": {}, "custom": {"seats": 5, "renewal": "2025-06-29T22:00:00.000Z",
                                                         "channel": "partner"}}


def test_attribute_writes_to_a_missing_customer_are_refused_as_chartmogul_refuses_them(twins):
    dry, real = twins.both_refused(lambda client, side: client.post("customers/cus_missing/attributes/tags", {"tags": ["x"]}))
    same_refusal(dry, real)
    assert dry.status == 404


def test_delete_answers_204_and_the_customer_is_gone_for_the_rest_of_the_run(fake, twins):
    twins.seed()
    dry, real = twins.both(lambda client, side: client.delete(f"customers/{twins.customer[side]}"))
    assert (dry.status, dry.body) == (real.status, real.body) == (204, None)
    gone, really_gone = twins.both_refused(lambda client, side: client.get(f"customers/{twins.customer[side]}"))
    same_refusal(gone, really_gone)
    assert list(twins.dry.paginate("customers", "entries", {"data_source_uuid": twins.ds["dry"]})) == []
    assert fake.customers[twins.customer["dry"]]["external_id"] == "c1"  # still there: nothing was sent
    missing, really_missing = twins.both_refused(lambda client, side: client.delete("customers/cus_missing"))
    same_refusal(missing, really_missing)


# Plans ------------------------------------------------------------------------------------
def test_a_new_plan_is_answered_201_and_is_a_duplicate_for_the_rest_of_the_run(twins):
    silver = {**PLAN, "external_id": "silver"}
    new, real_new = twins.both(lambda client, side: client.post("plans", {**silver, "data_source_uuid": twins.ds[side]}))
    assert (new.status, masked(new.body)) == (real_new.status, masked(real_new.body))
    assert new.body["uuid"] == "pl_dryrun_1"
    dry, real = twins.both_refused(lambda client, side: client.post("plans", {**silver, "data_source_uuid": twins.ds[side]}))
    same_refusal(dry, real)  # the dry run's own plan in one data source, ChartMogul's in the other
    assert dry.fields == {"external_id": "A plan with this identifier already exists in our system."}


def test_an_existing_plan_is_a_duplicate_and_a_patch_answers_202(twins):
    twins.seed()
    dry, real = twins.both_refused(lambda client, side: client.post("plans", {**PLAN, "data_source_uuid": twins.ds[side]}))
    same_refusal(dry, real)
    patched, real_patched = twins.both(lambda client, side: client.patch(f"plans/{twins.plan[side]}", {"name": "Gold+"}))
    assert (patched.status, patched.body) == (real_patched.status, real_patched.body) == (202, None)
    answered = json.loads(twins.attempts[-1].response_text or "null")  # what ChartMogul's 202 would carry
    assert answered["name"] == "Gold+" and answered["uuid"] == twins.plan["dry"]
    dry_plan, real_plan = twins.both(lambda client, side: client.get(f"plans/{twins.plan[side]}"))
    assert masked(dry_plan.body) == masked(real_plan.body)


def test_a_plan_without_external_id_gets_one_as_chartmogul_gives_it(twins):
    answer = twins.dry.post("plans", {"data_source_uuid": twins.ds["dry"], "name": "X", "interval_count": 1,
                                      "interval_unit": "year"}).body
    assert answer["external_id"] == "dryrun_1" and answer["uuid"] == "pl_dryrun_1"  # recorded: the uuid's tail


# Invoices and transactions --------------------------------------------------------------------
def test_new_invoices_are_answered_201_with_every_invoice_saved(fake, twins):
    twins.seed()
    dry, real = twins.both(lambda client, side: client.post(
        f"import/customers/{twins.customer[side]}/invoices",
        {"invoices": [invoice("i1", twins.plan[side], transactions=("t1",)), invoice("i2", twins.plan[side])]}))
    assert (dry.status, masked(dry.body)) == (real.status, masked(real.body))
    assert [i["uuid"] for i in dry.body["invoices"]] == ["inv_dryrun_1", "inv_dryrun_2"]
    held = twins.dry.get("invoices/inv_dryrun_1").body
    assert masked(held) == masked(twins.real.get(f"invoices/{real.body['invoices'][0]['uuid']}").body)
    listed = list(twins.dry.paginate("invoices", "invoices", {"data_source_uuid": twins.ds["dry"], "external_id": "i2"}))
    assert [i["uuid"] for i in listed] == ["inv_dryrun_2"]
    assert dry_run_ids_sent(fake) == []


def test_a_batch_with_an_existing_invoice_is_refused_as_chartmogul_refuses_it(twins):
    twins.seed(invoices=[invoice("i1", "plan")])
    dry, real = twins.both_refused(lambda client, side: client.post(
        f"import/customers/{twins.customer[side]}/invoices",
        {"invoices": [invoice("i1", twins.plan[side]), invoice("i3", twins.plan[side])]}))
    same_refusal(dry, real)
    entries = dry.body["invoices"]
    assert entries[0]["errors"] == {"external_id": "The external ID for this invoice already exists in our system.",
                                    "line_items.external_id": "The external ID for this line item already exists in our system."}
    assert entries[1]["errors"] == {} and entries[1]["uuid"] == "inv_dryrun_1"  # the others are saved (save_valid)
    # an invoice this dry run saved is a duplicate for the rest of the run
    again = refusal(lambda: twins.dry.post(f"import/customers/{twins.customer['dry']}/invoices",
                                           {"invoices": [invoice("i3", twins.plan["dry"])]}))
    assert again.body["invoices"][0]["errors"] == entries[0]["errors"]


def test_invoices_for_a_missing_customer_are_refused_as_chartmogul_refuses_them(twins):
    dry, real = twins.both_refused(lambda client, side: client.post(
        "import/customers/cus_missing/invoices", {"invoices": [invoice("i1", "pl_x")]}))
    same_refusal(dry, real)
    assert (dry.status, dry.message) == (404, "Invoice not found")


def test_transactions_new_and_already_taken(fake, twins):
    twins.seed(invoices=[invoice("i1", "plan", transactions=("t1",))])
    uuids = {side: twins.real.paginate("invoices", "invoices", {"data_source_uuid": ds, "external_id": "i1"})
             for side, ds in twins.ds.items()}
    invoice_uuid = {side: next(found)["uuid"] for side, found in uuids.items()}
    fake.clear_requests()
    taken = {"type": "refund", "date": "2024-03-03", "result": "successful", "external_id": "t1"}
    dry, real = twins.both_refused(
        lambda client, side: client.post(f"import/invoices/{invoice_uuid[side]}/transactions", taken))
    same_refusal(dry, real)
    assert dry.fields == {"external_id": "has already been taken"}
    new = {**taken, "external_id": "t2", "amount_in_cents": 500}
    added, real_added = twins.both(
        lambda client, side: client.post(f"import/invoices/{invoice_uuid[side]}/transactions", new))
    assert (added.status, masked(added.body)) == (real_added.status, masked(real_added.body))
    # the invoice now holds it, for a later read and a later write alike
    dry_invoice, real_invoice = twins.both(lambda client, side: client.get(f"invoices/{invoice_uuid[side]}"))
    assert masked(dry_invoice.body) == masked(real_invoice.body)
    again = refusal(lambda: twins.dry.post(f"import/invoices/{invoice_uuid['dry']}/transactions", new))
    assert again.fields == {"external_id": "has already been taken"}


def test_a_transaction_of_an_invoice_this_dry_run_created_is_never_sent(fake, twins):
    twins.seed()
    saved = twins.dry.post(f"import/customers/{twins.customer['dry']}/invoices",
                           {"invoices": [invoice("i9", twins.plan["dry"], transactions=("t9",))]}).body["invoices"][0]
    path = f"import/invoices/{saved['uuid']}/transactions"
    taken = refusal(lambda: twins.dry.post(path, {"type": "payment", "date": "2024-03-04", "result": "successful",
                                                  "external_id": "t9"}))
    assert taken.fields == {"external_id": "has already been taken"}
    added = twins.dry.post(path, {"type": "payment", "date": "2024-03-04", "result": "failed", "external_id": "t10"})
    assert added.status == 201 and added.body["uuid"].startswith("tr_dryrun_")
    assert dry_run_ids_sent(fake) == []
    assert_nothing_written(fake)


def test_deleting_an_invoice_answers_204(fake, twins):
    twins.seed(invoices=[invoice("i1", "plan")])
    invoice_uuid = next(twins.dry.paginate("invoices", "invoices", {"data_source_uuid": twins.ds["dry"]}))["uuid"]
    assert twins.dry.delete(f"invoices/{invoice_uuid}").status == 204
    assert refusal(lambda: twins.dry.get(f"invoices/{invoice_uuid}")).status == 404
    assert list(twins.dry.paginate("invoices", "invoices", {"data_source_uuid": twins.ds["dry"]})) == []
    assert_nothing_written(fake)


# Everything else, and what the observers see ---------------------------------------------------
def test_any_other_write_is_answered_200_with_its_body(fake, twins):
    body = {"from": {"customer_uuid": "cus_a"}, "into": {"customer_uuid": "cus_b"}}
    answer = twins.dry.post("customers/merges", body)
    assert (answer.status, answer.body) == (200, body)
    assert_nothing_written(fake)


def test_observers_and_the_request_log_see_each_write_as_a_dry_run(fake, twins, tmp_path):
    log = RequestLog(tmp_path / "requests.jsonl")
    twins.dry.observers.append(log)
    checked: list[str] = []
    twins.dry.preflight = lambda: checked.append("checked")
    created = twins.dry.post("customers", {**CUSTOMER, "data_source_uuid": twins.ds["dry"]})
    refusal(lambda: twins.dry.post("customers", {**CUSTOMER, "data_source_uuid": twins.ds["dry"]}))
    log.close()
    assert checked == ["checked"]  # the account check runs before the first write, as in a real run
    writes = [a for a in twins.attempts if a.method != "GET"]
    assert [(a.method, a.path, a.dry_run, a.status, a.error) for a in writes] == [
        ("POST", "customers", True, None, None),
        ("POST", "customers", True, None, "ChartMogul would refuse it: HTTP 422"),
    ]
    assert json.loads(writes[0].response_text or "") == created.body
    assert all(not a.dry_run for a in twins.attempts if a.method == "GET")
    logged = [json.loads(line) for line in (tmp_path / "requests.jsonl").read_text().splitlines()]
    assert [(e["method"], e["dry_run"]) for e in logged if e["method"] != "GET"] == [("POST", True), ("POST", True)]
    assert_nothing_written(fake)


def test_the_write_is_logged_as_before(twins, caplog):
    caplog.set_level("INFO", logger="target_chartmogul.api.dry_run")
    twins.dry.post("plans", {**PLAN, "data_source_uuid": twins.ds["dry"]})
    line = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("DRY RUN: would POST plans "))
    assert json.loads(line.removeprefix("DRY RUN: would POST plans ")) == {**PLAN, "data_source_uuid": twins.ds["dry"]}


def test_reads_about_a_customer_this_dry_run_created_come_from_its_memory(fake, twins):
    twins.seed()
    body = {"data_source_uuid": twins.ds["dry"], "external_id": "new", "email": "New@Example.test"}
    customer = twins.dry.post("customers", body).body["uuid"]
    saved = twins.dry.post(f"import/customers/{customer}/invoices",
                           {"invoices": [invoice("i5", twins.plan["dry"])]}).body["invoices"][0]
    listed = twins.dry.get(f"import/customers/{customer}/invoices").body
    assert listed == {"customer_uuid": customer, "invoices": [saved], "cursor": None, "has_more": False}
    by_customer = list(twins.dry.paginate("invoices", "invoices", {"customer_uuid": customer}))
    assert [(i["uuid"], i["customer_uuid"]) for i in by_customer] == [(saved["uuid"], customer)]
    # ChartMogul's search finds no such email (404); the dry run's own customer is found all the same
    found = list(twins.dry.paginate("customers/search", "entries", {"email": "new@example.test"}))
    assert [c["uuid"] for c in found] == [customer]
    assert dry_run_ids_sent(fake) == []
    assert_nothing_written(fake)
