"""Dates: one parser and one formatter, so validation, mapping, attributes and the encoder agree."""

from __future__ import annotations

import datetime as dt

import pytest

from target_chartmogul.errors import RecordRejected
from target_chartmogul.mapping.transactions import map_transaction
from target_chartmogul.values import dates
from target_chartmogul.values.attributes import TIMESTAMP, coerce
from target_chartmogul.values.encoding import dumps
from target_chartmogul.values.validation import INVALID, Invalid, RecordChecker

PLUS_5 = dt.timezone(dt.timedelta(hours=5))
MINUS_5 = dt.timezone(dt.timedelta(hours=-5))
DATE_TIME_SCHEMA = {"type": "object", "properties": {"at": {"type": ["string", "null"], "format": "date-time"}}}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-01-01 10:00:00 UTC", "2024-01-01T10:00:00Z"),  # validation refused this one, mapping took it
        ("2024-01-01 10:00:00", "2024-01-01T10:00:00Z"),
        ("2024-01-01T10:00:00", "2024-01-01T10:00:00Z"),
        ("2024-01-01T10:00:00Z", "2024-01-01T10:00:00Z"),
        ("2024-01-01T10:00:00+02:00", "2024-01-01T08:00:00Z"),
        ("2024-01-01T10:00:00-05:00", "2024-01-01T15:00:00Z"),
        ("2024-01-01 10:00:00+00", "2024-01-01T10:00:00Z"),  # PostgreSQL's timestamptz text
        ("  2024-01-01T10:00:00Z  ", "2024-01-01T10:00:00Z"),
        ("2024-01-01T10:00:00.123456Z", "2024-01-01T10:00:00.123Z"),
        ("2024-01-01", "2024-01-01T00:00:00Z"),
        ("0001-01-01T00:00:00+00:00", "0001-01-01T00:00:00Z"),
        ("0001-01-01T00:00:00-05:00", "0001-01-01T05:00:00Z"),
        ("9999-12-31T23:59:59+00:00", "9999-12-31T23:59:59Z"),
        ("9999-12-31T18:00:00-05:00", "9999-12-31T23:00:00Z"),
        (dt.date(2024, 3, 1), "2024-03-01T00:00:00Z"),
        (dt.datetime(2024, 3, 1, 8, 30), "2024-03-01T08:30:00Z"),
        (dt.datetime(2024, 3, 1, 8, 30, tzinfo=PLUS_5), "2024-03-01T03:30:00Z"),
    ],
)
def test_accepted_dates_are_written_in_utc(value, expected):
    assert dates.timestamp_text(value, "at") == expected


def test_parse_answers_an_aware_utc_datetime():
    assert dates.parse("2024-01-01T10:00:00+02:00", "at") == dt.datetime(2024, 1, 1, 8, tzinfo=dt.timezone.utc)
    assert dates.parse(dt.date(2024, 1, 1), "at").tzinfo is dt.timezone.utc


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("yesterday", "field 'at' is not a valid ISO-8601 date or date-time: 'yesterday'"),
        ("", "field 'at' is not a valid ISO-8601 date or date-time: ''"),
        ("2024-13-01", "field 'at' is not a valid ISO-8601 date or date-time: '2024-13-01'"),
        ("01/02/2024", "field 'at' is not a valid ISO-8601 date or date-time: '01/02/2024'"),
        (1704103200, "field 'at' is not a valid ISO-8601 date or date-time: '1704103200'"),
        (None, "field 'at' is not a valid ISO-8601 date or date-time: 'None'"),
        ("0001-01-01T00:00:00+05:00", "field 'at' is out of range once converted to UTC: 0001-01-01T00:00:00+05:00"),
        ("9999-12-31T23:00:00-05:00", "field 'at' is out of range once converted to UTC: 9999-12-31T23:00:00-05:00"),
        (dt.datetime(1, 1, 1, tzinfo=PLUS_5), "field 'at' is out of range once converted to UTC: 0001-01-01T00:00:00+05:00"),
        (dt.datetime(9999, 12, 31, 23, tzinfo=MINUS_5),
         "field 'at' is out of range once converted to UTC: 9999-12-31T23:00:00-05:00"),
    ],
)
def test_refused_dates_name_the_field(value, reason):
    with pytest.raises(RecordRejected) as caught:
        dates.parse(value, "at")
    assert (caught.value.field, caught.value.reason) == ("at", reason)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (dt.datetime(2024, 3, 1, 8, 0, 0, tzinfo=dt.timezone.utc), "2024-03-01T08:00:00Z"),
        (dt.datetime(2024, 3, 1, 8, 0, 0, 250000, tzinfo=dt.timezone.utc), "2024-03-01T08:00:00.250Z"),
        (dt.datetime(2024, 3, 1, 8, 0, 0, 999999), "2024-03-01T08:00:00.999Z"),
        (dt.datetime(1, 1, 1, tzinfo=dt.timezone.utc), "0001-01-01T00:00:00Z"),
        (dt.datetime(999, 12, 31, 23, 59, 59, tzinfo=dt.timezone.utc), "0999-12-31T23:59:59Z"),
        (dt.datetime(2024, 3, 1, 10, tzinfo=dt.timezone(dt.timedelta(hours=2))), "2024-03-01T08:00:00Z"),
        (dt.date(5, 6, 7), "0005-06-07T00:00:00Z"),
    ],
)
def test_the_formatter_writes_iso_8601_utc(value, expected):
    assert dates.iso_utc(value) == expected


