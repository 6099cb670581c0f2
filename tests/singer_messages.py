"""Builders of Singer messages for tests, shaped like tap-postgres output."""

from __future__ import annotations

import json
import typing as t

STRING = {"type": ["string", "null"]}
INTEGER = {"type": ["integer", "null"]}
NUMBER = {"type": ["number", "null"]}
BOOLEAN = {"type": ["boolean", "null"]}
DATETIME = {"type": ["string", "null"], "format": "date-time"}
DATE = {"type": ["string", "null"], "format": "date"}
STRINGS = {"type": ["array", "null"], "items": {"type": "string"}}
OBJECT = {"type": ["object", "null"]}


def schema(stream: str, properties: dict[str, t.Any], key: t.Sequence[str] = ("external_id",)) -> dict[str, t.Any]:
    return {"type": "SCHEMA", "stream": stream, "schema": {"type": "object", "properties": properties},
            "key_properties": list(key)}


def record(stream: str, rec: dict[str, t.Any]) -> dict[str, t.Any]:
    return {"type": "RECORD", "stream": stream, "record": rec}


def state(value: dict[str, t.Any]) -> dict[str, t.Any]:
    return {"type": "STATE", "value": value}


def lines(messages: t.Iterable[dict[str, t.Any] | str]) -> str:
    """JSONL text; str items are passed through untouched (for malformed-line tests)."""
    return "".join((m if isinstance(m, str) else json.dumps(m)) + "\n" for m in messages)


CUSTOMER_PROPS: dict[str, t.Any] = {
    "external_id": STRING,
    "name": STRING,
    "email": STRING,
    "company": STRING,
    "country": STRING,
    "state": STRING,
    "city": STRING,
    "zip": STRING,
    "lead_created_at": DATETIME,
    "free_trial_started_at": DATETIME,
    "website_url": STRING,
    "tags": STRINGS,
}


def customers_stream(stream: str, rows: t.Iterable[dict[str, t.Any]], extra_props: dict[str, t.Any] | None = None,
                     key: t.Sequence[str] = ("external_id",)) -> list[dict[str, t.Any]]:
    props = {**CUSTOMER_PROPS, **(extra_props or {})}
    return [schema(stream, props, key), *(record(stream, r) for r in rows)]
