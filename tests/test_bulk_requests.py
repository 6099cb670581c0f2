"""Packing entries into import requests: by customer, within 5 MB and 1,000 customers."""

from __future__ import annotations

import json

import pytest

from target_chartmogul.bulk.entries import Entry
from target_chartmogul.bulk.requests import (
    ENVELOPE_BYTES,
    EXTERNAL_ID_LENGTH,
    MAX_BYTES,
    ImportRequest,
    Unit,
    customers_per_request,
    pack,
    unit_size,
)

EXTERNAL_ID = "target-chartmogul-" + "0" * 32


def unit(customer: str, kind: str = "invoices", ext: str = "x", size: int = 10, pad: str = "p") -> Unit:
    made = Entry("s", customer, {}, {}, "k")
    made.add(kind, {"external_id": ext, "pad": pad * size})
    return [made]


def customers(n: int, per: int = 1, ds: str = "ds", size: int = 10,
              pad: str = "p") -> list[tuple[str, str, list[Unit], list[tuple[str, dict]]]]:
    return [(ds, f"c{i}", [unit(f"c{i}", ext=f"i{i}-{k}", size=size, pad=pad) for k in range(per)], [])
            for i in range(n)]


def test_a_thousand_customers_at_most_per_request_and_one_customer_never_split_between_two():
    refused: list[Unit] = []
    requests = list(pack(customers(2500, per=2), too_large=refused.append))

    assert [len(r.customers) for r in requests] == [1000, 1000, 500]
    assert [r.wave for r in requests] == [0, 0, 0]
    seen = [c for r in requests for c in r.customers]
    assert len(seen) == len(set(seen)) == 2500
    assert refused == []


def test_each_data_sources_first_request_closes_at_first_customers_the_others_at_max_customers():
    mixed = [*customers(5, ds="ds1"), *customers(4, ds="ds2")]
    requests = list(pack(mixed, max_customers=3, first_customers=1, too_large=lambda u: None))

    assert [(r.data_source_uuid, len(r.customers)) for r in requests] == [
        ("ds1", 1), ("ds1", 3), ("ds2", 1), ("ds1", 1), ("ds2", 3)]


def test_a_request_stays_within_the_byte_limit_and_its_body_is_that_size_or_less():
    size = unit_size(unit("c0", ext="i0-0", size=100))
    limit = ENVELOPE_BYTES + 5 * size
    requests = list(pack(customers(12, size=100), max_bytes=limit, too_large=lambda u: None))

    assert [len(r.entries) for r in requests] == [5, 5, 2]
    for request in requests:
        assert request.size <= limit
        assert len(request.body(EXTERNAL_ID)) <= request.size


def test_bytes_not_characters_are_counted_and_the_body_sent_is_within_5_000_000_bytes():
    # Japanese text: three UTF-8 bytes per character, so a body measured in characters would be three times over
    names = customers(40, per=10, size=5000, pad="株式会社")  # 400 objects of 20,000 characters, about 60 kB each
    requests = list(pack(names, max_bytes=MAX_BYTES, too_large=lambda u: None))

    bodies = [request.body(EXTERNAL_ID) for request in requests]
    assert [len(json.loads(body)["invoices"]) for body in bodies] == [80, 80, 80, 80, 80]
    for request, body in zip(requests, bodies, strict=True):
        assert len(body) <= request.size <= MAX_BYTES
        assert request.size - len(body) < ENVELOPE_BYTES  # the count is exact but for arrays absent from the body
        # the next customer (10 objects of ~60 kB) would not have fitted: the requests are as full as allowed
        assert request.size + 10 * (len(body) // 80) > MAX_BYTES
    assert sum(len(json.loads(body)["invoices"]) for body in bodies) == 400


def test_the_envelope_counts_an_external_id_of_the_length_sent_and_every_array():
    empty = ImportRequest("ds")
    assert len(EXTERNAL_ID) == EXTERNAL_ID_LENGTH
    assert len(empty.body(EXTERNAL_ID)) < ENVELOPE_BYTES
    request = ImportRequest("ds")
    for kind in ("customers", "plans", "invoices", "line_items", "transactions", "subscription_events"):
        one = unit("c0", kind=kind)
        request.add(one, unit_size(one))
    assert len(request.body(EXTERNAL_ID)) == request.size - 6 * len(", ")


def test_a_customer_larger_than_a_request_goes_in_later_waves_one_after_another():
    size = unit_size(unit("c0", ext="i0-0"))
    limit = ENVELOPE_BYTES + 3 * size
    big = [("ds", "big", [unit("big", ext=f"b{k}") for k in range(7)], [])]

    requests = list(pack([*customers(1), *big], max_bytes=limit, too_large=lambda u: None))

    assert [(r.wave, sorted(r.customers), len(r.entries)) for r in requests] == [
        (0, ["c0"], 1), (0, ["big"], 3), (1, ["big"], 3), (2, ["big"], 1)]


def test_one_record_larger_than_any_request_is_handed_back_for_rest():
    refused: list[Unit] = []
    requests = list(pack([("ds", "c0", [unit("c0", size=1000)], []), ("ds", "c1", [unit("c1")], [])],
                         max_bytes=500, too_large=refused.append))

    assert [u[0].customer for u in refused] == ["c0"]
    assert [sorted(r.customers) for r in requests] == [["c1"]]


def test_data_sources_never_share_a_request_and_children_point_at_their_invoice():
    invoice = unit("c0")[0]
    line = Entry("lines", "c0", {}, {}, "k")
    line.add("line_items", {"external_id": "l1"})
    requests = list(pack([("ds1", "c0", [[invoice, line]], []), ("ds2", "c0", [unit("c0")], [])],
                         too_large=lambda u: None))

    assert [r.data_source_uuid for r in requests] == ["ds1", "ds2"]
    first: ImportRequest = requests[0]
    assert [e.parent for e in first.entries] == [None, 0]
    assert json.loads(first.body("ext")) == {"external_id": "ext",
                                             "invoices": [{"external_id": "x", "pad": "pppppppppp"}],
                                             "line_items": [{"external_id": "l1"}]}


def test_what_a_customer_needs_first_goes_with_the_request_of_its_first_unit_or_the_one_being_filled():
    rows = [("ds", "c0", [unit("c0")], [("accounts", {"external_id": "c0"})]),
            ("ds", "c1", [], [("accounts", {"external_id": "c1"})]),
            ("ds", "c2", [unit("c2")], [])]
    requests = list(pack(rows, max_customers=2, too_large=lambda u: None))

    assert [(sorted(r.customers), [rec["external_id"] for _, rec in r.before]) for r in requests] == [
        (["c0"], ["c0", "c1"]), (["c2"], [])]


@pytest.mark.parametrize(
    ("waiting", "sizes"),
    [(1, [1]), (120, [120]), (199, [199]), (200, [100, 100]), (250, [100, 150]), (301, [100, 101, 100]),
     (2000, [100, 300, 300, 300, 300, 300, 300, 100]), (8001, [100, *[976] * 8, 93])],
)
def test_a_flush_goes_in_up_to_eight_imports_the_first_and_last_of_100_the_others_even(
        waiting: int, sizes: list[int]) -> None:
    first, per_request = customers_per_request(waiting)
    requests = list(pack(customers(waiting), max_customers=per_request, first_customers=first, too_large=lambda u: None))

    assert [len(r.customers) for r in requests] == sizes


def test_a_large_flush_goes_in_imports_of_at_most_1000_customers() -> None:
    first, per_request = customers_per_request(50001)
    assert (first, per_request) == (100, 997)
