"""What a finished import's status answer says: whether it is finished, and what it reports failed.

The answer is a report, not proof. ChartMogul validates imported objects asynchronously
("invalid objects are imported and marked as Failed"), so `completed` with `imported`
everywhere does not show that an object is there, and a failure it names may be one REST
accepts. What landed is decided by ChartMogul's listings (`verify`); this module only reads
the answer for the log. Its shape is known only from client libraries' hand-written mocks,
which disagree (chartmogul-python: `status_details` keyed by "plans" and by each customer
external id, with a `status` per object kind; chartmogul-ruby: `processed_count` and
`error_count`), so every shape is read tolerantly.
"""

from __future__ import annotations

import typing as t

from target_chartmogul.values.encoding import dumps

Obj = dict[str, t.Any]
IN_PROGRESS = frozenset({"queued", "pending", "processing", "in_progress", "running", "importing", "started"})
DONE = frozenset({"imported", "completed", "complete", "success", "succeeded", "ok", "processed", "created", "updated"})
MAX_NAMED = 3  # failures quoted in one log line
MAX_QUOTED = 300  # characters of each


def status_of(answer: t.Any) -> str:
    """The import's status, lower case ("" when the answer has none)."""
    return str(answer.get("status") or "").strip().lower() if isinstance(answer, dict) else ""


def finished(answer: t.Any) -> bool:
    """Whether the import is no longer queued or processing (any other status, `unknown` included)."""
    status = status_of(answer)
    return bool(status) and status not in IN_PROGRESS


def _is_done(detail: t.Any) -> bool:
    status = detail.get("status") if isinstance(detail, dict) else detail
    return str(status or "").strip().lower() in DONE


def reported_failures(answer: Obj) -> list[str]:
    """What the answer says did not import, one text per customer (or top-level kind), ChartMogul's detail verbatim."""
    details = answer.get("status_details")
    failures: list[str] = []
    if isinstance(details, dict):
        for name, detail in details.items():
            if isinstance(detail, dict) and _is_done(detail):
                continue
            failures.append(f"{name}: {dumps(detail)}")
    errors = answer.get("error_count")
    if not failures and isinstance(errors, int) and errors > 0:
        failures.append(f"{errors} object(s) counted as errors")
    return failures


def describe(answer: Obj) -> str:
    """A short account of the report for one log line."""
    failures = reported_failures(answer)
    if not failures:
        return "no failure reported"
    shown = "; ".join(text if len(text) <= MAX_QUOTED else f"{text[:MAX_QUOTED]}…" for text in failures[:MAX_NAMED])
    more = f" (and {len(failures) - MAX_NAMED} more)" if len(failures) > MAX_NAMED else ""
    return f"{len(failures)} failure(s) reported: {shown}{more}"
