"""What a newcomer met (issue 23, item 5), each checked where a test can tell.

- STATE held back and "go through REST" are said only when they will happen (not at the end of
  the input, not for records about to be rejected);
- a missing `api_key` names TARGET_CHARTMOGUL_API_KEY; a bad input line shows no class name;
  one ignored column reads as one; the SDK's `Skipping parse of env var settings...` is gone
  while warnings stay;
- `--about` (text and markdown) shows each setting's default and description and the options of a
  `streams` entry;
- the quick-start config the demo suggests loads the refunds and the custom attributes the demo did;
- scripts/postgres.sh works from a private directory and removes the server directory it created.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import pathlib
import re
import shutil
import socket
import subprocess
import typing as t

import pytest

from scripts import demo
from target_chartmogul.config.about import settings_markdown
from target_chartmogul.config.settings import CONFIG_SCHEMA
from target_chartmogul.target import TargetChartMogul
from tests.cli_runner import cli
from tests.running import REPO, run_target
from tests.singer_messages import STRING, customers_stream, lines, state

STREAM = "customers"
SAMPLES = "".join((REPO / "samples" / name).read_text() for name in demo.SAMPLES).splitlines()
REST_LINE = re.compile(r"through REST|go through REST")


def target_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The messages of the target's own logger (not its streams' loggers), in order."""
    return [r.getMessage() for r in caplog.records if r.name == "target-chartmogul"]


# STATE held back, and what goes through REST --------------------------------------------------------
def samples_config(base_config: dict[str, t.Any]) -> dict[str, t.Any]:
    return {**base_config, "streams": demo.STREAMS}


def test_a_rerun_announces_nothing_for_records_about_to_be_rejected(fake, ds, base_config, caplog):
    caplog.set_level(logging.INFO, logger="target-chartmogul")
    config = samples_config(base_config)
    run_target(config, SAMPLES)
    first = target_lines(caplog)
    caplog.clear()

    run_target(config, SAMPLES)

    second = target_lines(caplog)
    # Run 1: 7 new records waited; the 2 bad ones were refused, so 5 went through REST (said once known).
    assert [line for line in first if REST_LINE.search(line) or line.startswith("STATE held back")] == [
        "5 new record(s) went through REST: fewer than bulk_min_records (200) waited for a bulk import"]
    # Run 2: only the bad rows are new, and they are refused: nothing is announced for them.
    assert [line for line in second if REST_LINE.search(line) or "STATE" in line] == []
    assert [line for line in second if line.startswith("Rejected")] == [
        "Rejected billing-customers record {'external_id': 'acct-4'}: field 'country' must be an ISO-3166 alpha-2 "
        "country code such as 'DE', got 'Germany'",
        "Rejected billing-invoices record {'external_id': 'INV-1003'}: field 'line_items[0].amount_in_cents' must be "
        "a whole number of cents, got 12.5",
        f"Rejected billing-refunds record {{'external_id': 'REF-2'}}: no invoice with external_id \"INV-9999\" in data "
        f"source {ds}",
    ]


def test_state_held_back_is_said_while_input_still_arrives(fake, ds, base_config, caplog, monkeypatch):
    """A drain in the middle of the input (the SDK drains every 5 minutes; here after every record) holds STATE back
    while new records wait, and says why; at the end of the input nothing is announced before they are written.
    """
    monkeypatch.setattr(TargetChartMogul, "_MAX_RECORD_AGE_IN_MINUTES", -1.0)
    caplog.set_level(logging.INFO, logger="target-chartmogul")
    rows = [{"external_id": f"c{i}", "name": f"C{i}"} for i in range(3)]
    checkpoint = {"bookmarks": {STREAM: 2}}
    messages = [*customers_stream(STREAM, rows[:2]), state(checkpoint), *customers_stream(STREAM, rows[2:])[1:]]

    result = run_target(base_config, messages)

    said = [line for line in target_lines(caplog) if "STATE" in line or REST_LINE.search(line)]
    assert said == [
        "STATE held back: 3 new record(s) wait for the end of the input, where new objects are written together (in "
        "bulk imports, or through REST below bulk_min_records)",
        "3 new record(s) went through REST: fewer than bulk_min_records (200) waited for a bulk import",
    ]
    assert result.states == [checkpoint]


