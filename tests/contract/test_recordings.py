"""The contract fixtures themselves: well-formed, sourced, and faithful to the recordings."""

from __future__ import annotations

import json
import pathlib
import re

import pytest

from tests.contract import extract_fixtures
from tests.contract.recordings import FIXTURES, all_recordings, load

SOURCE = re.compile(r"^chartmogul/chartmogul-(ruby|go|python|node):\S+$")
DOCS_SOURCE = re.compile(r"^https://dev\.chartmogul\.com/reference/\S+$")
MIRRORS = pathlib.Path("/work/.mirror")
FIELDS = {"method", "path", "query", "request_body", "status", "response_headers", "response_body"}


def test_every_fixture_is_well_formed() -> None:
    recordings = all_recordings()
    assert len(recordings) == len(list(FIXTURES.glob("*.json")))
    for recording in recordings:
        raw = json.loads((FIXTURES / f"{recording.name}.json").read_text())
        assert set(raw) == {"source", "evidence", "note", "exchanges"}, recording.name
        source = DOCS_SOURCE if recording.evidence == "docs" else SOURCE
        assert source.match(recording.source), recording.source
        assert recording.note and "\n" not in recording.note
        assert recording.exchanges, recording.name
        for exchange in raw["exchanges"]:
            assert set(exchange) == FIELDS, recording.name
        for exchange in recording.exchanges:
            assert exchange.method in {"GET", "POST", "PUT", "PATCH", "DELETE"}
            assert exchange.path.startswith("/") and "?" not in exchange.path and not exchange.path.startswith("/v1/")
            assert set(exchange.response_headers) <= {"content-type", "retry-after"}, recording.name
            if exchange.content_type == "text/plain":
                assert isinstance(exchange.response_body, str)


def test_hand_written_mocks_are_marked_as_weaker_evidence() -> None:
    """Only real recordings are ``recording``; client unit-test mocks are ``mock`` and named so."""
    for recording in all_recordings():
        is_unit_test = ":test/api/" in recording.source or recording.source.startswith("chartmogul/chartmogul-node:test/")
        assert (recording.evidence == "mock") == is_unit_test, recording.name
        assert (recording.evidence == "mock") == recording.name.endswith("_mock"), recording.name


def test_reference_examples_are_marked_as_docs() -> None:
    """Examples copied from ChartMogul's reference are ``docs``, named ``*_docs``, sourced by their page."""
    for recording in all_recordings():
        is_reference = recording.source.startswith("https://dev.chartmogul.com/")
        assert (recording.evidence == "docs") == is_reference == recording.name.endswith("_docs"), recording.name
        if recording.evidence == "docs":
            assert "[D]" in recording.note, recording.name
    assert load("json_import_status_docs").exchanges[0].path.endswith("/json_imports/ds_import_1")


def test_recording_fixtures_are_exactly_the_extractors_list() -> None:
    recorded = {r.name for r in all_recordings() if r.evidence == "recording"}
    assert recorded == {spec.name for spec in extract_fixtures.SPECS}


def test_find() -> None:
    recording = load("invoices_go")
    assert recording.find("GET", r"/invoices$", 1).query == {"per_page": "2"}
    assert recording.find("post", r"^/customers$").status == 201
    with pytest.raises(KeyError, match="invoices_go"):
        recording.find("GET", r"/invoices$", 2)


@pytest.mark.subprocess  # reads the mirrors with git
@pytest.mark.skipif(not MIRRORS.is_dir(), reason="the client libraries' git mirrors are not on this machine")
def test_recording_fixtures_match_their_source_files() -> None:
    """Re-extract every recording from its cassette: the fixtures must be unedited copies."""
    repos = {key: MIRRORS / f"{repo.replace('/', '+')}/repo" for key, repo in extract_fixtures.REPOS.items()}
    if not all(path.is_dir() for path in repos.values()):
        pytest.skip("not every client library is mirrored here")
    for spec in extract_fixtures.SPECS:
        stored = json.loads((FIXTURES / f"{spec.name}.json").read_text())
        assert stored == extract_fixtures.build(spec, repos[spec.repo]), spec.name
