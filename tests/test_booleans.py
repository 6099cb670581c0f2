"""Booleans: only the spellings ChartMogul reads; `bool("false")` being True once sent false as true."""

from __future__ import annotations

import decimal

import pytest

from target_chartmogul.errors import RecordRejected
from target_chartmogul.values.booleans import boolean

D = decimal.Decimal


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True), (False, False),
        ("true", True), ("TRUE", True), ("True", True), (" true ", True),
        ("false", False), ("FALSE", False), ("False", False), ("\tfalse\n", False),
        ("t", True), ("T", True), ("f", False), ("F", False),
        ("1", True), ("0", False), (" 1 ", True),
        (1, True), (0, False), (D("1"), True), (D("0"), False), (D("1.0"), True), (D("0.00"), False),
    ],
)
def test_accepted(value, expected):
    assert boolean(value, "prorated") is expected


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("yes", "'yes'"), ("no", "'no'"), ("y", "'y'"), ("on", "'on'"), ("", "''"), ("tru", "'tru'"),
        ("2", "'2'"), (2, "'2'"), (-1, "'-1'"), (1.0, "'1.0'"), (D("0.5"), "'0.5'"), (D("NaN"), "'NaN'"),
        (None, "'None'"), ([True], "'[True]'"), ("x" * 60, repr("x" * 40)),
    ],
)
def test_refused(value, shown):
    with pytest.raises(RecordRejected) as caught:
        boolean(value, "line_items[0].prorated")
    assert caught.value.field == "line_items[0].prorated"
    assert caught.value.reason == f"field 'line_items[0].prorated' must be a boolean (true/false, t/f or 1/0), got {shown}"