# One-line messages ------------------------------------------------------------------------------------
@pytest.mark.parametrize("how", ["env", "file"])
def test_a_missing_api_key_names_the_variable_too(fake, tmp_path, how):
    if how == "env":
        (tmp_path / ".env").write_text(f"TARGET_CHARTMOGUL_API_URL={fake.url}\n")
        args = ["--config", "ENV"]
    else:
        (tmp_path / "config.json").write_text(json.dumps({"api_url": fake.url}))
        args = ["--config", str(tmp_path / "config.json")]

    result = cli(args, input_text="", cwd=tmp_path)

    assert result.exit_code == 1
    assert result.errors == ["target-chartmogul failed: setting api_key is required: set it in the config file, or as "
                             "the environment variable TARGET_CHARTMOGUL_API_KEY with --config ENV"]
    assert fake.requests == []


@pytest.mark.parametrize(("text", "reason"), [
    ("not json\n", "input line 1 is not valid JSON (Expecting value): not json"),
    ("[1, 2]\n", "input line 1 is not a Singer message (a JSON object): [1, 2]"),
])
def test_a_bad_input_line_is_one_line_without_a_class_name(fake, base_config, tmp_path, text, reason):
    (tmp_path / "config.json").write_text(json.dumps(base_config))

    result = cli(["--config", str(tmp_path / "config.json")], input_text=text)

    assert result.exit_code == 1
    assert result.errors == [f"target-chartmogul failed: {reason}"]


@pytest.mark.parametrize(("extra", "line"), [
    ({"internal_note": STRING}, "Stream 'customers': column internal_note is not a ChartMogul customer field and is "
                                "ignored (list it in streams.customers.custom_attributes to send it as a custom "
                                "attribute)"),
    ({"internal_note": STRING, "legacy_id": STRING},
     "Stream 'customers': columns internal_note, legacy_id are not ChartMogul customer fields and are ignored (list "
     "them in streams.customers.custom_attributes to send them as custom attributes)"),
])
def test_ignored_columns_are_counted_in_words(fake, ds, base_config, caplog, extra, line):
    caplog.set_level(logging.INFO)
    row = {"external_id": "c1", "name": "C1", **dict.fromkeys(extra, "x")}

    run_target(base_config, customers_stream(STREAM, [row], extra))

    assert [r.getMessage() for r in caplog.records if "ignored" in r.getMessage()] == [line]


def test_the_sdks_env_note_is_gone_and_warnings_stay(fake, ds, base_config, tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(base_config))
    bad = {"external_id": "x", "name": "X", "country": "Narnia"}

    result = cli(["--config", str(tmp_path / "config.json")], input_text=lines(customers_stream(STREAM, [bad])))

    assert result.exit_code == 0
    assert "Skipping parse of env var settings..." not in result.lines
    warnings = [r.getMessage() for r in result.records if r.levelno == logging.WARNING]
    assert warnings == [
        "Rejected customers record {'external_id': 'x'}: field 'country' must be an ISO-3166 alpha-2 country code such "
        "as 'DE', got 'Narnia'",
        f"target-chartmogul finished: 0 written, 0 unchanged, 1 rejected (see {base_config['rejects_path']})",
    ]


def test_the_filter_drops_that_note_only():
    logger = logging.getLogger(TargetChartMogul.name)
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    logger.addHandler(handler)
    try:
        logger.info("Skipping parse of env var settings...")
        logger.warning("Skipping parse of env var settings... and something else")
        logger.warning("a real warning")
    finally:
        logger.removeHandler(handler)
    assert out.getvalue().splitlines() == ["Skipping parse of env var settings... and something else", "a real warning"]


# --about -----------------------------------------------------------------------------------------------
def test_about_in_text_shows_defaults_descriptions_and_a_streams_entry():
    result = cli(["--about"])

    text = result.stdout
    assert result.exit_code == 0
    assert """\
  - Name: bulk_import
    Type: string
    Allowed: auto, always, never
    Default: "auto"
    Description: New customers, invoices (with lines and payments) and subscription events through ChartMogul's \
bulk JSON import: auto (when at least bulk_min_records wait), always, or never (one REST call each).
    Environment Variable: TARGET_CHARTMOGUL_BULK_IMPORT
""" in text
    assert """\
  - Name: api_key
    Type: string (required)
    Description: ChartMogul API key (sent as the basic-auth user). Secret.
    Environment Variable: TARGET_CHARTMOGUL_API_KEY
""" in text
    assert """\
    Options of one entry (keyed by the incoming stream name):
      - Name: object
        Type: string
        Allowed: plans, customers, line_items, invoices, transactions, subscription_events, contacts
        Description: ChartMogul object this stream writes""" in text
    assert """\
      - Name: max_delete_fraction
        Type: number
        Default: 0.2
        Description: A full-table version that would delete more than this share of the objects the stream wrote \
deletes none.
""" in text
    for name, spec in CONFIG_SCHEMA["properties"].items():  # every setting of the target, with what it says
        block = text.split(f"  - Name: {name}\n", 1)[1].split("\n  - Name: ", 1)[0]
        block = "\n".join(line for line in block.splitlines() if not line.startswith("      "))  # not its options
        assert ("Default: " in block) == ("default" in spec), name
        assert f"    Description: {spec['description']}" in block, name


