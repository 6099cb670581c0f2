"""Helpers shared by test modules: counting what the fake saw, calling it over HTTP, fresh sync memories, error
lines of a log."""

from __future__ import annotations

import base64
import json
import pathlib
import re
import typing as t

import requests

from tests.fake_chartmogul import FakeChartMogul, RequestRecord

WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")


class FakeApi:
    """Tiny HTTP client of the fake, so tests read like the calls they make."""

    def __init__(self, fake: FakeChartMogul, key: str) -> None:
        assert fake.url is not None
        self.url = fake.url
        self.session = requests.Session()
        self.session.auth = (key, "")

    def call(self, method: str, path: str, body: t.Any = None, timeout: float = 10, **params: t.Any) -> requests.Response:
        return self.session.request(method, self.url + path, json=body, params=params or None, timeout=timeout)

    def get(self, path: str, **params: t.Any) -> requests.Response:
        return self.call("GET", path, **params)

    def post(self, path: str, body: t.Any = None, **kw: t.Any) -> requests.Response:
        return self.call("POST", path, body, **kw)

    def ok(self, method: str, path: str, body: t.Any = None, status: int = 200, **params: t.Any) -> t.Any:
        """The answer's JSON, after checking its status."""
        response = self.call(method, path, body, **params)
        assert response.status_code == status, response.text
        return response.json() if response.content else None


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


def request_log(path: pathlib.Path, key: str) -> list[dict[str, t.Any]]:
    """The request log's entries, after checking that the key appears nowhere in it (plain or as Basic auth)."""
    text = path.read_text()
    assert key not in text and base64.b64encode(f"{key}:".encode()).decode() not in text
    return [json.loads(line) for line in text.splitlines()]


def logged_writes(entries: list[dict[str, t.Any]], method: str, path: str) -> list[tuple[int, t.Any]]:
    """(status, request body) of each logged attempt of `method path`."""
    return [(e["status"], json.loads(e["request_body"]) if e["request_body"] else None)
            for e in entries if (e["method"], e["path"]) == (method, path)]
