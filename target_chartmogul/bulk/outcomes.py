"""Reading a finished import's answer: which entries landed, which failed (and why), which it does not say.

The status answer's shape is known only from client libraries' hand-written mocks, which
disagree (chartmogul-python: `status_details` keyed by "plans" and by each customer external
id, with a `status` per object kind; chartmogul-ruby: `processed_count` and `error_count`),
and how a failed object is described is not recorded anywhere. So:

- a kind reported in any status other than an imported one fails; when its detail names
  objects (`errors: [{external_id, …}]`) only those fail, else all of that customer's objects
  of that kind; the reason quotes ChartMogul's detail verbatim, whatever its shape;
- a failure that says the external id is taken ("already …") is not a refusal of the data:
  the entry is written through REST, which compares with what ChartMogul holds;
- an entry the answer does not mention (no details, errors counted but not named) is
  unsure, and also goes through REST: nothing is counted as landed that was not confirmed;
- a whole import that ends in any status but completed fails every entry, with its detail.
"""

from __future__ import annotations

import dataclasses
import typing as t

from target_chartmogul.bulk.entries import Entry
from target_chartmogul.values.encoding import dumps

Obj = dict[str, t.Any]
IN_PROGRESS = frozenset({"queued", "pending", "processing", "in_progress", "running", "importing", "started"})
DONE = frozenset({"imported", "completed", "complete", "success", "succeeded", "ok", "processed", "created", "updated"})


@dataclasses.dataclass
class Outcome:
    """Per entry index: landed, failed (with the reason and the field it names, if any), or unsure."""

    landed: list[int] = dataclasses.field(default_factory=list)
    failed: dict[int, tuple[str, str | None]] = dataclasses.field(default_factory=dict)
    unsure: list[int] = dataclasses.field(default_factory=list)


def status_of(answer: t.Any) -> str:
    """The import's status, lower case ("" when the answer has none)."""
    return str(answer.get("status") or "").strip().lower() if isinstance(answer, dict) else ""


def finished(answer: t.Any) -> bool:
    """Whether the import is no longer queued or processing."""
    status = status_of(answer)
    return bool(status) and status not in IN_PROGRESS


def _is_done(detail: t.Any) -> bool:
    status = detail.get("status") if isinstance(detail, dict) else detail
    return str(status or "").strip().lower() in DONE


def _named(detail: Obj) -> dict[str, t.Any] | None:
    """External id -> its errors, when the detail names the failed objects."""
    errors = detail.get("errors")
    if not isinstance(errors, list):
        return None
    named = {str(item["external_id"]): item.get("errors", item) for item in errors
             if isinstance(item, dict) and item.get("external_id") is not None}
    return named if named or not errors else None


def _taken(detail: t.Any) -> bool:
    return "already" in dumps(detail).lower()


def read(import_id: str, answer: Obj, entries: list[Entry]) -> Outcome:
    """The outcome of each entry (one whose failure says only that its external id is taken is unsure)."""
    outcome = Outcome()
    status = status_of(answer)
    details = answer.get("status_details")
    details = details if isinstance(details, dict) else {}
    if status not in ("completed", "complete"):
        what = {k: v for k, v in answer.items() if k not in ("id", "data_source_uuid", "created_at", "updated_at")}
        reason = f"ChartMogul's bulk import {import_id} ended '{status}': {dumps(what)}"
        outcome.failed = {index: (reason, None) for index in range(len(entries))}
        return outcome
    errors_counted = answer.get("error_count")
    for index, entry in enumerate(entries):
        detail = details.get(entry.customer)
        if not isinstance(detail, dict):
            clean = not details and isinstance(errors_counted, int) and errors_counted == 0
            (outcome.landed if clean else outcome.unsure).append(index)
            continue
        failure = _failure(import_id, entry, detail)
        if failure is None:
            outcome.landed.append(index)
        elif _taken(failure[1]):
            outcome.unsure.append(index)
        else:
            outcome.failed[index] = (failure[0], _field(failure[1]))
    _with_parents(outcome, entries)
    return outcome


def _failure(import_id: str, entry: Entry, detail: Obj) -> tuple[str, t.Any] | None:
    """(reason, ChartMogul's detail) when any object of the entry failed."""
    for kind, external_id in entry.objects:
        kind_detail = detail.get(kind)
        if kind_detail is None or _is_done(kind_detail):
            continue
        named = _named(kind_detail) if isinstance(kind_detail, dict) else None
        if named is not None:
            if external_id not in named:
                continue
            return _reason(import_id, kind, external_id, named[external_id]), named[external_id]
        return _reason(import_id, kind, external_id, kind_detail), kind_detail
    if not _is_done(detail) and not any(detail.get(kind) is not None for kind, _ in entry.objects):
        return _reason(import_id, "customer", entry.customer, detail), detail
    return None


def _field(detail: t.Any) -> str | None:
    """The field a failure names: the first key of an errors object."""
    errors = detail.get("errors", detail) if isinstance(detail, dict) else None
    if isinstance(errors, dict):
        named = [key for key in errors if key != "status"]
        return str(named[0]) if named else None
    return None


def _reason(import_id: str, kind: str, external_id: str, detail: t.Any) -> str:
    return f"ChartMogul's bulk import {import_id} failed {kind} {external_id}: {dumps(detail)}"


def _with_parents(outcome: Outcome, entries: list[Entry]) -> None:
    """An entry whose parent failed fails too; one whose parent is unsure is unsure."""
    for index, entry in enumerate(entries):
        parent = entry.parent
        if parent is None or index in outcome.failed:
            continue
        if parent in outcome.failed:
            _move(outcome, index)
            outcome.failed[index] = (f"its invoice was refused: {outcome.failed[parent][0]}", "invoice_external_id")
        elif parent in outcome.unsure and index not in outcome.unsure:
            _move(outcome, index)
            outcome.unsure.append(index)
    # a failed or unsure child makes its parent incomplete: the invoice is not as the records say
    for index, entry in enumerate(entries):
        parent = entry.parent
        if parent is not None and index in outcome.failed and parent in outcome.landed:
            outcome.landed.remove(parent)
            line = entry.objects[0][1]
            outcome.failed[parent] = (f"its line {line} was refused: {outcome.failed[index][0]}", f"line_items[{line}]")


def _move(outcome: Outcome, index: int) -> None:
    if index in outcome.landed:
        outcome.landed.remove(index)
    if index in outcome.unsure:
        outcome.unsure.remove(index)