def test_about_in_markdown_has_the_readmes_tables():
    result = cli(["--about", "--format", "markdown"])

    assert result.exit_code == 0
    target_table, streams_part = settings_markdown().split("\n\nOptions of one entry", 1)
    for row in target_table.splitlines():
        assert f"\n{row}\n" in result.stdout
    assert f"\n\nOptions of one entry{streams_part}\n" in result.stdout
    assert "| `validate_records` | boolean | `true` | Whether to validate the schema of the incoming streams. |" in \
        result.stdout  # the SDK's settings are listed too


# The demo's quick start ----------------------------------------------------------------------------------
def test_the_quick_start_the_demo_suggests_loads_what_the_demo_loaded(fake, ds, base_config):
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        demo.what_next(pathlib.Path("config.json"))
    [suggested] = re.findall(r"echo '(\{.*\})' > my\.json", printed.getvalue())
    config = json.loads(suggested)
    assert config["streams"] == json.loads(json.dumps(demo.STREAMS))  # what the demo ran with
    samples = [name for name in re.findall(r"samples/(\w+\.singer)", printed.getvalue())]
    assert samples[: len(demo.SAMPLES)] == demo.SAMPLES

    run_target({**base_config, "streams": config["streams"]}, SAMPLES)

    with fake.lock:
        refunds = [tx["external_id"] for inv in fake.invoices.values() for tx in inv["transactions"]
                   if tx["type"] == "refund"]
        custom = {c["external_id"]: c["attributes"]["custom"] for c in fake.customers.values()}
    assert refunds == ["REF-1"]
    assert custom["acct-1"] == {"seats": 120, "segment": "enterprise"}


# scripts/postgres.sh ---------------------------------------------------------------------------------
PG_BIN = pathlib.Path("/usr/lib/postgresql/15/bin")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.subprocess  # scripts/postgres.sh starts and stops a server of its own
@pytest.mark.skipif(os.geteuid() != 0 or not (PG_BIN / "pg_ctl").exists() or shutil.which("su") is None,
                    reason="needs root, su and Debian's PostgreSQL 15 (scripts/postgres.sh runs it as postgres)")
def test_postgres_script_from_a_private_directory_leaves_nothing_behind(tmp_path):
    private = tmp_path / "private"
    (private / "clone").mkdir(parents=True)
    private.chmod(0o700)  # a clone the postgres user cannot enter
    server_dir = pathlib.Path("/tmp") / f"tcm-pg-test-{free_port()}"
    port = free_port()
    script = f"""
set -e
source {REPO / 'scripts' / 'postgres.sh'}
postgres_start
test -f "$TCM_PG_DIR/data/PG_VERSION"
(  # someone else on the same port: uses the running server, stops and removes nothing
  unset TCM_PG_STARTED TCM_PG_MADE_DIR TCM_PG_MADE_DATA
  postgres_start
  postgres_stop
)
{PG_BIN / 'pg_isready'} -q -h 127.0.0.1 -p {port}
test -d "$TCM_PG_DIR"
postgres_stop
echo done
"""
    env = {**os.environ, "TCM_PG_PORT": str(port), "TCM_PG_DIR": str(server_dir)}
    try:
        proc = subprocess.run(["bash", "-c", script], cwd=private / "clone", env=env, capture_output=True, text=True,
                              timeout=120, check=False)
    finally:
        if server_dir.exists():  # only if the script failed: stop what it started, then clean up
            subprocess.run(["su", "postgres", "-s", "/bin/bash", "-c",
                            f"{PG_BIN / 'pg_ctl'} -D {server_dir / 'data'} -m immediate stop"],
                           cwd="/", capture_output=True, check=False)
            shutil.rmtree(server_dir, ignore_errors=True)

    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "done\n", "")
    assert not server_dir.exists()
