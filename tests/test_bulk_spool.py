"""The spool: records waiting for a bulk import, on disk, grouped by customer."""

from __future__ import annotations

from decimal import Decimal

from target_chartmogul.bulk.spool import Spool, remove_stale


def test_records_come_back_by_customer_in_arrival_order_and_a_key_spooled_again_replaces_the_first(tmp_path):
    spool = Spool(tmp_path)
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


def test_imported_entries_wait_on_disk_until_verified_and_what_no_listing_showed_comes_back(tmp_path):
    spool = Spool(tmp_path)
    try:
        spool.stash("ds", [("customers", "c1", None, {"n": 1}), ("invoices", "i1", None, {"n": 2, "amount": Decimal("1.10")}),
                           ("line_items", "l1", 1, {"n": 3}), ("line_items", "l2", 1, {"n": 4})])
        spool.stash("other", [("invoices", "i1", None, {"n": 5})])

        assert spool.to_verify() == [("ds", "customers"), ("ds", "invoices"), ("other", "invoices")]
        [(seq, external_id, entry, children)] = spool.imported("ds", "invoices", ["i1", "i9"])
        assert (external_id, entry, children) == ("i1", {"n": 2, "amount": Decimal("1.10")}, [{"n": 3}, {"n": 4}])
        spool.verified([seq])  # the invoice and its lines
        assert spool.imported("ds", "invoices", ["i1"]) == []
        assert [entry["n"] for entry in spool.unverified()] == [1, 5]
        assert spool.to_verify() == []
    finally:
        spool.close()


def test_the_spool_lives_beside_the_sync_memory_and_is_removed_when_closed(tmp_path):
    spool = Spool(tmp_path)
    spool.add("customer", [("ds", "c1", "customers", "c1", {"external_id": "c1"})])
    [folder] = tmp_path.glob("bulk-spool-*")
    assert (folder / "spool.db").exists()
    assert remove_stale(tmp_path) == []  # a living run holds its folder
    spool.close()
    assert list(tmp_path.glob("bulk-spool-*")) == []


def test_a_run_removes_what_killed_runs_left_and_only_that(tmp_path):
    killed = tmp_path / "bulk-spool-dead"
    killed.mkdir()
    (killed / "run.lock").write_text("")
    (killed / "spool.db").write_bytes(b"x" * 1000)
    half_made = tmp_path / "bulk-spool-nolock"  # killed before its lock file existed
    half_made.mkdir()
    alive = Spool(tmp_path)
    alive.add("customer", [("ds", "c1", "customers", "c1", {"external_id": "c1"})])
    try:
        assert sorted(p.name for p in remove_stale(tmp_path)) == ["bulk-spool-dead", "bulk-spool-nolock"]
        [left] = tmp_path.glob("bulk-spool-*")
        assert left.name != "bulk-spool-dead" and (left / "spool.db").exists()
    finally:
        alive.close()
