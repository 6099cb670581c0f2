"""Plan records to ChartMogul plan payloads."""

from __future__ import annotations

import dataclasses
import typing as t

from target_chartmogul.errors import RecordRejected
from target_chartmogul.mapping.common import required_data_source, required_text
from target_chartmogul.values.numbers import integer
from target_chartmogul.values.text import choice

INTERVAL_UNITS = ("day", "month", "year")


@dataclasses.dataclass
class PlanPayload:
    """One plan as ChartMogul holds it."""

    data_source_uuid: str
    external_id: str
    name: str
    interval_count: int
    interval_unit: str

    def body(self) -> dict[str, t.Any]:
        """Body of POST /plans."""
        return dataclasses.asdict(self)



def map_plan(record: t.Mapping[str, t.Any], default_data_source_uuid: str | None) -> PlanPayload:
    """Build the payload, or raise RecordRejected naming the field."""
    ds = required_data_source(record, default_data_source_uuid)
    if record.get("interval_count") is None:
        raise RecordRejected("field 'interval_count' is required", field="interval_count")
    if record.get("interval_unit") is None:
        raise RecordRejected("field 'interval_unit' is required", field="interval_unit")
    return PlanPayload(
        data_source_uuid=ds,
        external_id=required_text(record, "external_id"),
        name=required_text(record, "name"),
        interval_count=integer(record["interval_count"], "interval_count", minimum=1),
        interval_unit=choice(record["interval_unit"], "interval_unit", INTERVAL_UNITS),
    )
