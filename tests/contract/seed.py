"""Put the fake into the state a recording assumes, built from the recorded answers themselves.

Most recordings start mid-story (the customer or invoice already exists in the recorder's
account). To replay them, the seeder recreates each object the recording shows through
the fake's HTTP API, sending only the fields that were set, and maps the recorded ids to
the fake's (``Replayer.alias``/``learn``) so the replayed requests address the copies.
"""

from __future__ import annotations

import itertools
import typing as t

from tests.contract.replay import Replayer

JSON = dict[str, t.Any]
_counter = itertools.count(1)


def _custom_type(value: t.Any) -> str:
    if isinstance(value, bool):
        return "Boolean"
    if isinstance(value, int):
        return "Integer"
    if isinstance(value, float):
        return "Decimal"
    return "String"


class Seeder:
    """Creates recorded objects in the fake and registers their id mappings."""

    def __init__(self, replay: Replayer) -> None:
        self.replay = replay
        self.fake = replay.fake

    def _post(self, path: str, body: JSON, status: int = 201) -> t.Any:
        response = self.replay.session.post(self.replay.url + path, json=body, auth=(self.replay.key, ""), timeout=10)
        assert response.status_code == status, f"seeding {path}: {response.status_code} {response.text}"
        return response.json() if response.content else None

    def data_source(self, ds_uuid: str) -> str:
        """A data source with the recorded uuid itself (the fake lets us pick it)."""
        if ds_uuid not in self.fake.data_sources:
            self.fake.add_data_source(f"seeded {ds_uuid}", uuid=ds_uuid)
        return ds_uuid

    def plan(self, recorded: JSON) -> str:
        """A plan like the recorded one; returns the fake's uuid."""
        ds = self.data_source(recorded["data_source_uuid"])
        body = {k: recorded[k] for k in ("name", "interval_count", "interval_unit", "external_id")}
        created = self._post("/plans", {**body, "data_source_uuid": ds})
        return self.replay.alias(recorded["uuid"], created["uuid"])

    def plan_uuid(self, recorded_uuid: str, ds: str) -> str:
        """The fake plan standing for a recorded plan uuid, made up if not seen yet."""
        if recorded_uuid in self.replay.ids:
            return self.replay.ids[recorded_uuid]
        body = {"name": "Seeded", "interval_count": 1, "interval_unit": "month", "external_id": f"seed-plan-{next(_counter)}"}
        return self.replay.alias(recorded_uuid, self._post("/plans", {**body, "data_source_uuid": self.data_source(ds)})["uuid"])

    def customer(self, recorded: JSON) -> str:
        """A customer like the recorded one: set fields, tags, typed custom attributes,
        merged external ids, and (when it has a customer-since) a subscription invoice.
        """
        ds = self.data_source(recorded["data_source_uuid"])
        body: JSON = {"data_source_uuid": ds, "external_id": recorded["external_id"]}
        for name in ("name", "email", "company", "city", "website_url"):
            if recorded.get(name):
                body[name] = recorded[name]
        for name in ("country", "state", "zip", "lead_created_at", "free_trial_started_at", "owner"):
            if recorded.get(name) is not None:
                body[name] = recorded[name]
        attributes = recorded.get("attributes") or {}
        custom = [{"type": _custom_type(v), "key": k, "value": v} for k, v in (attributes.get("custom") or {}).items()]
        body["attributes"] = {"tags": list(attributes.get("tags") or []), "custom": custom}
        uuid = self.replay.alias(recorded["uuid"], self._post("/customers", body)["uuid"])
        pairs = list(zip(recorded.get("external_ids") or [], recorded.get("data_source_uuids") or [], strict=False))
        for external_id, other_ds in pairs:
            if external_id == recorded["external_id"]:
                continue
            extra = self._post("/customers", {"data_source_uuid": self.data_source(other_ds), "external_id": external_id})
            merge = {"from": {"customer_uuid": extra["uuid"]}, "into": {"customer_uuid": uuid}}
            self._post("/customers/merges", merge, status=202)
        if recorded.get("customer-since"):
            self.subscribe(uuid, ds, recorded["customer-since"])
        return uuid

    def subscribe(self, customer_uuid: str, ds: str, date: str) -> JSON:
        """Import one subscription invoice dated ``date`` (makes the customer Active)."""
        n = next(_counter)
        plan = self.plan_uuid(f"seed-plan-for-{ds}", ds)
        item = {
            "type": "subscription",
            "subscription_external_id": f"seed-sub-{n}",
            "plan_uuid": plan,
            "service_period_start": date,
            "service_period_end": "2100-01-01T00:00:00Z",
            "amount_in_cents": 1000,
        }
        invoice = {"external_id": f"seed-inv-{n}", "date": date, "currency": "USD", "line_items": [item]}
        return self._post(f"/import/customers/{customer_uuid}/invoices", {"invoices": [invoice]})["invoices"][0]

    def plain_customer(self, recorded_uuid: str, ds: str, external_id: str, **fields: t.Any) -> str:
        """A customer standing for a recorded uuid whose answer the recording does not show."""
        body = {"data_source_uuid": self.data_source(ds), "external_id": external_id, **fields}
        return self.replay.alias(recorded_uuid, self._post("/customers", body)["uuid"])

    def invoice(self, recorded: JSON, customer_uuid: str, ds: str) -> JSON:
        """Import an invoice like the recorded answer shows it; maps its invoice, line item and transaction ids."""
        items = []
        for li in recorded["line_items"]:
            item: JSON = {"type": li["type"], "amount_in_cents": li["amount_in_cents"], "quantity": li["quantity"]}
            if li["type"] != "one_time":
                item["plan_uuid"] = self.plan_uuid(li["plan_uuid"], ds)
                for name in ("subscription_external_id", "service_period_start", "service_period_end", "prorated"):
                    item[name] = li[name]
            for name in ("external_id", "description", "proration_type", "subscription_set_external_id", "event_order"):
                if li.get(name) is not None:
                    item[name] = li[name]
            for name in ("discount_code", "discount_amount_in_cents", "tax_amount_in_cents", "transaction_fees_in_cents"):
                if li.get(name):
                    item[name] = li[name]
            for name in ("account_code", "transaction_fees_currency", "discount_description"):
                if li.get(name):
                    item[name] = li[name]
            items.append(item)
        transactions = []
        for tx in recorded["transactions"]:
            body = {"type": tx["type"], "date": tx["date"], "result": tx["result"]}
            for name in ("external_id", "amount_in_cents", "transaction_fees_in_cents", "transaction_fees_currency"):
                if tx.get(name) is not None:
                    body[name] = tx[name]
            transactions.append(body)
        invoice: JSON = {k: recorded[k] for k in ("external_id", "date", "currency")}
        if recorded.get("due_date"):
            invoice["due_date"] = recorded["due_date"]
        invoice.update(line_items=items, transactions=transactions)
        answer = self._post(f"/import/customers/{customer_uuid}/invoices", {"invoices": [invoice]})["invoices"][0]
        self.replay.learn(recorded, answer)
        return t.cast("JSON", answer)
