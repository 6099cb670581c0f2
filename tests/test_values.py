"""Text-like values: blank, text, fixed words, ISO-3166 countries and ISO-4217 currencies."""

from __future__ import annotations

import datetime as dt
import decimal

import pytest

from target_chartmogul.errors import RecordRejected
from target_chartmogul.values import text as values

D = decimal.Decimal


def reason_of(function, *args, **kwargs) -> tuple[str | None, str]:
    with pytest.raises(RecordRejected) as caught:
        function(*args, **kwargs)
    return caught.value.field, caught.value.reason


@pytest.mark.parametrize(("value", "blank"), [(None, True), ("", True), ("  \t\n", True), ("x", False), (0, False),
                                              (False, False), ([], False)])
def test_is_blank(value, blank):
    assert values.is_blank(value) is blank


@pytest.mark.parametrize(
    ("value", "expected"),
    [("Acme", "Acme"), (" Acme ", " Acme "), (42, "42"), (D("100.00"), "100"), (D("12.50"), "12.5"),
     (dt.date(2024, 3, 1), "2024-03-01T00:00:00Z"), (dt.datetime(2024, 3, 1, 10, tzinfo=dt.timezone(dt.timedelta(hours=2))),
                                                      "2024-03-01T08:00:00Z"), ("Ring\x07Bell", "Ring\x07Bell")],
)
def test_text(value, expected):
    assert values.text(value, "name") == expected


def test_text_refused():
    assert reason_of(values.text, "Null\x00Byte", "name") == ("name", "field 'name' contains a NUL character")
    assert reason_of(values.text, {"a": 1}, "name") == ("name", "field 'name' must be text, got dict")
    assert reason_of(values.text, [1], "name") == ("name", "field 'name' must be text, got list")
    assert reason_of(values.text, "n" * 256, "note", max_length=255) == (
        "note", "field 'note' is 256 characters long; ChartMogul allows at most 255")
    assert values.text("n" * 255, "note", max_length=255) == "n" * 255


def test_choice():
    assert values.choice(" Month ", "interval_unit", ("day", "month", "year")) == "month"
    assert reason_of(values.choice, "week", "interval_unit", ("month", "day", "year")) == (
        "interval_unit", "field 'interval_unit' must be one of day, month, year; got 'week'")


@pytest.mark.parametrize(("value", "expected"), [("DE", "DE"), ("de", "DE"), (" gb ", "GB"), ("Us", "US"), ("AX", "AX"),
                                                 ("SS", "SS"), ("ZW", "ZW")])
def test_country_accepted(value, expected):
    assert values.country(value) == expected


@pytest.mark.parametrize(
    ("value", "shown"),
    [("Germany", "'Germany'"), ("DEU", "'DEU'"), ("UK", "'UK'"), ("EU", "'EU'"), ("XK", "'XK'"), ("D", "'D'"),
     ("", "''"), ("ß", "'ß'"), ("D E", "'D E'"), ("4 9", "'4 9'"), (49, "'49'"), (None, "'None'"),
     ("x" * 60, repr("x" * 40))],
)
def test_country_refused(value, shown):
    assert reason_of(values.country, value) == (
        "country", f"field 'country' must be an ISO-3166 alpha-2 country code such as 'DE', got {shown}")


def test_country_names_the_field_it_was_given():
    assert reason_of(values.country, "Atlantis", "billing_country") == (
        "billing_country", "field 'billing_country' must be an ISO-3166 alpha-2 country code such as 'DE', got 'Atlantis'")


@pytest.mark.parametrize(("value", "expected"), [("EUR", "EUR"), ("eur", "EUR"), (" usd ", "USD"), ("Jpy", "JPY"),
                                                 ("CHF", "CHF"), ("HRK", "HRK")])  # withdrawn in 2023: ChartMogul decides
def test_currency_accepted(value, expected):
    assert values.currency(value) == expected


@pytest.mark.parametrize(
    ("value", "shown"),
    [("euro", "'euro'"), ("EU", "'EU'"), ("€", "'€'"), ("$", "'$'"), ("", "''"),
     ("E UR", "'E UR'"), (978, "'978'"), (None, "'None'")],
)
def test_currency_refused(value, shown):
    assert reason_of(values.currency, value, "transaction_fees_currency") == (
        "transaction_fees_currency",
        f"field 'transaction_fees_currency' must be a three-letter ISO-4217 currency code such as 'EUR', got {shown}",
    )
