"""singer-sdk's standard target tests, twice: against the skipping sink and against the customers sink.

1. Every stream of these tests (test_users, test_locations, test:SpecialChars!in?attributes,
   ...) maps to no ChartMogul object, so no API call is made; the api_url points at a
   closed port to prove it (any call would fail the run).
2. The same streams mapped to `object: customers` (the `streams` setting) and a fake
   ChartMogul behind api_url: the records go through the real customers sink. None of
   them has `external_id` and `name`, so each ends as a reject; what matters is that
   every run completes as the SDK expects (or fails where it expects a failure), that
   nothing reaches ChartMogul and that every record is accounted for.
"""

from __future__ import annotations

import importlib.resources
import json
import pathlib
import typing as t

import pytest
from singer_sdk.testing import TargetTestRunner, get_target_test_class, target_test_streams
from singer_sdk.testing.suites import target_tests

from target_chartmogul.target import TargetChartMogul
from tests.fake_chartmogul import FakeChartMogul
from tests.running import API_KEY

StandardTargetTests = get_target_test_class(
    target_class=TargetChartMogul,
    config={"api_key": "sdk-standard-tests", "api_url": "http://127.0.0.1:9/v1", "max_retries": 0},
)


class TestTargetChartMogulStandard(StandardTargetTests):  # type: ignore[misc, valid-type]
    """The SDK's 16 standard target tests."""


# ------------------------------------------------------------------ against the customers sink


def standard_test_inputs() -> dict[str, list[dict[str, t.Any]]]:
    """The messages of each standard test that reads a .singer file, by test name."""
    inputs = {}
    for test_class in target_tests.tests:
        path = importlib.resources.files(target_test_streams) / f"{test_class.name}.singer"
        if path.is_file():  # cli_prints reads no input
            inputs[test_class.name] = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return inputs


STANDARD_INPUTS = standard_test_inputs()
# Read from the SDK's own files, so a stream a later SDK adds is mapped too.
STANDARD_STREAMS = sorted({m["stream"] for messages in STANDARD_INPUTS.values() for m in messages if "stream" in m})


def records_of(test_name: str) -> int:
    return sum(1 for m in STANDARD_INPUTS[test_name] if m["type"] == "RECORD")


# The tests whose runs the SDK expects to fail before any record reaches a sink: the
# invalid SCHEMA and a RECORD before its SCHEMA.
FAILING = {"invalid_schema", "record_before_schema"}


class TestTargetChartMogulStandardOnCustomersSink(StandardTargetTests):  # type: ignore[misc, valid-type]
    """The same 16 tests with every standard stream written as customers to a fake ChartMogul.

    None is excluded; one is adjusted. `record_missing_key_property` expects the run to
    fail with MissingKeyPropertiesError, but an object sink rejects such a record on
    purpose (one bad row must not stop a load: the target sets the missing key to None
    so that the SDK does not raise): here the run completes and the record is a reject
    naming the key property. The 15 others pass unchanged, including the two the SDK
    expects to fail (invalid_schema, record_before_schema: no record reaches a sink),
    schema_updates (a new SCHEMA retires the sink mid-stream), duplicate_records and
    pk_updates (one key twice in a batch) and encoded_string_data (NUL and control
    characters, 28 records). After every test the fixture `nothing_written` checks that
    ChartMogul was sent no request and that each record of the input is one reject.
    """

    @pytest.fixture(scope="class")
    @classmethod
    def chartmogul(cls) -> t.Iterator[tuple[FakeChartMogul, str]]:
        """One fake ChartMogul and data source for the whole class."""
        with FakeChartMogul(api_key=API_KEY) as server:
            yield server, str(server.add_data_source("sdk-standard-tests")["uuid"])

    @pytest.fixture
    def runner(self, chartmogul: tuple[FakeChartMogul, str], tmp_path: pathlib.Path) -> TargetTestRunner:
        fake, ds = chartmogul
        config = {
            "api_key": API_KEY,
            "api_url": fake.url,
            "data_source_uuid": ds,
            "streams": {stream: {"object": "customers"} for stream in STANDARD_STREAMS},
            "rejects_path": str(tmp_path / "rejects.jsonl"),
            "ledger_url": f"sqlite:///{tmp_path / 'ledger.db'}",
            "max_retries": 0,
        }
        return TargetTestRunner(target_class=TargetChartMogul, config=config, parse_env_config=True)

    @pytest.fixture(autouse=True)
    def nothing_written(self, request: pytest.FixtureRequest, chartmogul: tuple[FakeChartMogul, str],
                        tmp_path: pathlib.Path) -> t.Iterator[None]:
        """After each test: no request reached ChartMogul (all was refused before a call was needed), no
        customer is held, and each record of the input is one reject."""
        fake, _ = chartmogul
        fake.clear_requests()
        yield
        name = request.node.name.removeprefix("test_target_")
        assert fake.requests == []
        assert fake.customers == {}
        rejects_path = tmp_path / "rejects.jsonl"
        rejects = [json.loads(line) for line in rejects_path.read_text().splitlines()] if rejects_path.exists() else []
        expected = 0 if name == "cli_prints" or name in FAILING else records_of(name)
        assert len(rejects) == expected, [(r["stream"], r["field"], r["reason"]) for r in rejects]

    def test_target_record_missing_key_property(self, runner: TargetTestRunner, tmp_path: pathlib.Path) -> None:
        """Adjusted (see the class docstring): a reject naming the key property, not MissingKeyPropertiesError."""
        runner.input_filepath = importlib.resources.files(target_test_streams) / "record_missing_key_property.singer"
        runner.sync_all()
        rejects = [json.loads(line) for line in (tmp_path / "rejects.jsonl").read_text().splitlines()]
        missing_key = [r for r in rejects if r["field"] == "id"]
        assert [(r["stream"], r["key"], r["reason"]) for r in missing_key] == [
            ("test_record_missing_key_property", {"id": None}, "key property 'id' is missing from the record")]
