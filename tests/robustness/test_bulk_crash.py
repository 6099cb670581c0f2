"""SIGKILL while a bulk import is processing, then a rerun the way Meltano does it.

The dead run printed no STATE (its records were not recorded yet), so the tap sends the
whole backfill again. The rerun must poll the import the dead run sent, record its outcome,
and find the replayed records already written: nothing sent twice, nothing missing.
"""

from __future__ import annotations

import pathlib
import signal
import typing as t

import pytest

from target_chartmogul.memory.ledger import Ledger
from tests import backfill
from tests.fake_chartmogul import FakeChartMogul
from tests.robustness.load import TargetProcess, wait_for
from tests.running import run_target
from tests.singer_messages import lines, state

STATE = state({"bookmarks": {"backfill": 1}})


def prepared(base_config: dict[str, t.Any], tmp_path: pathlib.Path, data: backfill.Backfill,
             ) -> tuple[dict[str, t.Any], pathlib.Path, pathlib.Path]:
    """The backfill's config with the default paths (sync memory and rejects in the working directory, as with
    Meltano), the working directory, and the input file."""
    config = backfill.config(base_config)
    del config["rejects_path"], config["ledger_url"]
    work = tmp_path / "work"
    work.mkdir()
    feed = work / "load.singer"
    feed.write_text(lines([*backfill.messages(data), STATE]))
    return config, work, feed


def kill_once_polled(fake: FakeChartMogul, first: TargetProcess, sig: int, polls: int) -> None:
    """Send `sig` once the import was polled `polls` times (or the run ended)."""
    try:
        wait_for(lambda: any(n >= polls for n in fake.json_imports.polls.values()) or first.proc.poll() is not None,
                 timeout=60, fake=fake)
    finally:
        first.kill(sig)


@pytest.mark.parametrize("poll_by", ["external_id", "id"])
def test_sigkill_while_an_import_is_processing_then_the_rerun_polls_it_instead_of_sending_it_again(
        fake, ds, base_config, tmp_path, poll_by):
    data = backfill.backfill(60)
    config, work, feed = prepared(base_config, tmp_path, data)
    imports = fake.json_imports
    imports.poll_by = poll_by  # as the reference polls (by the external id sent), or as the python mock (by id)
    imports.paused = True  # the import stays "processing" until the first run is dead

    first = TargetProcess(config, work, input_file=feed)
    kill_once_polled(fake, first, signal.SIGKILL, 2)
    assert first.wait() == -signal.SIGKILL
    assert first.states == []  # no STATE covers records whose import was not recorded
    assert len(imports.submitted) == 1
    import_id = next(iter(imports.imports))
    polls_before = dict(imports.polls)
    with fake.lock:
        assert fake.invoices == {}  # still processing: nothing applied yet

    imports.paused = False
    second = TargetProcess(config, work, input_file=feed)  # the tap starts over: no STATE was saved
    assert second.wait(timeout=120) == 0, second.stderr[-3000:]

    # polled, not sent again: the rerun sends the rest, and learns from the first import (one customer with custom
    # attributes and tags: does ChartMogul keep them?) without asking again
    sent = [[c["external_id"] for c in body["customers"]] for body in imports.submitted]
    assert sent == [["c-00000"], [f"c-{n:05d}" for n in range(1, 60)]]
    external_id = imports.submitted[0]["external_id"]
    polled_by = external_id if poll_by == "external_id" else import_id  # the first run learnt which one works
    assert imports.polls[polled_by] > polls_before.get(polled_by, 0)
    assert f"Polling bulk import {external_id} ({import_id})" in second.stderr
    backfill.assert_landed(fake, ds, data)
    assert not (work / ".target-chartmogul" / "rejects.jsonl").exists()
    assert second.states == [STATE["value"]]
    assert imports.violations == []


def test_sigterm_while_an_import_is_processing_stops_at_once_with_exit_1_and_the_rerun_polls_it(
        fake, ds, base_config, tmp_path):
    data = backfill.backfill(60)
    config, work, feed = prepared(base_config, tmp_path, data)
    imports = fake.json_imports
    imports.paused = True

    first = TargetProcess(config, work, input_file=feed)
    kill_once_polled(fake, first, signal.SIGTERM, 1)
    assert first.wait(timeout=30) == 1
    assert first.states == []
    last = first.stderr.strip().splitlines()[-1]
    import_id = next(iter(imports.imports))
    external_id = imports.submitted[0]["external_id"]
    assert last.endswith(f"target-chartmogul failed: stopped while bulk import {external_id} ({import_id}) was "
                         "processing; the next run polls it again"), last

    imports.paused = False
    second = TargetProcess(config, work, input_file=feed)
    assert second.wait(timeout=120) == 0, second.stderr[-3000:]
    assert len(imports.submitted) == 2  # the first (one customer) polled, not sent again; then the others
    backfill.assert_landed(fake, ds, data)
    assert second.states == [STATE["value"]]


def test_sigterm_while_new_records_wait_for_a_bulk_import_sends_none_and_exits_1_without_state(
        fake, ds, base_config, tmp_path):
    data = backfill.backfill(60)
    config, work, feed = prepared(base_config, tmp_path, data)

    first = TargetProcess(config, work)
    first.send(feed.read_text())  # the tap is still connected: the input has not ended
    wait_for(first.idle_on_stdin, timeout=60)
    first.kill(signal.SIGTERM)

    assert first.wait(timeout=30) == 1
    assert first.states == []
    spooled = len(data.customers) + len(data.invoices) + len(data.events)
    assert first.stderr.strip().splitlines()[-1].endswith(
        f"target-chartmogul failed: stopped by signal {signal.SIGTERM} with {spooled} new record(s) waiting for a bulk "
        "import; no STATE covers them, so the next run writes them")
    assert fake.json_imports.submitted == []

    second = TargetProcess(config, work, input_file=feed)
    assert second.wait(timeout=120) == 0, second.stderr[-3000:]
    backfill.assert_landed(fake, ds, data)
    assert second.states == [STATE["value"]]


def test_an_import_chartmogul_no_longer_knows_is_settled_and_never_blocks_the_next_runs(fake, ds, base_config,
                                                                                        tmp_path, caplog):

    data = backfill.backfill(20)
    config = backfill.config(base_config)
    memory = Ledger(config["ledger_url"])
    memory.bulk_import_sending("local-1", ds, [{"stream": "billing-customers", "customer": "c-00001",
                                                "record": data.customers[1], "key": {"external_id": "c-00001"},
                                                "reject_key": '{"external_id": "c-00001"}',
                                                "objects": [["customers", "c-00001"]], "memory": [],
                                                "follow_up": True, "parent": None, "payments": []}])
    memory.bulk_import_sent("local-1", "0d6f0000-dead-4000-8000-000000000000")
    memory.close()
    caplog.set_level("INFO")

    result = run_target(config, backfill.messages(data))

    assert result.rejects == []
    assert ("ChartMogul does not know bulk import target-chartmogul-local-1 (0d6f0000-dead-4000-8000-000000000000) "
            "(404 by external id and by id)") in caplog.text
    backfill.assert_landed(fake, ds, data)
    reopened = Ledger(config["ledger_url"])
    assert reopened.bulk_imports_in_flight() == []
    reopened.close()
