"""Numbers: one parser for cents, whole numbers and Decimal attributes, one wording per problem."""

from __future__ import annotations

import decimal
import math
import time

import pytest

from target_chartmogul.errors import RecordRejected
from target_chartmogul.values import numbers
from target_chartmogul.values.attributes import DECIMAL, INTEGER, coerce, same_value

D = decimal.Decimal


def reason_of(function, *args, **kwargs) -> tuple[str | None, str]:
    with pytest.raises(RecordRejected) as caught:
        function(*args, **kwargs)
    return caught.value.field, caught.value.reason


@pytest.mark.parametrize(
    ("value", "expected"),
    [(2500, 2500), (D("2500"), 2500), ("2500", 2500), (" 2500 ", 2500), (D("100.00"), 100), ("1e2", 100), (D("1E+2"), 100),
     (2500.0, 2500), (0, 0)],
)
def test_cents_take_whole_numbers_however_written(value, expected):
    result = numbers.cents(value, "amount_in_cents")
    assert (result, type(result)) == (expected, int)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (D("12.5"), "field 'amount_in_cents' must be a whole number of cents, got 12.5"),
        ("12.5", "field 'amount_in_cents' must be a whole number of cents, got '12.5'"),
        (12.5, "field 'amount_in_cents' must be a whole number of cents, got 12.5"),
        (D("9990.5"), "field 'amount_in_cents' must be a whole number of cents, got 9990.5"),
        (float("nan"), "field 'amount_in_cents' must be a whole number of cents, got nan"),
        (D("NaN"), "field 'amount_in_cents' must be a whole number of cents, got NaN"),
        ("Infinity", "field 'amount_in_cents' must be a whole number of cents, got 'Infinity'"),
        (float("-inf"), "field 'amount_in_cents' must be a whole number of cents, got -inf"),
        (True, "field 'amount_in_cents' must be a whole number of cents, got a boolean"),
        (False, "field 'amount_in_cents' must be a whole number of cents, got a boolean"),
        ("ten", "field 'amount_in_cents' must be a whole number of cents, got 'ten'"),
        ("", "field 'amount_in_cents' must be a whole number of cents, got ''"),
        ({"value": 1}, "field 'amount_in_cents' must be a whole number of cents, got \"{'value': 1}\""),
        (D("-500"), "field 'amount_in_cents' must not be negative, got -500"),
        ("-500", "field 'amount_in_cents' must not be negative, got '-500'"),
        (2**63, "field 'amount_in_cents' must be a whole number of cents that fits in 64 bits, got 9223372036854775808"),
    ],
)
def test_cents_refused(value, reason):
    assert reason_of(numbers.cents, value, "amount_in_cents") == ("amount_in_cents", reason)


def test_negative_cents_only_where_allowed():
    assert numbers.cents(D("-4995"), "line_items[0].amount_in_cents", allow_negative=True) == -4995
    assert numbers.cents(-(2**63) + 1, "x", allow_negative=True) == -(2**63) + 1
    assert reason_of(numbers.cents, D("-0.5"), "x", allow_negative=True) == (
        "x", "field 'x' must be a whole number of cents, got -0.5")


def test_a_huge_exponent_is_refused_at_once_not_converted():
    started = time.monotonic()
    assert reason_of(numbers.cents, D("1e999999"), "x") == (
        "x", "field 'x' must be a whole number of cents that fits in 64 bits, got 1E+999999")
    assert reason_of(numbers.integer, "1e999999", "n") == (
        "n", "field 'n' must be a whole number that fits in 64 bits, got '1e999999'")
    assert time.monotonic() - started < 1


def test_a_long_value_is_cut_in_the_reason():
    assert reason_of(numbers.cents, D("1." + "5" * 60), "x") == (
        "x", "field 'x' must be a whole number of cents, got 1." + "5" * 38 + "…")
    assert reason_of(numbers.cents, "a" * 60, "x") == ("x", f"field 'x' must be a whole number of cents, got '{'a' * 40}'")


