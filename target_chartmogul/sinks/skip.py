"""Streams that map to no ChartMogul object: counted, logged once, never an error."""

from __future__ import annotations

import typing as t

from singer_sdk.sinks import BatchSink

if t.TYPE_CHECKING:
    from singer_sdk.target_base import Target

    from target_chartmogul.run.context import RunContext


class SkipSink(BatchSink):
    """Drops the stream's records; keeps the SDK's own checks (so bad input still fails)."""

    context: t.ClassVar[RunContext]  # set by `sinks.base.bind`

    def __init__(
        self,
        target: Target,
        stream_name: str,
        schema: dict[str, t.Any],
        key_properties: t.Sequence[str] | None,
    ) -> None:
        super().__init__(target, stream_name, schema, key_properties)
        self.summary = self.context.summary
        self.summary.objects[stream_name] = "(skipped)"
        self.logger.info(
            "Stream '%s' maps to no ChartMogul object; its records are skipped. "
            "Map it with streams.%s.object if that is not intended.",
            stream_name,
            stream_name,
        )

    def process_record(self, record: dict[str, t.Any], context: dict[str, t.Any]) -> None:
        """Count and drop."""
        self.summary.add(self.stream_name, "received")
        self.summary.add(self.stream_name, "skipped")

    def process_batch(self, context: dict[str, t.Any]) -> None:
        """Nothing is staged, so nothing to write."""
