"""Customer tags: the loader removes only the tags it set (managed), or mirrors the column (exact).

Real customers carry tags ChartMogul sets itself (`auto-churned-delinquent-subscription`
after an invoice import, `merged-customer`) and tags people add in the app (recorded).
Whether ChartMogul lowercases tags is recorded nowhere: the fake plays both.
"""

from __future__ import annotations

import typing as t

import pytest

from tests.billing import INVOICES, billing_config, customers_messages, invoices_messages, plans_messages
from tests.helpers import fresh_memory, write_calls
from tests.running import run_target
from tests.singer_messages import customers_stream

STREAM = "public-customers"
AUTO_TAG = "auto-churned-delinquent-subscription"


def tags_of(fake: t.Any, ds: str, external_id: str) -> list[str]:
    found = fake.find_customers(ds, external_id)
    assert len(found) == 1
    return sorted(found[0]["attributes"]["tags"])


def row(tags: list[str]) -> dict[str, t.Any]:
    return {"external_id": "c-1", "name": "Tagged Ltd", "tags": tags}


def config_with(base_config: dict[str, t.Any], mode: str | None) -> dict[str, t.Any]:
    options = {} if mode is None else {"tags_mode": mode}
    return {**base_config, "streams": {STREAM: options}}


@pytest.mark.parametrize("tag_case", ["keep", "lower"])
def test_managed_keeps_tags_set_by_chartmogul_and_by_people(fake, ds, base_config, tag_case):
    fake.tag_case = tag_case
    config = config_with(base_config, None)  # managed is the default
    run_target(config, customers_stream(STREAM, [row(["VIP", "eu"])]))
    uuid = fake.find_customers(ds, "c-1")[0]["uuid"]
    fake.store.tag_in_app(uuid, "merged-customer", AUTO_TAG, "champion")
    spelt = str.lower if tag_case == "lower" else str

    result = run_target(config, customers_stream(STREAM, [row(["VIP"])]))

    assert tags_of(fake, ds, "c-1") == sorted(spelt(tag) for tag in ["VIP", "merged-customer", AUTO_TAG, "champion"])
    deletes = [r for r in write_calls(fake) if r.method == "DELETE"]
    assert [r.body for r in deletes] == [{"tags": ["eu"]}]
    assert result.counts(STREAM)["updated"] == 1


def test_exact_mirrors_the_column_and_removes_every_other_tag(fake, ds, base_config):
    config = config_with(base_config, "exact")
    run_target(config, customers_stream(STREAM, [row(["vip", "eu"])]))
    uuid = fake.find_customers(ds, "c-1")[0]["uuid"]
    fake.store.tag_in_app(uuid, "merged-customer", AUTO_TAG)

    run_target(config, customers_stream(STREAM, [row(["vip"])]))

    assert tags_of(fake, ds, "c-1") == ["vip"]


def test_an_invoice_import_tag_survives_tag_changes(fake, ds, base_config):
    fake.auto_tags = True
    config = billing_config(base_config)
    customers = [{**c, "tags": ["plan-a"]} for c in
                 [{"external_id": "acct-1", "name": "Acme GmbH", "email": "billing@acme.test", "country": "DE"}]]
    run_target(config, [*plans_messages(), *customers_messages(customers), *invoices_messages(INVOICES[:1])])
    assert tags_of(fake, ds, "acct-1") == sorted(["plan-a", AUTO_TAG])

    run_target(config, customers_messages([{**customers[0], "tags": ["plan-b"]}]))

    assert tags_of(fake, ds, "acct-1") == sorted(["plan-b", AUTO_TAG])


@pytest.mark.parametrize("tag_case", ["keep", "lower"])
def test_tags_compare_case_insensitively_so_an_unchanged_rerun_writes_nothing(fake, ds, base_config, tmp_path,
                                                                             tag_case):
    fake.tag_case = tag_case
    run_target(base_config, customers_stream(STREAM, [row(["VIP", "Eu"])]))
    fake.clear_requests()

    result = run_target(fresh_memory(base_config, tmp_path, "lost"), customers_stream(STREAM, [row(["vip", "EU"])]))

    assert write_calls(fake) == []
    assert result.counts(STREAM)["unchanged"] == 1


def test_tags_are_sent_as_the_record_has_them(fake, ds, base_config):
    run_target(base_config, customers_stream(STREAM, [row(["VIP", "vip", "Eu "])]))

    creates = [r for r in write_calls(fake) if r.method == "POST" and r.path == "/customers"]
    assert creates[0].body["attributes"]["tags"] == ["VIP", "Eu"]
    assert tags_of(fake, ds, "c-1") == ["Eu", "VIP"]
