"""What customer and contact mappers share: which columns are custom attributes, and their types.

A column named like an object field maps to it; the columns listed in `custom_attributes`
(or every other column with `"*"`) become custom attributes, typed by the stream's schema
and else by the value. Columns that are neither are named once per run.
"""

from __future__ import annotations

import logging
import typing as t

from target_chartmogul.config.settings import StreamSettings
from target_chartmogul.mapping.common import OnceLogger
from target_chartmogul.values.attributes import check_key, coerce, type_from_schema, type_from_value


class ColumnMapper:
    """Maps one stream's records; knows its schema (for attribute types) and options."""

    OBJECT: t.ClassVar[str]  # "customer", "contact": named in the note about ignored columns
    STANDARD_FIELDS: t.ClassVar[frozenset[str]]  # columns that are object fields, never custom attributes

    def __init__(
        self,
        settings: StreamSettings,
        schema: dict[str, t.Any],
        default_data_source_uuid: str | None,
        logger: logging.Logger,
    ) -> None:
        self.settings = settings
        self.properties: dict[str, t.Any] = schema.get("properties") or {}
        self.default_data_source_uuid = default_data_source_uuid
        self.notes = OnceLogger(logger)

    def _custom_columns(self, record: t.Mapping[str, t.Any]) -> list[str]:
        wanted = self.settings.custom_attributes
        if wanted == "*":
            return [c for c in record if c not in self.STANDARD_FIELDS and not c.startswith("_sdc_")]
        return [c for c in wanted if c in record]

    @staticmethod
    def _typed(key: str, value: t.Any, field: str, schema: t.Any) -> tuple[str, t.Any]:
        """(type, value): the type `schema` declares for the column, else the value's own."""
        check_key(key, field)
        kind = type_from_schema(schema if isinstance(schema, dict) else None)
        if kind is None:
            kind = type_from_value(value) if value is not None else "String"
        return kind, coerce(kind, value, field)

    def _note_ignored(self, record: t.Mapping[str, t.Any], used: t.Container[str]) -> None:
        """Say once which columns are neither object fields nor custom attributes."""
        ignored = sorted(
            c for c in record if c not in self.STANDARD_FIELDS and c not in used and not c.startswith("_sdc_")
        )
        if len(ignored) == 1:
            name = self.settings.stream_name
            self.notes.info(
                "ignored",
                "Stream '%s': column %s is not a ChartMogul %s field and is ignored "
                "(list it in streams.%s.custom_attributes to send it as a custom attribute)",
                name, ignored[0], self.OBJECT, name,
            )
        elif ignored:
            name = self.settings.stream_name
            self.notes.info(
                "ignored",
                "Stream '%s': columns %s are not ChartMogul %s fields and are ignored "
                "(list them in streams.%s.custom_attributes to send them as custom attributes)",
                name, ", ".join(ignored), self.OBJECT, name,
            )
