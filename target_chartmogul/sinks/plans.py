"""Plans: upsert by external_id within the data source (or insert only)."""

from __future__ import annotations

import typing as t

from target_chartmogul.errors import APIError, RecordRejected, is_already_exists
from target_chartmogul.mapping.plans import PlanPayload, map_plan
from target_chartmogul.sinks.base import ChartMogulSink

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
        self.known = self.memory_lookup((p.data_source_uuid, p.external_id) for _, p in items)
        self.run_each(items, lambda item: self.write_remembered(item[1]), records_of=lambda item: [item[0]])

    def write_remembered(self, plan: PlanPayload) -> str:
        """Skip a plan the memory says is current; PATCH one it knows; else create it."""
        entry = self.known.get((plan.data_source_uuid, plan.external_id))
        if self.is_current(entry, plan.body()):
            return "unchanged"
        outcome: str | None = None
        if entry is not None and entry.uuid and self.settings.mode != "insert" and not self.client.dry_run:
            outcome = self.update_known(entry.uuid, plan)
        if outcome is None:
            outcome = self.write_one(plan)
        held = self.owner.refs.cached("plan", plan.data_source_uuid, plan.external_id) or {}
        uuid = held.get("uuid") or (entry.uuid if entry else None)
        self.remember(
            plan.data_source_uuid,
            plan.external_id,
            uuid=uuid,
            payload=None if outcome == "already_present" else plan.body(),
        )
        return outcome

    def update_known(self, uuid: str, plan: PlanPayload) -> str | None:
        """PATCH a plan by its remembered uuid; None when ChartMogul no longer has it."""
        fields = {"name": plan.name, "interval_count": plan.interval_count, "interval_unit": plan.interval_unit}
        try:
            self.client.patch(f"plans/{uuid}", fields)
        except APIError as exc:
            if exc.status != 404:
                raise
            self.owner.refs.forget("plan", plan.data_source_uuid, plan.external_id, gone=True)
            return None
        self.owner.refs.remember("plan", plan.data_source_uuid, plan.external_id, {"uuid": uuid})
        return "updated"

    def write_one(self, plan: PlanPayload) -> str:
        """Create the plan; when it exists, bring name and interval in line."""
        if self.client.dry_run:  # nothing is written, so ask first what a create would meet
            held = self.owner.refs.find("plan", plan.data_source_uuid, plan.external_id, fresh=True)
            if held is None:
                self.client.post("plans", plan.body())
                return "created"
            changes = plan.differs_from(held)
            if changes and self.settings.mode != "insert":
                self.client.patch(f"plans/{held['uuid']}", changes)
            return ("updated" if changes else "unchanged") if self.settings.mode != "insert" else "already_present"
        try:
            response = self.client.post("plans", plan.body())
        except APIError as exc:
            if not is_already_exists(exc):
                raise
            ours = exc.attempts > 1
            if self.settings.mode == "insert":
                return "created" if ours else "already_present"
            held = self.owner.refs.find("plan", plan.data_source_uuid, plan.external_id, fresh=True)
            if held is None:
                msg = f"ChartMogul says plan {plan.external_id!r} exists but no such plan was found"
                raise RecordRejected(msg, field="external_id", status=exc.status) from None
            changes = plan.differs_from(held)
            if changes:
                self.client.patch(f"plans/{held['uuid']}", changes)
                self.owner.refs.remember("plan", plan.data_source_uuid, plan.external_id, held)
            return "created" if ours else ("updated" if changes else "unchanged")
        self.owner.refs.remember("plan", plan.data_source_uuid, plan.external_id, response.body)
        return "created"