@pytest.mark.parametrize(
    ("value", "expected"), [(3, 3), ("3", 3), ("1e2", 100), ("100.00", 100), (D("100.00"), 100), (2.0, 2), (-7, -7)]
)
def test_integer_takes_whole_numbers_however_written(value, expected):
    result = numbers.integer(value, "quantity")
    assert (result, type(result)) == (expected, int)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("1.5", "field 'quantity' must be a whole number, got '1.5'"),
        (D("1.5"), "field 'quantity' must be a whole number, got 1.5"),
        ("two", "field 'quantity' must be a whole number, got 'two'"),
        (True, "field 'quantity' must be a whole number, got a boolean"),
        (D("NaN"), "field 'quantity' must be a whole number, got NaN"),
        (D("Infinity"), "field 'quantity' must be a whole number, got Infinity"),
    ],
)
def test_integer_refused_never_speaks_of_cents(value, reason):
    assert reason_of(numbers.integer, value, "quantity") == ("quantity", reason)
    assert "cents" not in reason


def test_integer_minimum():
    assert numbers.integer(1, "interval_count", minimum=1) == 1
    assert reason_of(numbers.integer, 0, "interval_count", minimum=1) == (
        "interval_count", "field 'interval_count' must be at least 1, got 0")
    assert reason_of(numbers.integer, "-3", "interval_count", minimum=1) == (
        "interval_count", "field 'interval_count' must be at least 1, got '-3'")


@pytest.mark.parametrize(
    ("value", "expected"), [("12.50", D("12.50")), (" -0.1 ", D("-0.1")), (0.1, D("0.1")), (7, D(7)), ("1e-3", D("0.001"))]
)
def test_parse_answers_a_decimal(value, expected):
    assert numbers.parse(value, "ratio") == expected


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (True, "field 'ratio' must be a number, got a boolean"),
        ("12,5", "field 'ratio' must be a number, got '12,5'"),
        (D("NaN"), "field 'ratio' must be a number, got NaN"),
        (float("inf"), "field 'ratio' must be a number, got inf"),
        ("-Infinity", "field 'ratio' must be a number, got '-Infinity'"),
        (None, "field 'ratio' must be a number, got 'None'"),
    ],
)
def test_parse_refused(value, reason):
    assert reason_of(numbers.parse, value, "ratio") == ("ratio", reason)


@pytest.mark.parametrize(
    ("value", "expected"), [(D("100.00"), 100), (D("1E+2"), 100), (D("12.5"), 12.5), (D("-0.25"), -0.25), (D("0"), 0)]
)
def test_plain_number(value, expected):
    result = numbers.plain_number(value)
    assert (result, type(result)) == (expected, type(expected))


def test_plain_number_does_not_build_an_int_of_a_million_digits():
    started = time.monotonic()
    assert numbers.plain_number(D("1e999999")) == math.inf
    assert time.monotonic() - started < 1
    assert numbers.plain_number(D("1e300")) == 10**300


# Custom attributes use the same parser -----------------------------------------------
def test_decimal_and_integer_attributes_use_the_number_rules():
    assert coerce(DECIMAL, " 12.50 ", "ratio") == 12.5
    assert coerce(DECIMAL, D("3.00"), "ratio") == 3
    assert coerce(INTEGER, "1e2", "seats") == 100
    assert reason_of(coerce, DECIMAL, D("NaN"), "ratio") == ("ratio", "field 'ratio' must be a number, got NaN")
    assert reason_of(coerce, DECIMAL, False, "ratio") == ("ratio", "field 'ratio' must be a number, got a boolean")
    assert reason_of(coerce, INTEGER, "2.5", "seats") == ("seats", "field 'seats' must be a whole number, got '2.5'")


@pytest.mark.parametrize(
    ("kind", "ours", "theirs", "same"),
    [
        (DECIMAL, 12.5, "12.50", True),
        (DECIMAL, 0.1, 0.1, True),
        (DECIMAL, 0.3, 0.30000000000000004, False),  # compared as decimals, not within a float tolerance
        (DECIMAL, 12.5, 12.6, False),
        (DECIMAL, 12.5, "n/a", False),
        (DECIMAL, 1, True, False),
        (INTEGER, 5, 5.0, True),
        (INTEGER, 5, "5", True),
        (INTEGER, 10**17 + 1, 10**17, False),
        (INTEGER, 5, None, False),
    ],
)
def test_attribute_numbers_compare_as_decimals(kind, ours, theirs, same):
    assert same_value(kind, ours, theirs) is same
