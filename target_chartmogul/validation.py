"""Record validation that rejects one record instead of ending the run.

singer-sdk's own validation either raises (ending the run at the first bad row) or
logs and passes the bad record on. We validate here instead, so that a bad record
becomes a reject line naming the stream, the key and the field.
"""

from __future__ import annotations

import copy
import datetime as dt
import typing as t

import jsonschema

from target_chartmogul.errors import FatalError


def clean_schema(schema: t.Any) -> t.Any:
    """Rewrite draft-4 boolean exclusiveMinimum/Maximum (pipelinewise-tap-postgres emits
    them) into the numeric form later drafts require.
    """
    if isinstance(schema, list):
        return [clean_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    result = {key: clean_schema(value) for key, value in schema.items()}
    for bound, exclusive in (("maximum", "exclusiveMaximum"), ("minimum", "exclusiveMinimum")):
        flag = result.get(exclusive)
        if isinstance(flag, bool):
            del result[exclusive]
            if flag and bound in result:
                result[exclusive] = result.pop(bound)
    return result


def _date_format(prop: t.Any) -> str | None:
    if not isinstance(prop, dict):
        return None
    if prop.get("format") in {"date-time", "date"}:
        return str(prop["format"])
    for key in ("anyOf", "oneOf"):
        for option in prop.get(key) or []:
            found = _date_format(option)
            if found:
                return found
    return None


class RecordChecker:
    """Validates records against a stream schema and parses its date fields."""

    def __init__(self, stream_name: str, schema: dict[str, t.Any], *, validate: bool = True) -> None:
        self.schema = clean_schema(copy.deepcopy(schema))
        try:
            jsonschema.Draft202012Validator.check_schema(self.schema)
        except jsonschema.SchemaError as exc:
            msg = f"Stream '{stream_name}': its SCHEMA message is not valid JSON Schema ({exc.message})"
            raise FatalError(msg) from None
        self.validator = jsonschema.Draft202012Validator(self.schema) if validate else None
        self.date_fields = {
            name: fmt for name, prop in (self.schema.get("properties") or {}).items() if (fmt := _date_format(prop))
        }

    def check(self, record: dict[str, t.Any]) -> tuple[str, str] | None:
        """Return (field, problem) for an invalid record, else None; dates are parsed in place."""
        if self.validator is not None and not self.validator.is_valid(record):
            error = jsonschema.exceptions.best_match(self.validator.iter_errors(record))
            if error is not None:
                field = ".".join(str(p) for p in error.absolute_path) or "(record)"
                return field, f"field '{field}' does not match the stream schema: {error.message[:200]}"
        for name, fmt in self.date_fields.items():
            value = record.get(name)
            if not isinstance(value, str):
                continue
            try:
                parsed = dt.datetime.fromisoformat(value.strip())
            except ValueError:
                return name, f"field '{name}' is not a valid ISO-8601 {fmt}: {value[:60]!r}"
            record[name] = parsed
        return None
