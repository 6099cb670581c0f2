"""Typed ChartMogul custom attributes: the type comes from the stream's JSON schema.

ChartMogul types are String, Integer, Decimal, Timestamp and Boolean. The schema is
the user's declaration (a numeric column stays Decimal even when a value happens to be
whole); only where it says nothing usable does the value decide.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import json
import math
import re
import typing as t

from target_chartmogul.errors import RecordRejected
from target_chartmogul.values import dates, numbers
from target_chartmogul.values.booleans import boolean
from target_chartmogul.values.encoding import dumps
from target_chartmogul.values.text import text

STRING, INTEGER, DECIMAL, TIMESTAMP, BOOLEAN = "String", "Integer", "Decimal", "Timestamp", "Boolean"
MAX_STRING_LENGTH = 255
KEY_RE = re.compile(r"^[A-Za-z0-9_]+$")


@dataclasses.dataclass(frozen=True)
class CustomAttribute:
    """One attribute ready to send: key, ChartMogul type and JSON-ready value (or None)."""

    key: str
    type: str
    value: t.Any


def _schema_types(schema: dict[str, t.Any]) -> list[tuple[str, str | None]]:
    """(type, format) pairs a property schema allows, `null` left out."""
    found: list[tuple[str, str | None]] = []
    declared = schema.get("type")
    names = declared if isinstance(declared, list) else [declared] if declared else []
    found.extend((name, schema.get("format")) for name in names if name != "null")
    for key in ("anyOf", "oneOf"):
        for option in schema.get(key) or []:
            if isinstance(option, dict):
                found.extend(_schema_types(option))
    return found


def type_from_schema(schema: dict[str, t.Any] | None) -> str | None:
    """The ChartMogul type a column's schema declares, or None when it says nothing usable."""
    if not schema:
        return None
    kinds = {
        {"integer": INTEGER, "number": DECIMAL, "boolean": BOOLEAN}.get(name)
        or (TIMESTAMP if name == "string" and fmt in {"date-time", "date"} else None)
        or (STRING if name == "string" else None)
        for name, fmt in _schema_types(schema)
    }
    kinds.discard(None)
    if kinds == {INTEGER, DECIMAL}:
        return DECIMAL
    if len(kinds) == 1:
        return kinds.pop()
    return None


def type_from_value(value: t.Any) -> str:
    """The type a bare value suggests (Hightouch's rule), used only without a schema type."""
    if isinstance(value, bool):
        return BOOLEAN
    if isinstance(value, int):
        return INTEGER
    if isinstance(value, (float, decimal.Decimal)):
        return DECIMAL
    if isinstance(value, (dt.datetime, dt.date)):
        return TIMESTAMP
    return STRING


def check_key(key: str, field: str) -> None:
    """ChartMogul keys are letters, digits and underscores."""
    if not KEY_RE.match(key):
        raise RecordRejected(
            f"custom attribute key '{key}' (field '{field}') may only contain letters, digits and underscores",
            field=field,
        )


def coerce(kind: str, value: t.Any, field: str) -> t.Any:
    """A value converted to what ChartMogul stores for `kind`; None stays None."""
    if value is None:
        return None
    if kind == STRING:
        if isinstance(value, (dict, list)):
            value = dumps(value)
        return text(value, field, max_length=MAX_STRING_LENGTH)
    if kind == INTEGER:
        return numbers.integer(value, field)
    if kind == DECIMAL:
        number = numbers.plain_number(numbers.parse(value, field))
        if isinstance(number, float) and math.isinf(number):  # JSON has no Infinity
            raise RecordRejected(f"field '{field}' is too large for a Decimal attribute, got {str(value)[:40]}", field=field)
        return number
    if kind == BOOLEAN:
        return boolean(value, field)
    if kind == TIMESTAMP:
        return dates.timestamp_text(value, field)
    raise RecordRejected(f"field '{field}': unknown custom attribute type {kind!r}", field=field)


def same_value(kind: str, ours: t.Any, theirs: t.Any) -> bool:
    """Whether ChartMogul already holds `ours` (as sent by `coerce`) in `theirs`.

    Numbers are compared as decimals (`12.5` and `"12.50"` are the same), never as floats.
    """
    if ours is None or theirs is None:
        return ours is None and theirs is None
    read = _READERS.get(kind)
    if read is not None:
        try:
            return bool(read(ours) == read(theirs))
        except (RecordRejected, ValueError, TypeError):  # an answer we cannot read is not a match
            return False
    if kind == STRING and not isinstance(theirs, str):
        return ours == json.dumps(theirs) or ours == str(theirs)
    return bool(ours == theirs)


# How a held value of each non-text type is read for comparing (the same readers as for records).
_READERS: dict[str, t.Callable[[t.Any], t.Any]] = {
    TIMESTAMP: lambda value: dates.parse(value, ""),
    INTEGER: lambda value: numbers.parse(value, ""),
    DECIMAL: lambda value: numbers.parse(value, ""),
    BOOLEAN: lambda value: boolean(value, ""),
}
