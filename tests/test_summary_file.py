"""`summary_path` (issue 23): the end of every run as JSON a scheduler can alert on, the same counts as the log.

After a clean run, a run with rejects, a failed run and a stopped run (SIGTERM), the file's whole
content is checked: the figures and per-stream counts equal the summary table the log shows, the
volatile fields (times, elapsed seconds) are checked for their form, and the API key is never in it.
"""

from __future__ import annotations

import json
import logging
import pathlib
import re
import signal
import typing as t

import pytest

from target_chartmogul.run.summary import OUTCOMES
from target_chartmogul.run.summary_file import hidden
from tests.cli_runner import cli
from tests.fake_chartmogul import Fault
from tests.helpers import write_calls
from tests.robustness.load import TargetProcess, wait_for
from tests.running import API_KEY, run_target
from tests.singer_messages import customers_stream, lines, state

STREAM = "customers"
ROWS = [{"external_id": f"c{i}", "name": f"Customer {i}"} for i in range(3)]
BAD = {"external_id": "bad", "name": "Bad", "country": "Narnia"}
TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
COLUMNS = ("received", *OUTCOMES)


def counts(**nonzero: int) -> dict[str, int]:
    """Every summary column, zero unless given."""
    return {column: nonzero.get(column, 0) for column in COLUMNS}


def read(path: pathlib.Path) -> dict[str, t.Any]:
    """The file, with its volatile fields checked for their form and then set aside."""
    text = path.read_text()
    assert API_KEY not in text
    document = json.loads(text)
    assert TIME.match(document.pop("started_at"))
    finished = document.pop("finished_at")
    assert finished is None or TIME.match(finished)
    elapsed = document.pop("elapsed_seconds")
    assert isinstance(elapsed, float) and elapsed >= 0
    return document


def table_in_log(caplog: pytest.LogCaptureFixture) -> dict[str, dict[str, t.Any]]:
    """The log's summary table, per stream (and `total`): object and each column it shows."""
    [message] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Summary of this run:")]
    header, *rows = [line.split() for line in message.splitlines()[1:]]
    table = {}
    for row in rows:
        if row[0] == "total":
            table["total"] = dict(zip(header[2:], map(int, row[1:]), strict=True))
        else:
            table[row[0]] = {"object": row[1], **dict(zip(header[2:], map(int, row[2:]), strict=True))}
    return table


def assert_same_as_the_log(document: dict[str, t.Any], caplog: pytest.LogCaptureFixture) -> None:
    """Every column the log's table shows has the file's count; the columns it leaves out are zero in the file."""
    table = table_in_log(caplog)
    for stream, row in {**document["streams"], "total": document["totals"]}.items():
        shown = table[stream]
        assert {k: v for k, v in row.items() if k in shown} == shown
        assert {k: v for k, v in row.items() if k not in shown and k != "object"} == dict.fromkeys(
            (k for k in row if k not in shown and k != "object"), 0)
    assert set(table) == {*document["streams"], "total"}


def config_with_summary(base_config: dict[str, t.Any], tmp_path: pathlib.Path, **extra: t.Any) -> dict[str, t.Any]:
    return {**base_config, "summary_path": str(tmp_path / "summary.json"), **extra}


def test_a_clean_run(fake, ds, base_config, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="target-chartmogul")
    config = config_with_summary(base_config, tmp_path)

    run_target(config, customers_stream(STREAM, ROWS))

    document = read(tmp_path / "summary.json")
    assert document == {
        "status": "succeeded", "exit_code": 0, "reason": None, "dry_run": False,
        "data_source": {"uuid": ds, "name": None, "created": False},
        "requests": len(fake.requests), "retries": 0, "answered_429": 0, "bulk_imports": 0,
        "rejects_path": config["rejects_path"],
        "streams": {STREAM: {"object": "customers", **counts(received=3, created=3)}},
        "totals": counts(received=3, created=3),
    }
    assert_same_as_the_log(document, caplog)


