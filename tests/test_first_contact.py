"""What a new user meets first, through the CLI: each mistake is one line (exit code and exact text).

The command line runs in this process (`invoke_cli`, click's CliRunner): these tests check
messages and exit codes. Only the SDK's logging config file, which reconfigures logging for
the whole process, is tried in a subprocess.

Issue 14: `.env` of the working directory, config file problems, typed environment
variables, unknown settings with the closest name, `load_method`, an API that cannot be
reached, the end of a run (totals, figures, the last line), METRIC lines, dry-run rejects.
"""

from __future__ import annotations

import json
import socket

import pytest

from target_chartmogul.run.rejects_file import dry_run_path
from tests.fake_chartmogul import Fault
from tests.helpers import error_lines
from tests.running import API_KEY, invoke_cli, invoke_target, last_line, run_cli
from tests.singer_messages import INTEGER, customers_stream, lines, state

STREAM = "customers"
ROWS = [{"external_id": "a", "name": "A", "seats": 1}, {"external_id": "b", "name": "B", "seats": 2}]
BAD = {"external_id": "x", "name": "X", "country": "Narnia"}


COMMA = '{"api_key": "k",\n}'


def json_problem(text: str) -> str:
    """How this Python's json words the problem (3.13 says "Illegal trailing comma…", 3.10-3.12 "Expecting property
    name…"), with where it is."""
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        return f"{exc.msg} at line {exc.lineno} column {exc.colno}"
    raise AssertionError(f"{text!r} is valid JSON")


def messages(rows=ROWS):
    return lines([*customers_stream(STREAM, rows, {"seats": INTEGER}), state({"s": 1})])


def failed(stderr: str, reason: str) -> None:
    """The run's last line is `target-chartmogul failed: <reason>` at ERROR, its only ERROR line."""
    assert "Traceback" not in stderr, stderr[-3000:]
    assert last_line(stderr) == f"target-chartmogul failed: {reason}", stderr[-3000:]
    assert len(error_lines(stderr)) == 1, error_lines(stderr)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# `--config ENV` and .env ---------------------------------------------------------------------
def test_env_reads_dot_env_of_the_working_directory(fake, ds, tmp_path):
    (tmp_path / ".env").write_text(
        f"TARGET_CHARTMOGUL_API_KEY={API_KEY}\nTARGET_CHARTMOGUL_API_URL={fake.url}\n"
        f"TARGET_CHARTMOGUL_DATA_SOURCE_UUID={ds}\n"
        "# a comment, and a setting also set in the shell: the shell wins\nTARGET_CHARTMOGUL_MAX_RETRIES=1\n"
        "TARGET_CHARTMOGUL_MAX_REQUESTS_PER_SECOND=20.5\nTARGET_CHARTMOGUL_DRY_RUN=false\n"
    )
    result = invoke_cli(["--config", "ENV"], tmp_path, input_text=messages(), env={"TARGET_CHARTMOGUL_MAX_RETRIES": "3"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert last_line(result.stderr) == "target-chartmogul finished: 2 written, 0 unchanged, 0 rejected"
    assert sorted(c["external_id"] for c in fake.customers.values()) == ["a", "b"]
    assert (tmp_path / ".target-chartmogul" / "ledger.db").exists()  # relative defaults: the working directory


@pytest.mark.parametrize(("variable", "value", "reason"), [
    ("MAX_CONCURRENCY", "ten",
     "setting max_concurrency (from TARGET_CHARTMOGUL_MAX_CONCURRENCY) must be a whole number, got 'ten'"),
    ("REQUEST_TIMEOUT", "soon", "setting request_timeout (from TARGET_CHARTMOGUL_REQUEST_TIMEOUT) must be a number, got 'soon'"),
    ("DRY_RUN", "maybe", "setting dry_run (from TARGET_CHARTMOGUL_DRY_RUN) must be true or false, got 'maybe'"),
    ("STREAMS", "{customers: 1}",
     "setting streams (from TARGET_CHARTMOGUL_STREAMS) must be JSON (an object), got '{customers: 1}'"),
    ("MAX_CONCURENCY", "3",
     "environment variable TARGET_CHARTMOGUL_MAX_CONCURENCY names no setting "
     "(did you mean `TARGET_CHARTMOGUL_MAX_CONCURRENCY`?)"),
])
def test_env_values_of_the_wrong_type_are_one_line_naming_the_setting(tmp_path, variable, value, reason):
    env = {"TARGET_CHARTMOGUL_API_KEY": API_KEY, f"TARGET_CHARTMOGUL_{variable}": value}
    result = invoke_cli(["--config", "ENV"], tmp_path, input_text=messages(), env=env)
    assert result.returncode == 1
    failed(result.stderr, reason)


# Config files ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "content", "reason"), [
    ("missing.json", None, "config file 'missing.json' was not found (working directory {tmp})"),
    ("comma.json", COMMA, f"config file 'comma.json' is not valid JSON: {json_problem(COMMA)}"),
    ("list.json", '["api_key"]', "config file 'list.json' must hold a JSON object of settings, not a list"),
    ("folder.json", "dir", "config file 'folder.json' is a directory, not a JSON file"),
    ("latin1.json", b'{"api_key": "caf\xe9"}', "config file 'latin1.json' cannot be read: UnicodeDecodeError"),
])
def test_config_file_problems_are_one_line_naming_the_file(tmp_path, name, content, reason):
    path = tmp_path / name
    if content == "dir":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    result = invoke_cli(["--config", name], tmp_path, input_text=messages())
    assert result.returncode == 1
    failed(result.stderr, reason.format(tmp=tmp_path))


