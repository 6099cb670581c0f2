"""Replay recorded exchanges against the fake and compare the answers' shapes.

Values differ between a recording and a replay (ids, dates, account settings), so the
comparison is about shape: the same status, the same keys at every level, the same JSON
type per key, and the same ``""``/``null`` choice for unset values. A deliberate
difference is named in an ``ignore`` map (glob over the dotted path -> reason) so the
exception and its reason sit next to the test that needs it.
"""

from __future__ import annotations

import fnmatch
import re
import typing as t

import requests

from tests.contract.recordings import Exchange, Recording
from tests.fake_chartmogul import FakeChartMogul

Ignore = t.Mapping[str, str]
PairBy = t.Mapping[str, str]

# ChartMogul identifiers in recordings: prefixed uuids, bare uuids (generated plan external ids).
_ID = re.compile(
    r"^(?:(?:ds|cus|pl|plg|inv|li|tr|sub|con|note)_[0-9A-Za-z-]+|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$"
)


def kind(value: t.Any) -> str:
    """The JSON type, with ``""`` told apart from other strings (ChartMogul's unset marker)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "empty" if value == "" else "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _ignored(path: str, ignore: Ignore) -> bool:
    return any(fnmatch.fnmatchcase(path, pattern) for pattern in ignore)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def differences(
    recorded: t.Any, actual: t.Any, ignore: Ignore | None = None, pair_by: PairBy | None = None, path: str = ""
) -> list[str]:
    """Shape differences between a recorded body and the fake's, as readable lines.

    Lists of objects are compared element by element (by index, or by the key that
    ``pair_by`` names for that list's path) and must have the same length; lists of
    scalars only need matching element types (tags, external_ids, ...).
    """
    ignore = ignore or {}
    pair_by = pair_by or {}
    where = path or "<body>"
    if path and _ignored(path, ignore):
        return []
    recorded_kind, actual_kind = kind(recorded), kind(actual)
    if recorded_kind != actual_kind:
        return [f"{where}: recorded {recorded_kind} {recorded!r:.60}, fake {actual_kind} {actual!r:.60}"]
    problems: list[str] = []
    if isinstance(recorded, dict):
        for key in recorded.keys() - actual.keys():
            if not _ignored(_join(path, key), ignore):
                problems.append(f"{_join(path, key)}: recorded key missing from the fake's answer")
        for key in actual.keys() - recorded.keys():
            if not _ignored(_join(path, key), ignore):
                problems.append(f"{_join(path, key)}: key not in the recording")
        for key in recorded.keys() & actual.keys():
            problems += differences(recorded[key], actual[key], ignore, pair_by, _join(path, key))
        return sorted(problems)
    if isinstance(recorded, list):
        item_path = _join(path, "*")
        if recorded and all(isinstance(r, dict) for r in recorded):
            if len(recorded) != len(actual) and not _ignored(f"{path}#length", ignore):
                problems.append(f"{where}: recorded {len(recorded)} items, fake {len(actual)}")
            pairs = list(zip(recorded, actual, strict=False))
            pattern = next((p for p in pair_by if fnmatch.fnmatchcase(path, p)), None)
            if pattern is not None:
                key = pair_by[pattern]
                by_key = {item.get(key): item for item in actual if isinstance(item, dict)}
                pairs = [(r, by_key.get(r.get(key))) for r in recorded]
            for expected, got in pairs:
                problems += differences(expected, got, ignore, pair_by, item_path)
        elif recorded and actual:
            allowed = {kind(r) for r in recorded}
            problems += [
                f"{item_path}: fake item {a!r} is {kind(a)}, recorded {allowed}" for a in actual if kind(a) not in allowed
            ]
        elif bool(recorded) != bool(actual) and not _ignored(f"{path}#length", ignore):
            problems.append(f"{where}: recorded {len(recorded)} items, fake {len(actual)}")
    return problems


class Replayer:
    """Sends recorded requests to the fake, mapping recorded ids to the fake's own."""

    def __init__(self, fake: FakeChartMogul, key: str) -> None:
        assert fake.url is not None
        self.fake = fake
        self.url = fake.url
        self.key = key
        self.session = requests.Session()
        self.ids: dict[str, str] = {}
        self.answers: dict[int, t.Any] = {}  # index -> the fake's JSON answer, from the last run()

    def close(self) -> None:
        self.session.close()

    # -- id mapping

    def alias(self, recorded: str, actual: str) -> str:
        """From now on, ``recorded`` in paths, queries and bodies means ``actual``."""
        self.ids[recorded] = actual
        return actual

    def sub(self, value: t.Any) -> t.Any:
        """``value`` with every recorded id (and cursor) replaced by the fake's."""
        if isinstance(value, str):
            return self.ids.get(value, value)
        if isinstance(value, list):
            return [self.sub(v) for v in value]
        if isinstance(value, dict):
            return {k: self.sub(v) for k, v in value.items()}
        return value

    def learn(self, recorded: t.Any, actual: t.Any, key: str = "") -> None:
        """Pair ids (and cursors) found at the same place in a recorded and a fake answer."""
        if isinstance(recorded, dict) and isinstance(actual, dict):
            for name in recorded.keys() & actual.keys():
                self.learn(recorded[name], actual[name], name)
        elif isinstance(recorded, list) and isinstance(actual, list):
            for r, a in zip(recorded, actual, strict=False):
                self.learn(r, a, key)
        elif (
            isinstance(recorded, str)
            and isinstance(actual, str)
            and recorded not in self.ids
            and (key == "cursor" or _ID.match(recorded))
        ):
            self.ids[recorded] = actual

    # -- HTTP

    def send(self, exchange: Exchange, *, key: str | None = None) -> requests.Response:
        """The recorded request, with ids mapped, over real HTTP."""
        path = "/".join(self.sub(part) for part in exchange.path.split("/"))
        query = {k: self.sub(v) for k, v in exchange.query.items()}
        body = self.sub(exchange.request_body)
        return self.session.request(
            exchange.method,
            self.url + path,
            params=query or None,
            json=body,
            auth=(key if key is not None else self.key, ""),
            timeout=10,
        )

    def check(
        self,
        exchange: Exchange,
        response: requests.Response,
        ignore: Ignore | None = None,
        pair_by: PairBy | None = None,
    ) -> list[str]:
        """How the fake's answer differs from the recorded one (empty when it matches)."""
        label = f"{exchange.method} {exchange.path}"
        if response.status_code != exchange.status:
            return [f"{label}: status {response.status_code}, recorded {exchange.status}: {response.text[:300]}"]
        problems: list[str] = []
        got_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        if exchange.content_type and exchange.status != 204 and got_type != exchange.content_type:
            problems.append(f"{label}: content-type {got_type!r}, recorded {exchange.content_type!r}")
        recorded = exchange.response_body
        if recorded is None:
            if response.content:
                problems.append(f"{label}: recorded no body, fake sent {response.text[:100]!r}")
            return problems
        if isinstance(recorded, str):
            if response.text != recorded:
                problems.append(f"{label}: body {response.text!r}, recorded {recorded!r}")
            return problems
        actual = response.json()
        if exchange.status >= 400:
            expected = self.sub(recorded)
            if actual != expected:
                problems.append(f"{label}: error body {actual!r}, recorded {expected!r}")
            return problems
        problems += [f"{label}: {line}" for line in differences(recorded, actual, ignore, pair_by)]
        self.learn(recorded, actual)
        return problems

    def run(
        self,
        recording: Recording,
        ignore: Ignore | None = None,
        pair_by: PairBy | None = None,
        only: t.Iterable[int] | None = None,
    ) -> list[str]:
        """Replay the recording's exchanges in order (or those in ``only``); all differences."""
        chosen = set(range(len(recording.exchanges))) if only is None else set(only)
        problems: list[str] = []
        self.answers = {}
        for index, exchange in enumerate(recording.exchanges):
            if index in chosen:
                response = self.send(exchange)
                problems += self.check(exchange, response, ignore, pair_by)
                if response.content and response.headers.get("Content-Type", "").startswith("application/json"):
                    self.answers[index] = response.json()
        return problems
