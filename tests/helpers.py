"""Helpers shared by test modules: counting what the fake saw, fresh sync memories, error lines of a log."""

from __future__ import annotations

import pathlib
import re
import typing as t

from tests.fake_chartmogul import FakeChartMogul, RequestRecord

WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")


def write_calls(fake: FakeChartMogul) -> list[RequestRecord]:
    """Every write request the fake received, whatever it answered (a refused create is a write call too)."""
    return [r for r in fake.requests if r.method in WRITE_METHODS]


def reads(fake: FakeChartMogul, path_regex: str | None = None, *, query: t.Mapping[str, str] | None = None) -> list[
        RequestRecord]:
    """GET requests, optionally of one path and carrying these query parameters."""
    pattern = re.compile(path_regex) if path_regex else None
    return [
        r for r in fake.requests
        if r.method == "GET" and (pattern is None or pattern.search(r.path))
        and all(r.query.get(k) == v for k, v in (query or {}).items())
    ]


def fresh_memory(config: dict[str, t.Any], tmp_path: pathlib.Path, name: str) -> dict[str, t.Any]:
    """The same config with an empty sync memory (a new working directory, a deleted file, another worker)."""
    return {**config, "ledger_url": f"sqlite:///{tmp_path / f'{name}.db'}"}


def error_lines(stderr: str) -> list[str]:
    """The ERROR and CRITICAL lines of a run's stderr (the target's log format: `... | ERROR | ...`)."""
    return [line for line in stderr.splitlines() if "| ERROR" in line or "| CRITICAL" in line]
