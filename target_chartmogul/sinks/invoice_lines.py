"""Lines from a line_items stream: mapped in their invoice's currency and merged into the lines ChartMogul holds.

Shared by the invoices sink (a header whose lines came in their own stream) and the line_items
sink (lines whose header did not come in this run). A header waits (`RecordWaiting`) while its
lines may still arrive.
"""

from __future__ import annotations

import typing as t

from target_chartmogul.errors import RecordRejected
from target_chartmogul.mapping.invoices import InvoicePayload, map_line_item
from target_chartmogul.memory.references import Unresolved

if t.TYPE_CHECKING:
    from target_chartmogul.run.context import RunContext

Obj = dict[str, t.Any]


def map_stream_lines(context: RunContext, payload: InvoicePayload, parts: list[t.Any]) -> list[tuple[t.Any, Obj | None]]:
    """(part, body or None when the line was deleted) of each line, plans resolved.

    A line ChartMogul would refuse refuses its whole invoice (importing it without the
    line would be wrong): RecordRejected names the line.
    """
    mapped: list[tuple[t.Any, Obj | None]] = []
    for part in parts:
        if part.deleted:
            mapped.append((part, None))
            continue
        body, plan_external_id = line_body(part, payload.body["currency"])
        body.setdefault("external_id", part.external_id)
        if plan_external_id:
            plan = context.refs.require("plan", payload.data_source_uuid, plan_external_id,
                                        field=f"line_items[{part.external_id}].plan_external_id")
            body["plan_uuid"] = plan["uuid"]
        mapped.append((part, body))
    return mapped


def line_body(part: t.Any, currency_code: str) -> tuple[Obj, str | None]:
    """A stream line's body in its invoice's currency, and the plan it names by external id.

    A line is checked on arrival without a currency (amounts only parsed); one whose amounts
    have more decimals than this currency has is rejected here with its own field, and refuses
    its invoice (RecordRejected naming the line), as a line refused on arrival does.
    """
    if part.refused is not None:
        raise RecordRejected(f"its line {part.external_id} was refused: {part.refused}",
                             field=f"line_items[{part.external_id}]")
    try:
        return map_line_item(part.record, "", unit=part.unit, currency_code=currency_code)
    except RecordRejected as exc:
        part.refused = exc.reason
        part.owner.reject(part.record, exc.reason, field=exc.field)
    # the same refusal again, named in the invoice
    return map_line_item(part.record, f"line_items[{part.external_id}].", unit=part.unit, currency_code=currency_code)


def merged_lines(held_lines: list[Obj], mapped: list[tuple[t.Any, Obj | None]]) -> list[Obj]:
    """ChartMogul's lines with the arrived ones replacing theirs (by external id), added, or removed.

    A deleted line notes whether ChartMogul's invoice had it (it then counts `deleted`, else `unchanged`).
    """
    held_ids = {str(line.get("external_id")) for line in held_lines}
    for part, body in mapped:
        if body is None:
            part.held = part.external_id in held_ids
    changed = {part.external_id: body for part, body in mapped}
    lines = [changed.pop(str(line.get("external_id")), line) if line.get("external_id") in changed else line
             for line in held_lines]
    lines.extend(body for body in changed.values() if body is not None)
    return [line for line in lines if line is not None]


class RecordWaiting(Unresolved):
    """A header whose lines may still arrive (a line_items stream is still open): it waits."""
