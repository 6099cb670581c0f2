"""The sync memory's buffered changes: one rule of which change wins (memory/pending.py), the same before and after a
flush; adoptions that fill a missing uuid; the marks an upgrade leaves and the listing that clears them.

Every test runs with the memory in SQLite and again in the real PostgreSQL server (`ledger_url`).
"""

from __future__ import annotations

import itertools
import typing as t

import pytest

from target_chartmogul.memory.ledger import Entry, Ledger
from target_chartmogul.memory.migrations import SCHEMA_VERSION
from tests.memory_versions import as_version, unproven_marks

DS = "ds_pending"
HASH_A, HASH_B = "a" * 64, "b" * 64

Op = tuple[str, t.Any]
OPS: list[Op] = [("write", "w1"), ("write", "w2"), ("delete", None), ("adopt", "found-1"), ("adopt", "found-2"),
                 ("status", "voided"), ("status", None)]
STARTS = ("absent", "written", "without uuid", "adopted", "voided")


def start(memory: Ledger, ext: str, state: str) -> None:
    """The row as an earlier run left it (flushed before the case's changes)."""
    if state == "written":
        memory.written("invoices", DS, ext, uuid="u-old", payload=HASH_A, stream="s", record=HASH_B, tags=["t"])
    elif state == "without uuid":  # a bulk import's answer names no uuid
        memory.written("invoices", DS, ext, uuid=None, payload=HASH_A, stream="s", parent="inv-0")
    elif state == "adopted":
        memory.adopt("invoices", DS, {ext: "u-listed"})
    elif state == "voided":
        memory.written("invoices", DS, ext, uuid="u-old", payload=HASH_A, stream="s")
        memory.set_status("invoices", DS, ext, "voided")


def apply(memory: Ledger, ext: str, op: Op) -> None:
    kind, value = op
    if kind == "write":
        memory.written("invoices", DS, ext, uuid=f"u-{value}", payload=HASH_B, stream=value, record=HASH_A,
                       tags=[value])
    elif kind == "delete":
        memory.deleted("invoices", DS, ext)
    elif kind == "adopt":
        memory.adopt("invoices", DS, {ext: value})
    else:
        memory.set_status("invoices", DS, ext, value)


def test_a_lookup_before_the_flush_answers_what_the_flush_writes(ledger_url):
    """Every sequence of up to three changes over every earlier state: what this run sees (pending changes applied to
    the stored row) is what the table holds after the flush, and after reopening.
    """
    cases = [(state, ops) for state in STARTS for n in range(1, 4) for ops in itertools.product(OPS, repeat=n)]
    memory = Ledger(ledger_url)
    for index, (state, _) in enumerate(cases):
        start(memory, f"x{index}", state)
    memory.flush()
    for index, (_, ops) in enumerate(cases):
        for op in ops:
            apply(memory, f"x{index}", op)
    ids = [f"x{index}" for index in range(len(cases))]
    seen = memory.lookup("invoices", DS, ids)
    memory.flush()
    assert memory.lookup("invoices", DS, ids) == seen
    memory.close()
    reopened = Ledger(ledger_url)
    assert reopened.lookup("invoices", DS, ids) == seen
    reopened.close()
    assert len(cases) == 5 * (7 + 49 + 343)


@pytest.mark.parametrize(("state", "ops", "expected"), [
    ("written", [("adopt", "found-1")], Entry("u-old", HASH_A, "s", HASH_B, ("t",))),  # a listing never overrides
    ("without uuid", [("adopt", "found-1")], Entry("found-1", HASH_A, "s", None, None, "inv-0")),  # it fills the uuid
    ("absent", [("adopt", "found-1"), ("adopt", "found-2")], Entry("found-1", None, None)),  # the first one stands
    ("absent", [("write", "w1"), ("adopt", "found-1")], Entry("u-w1", HASH_B, "w1", HASH_A, ("w1",))),
    ("adopted", [("delete", None), ("adopt", "found-1")], None),  # a listing read earlier does not bring it back
    ("voided", [("write", "w1")], Entry("u-w1", HASH_B, "w1", HASH_A, ("w1",), None, "voided")),  # status kept
    ("voided", [("delete", None), ("write", "w1")], Entry("u-w1", HASH_B, "w1", HASH_A, ("w1",))),  # ...not over a delete
    ("absent", [("status", "voided"), ("write", "w1")], Entry("u-w1", HASH_B, "w1", HASH_A, ("w1",), None, "voided")),
    ("written", [("status", "voided"), ("delete", None)], None),
    ("absent", [("status", "voided")], None),  # a row that exists nowhere stays without one
])
def test_which_change_wins(ledger_url, state, ops, expected):
    memory = Ledger(ledger_url)
    start(memory, "x", state)
    memory.flush()
    for op in ops:
        apply(memory, "x", op)
    assert memory.get("invoices", DS, "x") == expected
    memory.close()
    reopened = Ledger(ledger_url)
    assert reopened.get("invoices", DS, "x") == expected
    reopened.close()


