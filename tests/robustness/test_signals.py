"""SIGTERM: finish or abandon the writes in flight cleanly, emit STATE only for what is done,
and exit non-zero when something received could not be written. Plus: a Decimal in a
tap's STATE does not crash the target (meltano/sdk#3787).
"""

from __future__ import annotations

import json
import signal
import time

import pytest

from tests.billing import CUSTOMERS_STREAM, INVOICES, PLANS, invoices_messages, plans_messages
from tests.fake_chartmogul import Fault
from tests.helpers import error_lines, write_calls
from tests.robustness.load import (
    LOAD,
    TargetProcess,
    assert_state_covered,
    load_config,
    record_figures,
    resume_messages,
    wait_for,
)
from tests.running import run_cli
from tests.singer_messages import lines, state


@pytest.mark.parametrize("after_requests", [40, 120, 250], ids=["in-customers", "in-invoices", "late-invoices"])
def test_sigterm_while_writing(fake, ds, base_config, tmp_path, after_requests):
    """Requests are in flight (the fake answers slowly) when SIGTERM arrives."""
    fake.set_latency(0.03)
    config = load_config(base_config, batch_size_rows=20)
    messages = LOAD.messages()
    feed = tmp_path / "load.singer"
    feed.write_text(lines(messages))

    proc = TargetProcess(config, tmp_path / "work", input_file=feed)
    wait_for(lambda: len(fake.requests) >= after_requests or proc.proc.poll() is not None, timeout=60, fake=fake)
    assert proc.proc.poll() is None, "the run ended before the signal could be sent"
    sent_at = time.monotonic()
    proc.kill(signal.SIGTERM)
    code = proc.wait(timeout=60)
    stopped_in = time.monotonic() - sent_at
    stderr = proc.stderr

    assert "Traceback" not in stderr, stderr[-3000:]
    # Every record received before the signal can be written: the load sends each stream's
    # references (plans, customers, invoices) before the records that need them, and the
    # API answers. So the target finishes the batch in flight, writes what it received,
    # emits the last STATE received and exits 0 (`_stop`: code 1 only when a drain fails
    # or records still wait for references).
    assert code == 0, stderr[-3000:]
    assert error_lines(stderr) == []
    emitted = proc.states
    assert emitted != [], "exit 0 after SIGTERM but no STATE was emitted"
    for value in emitted:  # every STATE printed covers only records that are in ChartMogul
        assert_state_covered(fake, ds, messages, value)
    assert stopped_in < 30  # wall-clock time: a bound, not an exact figure

    # Meltano runs it again from the last STATE: the result is exact.
    rerun = run_cli(config, lines(resume_messages(messages, emitted[-1])), tmp_path / "work")
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    figures = LOAD.measure(fake, ds)
    record_figures(f"sigterm-after-{after_requests}-requests", {"exit": code, "states": len(emitted),
                                                                "stopped_in_s": round(stopped_in, 2), **figures})
    LOAD.assert_exact(fake, ds)


def test_sigterm_while_the_batch_in_flight_is_retried_stops_at_once(fake, ds, base_config, tmp_path):
    """The API fails every customer write; SIGTERM arrives while the target waits to retry."""
    fake.inject(Fault("error_before", method="POST", path_regex=r"^/customers$", times=10_000, status=500))
    # The default retry policy: 8 retries with waits doubling from 0.5 s would keep the batch
    # alive for more than a minute.
    config = load_config(base_config, batch_size_rows=20, max_retries=8)
    messages = LOAD.messages()
    feed = tmp_path / "load.singer"
    feed.write_text(lines(messages))

    proc = TargetProcess(config, tmp_path / "work", input_file=feed, env={"TARGET_CHARTMOGUL_LOGLEVEL": "INFO"})
    wait_for(lambda: fake.count("POST", r"^/customers$") >= 15 or proc.proc.poll() is not None, timeout=60, fake=fake)
    sent_at = time.monotonic()
    proc.kill(signal.SIGTERM)
    code = proc.wait(timeout=60)
    stopped_in = time.monotonic() - sent_at
    stderr = proc.stderr

    # The signal comes while the first customers' batch waits to retry (15 attempts seen): the
    # waits end at once, the calls fail, and the run ends with exit code 1 and one line.
    assert code == 1, stderr[-3000:]
    assert stopped_in < 5, stopped_in  # wall-clock time: a bound, not an exact figure
    assert "Traceback" not in stderr
    assert proc.states == []  # no STATE: the customers are not written
    errors = error_lines(stderr)
    assert len(errors) == 1, errors
    assert errors[0].endswith("| target-chartmogul failed: stopped by a signal while retrying POST customers "
                              "(last: HTTP 500); records not written are not covered by STATE"), errors[0]
    assert stderr.rstrip().splitlines()[-1] == errors[0]  # the last line of the run
    assert len(fake.customers) == 0


