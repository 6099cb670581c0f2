"""JSON encoding of the Python values singer-sdk hands us (Decimal, date, datetime).

`requests(json=...)` and the SDK's state writer both use plain `json`, which refuses
Decimal and dates; every body and every STATE line goes through `dumps` instead.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import typing as t


def iso_utc(value: dt.datetime | dt.date) -> str:
    """ISO-8601 in UTC with a `Z`; naive datetimes are taken as UTC, dates as midnight UTC."""
    if not isinstance(value, dt.datetime):
        value = dt.datetime(value.year, value.month, value.day, tzinfo=dt.timezone.utc)
    elif value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    else:
        try:
            value = value.astimezone(dt.timezone.utc)
        except OverflowError:  # no UTC equivalent (year 1 or 9999 with an offset): keep it as given
            return value.isoformat()
    text = f"{value.year:04d}-{value.month:02d}-{value.day:02d}T{value.hour:02d}:{value.minute:02d}:{value.second:02d}"
    if value.microsecond:
        text += f".{value.microsecond // 1000:03d}"
    return text + "Z"


def plain_number(value: decimal.Decimal) -> int | float:
    """A Decimal as an int when it is whole, else a float."""
    if value == value.to_integral_value() and value.is_finite():
        return int(value)
    return float(value)


def _default(value: t.Any) -> t.Any:
    if isinstance(value, decimal.Decimal):
        return plain_number(value)
    if isinstance(value, (dt.datetime, dt.date)):
        return iso_utc(value)
    if isinstance(value, dt.time):
        return value.isoformat()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    msg = f"Object of type {type(value).__name__} is not JSON serializable"
    raise TypeError(msg)


def dumps(value: t.Any, **kwargs: t.Any) -> str:
    """`json.dumps` that understands Decimal and dates."""
    return json.dumps(value, default=_default, ensure_ascii=False, **kwargs)
