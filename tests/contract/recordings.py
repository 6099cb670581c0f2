"""Typed access to the contract fixtures: ChartMogul's answers as the client libraries recorded them.

The fake ChartMogul API is only worth trusting while it answers like the real one; these
fixtures are the evidence (see README.md here for where each one comes from). Real
recordings (``evidence == "recording"``) outrank the examples in ChartMogul's reference
(``"docs"``), which outrank hand-written client mocks (``"mock"``).
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import re
import typing as t

FIXTURES = pathlib.Path(__file__).resolve().parent / "fixtures"
EVIDENCE = ("recording", "docs", "mock")


@dataclasses.dataclass(frozen=True)
class Exchange:
    """One request and the answer to it; ``path`` is below ``/v1`` and has no query."""

    method: str
    path: str
    query: dict[str, str]
    request_body: t.Any
    status: int
    response_body: t.Any
    response_headers: dict[str, str]

    @property
    def content_type(self) -> str:
        """The media type without parameters (``application/json``), or "" when none was recorded."""
        return self.response_headers.get("content-type", "").split(";")[0].strip()


@dataclasses.dataclass(frozen=True)
class Recording:
    """One fixture file: a group of exchanges from one source file."""

    name: str
    source: str
    evidence: str
    note: str
    exchanges: tuple[Exchange, ...]

    def find(self, method: str, path_regex: str, index: int = 0) -> Exchange:
        """The ``index``-th exchange with this method whose path ``re.search``-matches ``path_regex``."""
        pattern = re.compile(path_regex)
        hits = [e for e in self.exchanges if e.method == method.upper() and pattern.search(e.path)]
        if index >= len(hits):
            raise KeyError(f"{self.name}: no exchange #{index} for {method.upper()} {path_regex!r} (found {len(hits)})")
        return hits[index]


def _exchange(raw: dict[str, t.Any]) -> Exchange:
    return Exchange(
        method=str(raw["method"]).upper(),
        path=str(raw["path"]),
        query={str(k): str(v) for k, v in (raw.get("query") or {}).items()},
        request_body=raw.get("request_body"),
        status=int(raw["status"]),
        response_body=raw.get("response_body"),
        response_headers={str(k).lower(): str(v) for k, v in (raw.get("response_headers") or {}).items()},
    )


def load(name: str) -> Recording:
    """The fixture ``fixtures/<name>.json`` (read afresh, so callers may mutate it); FileNotFoundError if unknown."""
    raw = json.loads((FIXTURES / f"{name}.json").read_text())
    if raw["evidence"] not in EVIDENCE:
        raise ValueError(f"{name}: evidence must be one of {EVIDENCE}, not {raw['evidence']!r}")
    return Recording(
        name=name,
        source=str(raw["source"]),
        evidence=str(raw["evidence"]),
        note=str(raw["note"]),
        exchanges=tuple(_exchange(e) for e in raw["exchanges"]),
    )


def all_recordings() -> list[Recording]:
    """Every fixture, sorted by name."""
    return [load(path.stem) for path in sorted(FIXTURES.glob("*.json"))]