def test_the_formatter_refuses_a_datetime_without_a_utc_equivalent_instead_of_writing_it_as_given():
    with pytest.raises(ValueError, match=r"^0001-01-01T00:00:00\+05:00 has no UTC equivalent"):
        dates.iso_utc(dt.datetime(1, 1, 1, tzinfo=PLUS_5))
    with pytest.raises(ValueError, match="has no UTC equivalent"):
        dumps({"at": dt.datetime(9999, 12, 31, 23, tzinfo=MINUS_5)})


def test_the_encoder_writes_dates_with_the_formatter():
    value = {"at": dt.datetime(2024, 3, 1, 10, 0, 0, 5000, tzinfo=dt.timezone(dt.timedelta(hours=2))), "on": dt.date(7, 1, 2)}
    assert dumps(value) == '{"at": "2024-03-01T08:00:00.005Z", "on": "0007-01-02T00:00:00Z"}'


# Every reader of a date agrees -------------------------------------------------------
def test_schema_validation_accepts_a_trailing_utc_and_parses_to_utc():
    record = {"at": "2024-01-01 10:00:00 UTC"}
    RecordChecker("s", DATE_TIME_SCHEMA).validate(record)
    # rewritten in the form singer-sdk's own date parsing (which runs next) reads as the same instant
    assert record == {"at": "2024-01-01T10:00:00+00:00"}
    assert dt.datetime.fromisoformat(record["at"]) == dt.datetime(2024, 1, 1, 10, tzinfo=dt.timezone.utc)


@pytest.mark.parametrize("value", ["0001-01-01T00:00:00+05:00", "9999-12-31T23:00:00-05:00", "yesterday"])
def test_schema_validation_refuses_what_the_parser_refuses_with_the_same_words(value):
    record = {"at": value}
    with pytest.raises(RecordRejected) as caught:
        dates.parse(value, "at")
    RecordChecker("s", DATE_TIME_SCHEMA).validate(record)
    # marked, with the record as it arrived for the reject line; the field blanked so the SDK cannot trip on it
    assert record == {"at": None, INVALID: Invalid("at", caught.value.reason, {"at": value})}


def test_schema_validation_parses_dates_declared_in_any_of():
    schema = {"type": "object", "properties": {"on": {"anyOf": [{"type": "string", "format": "date"}, {"type": "null"}]}}}
    record = {"on": "2024-02-29"}
    RecordChecker("s", schema).validate(record)
    assert record == {"on": "2024-02-29"}  # a date stays a date for singer-sdk's date parsing


def test_mapping_and_custom_attributes_read_a_trailing_utc_and_refuse_an_overflow_naming_the_field():
    assert coerce(TIMESTAMP, "2024-01-01 10:00:00 UTC", "renews_at") == "2024-01-01T10:00:00Z"
    with pytest.raises(RecordRejected) as caught:
        coerce(TIMESTAMP, "0001-01-01T00:00:00+05:00", "renews_at")
    assert caught.value.field == "renews_at"
    record = {"type": "payment", "result": "successful", "external_id": "t-1", "date": "9999-12-31T23:00:00-05:00"}
    with pytest.raises(RecordRejected) as caught:
        map_transaction(record, "transactions[0].")
    assert (caught.value.field, caught.value.reason) == (
        "transactions[0].date",
        "field 'transactions[0].date' is out of range once converted to UTC: 9999-12-31T23:00:00-05:00",
    )


@pytest.mark.parametrize(
    ("sent", "millis", "answered"),
    [
        ("2016-01-01 12:00:00 UTC", True, "2016-01-01T12:00:00.000Z"),
        ("2016-01-01T12:00:00Z", True, "2016-01-01T12:00:00.000Z"),  # Python 3.10 reads the Z only through dates
        ("2024-01-01T10:00:00.250+02:00", True, "2024-01-01T08:00:00.250Z"),
        ("2022-02-16", False, "2022-02-16T00:00:00Z"),
        ("2022-02-16T00:00:00Z", False, "2022-02-16T00:00:00Z"),
        ("not a date", True, "not a date"),
        ("0001-01-01T00:00:00+05:00", True, "0001-01-01T00:00:00+05:00"),
        ("", True, ""),
        (None, False, None),
    ],
)
def test_dates_as_chartmogul_answers_them(sent: object, millis: bool, answered: object) -> None:
    assert dates.as_answered(sent, millis=millis) == answered
