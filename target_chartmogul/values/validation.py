"""Record validation that rejects one record instead of ending the run.

singer-sdk's own validation either raises (ending the run at the first bad row) or
logs and passes the bad record on. We validate here instead, so that a bad record
becomes a reject line naming the stream, the key and the field.
"""

from __future__ import annotations

import copy
import dataclasses
import typing as t

import fastjsonschema
import jsonschema
from singer_sdk.sinks.core import BaseJSONSchemaValidator

from target_chartmogul.errors import FatalError, RecordRejected
from target_chartmogul.values import dates

INVALID = "__target_chartmogul_invalid__"

# Keywords that mean the same to fastjsonschema (draft 7) and to jsonschema (draft 2020-12),
# and where fastjsonschema never accepts what jsonschema refuses. `enum`/`const` are left out
# (fastjsonschema takes True for 1), `$ref` too (it would fetch remote documents).
_SAME_KEYWORDS = frozenset({
    "type", "properties", "patternProperties", "additionalProperties", "required", "items", "anyOf", "oneOf", "allOf",
    "not", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength", "pattern", "format",
    "minItems", "maxItems", "minProperties", "maxProperties", "title", "description", "default", "examples",
    "$comment", "$schema", "readOnly", "writeOnly",
})
_SCHEMA_VALUED = frozenset({"additionalProperties", "items", "not"})
_SCHEMA_MAPS = frozenset({"properties", "patternProperties"})
_SCHEMA_LISTS = frozenset({"anyOf", "oneOf", "allOf"})


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


def _same_in_both(schema: t.Any) -> bool:
    """Whether every keyword of the schema is one both validators read alike (see `_SAME_KEYWORDS`)."""
    if isinstance(schema, bool):
        return True
    if not isinstance(schema, dict) or not set(schema) <= _SAME_KEYWORDS:
        return False
    if isinstance(schema.get("items"), list):
        return False
    parts = [schema[key] for key in _SCHEMA_VALUED if key in schema]
    parts += [sub for key in _SCHEMA_MAPS for sub in (schema.get(key) or {}).values()]
    parts += [sub for key in _SCHEMA_LISTS for sub in schema.get(key) or []]
    return all(_same_in_both(part) for part in parts)


def quick_check(schema: t.Any) -> t.Callable[[t.Any], t.Any] | None:
    """A compiled validator that passes a valid record in microseconds, or None when it could disagree with
    jsonschema on this schema. Only its "valid" counts: anything it refuses is judged by jsonschema again,
    which also words the reason.
    """
    if not _same_in_both(schema):
        return None
    try:
        return fastjsonschema.compile(schema, use_default=False, use_formats=False)
    except (fastjsonschema.JsonSchemaDefinitionException, ValueError, TypeError, RecursionError):
        return None


def _date_format(prop: t.Any) -> str | None:
    """`date` or `date-time` when a property schema declares one (directly or in anyOf/oneOf)."""
    if not isinstance(prop, dict):
        return None
    if prop.get("format") in {"date-time", "date"}:
        return str(prop["format"])
    options = [option for key in ("anyOf", "oneOf") for option in prop.get(key) or []]
    return next((found for option in options if (found := _date_format(option))), None)


@dataclasses.dataclass(frozen=True)
class Invalid:
    """Why a record cannot be written, and the record as it arrived (for the rejects file)."""

    field: str
    reason: str
    record: dict[str, t.Any]


class RecordChecker:
    """Validates records against a stream schema and reads their dates with `dates.parse`.

    Used as singer-sdk's validator (`Sink.get_validator`), it never raises: an invalid
    record is marked under INVALID, with its original copy, so it becomes one reject line
    and the run goes on. Valid dates are rewritten in a form singer-sdk's own date parsing
    (which runs next) reads identically; the fields of an invalid record are blanked so that
    parsing cannot fail on them.
    """

    def __init__(self, stream_name: str, schema: dict[str, t.Any], *, validate: bool = True) -> None:
        self.schema = clean_schema(copy.deepcopy(schema))
        try:
            jsonschema.Draft202012Validator.check_schema(self.schema)
        except jsonschema.SchemaError as exc:
            msg = f"Stream '{stream_name}': its SCHEMA message is not valid JSON Schema ({exc.message})"
            raise FatalError(msg) from None
        self.validator = jsonschema.Draft202012Validator(self.schema) if validate else None
        self.quick = quick_check(self.schema) if validate else None
        self.date_fields = {
            name: fmt for name, prop in (self.schema.get("properties") or {}).items() if (fmt := _date_format(prop))
        }

    def validate(self, record: dict[str, t.Any]) -> None:
        """singer-sdk's validator call: mark, never raise."""
        if INVALID in record:
            return
        original = dict(record)
        problem = self._schema_problem(record) or self._read_dates(record)
        if problem is not None:
            record[INVALID] = Invalid(problem[0], problem[1], original)
            for name in self.date_fields:
                record[name] = None

    def read_dates(self, record: dict[str, t.Any]) -> Invalid | None:
        """Read the dates of a record validated before and read back from JSON (no schema check again)."""
        original = dict(record)
        problem = self._read_dates(record)
        return Invalid(problem[0], problem[1], original) if problem is not None else None

    def mark_missing_keys(self, record: dict[str, t.Any], key_properties: t.Sequence[str]) -> None:
        """A record without a key property is invalid; the key is set to None so singer-sdk does not raise."""
        missing = [key for key in key_properties if key not in record]
        if missing and INVALID not in record:
            reason = f"key property '{missing[0]}' is missing from the record"
            record[INVALID] = Invalid(missing[0], reason, dict(record))
        for key in missing:
            record[key] = None

    def _schema_problem(self, record: dict[str, t.Any]) -> tuple[str, str] | None:
        if self.validator is None or self._passes_quickly(record) or self.validator.is_valid(record):
            return None
        error = jsonschema.exceptions.best_match(self.validator.iter_errors(record))
        if error is None:
            return None
        field = ".".join(str(p) for p in error.absolute_path) or "(record)"
        return field, f"field '{field}' does not match the stream schema: {error.message[:200]}"

    def _passes_quickly(self, record: dict[str, t.Any]) -> bool:
        if self.quick is None:
            return False
        try:
            self.quick(record)
        except fastjsonschema.JsonSchemaValueException:
            return False
        return True

    def _read_dates(self, record: dict[str, t.Any]) -> tuple[str, str] | None:
        for name, fmt in self.date_fields.items():
            value = record.get(name)
            if not isinstance(value, str):
                continue
            try:
                moment = dates.parse(value, name)
            except RecordRejected as exc:
                return name, exc.reason
            record[name] = moment.date().isoformat() if fmt == "date" else moment.isoformat()
        return None


class SDKValidator(BaseJSONSchemaValidator):
    """The `RecordChecker` in the shape of singer-sdk's validator hook."""

    def __init__(self, checker: RecordChecker) -> None:
        super().__init__(checker.schema)
        self.checker = checker

    def validate(self, record: dict[str, t.Any]) -> None:
        """Mark an invalid record instead of raising (see `RecordChecker`)."""
        self.checker.validate(record)
