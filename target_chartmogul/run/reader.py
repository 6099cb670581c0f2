"""Reading Singer messages: a bad line is one clear error with its line number.

The SDK's reader logs a traceback for an unparseable line and accepts lines that are
not objects or have unknown types only to fail later with a bare exception.
"""

from __future__ import annotations

import decimal
import json
import typing as t

from singer_sdk.exceptions import InvalidInputLine
from singer_sdk.io_base import SingerReader

KNOWN_TYPES = frozenset({"SCHEMA", "RECORD", "STATE", "ACTIVATE_VERSION", "BATCH"})


def _excerpt(line: str) -> str:
    line = line.strip()
    return line if len(line) <= 120 else line[:120] + "…"


class StrictSingerReader(SingerReader):
    """A SingerReader that names the line number and the problem, and nothing else."""

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        super().__init__(*args, **kwargs)
        self.line_number = 0
        self.before_input: t.Callable[[], None] | None = None  # the run's start, once, before the first line

    def process_lines(self, file_input: t.IO[str] | None, callbacks: dict[str, t.Callable[[dict], None]]) -> t.Counter[str]:
        """Start the run (`before_input`), then read every line."""
        if self.before_input is not None:
            start, self.before_input = self.before_input, None
            start()
        return super().process_lines(file_input, callbacks)

    def deserialize_json(self, line: str) -> dict:
        """Parse one line; anything but a JSON object with a known `type` is refused."""
        self.line_number += 1
        try:
            message = json.loads(line, parse_float=decimal.Decimal)
        except json.JSONDecodeError as exc:
            msg = f"input line {self.line_number} is not valid JSON ({exc.msg}): {_excerpt(line)}"
            raise InvalidInputLine(msg) from None
        if not isinstance(message, dict):
            msg = f"input line {self.line_number} is not a Singer message (a JSON object): {_excerpt(line)}"
            raise InvalidInputLine(msg)
        kind = message.get("type")
        if kind not in KNOWN_TYPES:
            msg = f"input line {self.line_number} has unknown message type {kind!r}: {_excerpt(line)}"
            raise InvalidInputLine(msg)
        if kind == "SCHEMA":
            schema = message.get("schema")
            if not isinstance(schema, dict) or not isinstance(schema.get("properties"), dict):
                msg = f"the SCHEMA message of stream {message.get('stream')!r} has no 'properties' object"
                raise InvalidInputLine(msg)
        return message
