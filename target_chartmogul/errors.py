"""Exceptions, and the reading of every error-body shape ChartMogul sends.

ChartMogul's error bodies differ by endpoint and age (see chartmogul-api.md §9), so
they are folded here into one `APIError` with a readable message and a field map.
"""

from __future__ import annotations

import json
import typing as t


class TargetChartMogulError(Exception):
    """Base class for this target's own errors."""


class FatalError(TargetChartMogulError):
    """Stops the whole run: no record could succeed (bad key, API unreachable, bad config)."""


class AuthenticationError(FatalError):
    """ChartMogul refused the API key (401/403); retrying cannot help."""


class RetriesExhaustedError(FatalError):
    """A transient failure outlasted every retry; the run stops so STATE does not advance."""


class RecordRejected(TargetChartMogulError):
    """One record cannot be written; it goes to the rejects file and the run goes on."""

    def __init__(self, reason: str, *, field: str | None = None, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = field
        self.status = status


class APIError(TargetChartMogulError):
    """A non-retryable answer from ChartMogul (a 4xx other than 401/403/429)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        fields: dict[str, str] | None = None,
        body: t.Any = None,
        method: str = "",
        path: str = "",
        attempts: int = 1,
    ) -> None:
        super().__init__(f"{method} {path} -> HTTP {status}: {message}")
        self.status = status
        self.message = message
        self.fields = fields or {}
        self.body = body
        self.method = method
        self.path = path
        self.attempts = attempts

    def field_message(self, field: str) -> str | None:
        """The message for one field, as the API named it, if any."""
        return self.fields.get(field)

    def mentions(self, text: str) -> bool:
        """Whether the message or any field message contains `text` (case-insensitive)."""
        needle = text.lower()
        return needle in self.message.lower() or any(needle in msg.lower() for msg in self.fields.values())


ALREADY_EXISTS_MARKERS = ("already exists", "already been taken")


def is_already_exists(error: APIError) -> bool:
    """True for ChartMogul's duplicate-external-id refusals, whatever the object."""
    return error.status in (400, 422) and any(error.mentions(m) for m in ALREADY_EXISTS_MARKERS)


def _join(value: t.Any) -> str:
    if isinstance(value, list):
        return "; ".join(_join(v) for v in value)
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_join(v)}" for k, v in value.items())
    return str(value)


def parse_error_body(status: int, text: str) -> tuple[str, dict[str, str], t.Any]:
    """Turn any ChartMogul error body into (message, {field: message}, parsed body).

    Shapes understood: ``{code,message,param}``; ``{"errors":{field:msg}}``;
    ``{field:[msg], "error_details":[…]}``; ``{"error": "…"}`` with optional
    ``error_details``; ``{"message": "…"}``; invoice batches ``{"invoices":[{errors}]}``;
    and text/plain bodies of 5xx answers.
    """
    try:
        body = json.loads(text) if text else None
    except ValueError:
        body = None
    if not isinstance(body, dict):
        plain = " ".join(text.split())[:300] if text else ""
        return (plain or f"HTTP {status}"), {}, body

    fields: dict[str, str] = {}
    if isinstance(body.get("errors"), dict):
        fields.update({str(k): _join(v) for k, v in body["errors"].items()})
    if isinstance(body.get("param"), str) and body.get("message"):
        fields.setdefault(body["param"], str(body["message"]))
    for detail in body.get("error_details") or []:
        if isinstance(detail, dict) and detail.get("param"):
            fields.setdefault(str(detail["param"]), str(detail.get("message", "")))
    for key, value in body.items():
        if key in {"errors", "error_details", "code", "message", "param", "error", "invoices"}:
            continue
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            fields.setdefault(key, _join(value))
    if isinstance(body.get("invoices"), list):
        for invoice in body["invoices"]:
            if isinstance(invoice, dict) and invoice.get("errors"):
                fields.update({str(k): _join(v) for k, v in invoice["errors"].items()})

    if body.get("message"):
        message = str(body["message"])
    elif body.get("error"):
        message = str(body["error"])
    elif fields:
        message = "; ".join(f"{k}: {v}" for k, v in fields.items())
    else:
        message = json.dumps(body)[:300]
    return message, fields, body
