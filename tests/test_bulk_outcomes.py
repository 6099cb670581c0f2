"""Reading a finished bulk import's answer, in every shape the mocks and the fake's switches give.

The answer only explains (in the log): what landed is decided by ChartMogul's listings (tests/test_bulk_import.py).
"""

from __future__ import annotations

import pytest

from target_chartmogul.bulk.outcomes import describe, finished, reported_failures

DOCUMENTED = {  # the reference's Track Import Status example
    "id": "ac8cuuid-14i4-11ee-u0id-d3f5fa07p987", "status": "completed", "external_id": "ds_import_1",
    "status_details": {"plans": {"status": "imported"},
                       "scus_0001": {"status": "imported", "invoices": {"status": "imported"},
                                     "customers": {"status": "imported"}, "line_items": {"status": "imported"},
                                     "transactions": {"status": "imported"},
                                     "subscription_events": {"status": "imported"}}},
}


@pytest.mark.parametrize(("answer", "expected"), [
    ({"status": "queued"}, False), ({"status": "processing"}, False), ({"status": "completed"}, True),
    ({"status": "failed"}, True), ({"status": "unknown"}, True), ({"status": "partially_completed"}, True),
    ({}, False), ("oops", False),
])
def test_an_import_is_finished_once_it_is_neither_queued_nor_processing(answer, expected):
    assert finished(answer) is expected


def test_the_documented_answer_reports_no_failure():
    assert reported_failures(DOCUMENTED) == []
    assert describe(DOCUMENTED) == "no failure reported"


def test_failures_are_quoted_per_customer_verbatim_and_a_long_list_is_cut():
    details = {"plans": {"status": "imported"},
               **{f"c{n}": {"status": "failed", "invoices": {"status": "failed", "errors": [
                   {"external_id": f"i{n}", "errors": {"currency": "is invalid"}}]}} for n in range(5)}}
    answer = {"status": "completed", "status_details": details}

    assert reported_failures(answer)[0] == ('c0: {"status": "failed", "invoices": {"status": "failed", "errors": '
                                            '[{"external_id": "i0", "errors": {"currency": "is invalid"}}]}}')
    assert describe(answer).startswith("5 failure(s) reported: c0: ")
    assert describe(answer).endswith(" (and 2 more)")


@pytest.mark.parametrize(("answer", "expected"), [
    ({"status": "completed", "processed_count": 10, "error_count": 0}, []),
    ({"status": "completed", "processed_count": 8, "error_count": 2}, ["2 object(s) counted as errors"]),
    ({"status": "failed", "status_details": {"error": "Import aborted"}}, ['error: "Import aborted"']),
])
def test_the_ruby_mock_shape_and_a_whole_failure_are_read_too(answer, expected):
    assert reported_failures(answer) == expected
