"""Checks of text-like values that ChartMogul would otherwise refuse: text, fixed words, codes.

Each raises `RecordRejected` naming the field, so a bad value costs one reject line
instead of an API call (or a crash). Dates, numbers and booleans have modules of their own.
"""

from __future__ import annotations

import datetime as dt
import decimal
import typing as t

import pycountry

from target_chartmogul.errors import RecordRejected
from target_chartmogul.values.dates import iso_utc
from target_chartmogul.values.numbers import plain_number

SHOWN_LENGTH = 40


def is_blank(value: t.Any) -> bool:
    """None, or a string of only white space."""
    return value is None or (isinstance(value, str) and not value.strip())


def text(value: t.Any, field: str, *, max_length: int | None = None) -> str:
    """A value as a string, refusing control characters that no API field takes."""
    if isinstance(value, (dict, list)):
        raise RecordRejected(f"field '{field}' must be text, got {type(value).__name__}", field=field)
    if isinstance(value, decimal.Decimal):
        result = str(plain_number(value))
    elif isinstance(value, (dt.datetime, dt.date)):
        result = iso_utc(value)
    else:
        result = str(value)
    if "\x00" in result:
        raise RecordRejected(f"field '{field}' contains a NUL character", field=field)
    if max_length is not None and len(result) > max_length:
        raise RecordRejected(
            f"field '{field}' is {len(result)} characters long; ChartMogul allows at most {max_length}",
            field=field,
        )
    return result


def choice(value: t.Any, field: str, options: t.Collection[str]) -> str:
    """One of a fixed set of lower-case words."""
    word = str(value).strip().lower()
    if word not in options:
        allowed = ", ".join(sorted(options))
        raise RecordRejected(f"field '{field}' must be one of {allowed}; got {str(value)[:SHOWN_LENGTH]!r}", field=field)
    return word


def _code(value: t.Any, length: int) -> str | None:
    """A value as an upper-case code of `length` letters, or None when it cannot be one."""
    if not isinstance(value, str):
        return None
    code = value.strip()  # checked before upper-casing: "ß".upper() is "SS"
    return code.upper() if len(code) == length and code.isascii() and code.isalpha() else None


def country(value: t.Any, field: str = "country") -> str:
    """An ISO-3166-1 alpha-2 code (the `country` ChartMogul expects), upper-cased; anything else is refused."""
    code = _code(value, 2)
    if code is None or pycountry.countries.get(alpha_2=code) is None:
        raise RecordRejected(
            f"field '{field}' must be an ISO-3166 alpha-2 country code such as 'DE', got {str(value)[:SHOWN_LENGTH]!r}",
            field=field,
        )
    return code


def currency(value: t.Any, field: str = "currency") -> str:
    """A three-letter currency code, upper-cased; anything else is refused.

    Not checked against today's ISO-4217 list: a backfill holds invoices in currencies since
    withdrawn (HRK until 2023), and ChartMogul, not this list, decides what it accepts (its
    refusal then lands in the rejects file with its own message).
    """
    code = _code(value, 3)
    if code is None:
        raise RecordRejected(
            f"field '{field}' must be a three-letter ISO-4217 currency code such as 'EUR', got {str(value)[:SHOWN_LENGTH]!r}",
            field=field,
        )
    return code