def test_sigterm_with_records_waiting_for_references_exits_non_zero_without_state(fake, ds, base_config, tmp_path):
    """Invoices arrived, their customer and plan have not (they would come later): nothing can be written."""
    config = load_config(base_config)
    proc = TargetProcess(config, tmp_path / "work")
    proc.send(lines([*invoices_messages(INVOICES[:2]), state({"bookmarks": {"billing-invoices": 2}})]))
    wait_for(proc.idle_on_stdin, timeout=30)  # both invoices and the STATE were read and handled
    # nothing could be written; only what ChartMogul holds was read (the memory is new: the invoices listing starts
    # with the first invoice, docs/reliability.md)
    reads = ["/ping", f"/data_sources/{ds}", "/invoices"]
    wait_for(lambda: [r.path for r in fake.requests] == reads, timeout=30, fake=fake)
    assert write_calls(fake) == []
    proc.kill(signal.SIGTERM)
    code = proc.wait(timeout=30)
    stderr = proc.stderr
    assert code == 1, stderr[-3000:]  # `_stop`: records still wait for references
    assert "Traceback" not in stderr
    assert proc.states == []
    errors = error_lines(stderr)
    assert len(errors) == 1, errors
    assert errors[0].endswith(f"| target-chartmogul failed: stopped by signal {int(signal.SIGTERM)} with 2 record(s) "
                              "still waiting for references; no STATE covers them"), errors[0]
    assert len(fake.invoices) == 0


def test_sigterm_while_idle_on_stdin_exits_0_promptly(fake, ds, base_config, tmp_path):
    """Everything received is written (the sink filled and drained); the tap is quiet."""
    config = load_config(base_config, batch_size_rows=len(PLANS))
    proc = TargetProcess(config, tmp_path / "work")
    checkpoint = {"bookmarks": {"billing-plans": {"replication_key_value": 2}}}
    proc.send(lines([*plans_messages(), state(checkpoint)]))
    wait_for(lambda: len(fake.plans) == len(PLANS), timeout=30, fake=fake)
    wait_for(proc.idle_on_stdin, timeout=30)  # the STATE line has been read and handled too
    sent_at = time.monotonic()
    proc.kill(signal.SIGTERM)
    code = proc.wait(timeout=15)
    assert time.monotonic() - sent_at < 5  # wall-clock time: a bound, not an exact figure
    assert code == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert proc.states == [checkpoint]


def test_sigterm_while_idle_with_records_pending_writes_them_then_exits_0(fake, ds, base_config, tmp_path):
    """Records wait in a batch that is not full when the tap goes quiet and SIGTERM comes."""
    config = load_config(base_config)
    proc = TargetProcess(config, tmp_path / "work")
    customers = LOAD.customers[:3]
    checkpoint = {"bookmarks": {CUSTOMERS_STREAM: {"replication_key_value": 3}}}
    schema_message = next(m for m in LOAD.messages() if isinstance(m, dict) and m.get("type") == "SCHEMA"
                          and m["stream"] == CUSTOMERS_STREAM)
    proc.send(lines([schema_message, *(json.dumps({"type": "RECORD", "stream": CUSTOMERS_STREAM, "record": c})
                                            for c in customers), state(checkpoint)]))
    wait_for(proc.idle_on_stdin, timeout=30)  # every line sent was read and handled
    assert fake.writes() == []  # nothing drained yet
    proc.kill(signal.SIGTERM)
    code = proc.wait(timeout=30)
    assert code == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert proc.states == [checkpoint]
    for customer in customers:
        assert len(fake.find_customers(ds, customer["external_id"])) == 1


def test_decimal_in_tap_state_does_not_crash(fake, ds, base_config, tmp_path):
    value = {"bookmarks": {"billing-plans": {"replication_key_value": 2}}, "value": {"x": 1.5}, "big": 1e-7}
    text = lines(plans_messages()) + '{"type": "STATE", "value": {"bookmarks": {"billing-plans": ' \
        '{"replication_key_value": 2}}, "value": {"x": 1.5}, "big": 1E-7}}\n'
    result = run_cli(load_config(base_config), text, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    emitted = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert emitted == [value]
    assert len(fake.plans) == len(PLANS)