def test_a_run_with_rejects_and_a_bulk_import(fake, ds, base_config, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="target-chartmogul")
    config = config_with_summary(base_config, tmp_path, bulk_import="always")
    fake.inject(Fault("status_429", method="POST", path_regex=r"/json_imports$", times=1))
    run_target(config, customers_stream(STREAM, [*ROWS, BAD]))

    document = read(tmp_path / "summary.json")
    bulk_posts = [r.status for r in fake.requests if r.method == "POST" and r.path.endswith("/json_imports")]
    assert bulk_posts == [429, 200]
    assert document == {
        "status": "succeeded_with_rejects", "exit_code": 0, "reason": None, "dry_run": False,
        "data_source": {"uuid": ds, "name": None, "created": False},
        "requests": len(fake.requests), "retries": 1, "answered_429": 1, "bulk_imports": 1,
        "rejects_path": config["rejects_path"],
        "streams": {STREAM: {"object": "customers", **counts(received=4, imported=3, rejected=1)}},
        "totals": counts(received=4, imported=3, rejected=1),
    }
    assert_same_as_the_log(document, caplog)


def test_a_failed_run(fake, ds, base_config, tmp_path):
    fake.api_key = "sk_another_key_altogether"  # ChartMogul refuses the configured key
    config = config_with_summary(base_config, tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(config))

    result = cli(["--config", str(tmp_path / "config.json")], input_text=lines(customers_stream(STREAM, ROWS)))

    assert result.exit_code == 1
    [error] = result.errors
    reason = error.removeprefix("target-chartmogul failed: ")
    assert reason.startswith("ChartMogul refused the API key (HTTP 401")
    assert read(tmp_path / "summary.json") == {
        "status": "failed", "exit_code": 1, "reason": reason, "dry_run": False,
        "data_source": {"uuid": ds, "name": None, "created": False},
        "requests": 1, "retries": 0, "answered_429": 0, "bulk_imports": 0,
        "rejects_path": config["rejects_path"],
        "streams": {STREAM: {"object": "customers", **counts(received=3)}},
        "totals": counts(received=3),
    }


def test_on_reject_fail_is_a_failed_run_after_the_good_records(fake, ds, base_config, tmp_path):
    config = config_with_summary(base_config, tmp_path, on_reject="fail")
    (tmp_path / "config.json").write_text(json.dumps(config))

    result = cli(["--config", str(tmp_path / "config.json")], input_text=lines(customers_stream(STREAM, [*ROWS, BAD])))

    reason = f"1 record(s) were rejected (see {config['rejects_path']}); on_reject is 'fail'"
    assert result.exit_code == 1
    assert result.errors[-1] == f"target-chartmogul failed: {reason}"
    document = read(tmp_path / "summary.json")
    assert (document["status"], document["exit_code"], document["reason"]) == ("failed", 1, reason)
    assert document["streams"] == {STREAM: {"object": "customers", **counts(received=4, created=3, rejected=1)}}


def test_a_run_refused_before_it_started(fake, base_config, tmp_path):
    config = config_with_summary(base_config, tmp_path, max_concurency=3)
    (tmp_path / "config.json").write_text(json.dumps(config))

    result = cli(["--config", str(tmp_path / "config.json")], input_text="")

    reason = "unknown setting `max_concurency` (did you mean `max_concurrency`?)"
    assert (result.exit_code, result.errors) == (1, [f"target-chartmogul failed: {reason}"])
    document = json.loads((tmp_path / "summary.json").read_text())
    assert TIME.match(document.pop("finished_at"))
    assert document == {
        "status": "failed", "exit_code": 1, "reason": reason, "dry_run": False, "started_at": None,
        "elapsed_seconds": None, "data_source": None, "requests": None, "retries": None, "answered_429": None,
        "bulk_imports": None, "rejects_path": config["rejects_path"], "streams": {}, "totals": {},
    }
    assert fake.requests == []


