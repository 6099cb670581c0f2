"""The record checker: a compiled quick check passes valid records, jsonschema judges and words the rest."""

from __future__ import annotations

import decimal
import typing as t

import fastjsonschema
import jsonschema
import pytest

from target_chartmogul.values.validation import INVALID, RecordChecker, quick_check

PLAIN = {
    "type": "object",
    "properties": {
        "external_id": {"type": ["string", "null"], "maxLength": 8},
        "amount": {"type": ["number", "null"], "minimum": 0, "exclusiveMaximum": 1000},
        "seats": {"type": ["integer", "null"]},
        "paid": {"type": ["boolean", "null"]},
        "date": {"type": ["string", "null"], "format": "date-time"},
        "tags": {"type": ["array", "null"], "items": {"type": "string"}, "maxItems": 2},
        "lines": {"type": "array", "items": {"type": "object", "properties": {"n": {"type": "integer"}},
                                             "required": ["n"], "additionalProperties": False}},
        "either": {"anyOf": [{"type": "string", "pattern": "^a"}, {"type": "integer"}]},
    },
    "required": ["external_id"],
}

VALUES: list[dict[str, t.Any]] = [
    {"external_id": "c1"},
    {"external_id": None},
    {},
    {"external_id": "c123456789"},
    {"external_id": 7},
    {"external_id": "c1", "amount": decimal.Decimal("99.90")},
    {"external_id": "c1", "amount": -1},
    {"external_id": "c1", "amount": 1000},
    {"external_id": "c1", "amount": True},
    {"external_id": "c1", "seats": 2.0},
    {"external_id": "c1", "seats": 2.5},
    {"external_id": "c1", "seats": True},
    {"external_id": "c1", "seats": "2"},
    {"external_id": "c1", "paid": 1},
    {"external_id": "c1", "paid": False},
    {"external_id": "c1", "date": "not a date"},
    {"external_id": "c1", "tags": ["a", "b"]},
    {"external_id": "c1", "tags": ["a", 1]},
    {"external_id": "c1", "tags": ["a", "b", "c"]},
    {"external_id": "c1", "lines": [{"n": 1}]},
    {"external_id": "c1", "lines": [{"n": 1, "x": 2}]},
    {"external_id": "c1", "lines": [{}]},
    {"external_id": "c1", "either": "abc"},
    {"external_id": "c1", "either": "b"},
    {"external_id": "c1", "either": 3},
    {"external_id": "c1", "either": None},
]


@pytest.mark.parametrize("record", VALUES, ids=[repr(v) for v in VALUES])
def test_the_quick_check_never_passes_what_jsonschema_refuses(record: dict[str, t.Any]) -> None:
    quick = quick_check(PLAIN)
    assert quick is not None
    try:
        quick(dict(record))
        passed = True
    except fastjsonschema.JsonSchemaValueException:
        passed = False
    if passed:
        assert jsonschema.Draft202012Validator(PLAIN).is_valid(record)


SCHEMA_ONLY = [v for v in VALUES if "date" not in v]  # dates are also read by dates.parse (tests/test_dates.py)


@pytest.mark.parametrize("record", SCHEMA_ONLY, ids=[repr(v) for v in SCHEMA_ONLY])
def test_checker_verdicts_are_jsonschemas(record: dict[str, t.Any]) -> None:
    marked = dict(record)
    RecordChecker("s", PLAIN).validate(marked)
    assert (INVALID not in marked) == jsonschema.Draft202012Validator(PLAIN).is_valid(record)


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "properties": {"kind": {"enum": [1, 2]}}},
        {"type": "object", "properties": {"kind": {"const": 1}}},
        {"type": "object", "properties": {"a": {"$ref": "https://example.invalid/s.json"}}},
        {"type": "object", "properties": {"amount": {"type": "number", "multipleOf": 0.01}}},
        {"type": "array", "items": [{"type": "string"}]},
        {"type": "object", "properties": {"a": {"type": "string", "x-vendor": 1}}},
        {"type": "object", "prefixItems": [{"type": "string"}]},
    ],
)
def test_schemas_the_two_could_read_differently_get_no_quick_check(schema: dict[str, t.Any]) -> None:
    assert quick_check(schema) is None


def test_enum_is_judged_by_jsonschema_alone() -> None:
    schema = {"type": "object", "properties": {"kind": {"enum": [1, 2]}}}
    record = {"kind": True}
    RecordChecker("s", schema).validate(record)
    assert record[INVALID].field == "kind"


def test_a_refused_record_is_worded_by_jsonschema() -> None:
    record = {"external_id": "c1", "seats": "2"}
    RecordChecker("s", PLAIN).validate(record)
    assert record[INVALID].field == "seats"
    assert record[INVALID].reason == "field 'seats' does not match the stream schema: '2' is not of type 'integer', 'null'"
