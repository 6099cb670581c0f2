"""The spool: records waiting for a bulk import, on disk, grouped by customer."""

from __future__ import annotations

from decimal import Decimal

from target_chartmogul.bulk.spool import Spool


def test_records_come_back_by_customer_in_arrival_order_and_a_key_spooled_again_replaces_the_first():
    spool = Spool()
    try:
        spool.add("customer", [("ds", "c2", "customers", "c2", {"external_id": "c2"}),
                               ("ds", "c1", "customers", "c1", {"external_id": "c1", "v": 1})])
        spool.add("invoice", [("ds", "c1", "invoices", "i1", {"external_id": "i1", "amount": Decimal("9.90")})])
        spool.add("customer", [("ds", "c1", "customers", "c1", {"external_id": "c1", "v": 2})])

        assert spool.count == 3
        assert spool.streams() == {"customers": 2, "invoices": 1}
        grouped = [(ds, customer, rows) for ds, customer, rows in spool.by_customer()]
        assert grouped == [
            ("ds", "c1", [("invoices", {"external_id": "i1", "amount": Decimal("9.90")}),
                          ("customers", {"external_id": "c1", "v": 2})]),
            ("ds", "c2", [("customers", {"external_id": "c2"})]),
        ]
        assert (spool.holds("invoice", "ds", "i1"), spool.holds("customer", "ds", "i1")) == (True, False)
        assert spool.discard("invoices", "i1") is True
        assert spool.holds("invoice", "ds", "i1") is False
        assert spool.discard("invoices", "i1") is False
        assert spool.count == 2
        spool.clear()
        assert (spool.count, list(spool.by_stream())) == (0, [])
    finally:
        spool.close()


def test_landed_customers_wait_on_disk_and_are_taken_out_page_by_page():
    spool = Spool()
    try:
        for n in range(3):
            spool.stash_landed("ds", f"c{n}", {"customer": f"c{n}", "amount": Decimal("1.10")})
        spool.stash_landed("other", "c0", {"customer": "c0"})

        assert spool.landed_sources() == ["ds", "other"]
        assert spool.take_landed("ds", ["c1", "c9"]) == {"c1": {"customer": "c1", "amount": Decimal("1.10")}}
        assert spool.take_landed("ds", ["c1"]) == {}
        assert spool.rest_landed("ds") == [{"customer": "c0", "amount": Decimal("1.10")},
                                           {"customer": "c2", "amount": Decimal("1.10")}]
        assert spool.landed_sources() == ["other"]
    finally:
        spool.close()