def test_a_summary_path_of_the_wrong_type_is_the_one_settings_error(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"api_key": "k", "summary_path": 5}))

    result = cli(["--config", str(tmp_path / "config.json")], input_text="", cwd=tmp_path)

    assert (result.exit_code, result.errors) == (
        1, ["target-chartmogul failed: invalid setting summary_path: 5 is not of type 'string', 'null'"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]


def test_a_dry_run_writes_a_summary_file_of_its_own(fake, ds, base_config, tmp_path):
    config = config_with_summary(base_config, tmp_path)
    run_target(config, customers_stream(STREAM, ROWS[:1]))
    real = (tmp_path / "summary.json").read_text()

    run_target({**config, "dry_run": True}, customers_stream(STREAM, ROWS))

    assert (tmp_path / "summary.json").read_text() == real
    document = read(tmp_path / "summary.dry-run.json")
    assert (document["status"], document["dry_run"], document["rejects_path"]) == (
        "succeeded", True, str(tmp_path / "rejects.dry-run.jsonl"))
    assert document["streams"][STREAM] == {"object": "customers", **counts(received=3, created=2, unchanged=1)}


def stopped_config(base_config: dict[str, t.Any], tmp_path: pathlib.Path, bulk_import: str) -> dict[str, t.Any]:
    return {**base_config, "summary_path": str(tmp_path / "summary.json"), "progress_interval": 0,
            "bulk_import": bulk_import}


@pytest.mark.subprocess  # SIGTERM to the target's process
def test_a_run_stopped_by_sigterm_after_writing_what_it_received(fake, ds, base_config, tmp_path):
    config = stopped_config(base_config, tmp_path, "never")
    proc = TargetProcess(config, tmp_path / "work")
    checkpoint = {"bookmarks": {STREAM: {"replication_key_value": 3}}}
    proc.send(lines([*customers_stream(STREAM, ROWS), state(checkpoint)]))
    wait_for(proc.idle_on_stdin, timeout=30)  # every line sent was read and handled
    running = read(tmp_path / "summary.json")
    assert (running["status"], running["exit_code"], running["streams"]) == ("running", None, {})

    proc.kill(signal.SIGTERM)

    assert proc.wait(timeout=30) == 0
    assert proc.states == [checkpoint]
    assert read(tmp_path / "summary.json") == {
        "status": "stopped", "exit_code": 0, "reason": None, "dry_run": False,
        "data_source": {"uuid": ds, "name": None, "created": False},
        "requests": len(fake.requests), "retries": 0, "answered_429": 0, "bulk_imports": 0,
        "rejects_path": config["rejects_path"],
        "streams": {STREAM: {"object": "customers", **counts(received=3, created=3)}},
        "totals": counts(received=3, created=3),
    }


@pytest.mark.subprocess  # SIGTERM to the target's process
def test_a_run_stopped_by_sigterm_with_records_it_did_not_write(fake, ds, base_config, tmp_path):
    """New customers wait for a bulk import, which a stop does not start: exit 1, and the file says why."""
    config = stopped_config(base_config, tmp_path, "always")
    proc = TargetProcess(config, tmp_path / "work")
    proc.send(lines(customers_stream(STREAM, ROWS)))
    wait_for(proc.idle_on_stdin, timeout=30)

    proc.kill(signal.SIGTERM)

    assert proc.wait(timeout=30) == 1
    reason = (f"stopped by signal {int(signal.SIGTERM)} with 3 new record(s) waiting for a bulk import; no STATE covers "
              "them, so the next run writes them")
    assert read(tmp_path / "summary.json") == {
        "status": "stopped", "exit_code": 1, "reason": reason, "dry_run": False,
        "data_source": {"uuid": ds, "name": None, "created": False},
        "requests": len(fake.requests), "retries": 0, "answered_429": 0, "bulk_imports": 0,
        "rejects_path": config["rejects_path"],
        "streams": {STREAM: {"object": "customers", **counts(received=3)}},
        "totals": counts(received=3),
    }
    assert write_calls(fake) == []


def test_the_api_key_is_cut_out_of_a_reason():
    key = "sk_live_0123456789abcdef"
    assert hidden(f"GET customers?key={key} -> HTTP 500", [key]) == "GET customers?key=*** -> HTTP 500"
    assert hidden("a reason", ["k"]) == "a reason"  # a one-letter test key would garble every reason
    assert hidden(None, [key]) is None
