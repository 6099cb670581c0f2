"""Typed custom attributes: values converted to what ChartMogul stores for each type, or refused naming the field."""

from __future__ import annotations

import pytest

from target_chartmogul.errors import RecordRejected
from target_chartmogul.values.attributes import coerce, same_value


@pytest.mark.parametrize(
    ("kind", "value", "expected"),
    [("Decimal", "1.50", 1.5), ("Decimal", "100.00", 100), ("Integer", "1e2", 100), ("Boolean", "f", False),
     ("Boolean", 1, True), ("String", 42, "42"), ("Timestamp", "2024-01-01 10:00:00 UTC", "2024-01-01T10:00:00Z")],
)
def test_values_are_stored_as_their_type(kind, value, expected):
    assert coerce(kind, value, "attr") == expected


@pytest.mark.parametrize(
    ("kind", "value", "reason"),
    [("Decimal", "1e999999", "field 'attr' is too large for a Decimal attribute, got 1e999999"),
     ("Boolean", "yes", "field 'attr' must be a boolean (true/false, t/f or 1/0), got 'yes'"),
     ("String", "x" * 256, "field 'attr' is 256 characters long; ChartMogul allows at most 255")],
)
def test_values_chartmogul_would_refuse_are_rejected_naming_the_field(kind, value, reason):
    with pytest.raises(RecordRejected) as caught:
        coerce(kind, value, "attr")
    assert (caught.value.field, caught.value.reason) == ("attr", reason)


def test_decimals_compare_exactly():
    assert same_value("Decimal", 0.3, "0.3")
    assert not same_value("Decimal", 0.3, 0.30000000000000004)