def test_numbers_with_a_fraction_in_a_config_file_are_numbers(fake, ds, base_config, tmp_path):
    """The SDK read them as Decimal, which `max_delete_fraction` refused as not a number."""
    config = {**base_config, "max_requests_per_second": 30.5, "streams": {STREAM: {"max_delete_fraction": 0.5}}}
    result = invoke_target(config, messages(), tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]


# Unknown settings -----------------------------------------------------------------------------
@pytest.mark.parametrize(("extra", "streams", "reason"), [
    ({"max_concurency": 3}, None, "unknown setting `max_concurency` (did you mean `max_concurrency`?)"),
    ({}, {STREAM: {"custom_atributes": ["seats"]}},
     f"unknown setting `streams.{STREAM}.custom_atributes` (did you mean `custom_attributes`?)"),
    ({}, {STREAM: {"object": "customers", "modee": "insert"}},
     f"unknown setting `streams.{STREAM}.modee` (did you mean `mode`?)"),
    ({"tags_mode": "exact"}, None,
     "unknown setting `tags_mode`: it is an option of one stream; set it under streams.<stream name>.tags_mode"),
    ({"zzz": 1}, None, "unknown setting `zzz` (`target-chartmogul --about` lists the settings)"),
    ({"api_url": "api.chartmogul.com/v1"}, None,
     "api_url 'api.chartmogul.com/v1' is not an http:// or https:// URL (such as https://api.chartmogul.com/v1)"),
])
def test_unknown_settings_are_refused_before_any_input_with_the_closest_name(fake, base_config, tmp_path, extra,
                                                                             streams, reason):
    config = {**base_config, **extra, **({"streams": streams} if streams else {})}
    # The input is never read: a bad line after the records would otherwise be the error.
    result = invoke_target(config, messages() + "not json\n", tmp_path)
    assert result.returncode == 1
    failed(result.stderr, reason)
    assert fake.requests == []


