"""Checks and conversions of single values that ChartMogul would otherwise refuse.

Each raises `RecordRejected` naming the field, so a bad value costs one reject line
instead of an API call (or a crash).
"""

from __future__ import annotations

import datetime as dt
import decimal
import re
import typing as t

from target_chartmogul.encoding import iso_utc, plain_number
from target_chartmogul.errors import RecordRejected

# ISO-3166-1 alpha-2, as ChartMogul's `country` expects.
COUNTRY_CODES = frozenset(
    [
        "AD",
        "AE",
        "AF",
        "AG",
        "AI",
        "AL",
        "AM",
        "AO",
        "AQ",
        "AR",
        "AS",
        "AT",
        "AU",
        "AW",
        "AX",
        "AZ",
        "BA",
        "BB",
        "BD",
        "BE",
        "BF",
        "BG",
        "BH",
        "BI",
        "BJ",
        "BL",
        "BM",
        "BN",
        "BO",
        "BQ",
        "BR",
        "BS",
        "BT",
        "BV",
        "BW",
        "BY",
        "BZ",
        "CA",
        "CC",
        "CD",
        "CF",
        "CG",
        "CH",
        "CI",
        "CK",
        "CL",
        "CM",
        "CN",
        "CO",
        "CR",
        "CU",
        "CV",
        "CW",
        "CX",
        "CY",
        "CZ",
        "DE",
        "DJ",
        "DK",
        "DM",
        "DO",
        "DZ",
        "EC",
        "EE",
        "EG",
        "EH",
        "ER",
        "ES",
        "ET",
        "FI",
        "FJ",
        "FK",
        "FM",
        "FO",
        "FR",
        "GA",
        "GB",
        "GD",
        "GE",
        "GF",
        "GG",
        "GH",
        "GI",
        "GL",
        "GM",
        "GN",
        "GP",
        "GQ",
        "GR",
        "GS",
        "GT",
        "GU",
        "GW",
        "GY",
        "HK",
        "HM",
        "HN",
        "HR",
        "HT",
        "HU",
        "ID",
        "IE",
        "IL",
        "IM",
        "IN",
        "IO",
        "IQ",
        "IR",
        "IS",
        "IT",
        "JE",
        "JM",
        "JO",
        "JP",
        "KE",
        "KG",
        "KH",
        "KI",
        "KM",
        "KN",
        "KP",
        "KR",
        "KW",
        "KY",
        "KZ",
        "LA",
        "LB",
        "LC",
        "LI",
        "LK",
        "LR",
        "LS",
        "LT",
        "LU",
        "LV",
        "LY",
        "MA",
        "MC",
        "MD",
        "ME",
        "MF",
        "MG",
        "MH",
        "MK",
        "ML",
        "MM",
        "MN",
        "MO",
        "MP",
        "MQ",
        "MR",
        "MS",
        "MT",
        "MU",
        "MV",
        "MW",
        "MX",
        "MY",
        "MZ",
        "NA",
        "NC",
        "NE",
        "NF",
        "NG",
        "NI",
        "NL",
        "NO",
        "NP",
        "NR",
        "NU",
        "NZ",
        "OM",
        "PA",
        "PE",
        "PF",
        "PG",
        "PH",
        "PK",
        "PL",
        "PM",
        "PN",
        "PR",
        "PS",
        "PT",
        "PW",
        "PY",
        "QA",
        "RE",
        "RO",
        "RS",
        "RU",
        "RW",
        "SA",
        "SB",
        "SC",
        "SD",
        "SE",
        "SG",
        "SH",
        "SI",
        "SJ",
        "SK",
        "SL",
        "SM",
        "SN",
        "SO",
        "SR",
        "SS",
        "ST",
        "SV",
        "SX",
        "SY",
        "SZ",
        "TC",
        "TD",
        "TF",
        "TG",
        "TH",
        "TJ",
        "TK",
        "TL",
        "TM",
        "TN",
        "TO",
        "TR",
        "TT",
        "TV",
        "TW",
        "TZ",
        "UA",
        "UG",
        "UM",
        "US",
        "UY",
        "UZ",
        "VA",
        "VC",
        "VE",
        "VG",
        "VI",
        "VN",
        "VU",
        "WF",
        "WS",
        "YE",
        "YT",
        "ZA",
        "ZM",
        "ZW",
    ],
)

CURRENCY_RE = re.compile(r"^[A-Z]{3}$")


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


