"""JSON encoding of the Python values singer-sdk hands us (Decimal, date, datetime).

`requests(json=...)` and the SDK's state writer both use plain `json`, which refuses
Decimal and dates; every body and every STATE line goes through `dumps` instead.

Dates are written by `dates.iso_utc`, in UTC. A datetime with no UTC equivalent
(`0001-01-01T00:00:00+05:00`) makes `dumps` raise ValueError rather than write a date
that is not UTC. It is not reached: the only datetimes in records are made by
`dates.parse` (schema validation), which rejects such a value naming its field.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import typing as t

from target_chartmogul.values.dates import iso_utc
from target_chartmogul.values.numbers import plain_number


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
