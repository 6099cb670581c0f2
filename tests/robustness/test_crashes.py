"""SIGKILL at different points of a run fed from a file, then a rerun the way Meltano does it.

Meltano keeps the last STATE the target printed and hands it to the tap, which resumes
after it (re-sending every SCHEMA first). The working directory, and with it the sync
memory and the rejects file (their default relative paths), survives the crash. After
the rerun ChartMogul must hold the load exactly: no duplicates, nothing missing.
"""

from __future__ import annotations

import re
import signal
import typing as t

import pytest

from tests.billing import IMPORT_PATH, TRANSACTION_PATH
from tests.fake_chartmogul import FakeChartMogul, Fault
from tests.robustness.load import (
    LOAD,
    TargetProcess,
    assert_state_covered,
    load_config,
    record_figures,
    resume_messages,
    wait_for,
)
from tests.singer_messages import lines


def requests_reached(n: int) -> t.Callable[[FakeChartMogul, TargetProcess], bool]:
    return lambda fake, proc: len(fake.requests) >= n


def posts_reached(path: str, n: int) -> t.Callable[[FakeChartMogul, TargetProcess], bool]:
    pattern = re.compile(path)
    return lambda fake, proc: sum(1 for r in fake.requests if r.method == "POST" and pattern.search(r.path)) >= n


def import_in_flight(fake: FakeChartMogul, proc: TargetProcess) -> bool:
    # The delayed import has been taken by the fake: it will be applied after the kill.
    return fake.faults.pending() == []


def first_state_line(fake: FakeChartMogul, proc: TargetProcess) -> bool:
    return bool(proc.stdout_lines)


KILL_POINTS = [
    pytest.param(requests_reached(2), None, id="at-the-account-check"),
    pytest.param(posts_reached(r"^/customers$", 40), None, id="mid-customers"),
    pytest.param(posts_reached(IMPORT_PATH, 60), None, id="mid-invoice-imports"),
    pytest.param(import_in_flight, Fault("latency", method="POST", path_regex=IMPORT_PATH, times=1, delay=0.8),
                 id="invoice-import-in-flight-lands-after-the-kill"),
    pytest.param(posts_reached(TRANSACTION_PATH, 15), None, id="mid-refunds"),
    pytest.param(first_state_line, None, id="right-after-the-first-STATE-line"),
]


@pytest.mark.parametrize(("kill_when", "fault"), KILL_POINTS)
def test_sigkill_then_resume_from_last_state_is_exact(fake, ds, base_config, tmp_path, kill_when, fault, request):
    work = tmp_path / "work"
    config = load_config(base_config, batch_size_rows=20)
    # Default relative paths: the sync memory and rejects live in the working directory.
    del config["rejects_path"], config["ledger_url"]
    messages = LOAD.messages()
    feed = work / "load.singer"
    work.mkdir()
    feed.write_text(lines(messages))
    if fault is not None:
        fake.inject(fault)

    first = TargetProcess(config, work, input_file=feed)
    try:
        wait_for(lambda: kill_when(fake, first) or first.proc.poll() is not None, timeout=60, fake=fake)
    finally:
        first.kill(signal.SIGKILL)
    code = first.wait()
    killed_after = len(fake.requests)
    if fault is not None:
        # The import the dead process sent is applied now, with nobody left to hear the answer.
        wait_for(lambda: any(r.fault == "latency" for r in fake.requests), timeout=5, fake=fake)
        late = next(r for r in fake.requests if r.fault == "latency")
        assert late.status == 201, late.status  # the write was applied: the import created the invoice
    emitted = first.states
    for value in emitted:
        assert_state_covered(fake, ds, messages, value)
    last = emitted[-1] if emitted else None
    assert (work / ".target-chartmogul").is_dir()

    resumed = resume_messages(messages, last)
    feed2 = work / "resume.singer"
    feed2.write_text(lines(resumed))
    second = TargetProcess(config, work, input_file=feed2)
    assert second.wait(timeout=120) == 0, second.stderr[-3000:]
    assert "Traceback" not in second.stderr
    sent_states = [m["value"] for m in resumed if isinstance(m, dict) and m.get("type") == "STATE"]
    if sent_states:
        assert second.states != [], "the rerun emitted no STATE"
        assert second.states[-1] == sent_states[-1] == messages[-1]["value"]
    else:  # resumed after the final STATE: only SCHEMAs, and no STATE to echo (sdk#3000)
        assert second.states == []

    figures = LOAD.measure(fake, ds)
    record_figures(f"sigkill-{request.node.callspec.id}", {
        "killed_exit": code, "requests_before_kill": killed_after, "states_before_kill": len(emitted),
        "resent_messages": len(resumed), "requests_total": len(fake.requests), **figures,
    })
    LOAD.assert_exact(fake, ds)
    assert not (work / ".target-chartmogul" / "rejects.jsonl").exists()
