"""Reading a finished bulk import's answer, in every shape the mocks and the fake's switches give."""

from __future__ import annotations

import pytest

from target_chartmogul.bulk.entries import Entry
from target_chartmogul.bulk.outcomes import finished, read


def entry(customer: str, *objects: tuple[str, str], parent: int | None = None) -> Entry:
    made = Entry("s", customer, {}, {}, "k", objects=list(objects))
    made.parent = parent
    return made


ENTRIES = [
    entry("c1", ("customers", "c1")),
    entry("c1", ("invoices", "i1"), ("line_items", "l1"), ("transactions", "t1")),
    entry("c1", ("invoices", "i2")),
    entry("c2", ("customers", "c2")),
    entry("c2", ("subscription_events", "e1")),
]


@pytest.mark.parametrize(("answer", "expected"), [
    ({"status": "queued"}, False), ({"status": "processing"}, False), ({"status": "completed"}, True),
    ({"status": "failed"}, True), ({}, False), ("oops", False),
])
def test_an_import_is_finished_once_it_is_neither_queued_nor_processing(answer, expected):
    assert finished(answer) is expected


def test_everything_imported_in_the_python_mock_shape_lands():
    details = {"plans": {"status": "imported"},
               "c1": {"status": "imported", "customers": {"status": "imported"}, "invoices": {"status": "imported"},
                      "line_items": {"status": "imported"}, "transactions": {"status": "imported"}},
               "c2": {"status": "imported", "customers": {"status": "imported"},
                      "subscription_events": {"status": "imported"}}}

    outcome = read("imp", {"status": "completed", "status_details": details}, ENTRIES)

    assert (outcome.landed, outcome.failed, outcome.unsure) == ([0, 1, 2, 3, 4], {}, [])


def test_named_errors_fail_only_the_objects_they_name():
    invoices = {"status": "failed", "errors": [{"external_id": "i2", "errors": {"currency": "is invalid"}}]}
    details = {"c1": {"status": "failed", "customers": {"status": "imported"}, "invoices": invoices},
               "c2": {"status": "imported"}}

    outcome = read("imp", {"status": "completed", "status_details": details}, ENTRIES)

    assert outcome.landed == [0, 1, 3, 4]
    assert outcome.failed == {2: ('ChartMogul\'s bulk import imp failed invoices i2: {"currency": "is invalid"}',
                                  "currency")}


@pytest.mark.parametrize("detail", [{"status": "failed"}, {"status": "failed", "message": "2 invoices failed"}])
def test_a_failed_kind_that_names_nothing_fails_every_object_of_that_kind_for_the_customer(detail):
    details = {"c1": {"status": "failed", "customers": {"status": "imported"}, "invoices": detail}}

    outcome = read("imp", {"status": "completed", "status_details": details}, ENTRIES)

    assert sorted(outcome.failed) == [1, 2]
    assert outcome.landed == [0]
    assert outcome.unsure == [3, 4]  # c2 is not in the answer: not confirmed
    assert all(reason.endswith(str(detail).replace("'", '"')) for reason, _ in outcome.failed.values())


def test_a_taken_external_id_is_unsure_not_refused():
    details = {"c1": {"status": "failed", "customers": {"status": "failed",
                                                        "errors": [{"external_id": "c1",
                                                                    "errors": {"external_id": "has already been taken"}}]},
                      "invoices": {"status": "imported"}, "line_items": {"status": "imported"},
                      "transactions": {"status": "imported"}},
               "c2": {"status": "imported"}}

    outcome = read("imp", {"status": "completed", "status_details": details}, ENTRIES)

    assert (outcome.unsure, outcome.failed) == ([0], {})
    assert outcome.landed == [1, 2, 3, 4]


def test_counts_without_details_are_trusted_only_when_they_count_no_error():
    clean = read("imp", {"status": "completed", "processed_count": 9, "error_count": 0}, ENTRIES)
    errors = read("imp", {"status": "completed", "processed_count": 8, "error_count": 1}, ENTRIES)
    silent = read("imp", {"status": "completed"}, ENTRIES)

    assert (clean.landed, clean.unsure) == ([0, 1, 2, 3, 4], [])
    assert (errors.landed, errors.unsure) == ([], [0, 1, 2, 3, 4])
    assert (silent.landed, silent.unsure) == ([], [0, 1, 2, 3, 4])


def test_an_import_that_ends_in_another_status_fails_every_entry_with_its_answer():
    outcome = read("imp", {"id": "imp", "status": "failed", "status_details": {"error": "boom"}}, ENTRIES)

    assert sorted(outcome.failed) == [0, 1, 2, 3, 4]
    assert {reason for reason, _ in outcome.failed.values()} == {
        'ChartMogul\'s bulk import imp ended \'failed\': {"status": "failed", "status_details": {"error": "boom"}}'}


def test_a_line_fails_its_invoice_and_an_invoice_fails_its_lines():
    entries = [entry("c1", ("invoices", "i1")), entry("c1", ("line_items", "l1"), parent=0),
               entry("c1", ("invoices", "i2")), entry("c1", ("line_items", "l2"), parent=2)]
    details = {"c1": {"status": "failed",
                      "invoices": {"status": "failed", "errors": [{"external_id": "i2", "errors": {"date": "bad"}}]},
                      "line_items": {"status": "failed", "errors": [{"external_id": "l1", "errors": {"type": "bad"}}]}}}

    outcome = read("imp", {"status": "completed", "status_details": details}, entries)

    assert outcome.landed == []
    assert outcome.failed[0][0].startswith("its line l1 was refused: ")
    assert outcome.failed[3][0].startswith("its invoice was refused: ")
    assert (outcome.failed[1][1], outcome.failed[2][1]) == ("type", "date")
