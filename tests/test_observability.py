"""Dry run, request log, progress lines and the account check before the first call."""

from __future__ import annotations

import json
import logging
import re

from target_chartmogul.run.progress import ProgressReporter
from target_chartmogul.run.summary import RunSummary
from tests.fake_chartmogul import Fault
from tests.helpers import request_log
from tests.running import API_KEY, invoke_target, run_target
from tests.singer_messages import INTEGER, customers_stream, state

STREAM = "customers"
ROWS = [{"external_id": f"c{i}", "name": f"C{i}", "seats": i} for i in range(6)]


def stream(rows):
    return customers_stream(STREAM, rows, {"seats": INTEGER})


def test_dry_run_writes_nothing_and_says_what_it_would_do(fake, ds, base_config, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="target-chartmogul")
    config = {**base_config, "streams": {STREAM: {"custom_attributes": ["seats"]}}}
    run_target(config, stream(ROWS[:3]))  # three exist, three are new
    before = fake.dump_state()
    fake.clear_requests()
    changed = [dict(r) for r in ROWS]
    changed[0]["name"] = "Would be renamed"
    changed.append({"external_id": "bad", "name": "B", "country": "Narnia"})
    log_path = tmp_path / "requests.jsonl"
    dry = {**config, "dry_run": True, "request_log": str(log_path)}

    result = run_target(dry, stream(changed))

    assert fake.dump_state() == before
    assert [r.method for r in fake.requests if r.method != "GET"] == []
    counts = result.counts(STREAM)
    assert (counts["created"], counts["updated"], counts["unchanged"], counts["rejected"]) == (3, 1, 2, 1)
    assert "DRY RUN: would create 3, update 1, delete 0, reject 1" in caplog.text
    logged = [json.loads(line) for line in log_path.read_text().splitlines()]
    would = [entry for entry in logged if entry["dry_run"]]
    assert {entry["method"] for entry in would} == {"POST", "PATCH"}
    assert all(entry["status"] is None for entry in would)
    # the sync memory did not change either: a real run afterwards still does the work
    real = run_target(config, stream(changed))
    assert real.counts(STREAM)["created"] == 3 and real.counts(STREAM)["updated"] == 1


def test_a_dry_run_emits_no_state_so_the_next_real_run_reads_the_same_rows(fake, ds, base_config, caplog):
    """Meltano saves the STATE a target prints as the tap's bookmark: a dry run must print none."""
    caplog.set_level(logging.INFO, logger="target-chartmogul")
    messages = [*stream(ROWS[:2]), state({"bookmarks": {STREAM: {"replication_key_value": 2}}})]

    dry = run_target({**base_config, "dry_run": True}, messages)

    assert dry.states == []
    assert caplog.text.count("DRY RUN: STATE not emitted") == 1
    real = run_target(base_config, messages)
    assert real.states == [{"bookmarks": {STREAM: {"replication_key_value": 2}}}]


def test_request_log_has_one_line_per_attempt_and_never_the_key(fake, ds, base_config, tmp_path):
    fake.inject(Fault("error_before", method="POST", path_regex="^/customers$", times=1, status=500))
    log_path = tmp_path / "requests.jsonl"
    run_target({**base_config, "request_log": str(log_path)}, stream(ROWS[:2]))
    entries = request_log(log_path, API_KEY)  # the key appears nowhere in it
    assert len(entries) == len(fake.requests)
    posts = [e for e in entries if e["method"] == "POST" and e["path"] == "customers"]
    assert sorted(e["status"] for e in posts) == [201, 201, 500]
    assert max(e["attempt"] for e in posts) == 2
    first = posts[0]
    assert set(first) == {"time", "method", "path", "query", "status", "duration_ms", "attempt", "request_body",
                          "response_body", "error", "dry_run"}
    assert json.loads(first["request_body"])["data_source_uuid"] == ds


def test_progress_lines_on_long_runs(fake, ds, base_config, tmp_path):
    fake.set_latency(0.05)
    config = {**base_config, "progress_interval": 0.2, "max_concurrency": 1}
    rows = [{"external_id": f"p{i}", "name": "P", "seats": 1} for i in range(30)]
    proc = invoke_target(config, stream(rows), tmp_path, env={"TARGET_CHARTMOGUL_LOGLEVEL": "INFO"})
    assert proc.returncode == 0, proc.stderr
    progress = [line.rsplit(" | ", 1)[1] for line in proc.stderr.splitlines() if "| Progress customers:" in line]
    # One line per 0.2 s while the run moves: how many depends on wall-clock time, so a bound; each line exact.
    assert len(progress) >= 2, proc.stderr
    shape = re.compile(r"Progress customers: 30 received, (\d+) done \((\d+\.\d)/s\), 0 rejected, (\d+)s elapsed")
    matches = [shape.fullmatch(line) for line in progress]
    assert all(matches), progress
    done = [int(m[1]) for m in matches if m]
    assert done == sorted(set(done)) and 0 < done[-1] <= 30, progress  # a line only when more were done
    assert "METRIC" not in proc.stderr  # singer-sdk's METRIC lines are off unless asked for (metrics_log_level)
    summary = proc.stderr.split("Summary of this run:", 1)[1]
    assert "received" in summary and "created" in summary


def test_progress_lines_name_only_streams_that_moved_and_never_skipped_ones(caplog):
    summary = RunSummary()
    summary.objects.update({"plans": "plans", "customers": "customers", "audit": "(skipped)"})
    reporter = ProgressReporter(summary, logging.getLogger("progress-test"), interval=10)
    caplog.set_level(logging.INFO, logger="progress-test")
    summary.add("plans", "received", 2)
    summary.add("plans", "created", 2)
    summary.add("customers", "received", 10)
    summary.add("customers", "created", 4)
    summary.add("audit", "received", 5)
    summary.add("audit", "skipped", 5)
    reporter.report(2.0)
    assert [r.getMessage().split(":")[0] for r in caplog.records] == ["Progress customers", "Progress plans"]
    assert "4 done (2.0/s)" in caplog.records[0].getMessage()
    caplog.clear()
    summary.add("customers", "created", 6)  # plans finished: it is not repeated
    reporter.report(2.0)
    assert [r.getMessage().split(" done")[0] for r in caplog.records] == ["Progress customers: 10 received, 10"]
    assert "(3.0/s)" in caplog.records[0].getMessage()
    caplog.clear()
    reporter.report(2.0)  # nothing moved: no line at all
    assert caplog.records == []


def test_unknown_data_source_fails_before_the_first_write(fake, ds, base_config, tmp_path):
    config = {**base_config, "data_source_uuid": "ds_does_not_exist"}
    proc = invoke_target(config, stream(ROWS), tmp_path)
    assert proc.returncode == 1
    assert "data_source_uuid 'ds_does_not_exist' is not a data source of this ChartMogul account" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert fake.count(method="POST") == 0
