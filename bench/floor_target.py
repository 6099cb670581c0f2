"""The floor: a minimal singer-sdk target that validates each record and discards it.

What any SDK target pays to read, parse and validate Singer messages and emit STATE.
The benchmarks compare target-chartmogul's wall time and CPU seconds with this one on
the same input:

    python bench/floor_target.py --config c.json --input f.singer
"""

from __future__ import annotations

import typing as t

from singer_sdk import Target
from singer_sdk import typing as th
from singer_sdk.sinks import RecordSink


class DiscardSink(RecordSink):
    """The SDK validates (JSON schema) and parses each record before this; then it is dropped."""

    def process_record(self, record: dict[str, t.Any], context: dict[str, t.Any]) -> None:
        """Discard."""


class FloorTarget(Target):
    """Validates and discards every record of every stream."""

    name = "floor-target"
    # Accept target-chartmogul's config file as is.
    config_jsonschema = th.PropertiesList(th.Property("api_key", th.StringType)).to_dict()
    default_sink_class = DiscardSink


if __name__ == "__main__":
    FloorTarget.cli()
