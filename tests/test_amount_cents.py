"""`numbers.amount_cents`: amounts in cents or in currency units, exact and never rounded (issues 11 and 12)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from target_chartmogul.errors import RecordRejected
from target_chartmogul.values.numbers import amount_cents, minor_digits


@pytest.mark.parametrize(("value", "currency", "cents"), [
    (Decimal("99.90"), "EUR", 9990),
    (Decimal("99.9"), "usd", 9990),
    (99.9, "USD", 9990),  # a float is read through its text: no binary fraction creeps in
    ("0.07", "EUR", 7),
    (Decimal("99.900"), "EUR", 9990),  # numeric(12,3) columns: trailing zeros are exact
    (Decimal("1200"), "JPY", 1200),  # zero-decimal currencies stay whole
    (Decimal("1.234"), "KWD", 1234),  # three-decimal currencies
    (Decimal("1e2"), "EUR", 10000),
])
def test_units_become_exact_cents(value, currency, cents):
    assert amount_cents(value, "amount", unit="units", currency=currency) == cents


@pytest.mark.parametrize(("value", "currency", "reason"), [
    (Decimal("99.999"), "EUR", "field 'amount' has more decimals than EUR amounts have (at most 2 decimals), got 99.999; "
                               "never rounded"),
    (Decimal("10.5"), "JPY", "field 'amount' has more decimals than JPY amounts have (no decimals), got 10.5; never rounded"),
    (Decimal("-1"), "EUR", "field 'amount' must not be negative, got -1"),
    ("abc", "EUR", "field 'amount' must be an amount in EUR, got 'abc'"),
    (True, "EUR", "field 'amount' must be an amount in EUR, got a boolean"),
    ("1e999999", "EUR", "field 'amount' must be an amount whose cents fit in 64 bits, got '1e999999'"),
    (Decimal("1"), None, "field 'amount' is in currency units (amount_unit: units), but the record names no currency"),
])
def test_what_units_cannot_be_exactly_is_refused_naming_the_field(value, currency, reason):
    with pytest.raises(RecordRejected) as caught:
        amount_cents(value, "amount", unit="units", currency=currency)

    assert (caught.value.field, caught.value.reason) == ("amount", reason)


def test_cents_are_whole_and_negative_only_when_allowed():
    assert amount_cents(Decimal("4900.00"), "amount_in_cents", unit="cents", currency=None) == 4900
    assert amount_cents(Decimal("-150.00"), "amount", unit="units", currency="EUR", allow_negative=True) == -15000
    with pytest.raises(RecordRejected, match=r"must be a whole number of cents, got 12\.5"):
        amount_cents(Decimal("12.5"), "amount_in_cents", unit="cents", currency="EUR")


def test_minor_digits_follow_iso_4217():
    assert [minor_digits(c) for c in ("EUR", "jpy", "KRW", "BHD", "XYZ")] == [2, 0, 0, 3, 2]
