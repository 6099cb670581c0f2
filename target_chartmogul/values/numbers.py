"""Numbers: amounts in cents, whole numbers (counts, Integer attributes) and Decimal attributes.

One parser decides what a number is, so every numeric field refuses the same inputs
(booleans, text that is no number, NaN, Infinity) with the same words:
`field 'x' must be <what>, got <value>`.
"""

from __future__ import annotations

import decimal
import typing as t

from target_chartmogul.errors import RecordRejected

INT64_MAX = 2**63 - 1
# Whole Decimals up to this many digits are written as JSON integers. Python refuses to
# print an int of more than 4,300 digits, and building one of a million takes minutes.
MAX_INTEGER_DIGITS = 4000
SHOWN_LENGTH = 40


def _shown(value: t.Any) -> str:
    """A refused value as a reason quotes it: a number as written, anything else quoted; cut short."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float, decimal.Decimal)):
        written = str(value)
        return written if len(written) <= SHOWN_LENGTH else written[:SHOWN_LENGTH] + "…"
    return repr(str(value)[:SHOWN_LENGTH])


def _refused(value: t.Any, field: str, what: str) -> RecordRejected:
    return RecordRejected(f"field '{field}' must be {what}, got {_shown(value)}", field=field)


def parse(value: t.Any, field: str, *, what: str = "a number") -> decimal.Decimal:
    """A finite Decimal from a number or numeric text; `what` names the expectation in the reason.

    A boolean is refused rather than read as 1 or 0 (Python's bool is an int).
    """
    if isinstance(value, bool):
        raise _refused(value, field, what)
    if isinstance(value, decimal.Decimal):
        number = value
    else:
        try:
            number = decimal.Decimal(str(value).strip())
        except (decimal.InvalidOperation, ValueError):
            raise _refused(value, field, what) from None
    if not number.is_finite():
        raise _refused(value, field, what)
    return number


def _whole(value: t.Any, field: str, what: str) -> int:
    """A whole number that fits in 64 bits; a fraction is refused, never rounded."""
    number = parse(value, field, what=what)
    if number != number.to_integral_value():
        raise _refused(value, field, what)
    if abs(number) > INT64_MAX:  # checked before int(): int(Decimal("1e999999")) takes minutes
        raise _refused(value, field, f"{what} that fits in 64 bits")
    return int(number)


def cents(value: t.Any, field: str, *, allow_negative: bool = False) -> int:
    """An amount in integer minor units; `12.5` cents is refused, not rounded.

    `allow_negative` for line-item amounts: a credit for the unused part of a plan on a
    downgrade is a negative line item in ChartMogul's proration model.
    """
    amount = _whole(value, field, "a whole number of cents")
    if amount < 0 and not allow_negative:
        raise RecordRejected(f"field '{field}' must not be negative, got {_shown(value)}", field=field)
    return amount


# ISO-4217 currencies whose minor unit is not the hundredth: amounts in them have no decimals, or three.
MINOR_DIGITS: dict[str, int] = {
    **dict.fromkeys(("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND", "VUV",
                     "XAF", "XOF", "XPF"), 0),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
}


def minor_digits(currency: str) -> int:
    """Decimals of a currency's minor unit: 2 for most, 0 for JPY, 3 for KWD (ISO-4217)."""
    return MINOR_DIGITS.get(currency.strip().upper(), 2)


def amount_cents(value: t.Any, field: str, *, unit: str, currency: str | None, allow_negative: bool = False) -> int:
    """An amount as ChartMogul's integer minor units (`*_in_cents`), from a column in `unit`.

    `cents`: the column already holds minor units; a whole number (`4900`, `4900.00`), a fraction refused.
    `units`: the column holds currency units (`99.90`), converted exactly (Decimal, never float): 9990. More
    decimals than the currency has (two for most, none for JPY, three for KWD) are refused, never rounded, so a
    zero-decimal amount stays whole. `allow_negative` as for `cents`.
    """
    if unit == "cents":
        return cents(value, field, allow_negative=allow_negative)
    if unit != "units":
        raise ValueError(f"unknown amount unit {unit!r}")
    if currency is None:
        msg = f"field '{field}' is in currency units (amount_unit: units), but the record names no currency"
        raise RecordRejected(msg, field=field)
    digits = minor_digits(currency)
    number = parse(value, field, what=f"an amount in {currency}")
    if abs(number) > INT64_MAX:  # before scaling: scaleb of 1e999999 overflows the context
        raise _refused(value, field, "an amount whose cents fit in 64 bits")
    scaled = number.scaleb(digits)  # moves the decimal point: exact, whatever the precision
    if scaled != scaled.to_integral_value():
        allowed = f"at most {digits} decimals" if digits else "no decimals"
        msg = f"field '{field}' has more decimals than {currency} amounts have ({allowed}), got {_shown(value)}; never rounded"
        raise RecordRejected(msg, field=field)
    if abs(scaled) > INT64_MAX:
        raise _refused(value, field, "an amount whose cents fit in 64 bits")
    if scaled < 0 and not allow_negative:
        raise RecordRejected(f"field '{field}' must not be negative, got {_shown(value)}", field=field)
    return int(scaled)


def integer(value: t.Any, field: str, *, minimum: int | None = None) -> int:
    """A whole number such as a quantity or an interval; `1e2` and `100.00` are 100."""
    result = _whole(value, field, "a whole number")
    if minimum is not None and result < minimum:
        raise RecordRejected(f"field '{field}' must be at least {minimum}, got {_shown(value)}", field=field)
    return result


def plain_number(value: decimal.Decimal) -> int | float:
    """A Decimal as JSON can hold it: an int when it is whole, else a float."""
    if value.is_finite() and value.adjusted() < MAX_INTEGER_DIGITS and value == value.to_integral_value():
        return int(value)
    return float(value)