def test_several_unknown_settings_are_one_line(base_config, tmp_path):
    config = {**base_config, "max_concurency": 3, "streams": {STREAM: {"custom_atributes": ["seats"]}}}
    result = invoke_target(config, messages(), tmp_path)
    assert result.returncode == 1
    failed(result.stderr, "unknown setting `max_concurency` (did you mean `max_concurrency`?); unknown setting "
                          f"`streams.{STREAM}.custom_atributes` (did you mean `custom_attributes`?)")


def test_the_sdks_and_meltanos_settings_stay_accepted(fake, ds, base_config, tmp_path):
    config = {
        **base_config,
        "stream_maps": {STREAM: {"name": "name.upper()"}}, "stream_map_config": {}, "faker_config": {},
        "flattening_enabled": False, "flattening_max_depth": 1, "flattening_max_key_length": 60,
        "flattening_separator": "__", "validate_records": True, "add_record_metadata": False,
        "batch_size_rows": 100, "process_activate_version_messages": True,
        "_comment": "Meltano extras and comments start with an underscore",
        "streams": {STREAM: {"custom_attributes": ["seats"], "_note": "kept"}},
    }
    result = invoke_target(config, messages(), tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(c["name"] for c in fake.customers.values()) == ["A", "B"]


def test_load_method_is_not_advertised_and_is_refused_with_what_to_use(base_config, tmp_path):
    about = invoke_cli(["--about", "--format", "json"], tmp_path)
    assert about.returncode == 0
    assert "load_method" not in json.loads(about.stdout)["settings"]["properties"]
    result = invoke_target({**base_config, "load_method": "upsert"}, messages(), tmp_path)
    assert result.returncode == 1
    failed(result.stderr, "load_method is not a setting of target-chartmogul: every write is keyed by external id, so "
                          "nothing is appended twice or overwritten wholesale; choose how each stream writes with "
                          "streams.<stream>.mode (upsert, update or insert)")


# An API that cannot be reached ------------------------------------------------------------------
def test_a_refused_connection_fails_at_once_naming_the_host(base_config, tmp_path):
    port = closed_port()
    config = {k: v for k, v in base_config.items() if k != "max_retries"}  # the default policy: 8 retries
    result = invoke_target({**config, "api_url": f"http://127.0.0.1:{port}/v1"}, messages(), tmp_path)
    assert result.returncode == 1
    failed(result.stderr, f"cannot reach ChartMogul at 127.0.0.1:{port}: the connection was refused; check api_url "
                          f"(http://127.0.0.1:{port}/v1) and the network")
    assert "retrying" not in result.stderr  # at once: not one retry of the default policy's eight
    assert result.stdout == ""


def test_a_host_name_that_does_not_resolve_fails_at_once_naming_it(base_config, tmp_path):
    config = {k: v for k, v in base_config.items() if k != "max_retries"}
    # .invalid never resolves (RFC 6761); the user and password in the URL are never shown
    result = invoke_target({**config, "api_url": "https://me:hunter2@chartmogul.invalid/v1"}, messages(), tmp_path)
    assert result.returncode == 1
    failed(result.stderr, "cannot reach ChartMogul at chartmogul.invalid:443: its host name does not resolve (DNS lookup "
                          "failed); check api_url (https://chartmogul.invalid/v1) and the network")
    assert "hunter2" not in result.stderr
    assert "retrying" not in result.stderr


def test_timeouts_keep_the_retry_policy(fake, ds, base_config, tmp_path):
    fake.inject(Fault("latency", path_regex="^/ping$", times=2, delay=1.0))
    result = invoke_target({**base_config, "request_timeout": 0.3, "max_retries": 3}, messages(), tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "GET ping attempt 1 failed (no answer within 0.3s); retrying" in result.stderr
    assert "2 retries" in result.stderr


# The end of a run -------------------------------------------------------------------------------
def test_the_summary_has_totals_elapsed_time_requests_retries_429s_and_a_last_line(fake, ds, base_config, tmp_path):
    fake.inject(Fault("status_429", method="POST", path_regex="^/customers$", times=1, retry_after=0))
    rows = [*ROWS, BAD]
    result = invoke_target(base_config, messages(rows), tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    table = result.stderr.split("Summary of this run:\n", 1)[1].split("\n")
    assert table[0].split() == ["stream", "object", "received", "created", "rejected"]
    assert table[1].split() == [STREAM, "customers", "3", "2", "1"]
    assert table[2].split() == ["total", "3", "2", "1"]
    figures = [line for line in result.stderr.splitlines() if "| Elapsed " in line]
    assert len(figures) == 1
    # ping, data source, the listing of customers, 2 creates and the 429 answered one: 6 requests, 1 retry
    assert figures[0].endswith("6 API requests (1 retry, 1 answered 429)"), figures[0]
    assert last_line(result.stderr) == (f"target-chartmogul finished: 2 written, 0 unchanged, 1 rejected "
                                        f"(see {base_config['rejects_path']})")
    rerun = invoke_target(base_config, messages(rows), tmp_path)
    assert last_line(rerun.stderr) == (f"target-chartmogul finished: 0 written, 2 unchanged, 1 rejected "
                                       f"(see {base_config['rejects_path']})")


def test_a_failed_run_ends_with_the_summary_and_failed(fake, ds, base_config, tmp_path):
    result = invoke_target({**base_config, "on_reject": "fail"}, messages([*ROWS, BAD]), tmp_path)
    assert result.returncode == 1
    assert "Summary of this run:" in result.stderr
    failed(result.stderr, f"1 record(s) were rejected (see {base_config['rejects_path']}); on_reject is 'fail'")


def test_sdk_metric_lines_are_off_by_default_and_on_when_asked(fake, ds, base_config, tmp_path):
    quiet = invoke_target(base_config, messages(), tmp_path)
    assert quiet.returncode == 0, quiet.stderr[-3000:]
    assert "METRIC" not in quiet.stderr
    asked = invoke_target({**base_config, "metrics_log_level": "INFO"}, messages(), tmp_path)
    assert "METRIC: {" in asked.stderr


@pytest.mark.subprocess  # the SDK's logging config file reconfigures logging for the whole process
def test_sdk_metric_lines_are_on_with_the_sdks_logging_config_file(fake, ds, base_config, tmp_path):
    config_file = tmp_path / "logging.yml"
    config_file.write_text("version: 1\ndisable_existing_loggers: false\n")
    sdk_switch = run_cli(base_config, messages(), tmp_path, env={"SINGER_SDK_LOG_CONFIG": str(config_file)})
    assert sdk_switch.returncode == 0, sdk_switch.stderr[-3000:]
    assert "METRIC: {" in sdk_switch.stderr


# Dry run --------------------------------------------------------------------------------------
def test_dry_run_rejects_go_to_their_own_file_and_never_fail_the_run(fake, ds, base_config, tmp_path):
    config = {**base_config, "dry_run": True, "on_reject": "fail"}
    result = invoke_target(config, messages([*ROWS, BAD]), tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    would_be = dry_run_path(base_config["rejects_path"])
    assert would_be.name == "rejects.dry-run.jsonl"
    assert [json.loads(line)["key"] for line in would_be.read_text().splitlines()] == [{"external_id": "x"}]
    assert not (tmp_path / "rejects.jsonl").exists()  # the real rejects file is untouched
    assert f"DRY RUN: would create 2, update 0, delete 0, reject 1 (nothing was written; would-be rejects in {would_be})" \
        in result.stderr
    assert "with on_reject 'fail', a real run of this input would exit 1" in result.stderr
    assert last_line(result.stderr) == ("target-chartmogul finished (dry run, nothing written): would write 2, "
                                        f"0 unchanged, would reject 1 (see {would_be})")
    assert fake.customers == {}
    # A second dry run starts its file afresh.
    again = invoke_target(config, messages(ROWS), tmp_path)
    assert again.returncode == 0
    assert not would_be.exists()