def test_an_upgrade_leaves_every_kind_unproven_until_a_listing_proves_it(ledger_url):
    memory = Ledger(ledger_url)
    memory.written("customers", DS, "c1", uuid="cus_1", payload=HASH_A, stream="s")
    memory.written("invoices", DS, "i1", uuid="inv_1", payload=HASH_A, stream="s")
    memory.written("transactions", DS, "t1", uuid=None, payload=HASH_A, stream="s", parent="i1")
    memory.close()
    as_version(ledger_url, SCHEMA_VERSION - 1)

    upgraded = Ledger(ledger_url)
    assert unproven_marks(ledger_url) == {(DS, "customers"), (DS, "invoices"), (DS, "transactions")}
    assert upgraded.get("transactions", DS, "t1") == Entry(None, None, "s", None, None, "i1")
    assert upgraded.holds_any("customers", DS) is True
    assert [upgraded.vouches_for("customers", DS), upgraded.vouches_for("invoices", DS),
            upgraded.vouches_for("plans", DS), upgraded.vouches_for("customers", "ds_other")] == [False] * 4
    upgraded.proven("invoices", DS)
    assert upgraded.vouches_for("invoices", DS) is True
    assert upgraded.vouches_for("invoices", DS, "transactions") is False  # a listing of invoices proves both
    upgraded.proven("transactions", DS)
    assert unproven_marks(ledger_url) == {(DS, "customers"), (DS, "invoices"), (DS, "transactions")}  # until the flush
    upgraded.flush()
    assert unproven_marks(ledger_url) == {(DS, "customers")}
    upgraded.close()
    reopened = Ledger(ledger_url)
    assert reopened.vouches_for("invoices", DS, "transactions") is True
    reopened.close()


def test_a_dry_run_proves_nothing(ledger_url):
    memory = Ledger(ledger_url)
    memory.written("customers", DS, "c1", uuid="cus_1", payload=HASH_A, stream="s")
    memory.close()
    as_version(ledger_url, SCHEMA_VERSION - 1)
    dry = Ledger(ledger_url, read_only=True)
    dry.proven("customers", DS)
    assert dry.vouches_for("customers", DS) is True  # for the rest of this run
    dry.close()
    assert unproven_marks(ledger_url) == {(DS, "customers")}


def test_an_upgrade_forgets_the_hashes_of_bulk_imports_in_flight_and_keeps_the_rest(ledger_url):
    entry = {"stream": "public-accounts", "customer": "acct-1", "record": {"external_id": "acct-1", "seats": 3.5},
             "key": {"external_id": "acct-1"}, "reject_key": "k", "objects": [["customers", "acct-1"]],
             "memory": [{"obj": "customers", "ds": DS, "external_id": "acct-1", "payload_hash": HASH_A,
                         "record_hash": HASH_B, "tags": ["vip"], "parent": None}], "parent": None, "payments": []}
    memory = Ledger(ledger_url)
    memory.bulk_import_sending("local-1", DS, [entry])
    memory.bulk_import_sent("local-1", "imp-1")
    memory.close()
    as_version(ledger_url, 7)

    upgraded = Ledger(ledger_url)
    in_flight = upgraded.bulk_imports_in_flight()
    upgraded.close()
    forgotten = {**entry, "memory": [{**entry["memory"][0], "payload_hash": None, "record_hash": None}]}
    assert [(local, ds, imported) for local, ds, imported, _ in in_flight] == [("local-1", DS, "imp-1")]
    assert in_flight[0][3] == [forgotten]
