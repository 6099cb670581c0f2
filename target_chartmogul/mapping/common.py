"""Mapping helpers shared by every object: reading columns, data sources, once-only notes."""

from __future__ import annotations

import json
import logging
import threading
import typing as t

from target_chartmogul.errors import RecordRejected
from target_chartmogul.values.text import is_blank, text


def required_text(record: t.Mapping[str, t.Any], field: str, why: str = "") -> str:
    """A non-blank string column, else the record is rejected naming the field."""
    value = record.get(field)
    if is_blank(value):
        suffix = f" ({why})" if why else ""
        raise RecordRejected(f"field '{field}' is required{suffix}", field=field)
    return text(value, field).strip()


def optional_text(record: t.Mapping[str, t.Any], field: str) -> str | None:
    """A string column, None when absent or blank."""
    value = record.get(field)
    return None if is_blank(value) else text(value, field).strip()


def data_source(record: t.Mapping[str, t.Any], default: str | None) -> str | None:
    """The record's own data source, else the configured one."""
    return optional_text(record, "data_source_uuid") or default


def required_data_source(record: t.Mapping[str, t.Any], default: str | None) -> str:
    """The record's or the configured data source; without one the record is rejected."""
    found = data_source(record, default)
    if not found:
        msg = "no data source: set data_source_uuid in the record or in the target's settings"
        raise RecordRejected(msg, field="data_source_uuid")
    return found


def amount_column(record: t.Mapping[str, t.Any], field: str, unit: str) -> str | None:
    """The column holding an amount field, None when unset: `amount_in_cents`, or with `amount_unit: units`
    also the same name without `_in_cents` (`amount`, `tax_amount`), as billing tables name currency amounts.
    """
    if record.get(field) is not None:
        return field
    plain = field.removesuffix("_in_cents")
    if unit == "units" and plain != field and record.get(plain) is not None:
        return plain
    return None


def json_value(value: t.Any, field: str) -> t.Any:
    """A jsonb column arrives as an object; a json/text column as a string holding one."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            raise RecordRejected(f"field '{field}' is not valid JSON: {value[:60]!r}", field=field) from None
    return value


class OnceLogger:
    """Logs a note about a stream once per run (e.g. which columns are ignored)."""

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def info(self, key: str, message: str, *args: t.Any) -> None:
        """Log `message` the first time `key` is seen."""
        with self._lock:
            if key in self._seen:
                return
            self._seen.add(key)
        self.logger.info(message, *args)
