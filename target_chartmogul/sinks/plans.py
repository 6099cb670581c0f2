"""Plans: upsert by external_id within the data source (or insert only).

ChartMogul's usual resource, as the table describes it (a PATCH answers 202 with no body):
the lifecycle's defaults are the plan's whole lifecycle.
"""

from __future__ import annotations

import typing as t

from target_chartmogul.mapping.plans import PlanPayload, map_plan
from target_chartmogul.sinks.lifecycle import Rules

Record = dict[str, t.Any]


class PlanRules(Rules[PlanPayload]):
    """Plans, which subscription line items reference."""

    kind = "plan"

    def map(self, record: Record) -> PlanPayload:
        """`mapping.plans`."""
        return map_plan(record, self.default_data_source)
