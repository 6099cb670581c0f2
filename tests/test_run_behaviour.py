"""Run-level behaviour: STATE timing, Decimal in STATE, fatal errors, on_reject, secrets (the CLI in this process)."""

from __future__ import annotations

import base64
import json

from tests.fake_chartmogul import Fault
from tests.helpers import error_lines
from tests.running import API_KEY, invoke_target, run_target
from tests.singer_messages import customers_stream, record, state

STREAM = "customers"


def test_state_is_emitted_after_the_records_before_it_are_written(fake, ds, base_config):
    messages = [*customers_stream(STREAM, [{"external_id": "a", "name": "A"}]), state({"bookmarks": {"x": 1}}),
                record(STREAM, {"external_id": "b", "name": "B"}), state({"bookmarks": {"x": 2}})]
    result = run_target(base_config, messages)
    assert result.states[-1] == {"bookmarks": {"x": 2}}
    assert len(fake.customers) == 2


def test_decimal_in_state_does_not_crash(fake, ds, base_config):
    messages = [*customers_stream(STREAM, [{"external_id": "a", "name": "A"}]),
                '{"type": "STATE", "value": {"bookmarks": {"t": {"replication_key_value": 12.50}}}}']
    result = run_target(base_config, messages)
    assert result.states == [{"bookmarks": {"t": {"replication_key_value": 12.5}}}]


def test_no_state_when_a_batch_fails(fake, ds, base_config, tmp_path):
    fake.inject(Fault("error_before", method="POST", times=100, status=503))
    config = {**base_config, "max_retries": 1}
    messages = [*customers_stream(STREAM, [{"external_id": "a", "name": "A"}]), state({"b": 1})]
    proc = invoke_target(config, messages, tmp_path, env={"TARGET_CHARTMOGUL_LOGLEVEL": "INFO"})
    assert proc.returncode == 1
    assert proc.stdout.strip() == ""  # no STATE: the record is neither written nor rejected
    assert "did not answer POST customers after 2 attempts" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_wrong_api_key_fails_fast_with_one_clear_line(fake, ds, base_config, tmp_path):
    config = {**base_config, "api_key": "wrong-key"}
    rows = [{"external_id": f"k{i}", "name": "K"} for i in range(30)]
    proc = invoke_target(config, customers_stream(STREAM, rows), tmp_path)
    assert proc.returncode == 1
    assert "ChartMogul refused the API key (HTTP 401" in proc.stderr
    assert "Traceback" not in proc.stderr
    # The account check runs once before any write and is refused: one request in all, no retry storm.
    assert [(r.method, r.path, r.status) for r in fake.requests] == [("GET", "/ping", 401)]
    assert fake.customers == {}


def test_on_reject_fail_writes_good_records_then_exits_non_zero(fake, ds, base_config, tmp_path):
    config = {**base_config, "on_reject": "fail"}
    messages = [*customers_stream(STREAM, [{"external_id": "ok", "name": "OK"}, {"external_id": "bad"}]),
                state({"s": 1})]
    proc = invoke_target(config, messages, tmp_path)
    assert proc.returncode == 1
    assert "1 record(s) were rejected" in proc.stderr
    assert [c["external_id"] for c in fake.customers.values()] == ["ok"]
    assert json.loads(proc.stdout.splitlines()[-1]) == {"s": 1}


def test_api_key_appears_nowhere(fake, ds, base_config, tmp_path):
    fake.inject(Fault("error_after", method="POST", times=2, status=502))
    config = {**base_config, "rejects_path": str(tmp_path / "rejects.jsonl")}
    rows = [{"external_id": "a", "name": "A"}, {"external_id": "b"}, {"external_id": "c", "name": "C",
                                                                       "country": "Nowhere"}]
    proc = invoke_target(config, [*customers_stream(STREAM, rows), state({"s": 1})], tmp_path,
                         env={"TARGET_CHARTMOGUL_LOGLEVEL": "DEBUG"})
    assert proc.returncode == 0, proc.stderr
    rejects = (tmp_path / "rejects.jsonl").read_text()
    assert len(rejects.splitlines()) == 2
    encoded = base64.b64encode(f"{API_KEY}:".encode()).decode()
    for text in (proc.stdout, proc.stderr, rejects):
        assert API_KEY not in text
        assert encoded not in text


def test_invalid_stream_option_is_one_clear_line(base_config, tmp_path):
    config = {**base_config, "streams": {"accounts": {"object": "accounts"}}}
    proc = invoke_target(config, [], tmp_path)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    errors = error_lines(proc.stderr)
    # One line, the run's last, naming the setting and the closest allowed value.
    assert len(errors) == 1, errors
    assert errors[0].endswith(
        "| target-chartmogul failed: invalid setting streams.accounts.object: 'accounts' is not one of ['plans', "
        "'customers', 'line_items', 'invoices', 'transactions', 'subscription_events', 'contacts'] (did you mean "
        "`contacts`?)"), errors[0]
    assert proc.stderr.rstrip().splitlines()[-1] == errors[0]


def test_a_setting_of_the_wrong_type_in_a_config_file_is_one_line_naming_it(base_config, tmp_path):
    proc = invoke_target({**base_config, "max_concurrency": "ten"}, [], tmp_path)
    assert proc.returncode == 1
    assert error_lines(proc.stderr) == [proc.stderr.rstrip().splitlines()[-1]]
    assert proc.stderr.rstrip().endswith(
        "| target-chartmogul failed: invalid setting max_concurrency: 'ten' is not of type 'integer', 'null'")
