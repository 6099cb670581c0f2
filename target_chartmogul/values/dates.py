"""Dates and date-times: the one parser and the one formatter.

ChartMogul takes and answers ISO-8601 in UTC. Every reader of a date (schema
validation, mapping, custom attributes, change detection) parses here, so a value
accepted in one place is accepted everywhere and a refused one is refused with the
same words. Every writer of a date (request bodies, STATE, reject lines) formats here.
"""

from __future__ import annotations

import datetime as dt
import typing as t

from target_chartmogul.errors import RecordRejected

UTC = dt.timezone.utc
UTC_SUFFIX = " UTC"  # how PostgreSQL and many exports print a timestamp known to be UTC


def _in_utc(value: dt.datetime) -> dt.datetime:
    """The same instant in UTC; naive values are taken as UTC.

    Raises OverflowError when the instant has no UTC equivalent (year 1 ahead of
    UTC, year 9999 behind it): `datetime` cannot hold it.
    """
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _from_text(value: str) -> dt.datetime | None:
    """An ISO-8601 string as a datetime, or None when it is not one."""
    candidate = value.strip()
    if candidate.endswith(UTC_SUFFIX):
        candidate = candidate[: -len(UTC_SUFFIX)]
    if candidate.endswith(("Z", "z")):  # Python 3.10's fromisoformat does not read `Z`
        candidate = candidate[:-1] + "+00:00"
    try:
        return dt.datetime.fromisoformat(candidate)
    except ValueError:
        return None


def parse(value: t.Any, field: str) -> dt.datetime:
    """A date, datetime or ISO-8601 string as an aware UTC datetime; anything else rejects the record.

    Strings are what `datetime.fromisoformat` reads (`YYYY-MM-DD`, `YYYY-MM-DD HH:MM:SS`,
    `…T…` with fractions and an offset), plus a `Z` or a trailing ` UTC`. A date is
    midnight UTC; a naive date-time is taken as UTC.
    """
    if isinstance(value, dt.datetime):
        parsed: dt.datetime | None = value
    elif isinstance(value, dt.date):
        parsed = dt.datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        parsed = _from_text(value)
    else:
        parsed = None
    if parsed is None:
        raise RecordRejected(
            f"field '{field}' is not a valid ISO-8601 date or date-time: {str(value)[:60]!r}",
            field=field,
        )
    try:
        return _in_utc(parsed)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+05:00
        raise RecordRejected(
            f"field '{field}' is out of range once converted to UTC: {parsed.isoformat()}",
            field=field,
        ) from None


def iso_utc(value: dt.datetime | dt.date) -> str:
    """ISO-8601 in UTC with a `Z`, as ChartMogul writes dates: zero-padded year, milliseconds only when present.

    A naive datetime is taken as UTC, a date as midnight UTC. A datetime with no UTC
    equivalent raises ValueError: values come from `parse`, which refuses those, so
    reaching it is a bug, and writing the un-converted value would send a non-UTC date.
    """
    if isinstance(value, dt.datetime):
        try:
            value = _in_utc(value)
        except OverflowError:
            msg = f"{value.isoformat()} has no UTC equivalent (dates.parse refuses such values)"
            raise ValueError(msg) from None
    text = f"{value.year:04d}-{value.month:02d}-{value.day:02d}"
    if not isinstance(value, dt.datetime):
        return text + "T00:00:00Z"
    text += f"T{value.hour:02d}:{value.minute:02d}:{value.second:02d}"
    if value.microsecond:
        text += f".{value.microsecond // 1000:03d}"
    return text + "Z"


def timestamp_text(value: t.Any, field: str) -> str:
    """A date field as ChartMogul wants it: parsed, then written as ISO-8601 in UTC."""
    return iso_utc(parse(value, field))


def as_answered(value: t.Any, *, millis: bool) -> t.Any:
    """A date as ChartMogul answers it (dry run plays its answers): `2016-01-01T12:00:00.000Z` with `millis`
    (customers, invoices), `2022-02-16T00:00:00Z` without (subscription events), both recorded; a value that is
    not a readable date, or has no UTC equivalent, is answered as it was sent.
    """
    if not isinstance(value, str) or not value.strip():
        return value
    parsed = _from_text(value)
    if parsed is None:
        return value
    try:
        moment = _in_utc(parsed)
    except OverflowError:
        return value
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{moment.microsecond // 1000:03d}Z" if millis else f"{text}Z"
