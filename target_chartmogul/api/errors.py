"""ChartMogul's refusals: `APIError`, and the reading of every error-body shape ChartMogul sends.

ChartMogul's error bodies differ by endpoint and age (see chartmogul-api.md §9), so
they are folded here into one `APIError` with a readable message and a field map.
"""

from __future__ import annotations

import json
import typing as t

from target_chartmogul.errors import TargetChartMogulError


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


# One reader per recorded error-body shape (chartmogul-api.md §9). Each returns the
# {field: message} pairs its shape carries; `_fields` decides which reader wins a field.
_NOT_FIELDS = frozenset({"errors", "error_details", "code", "message", "param", "error", "invoices"})


def _import_api_errors(body: dict[str, t.Any]) -> dict[str, str]:
    """``{"errors": {field: message}}``: the Import API's per-object errors."""
    errors = body.get("errors")
    return {str(k): _join(v) for k, v in errors.items()} if isinstance(errors, dict) else {}


def _param_error(body: dict[str, t.Any]) -> dict[str, str]:
    """``{code, message, param}``: a missing or bad parameter (400, 404 of a search)."""
    param = body.get("param")
    return {param: str(body["message"])} if isinstance(param, str) and body.get("message") else {}


def _error_details(body: dict[str, t.Any]) -> dict[str, str]:
    """``error_details: [{param, code, message}]`` of newer 404s and 422s (first message per param)."""
    details = body.get("error_details")
    found: dict[str, str] = {}
    for detail in details if isinstance(details, list) else []:
        if isinstance(detail, dict) and detail.get("param"):
            found.setdefault(str(detail["param"]), str(detail.get("message", "")))
    return found


def _field_lists(body: dict[str, t.Any]) -> dict[str, str]:
    """``{field: [message, ...]}`` of newer 422s (plan groups): every other key holding strings only."""
    return {
        key: _join(value)
        for key, value in body.items()
        if key not in _NOT_FIELDS and isinstance(value, list) and all(isinstance(v, str) for v in value)
    }


def _invoice_errors(body: dict[str, t.Any]) -> dict[str, str]:
    """``{"invoices": [{..., "errors": {field: message}}]}``: a refused import batch (a later invoice wins)."""
    invoices = body.get("invoices")
    found: dict[str, str] = {}
    for invoice in invoices if isinstance(invoices, list) else []:
        if isinstance(invoice, dict) and isinstance(invoice.get("errors"), dict):
            found.update({str(k): _join(v) for k, v in invoice["errors"].items()})
    return found


def _fields(body: dict[str, t.Any]) -> dict[str, str]:
    """Every field message of a JSON error body; a batch's per-invoice errors override the rest."""
    fields: dict[str, str] = {}
    for reader in (_import_api_errors, _param_error, _error_details, _field_lists):
        for key, message in reader(body).items():
            fields.setdefault(key, message)
    fields.update(_invoice_errors(body))
    return fields


def _message(body: dict[str, t.Any], fields: dict[str, str]) -> str:
    """The readable message: ``message``, else ``error``, else the field messages, else the body itself."""
    if body.get("message"):
        return str(body["message"])
    if body.get("error"):
        return str(body["error"])
    if fields:
        return "; ".join(f"{k}: {v}" for k, v in fields.items())
    return json.dumps(body)[:300]


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
    fields = _fields(body)
    return _message(body, fields), fields, body