def _in_utc(value: dt.datetime, field: str) -> dt.datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.timezone.utc)
    try:
        return value.astimezone(dt.timezone.utc)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+05:00 has no UTC equivalent
        raise RecordRejected(
            f"field '{field}' is out of range once converted to UTC: {value.isoformat()}", field=field,
        ) from None


def timestamp(value: t.Any, field: str) -> dt.datetime:
    """Parse a date, datetime or ISO-8601 string into UTC; naive values are taken as UTC."""
    if isinstance(value, dt.datetime):
        return _in_utc(value, field)
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.timezone.utc)
    if isinstance(value, str):
        candidate = value.strip()
        if candidate.endswith(" UTC"):
            candidate = candidate[:-4]
        try:
            parsed = dt.datetime.fromisoformat(candidate)
        except ValueError:
            pass
        else:
            return _in_utc(parsed, field)
    raise RecordRejected(
        f"field '{field}' is not a valid ISO-8601 date or date-time: {str(value)[:60]!r}",
        field=field,
    )


def timestamp_text(value: t.Any, field: str) -> str:
    """A date or date-time as ChartMogul wants it: ISO-8601 in UTC."""
    return iso_utc(timestamp(value, field))


def country(value: t.Any, field: str = "country") -> str:
    """An ISO-3166 alpha-2 code, upper-cased; anything else is refused."""
    code = str(value).strip().upper()
    if code not in COUNTRY_CODES:
        raise RecordRejected(
            f"field '{field}' must be an ISO-3166 alpha-2 country code such as 'DE', got {str(value)[:40]!r}",
            field=field,
        )
    return code


def currency(value: t.Any, field: str = "currency") -> str:
    """A three-letter ISO-4217 code, upper-cased."""
    code = str(value).strip().upper()
    if not CURRENCY_RE.match(code):
        raise RecordRejected(
            f"field '{field}' must be a three-letter ISO-4217 currency code such as 'EUR', got {str(value)[:40]!r}",
            field=field,
        )
    return code


def _whole_number(value: t.Any, field: str, what: str) -> decimal.Decimal:
    """A value as an integral Decimal, or RecordRejected saying it must be `what`."""
    if isinstance(value, bool):
        raise RecordRejected(f"field '{field}' must be {what}, got a boolean", field=field)
    try:
        number = decimal.Decimal(str(value).strip())
    except (decimal.InvalidOperation, ValueError):
        raise RecordRejected(f"field '{field}' must be {what}, got {str(value)[:40]!r}", field=field) from None
    if not number.is_finite() or number != number.to_integral_value():
        raise RecordRejected(f"field '{field}' must be {what}, got {value}", field=field)
    return number


def cents(value: t.Any, field: str, *, allow_negative: bool = False) -> int:
    """An amount in integer minor units; a fraction of a cent is refused, not rounded.

    `allow_negative` for line-item amounts: a credit for the unused part of a plan on a
    downgrade is a negative line item in ChartMogul's proration model.
    """
    number = _whole_number(value, field, "a whole number of cents")
    if number < 0 and not allow_negative:
        raise RecordRejected(f"field '{field}' must not be negative, got {value}", field=field)
    return int(number)


def integer(value: t.Any, field: str, *, minimum: int | None = None) -> int:
    """A whole number (Decimal/str accepted when integral)."""
    result = int(_whole_number(value, field, "a whole number"))
    if minimum is not None and result < minimum:
        raise RecordRejected(f"field '{field}' must be at least {minimum}, got {value}", field=field)
    return result


TRUE_WORDS = frozenset({"true", "t", "1"})
FALSE_WORDS = frozenset({"false", "f", "0"})


def boolean(value: t.Any, field: str) -> bool:
    """true/false, "true"/"false", "t"/"f" (any case) or 1/0, as ChartMogul reads booleans.

    Anything else is refused: `bool("false")` is True, which once sent `prorated: "false"` as true.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, decimal.Decimal)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
    raise RecordRejected(
        f"field '{field}' must be a boolean (true/false, t/f or 1/0), got {str(value)[:40]!r}", field=field
    )


def choice(value: t.Any, field: str, options: t.Collection[str]) -> str:
    """One of a fixed set of lower-case words."""
    word = str(value).strip().lower()
    if word not in options:
        allowed = ", ".join(sorted(options))
        raise RecordRejected(f"field '{field}' must be one of {allowed}; got {str(value)[:40]!r}", field=field)
    return word
