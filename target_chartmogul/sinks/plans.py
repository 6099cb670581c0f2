"""Plans: upsert by external_id within the data source (or insert only)."""

from __future__ import annotations

import typing as t

from target_chartmogul.api.errors import APIError, is_already_exists
from target_chartmogul.errors import RecordRejected
from target_chartmogul.mapping.plans import PlanPayload, map_plan
from target_chartmogul.memory.ledger import Entry
from target_chartmogul.sinks.base import ChartMogulSink
from target_chartmogul.values import compare

Record = dict[str, t.Any]


class PlansSink(ChartMogulSink):
    """Writes a stream into ChartMogul plans, which subscription line items reference."""

    object_name = "plans"

    def write_records(self, records: list[Record]) -> None:
        """Map, then write concurrently."""
        items: list[tuple[Record, PlanPayload]] = []
        for record in records:
            try:
                items.append((record, map_plan(record, self.config.get("data_source_uuid"))))
            except RecordRejected as exc:
                self.reject(record, exc.reason, field=exc.field)
        for ds in sorted({plan.data_source_uuid for _, plan in items}):
            self.context.refs.holdings.ensure("plan", ds)  # a lost memory: read the data source's plans once
        self.known = self.memory_lookup((p.data_source_uuid, p.external_id) for _, p in items)
        self.run_each(items, lambda item: self.write_remembered(item[1]), records_of=lambda item: [item[0]])

    def write_remembered(self, plan: PlanPayload) -> str:
        """Skip a plan the memory says is current; bring one ChartMogul holds in line; else create it."""
        entry = self.known.get((plan.data_source_uuid, plan.external_id))
        if self.is_current(entry, plan.body()):
            return "unchanged"
        outcome: str | None = None
        if entry is not None and entry.uuid:
            outcome = "already_present" if self.settings.mode == "insert" else self.update_existing(entry, plan)
        if outcome is None:
            outcome = self.write_one(plan)
        held = self.context.refs.cached("plan", plan.data_source_uuid, plan.external_id) or {}
        uuid = held.get("uuid") or (entry.uuid if entry else None)
        self.remember(
            plan.data_source_uuid,
            plan.external_id,
            uuid=uuid,
            payload=None if outcome == "already_present" else plan.body(),
        )
        return outcome

    def update_existing(self, entry: Entry, plan: PlanPayload) -> str | None:
        """A plan the memory knows: PATCH a change it proves, compare one it only adopted from ChartMogul.

        None when ChartMogul no longer has it (then it is created).
        """
        uuid = str(entry.uuid)
        holdings = self.context.refs.holdings
        held = holdings.get("plan", plan.data_source_uuid, plan.external_id)
        holdings.drop("plan", plan.data_source_uuid, plan.external_id)  # stale once written
        if held is None and entry.payload_hash is not None:
            return self.update_known(uuid, plan)
        if held is None:
            try:
                held = self.client.get(f"plans/{uuid}").body or {}
            except APIError as exc:
                if exc.status != 404:
                    raise
                self.context.refs.forget("plan", plan.data_source_uuid, plan.external_id, gone=True)
                return None
        changes = compare.plan_changes(plan.body(), held)
        if changes:
            self.client.patch(f"plans/{uuid}", changes)
        self.context.refs.remember("plan", plan.data_source_uuid, plan.external_id, {"uuid": uuid})
        return "updated" if changes else "unchanged"

    def update_known(self, uuid: str, plan: PlanPayload) -> str | None:
        """PATCH a plan by its remembered uuid; None when ChartMogul no longer has it."""
        fields = {"name": plan.name, "interval_count": plan.interval_count, "interval_unit": plan.interval_unit}
        try:
            self.client.patch(f"plans/{uuid}", fields)
        except APIError as exc:
            if exc.status != 404:
                raise
            self.context.refs.forget("plan", plan.data_source_uuid, plan.external_id, gone=True)
            return None
        self.context.refs.remember("plan", plan.data_source_uuid, plan.external_id, {"uuid": uuid})
        return "updated"

    def write_one(self, plan: PlanPayload) -> str:
        """Create the plan; when it exists, bring name and interval in line."""
        refs = self.context.refs
        try:
            response = self.client.post("plans", plan.body())
        except APIError as exc:
            if not is_already_exists(exc):
                raise
            held = refs.held("plan", plan.data_source_uuid, plan.external_id, fresh=True)
            if held is None:
                msg = f"ChartMogul says plan {plan.external_id!r} exists but no such plan was found"
                raise RecordRejected(msg, field="external_id", status=exc.status) from None
            return self._bring_in_line(plan, held, ours=exc.attempts > 1)
        refs.remember("plan", plan.data_source_uuid, plan.external_id, response.body)
        refs.holdings.put("plan", plan.data_source_uuid, plan.external_id, response.body or {})
        return "created"

    def _bring_in_line(self, plan: PlanPayload, held: dict[str, t.Any], *, ours: bool) -> str:
        """An existing plan: PATCH what differs (upsert), or leave it (insert)."""
        self.context.refs.remember("plan", plan.data_source_uuid, plan.external_id, held)
        if self.settings.mode == "insert":
            return "created" if ours else "already_present"
        changes = compare.plan_changes(plan.body(), held)
        if changes:
            self.client.patch(f"plans/{held['uuid']}", changes)
        return "created" if ours else ("updated" if changes else "unchanged")
