"""The sink of every stream in a reconcile run: validates and maps each record as a write would, writes nothing.

It hands each mapped row to the run's `Source` (through `Collector`), notes which full-table
version the stream sends, and turns a record the writing path would refuse into a `refused`
finding. Nothing here calls ChartMogul or opens the sync memory.
"""

from __future__ import annotations

import typing as t

from singer_sdk.sinks import RecordSink

from target_chartmogul.errors import RecordRejected
from target_chartmogul.mapping.common import data_source, optional_text
from target_chartmogul.reconcile.source import Row, Source, mapping_for
from target_chartmogul.reconcile.versions import FullTableVersion
from target_chartmogul.values.validation import INVALID, Invalid, RecordChecker, SDKValidator

if t.TYPE_CHECKING:
    from singer_sdk.target_base import Target

    from target_chartmogul.config.settings import StreamSettings

Record = dict[str, t.Any]
S = t.TypeVar("S", bound="ReconcileSink")


class Collector(t.Protocol):
    """What the sinks need of the reconciliation (`reconcile/run.py`)."""

    source: Source

    @property
    def default_data_source_uuid(self) -> str | None:
        """The configured data source, for records that carry none."""

    def stream(self, stream_name: str) -> StreamSettings:
        """A stream's resolved options."""

    def refuse(self, obj: str, record: Record, field: str | None, reason: str) -> None:
        """A row the writing path would refuse: a `refused` finding, and its key still counts as in the source."""


class ReconcileSink(RecordSink):
    """Maps one stream's records into the reconciliation's source rows."""

    collector: t.ClassVar[Collector]

    @classmethod
    def bound_to(cls: type[S], collector: Collector) -> type[S]:
        """A subclass carrying the run's reconciliation, so the SDK can build it from the class alone."""
        return type(cls.__name__, (cls,), {"collector": collector, "__module__": cls.__module__})

    def __init__(
        self, target: Target, stream_name: str, schema: dict[str, t.Any], key_properties: t.Sequence[str] | None
    ) -> None:
        self.settings = self.collector.stream(stream_name)
        super().__init__(target, stream_name, schema, key_properties)
        self.object_name = str(self.settings.object)
        self.map = mapping_for(self.settings, self.schema, self.collector.default_data_source_uuid, self.logger)
        self.version = FullTableVersion(self._version_changed)
        self.collector.source.stream_opened(stream_name, self.object_name)

    @property
    def include_sdc_metadata_properties(self) -> bool:
        """`_sdc_table_version` says whether the stream is a full-table version, `_sdc_deleted_at` what left the
        source: the SDK strips both otherwise.
        """
        return True

    def get_validator(self) -> SDKValidator:
        """Validate as the writing sinks do: a bad record is marked (and becomes a `refused` finding), never fatal."""
        self.checker = RecordChecker(self.stream_name, self.schema, validate=self.validate_schema)
        return SDKValidator(self.checker)

    def preprocess_record(self, record: Record, context: dict[str, t.Any]) -> Record:
        """A record without a key property is refused, not the end of the run."""
        self.checker.mark_missing_keys(record, self.key_properties)
        return record

    def process_record(self, record: Record, context: dict[str, t.Any]) -> None:
        """Map the record as a write would and keep it (or its deletion, or its refusal)."""
        invalid: Invalid | None = record.pop(INVALID, None)
        if invalid is not None:
            self.collector.refuse(self.object_name, invalid.record, invalid.field, invalid.reason)
            return
        try:
            if record.get("_sdc_deleted_at"):
                self.deleted(record)
                return
            self.version.record(record.get("_sdc_table_version"))
            key, payload = self.map(record)
        except RecordRejected as exc:
            self.collector.refuse(self.object_name, record, exc.field, exc.reason)
            return
        self.collector.source.add(self.object_name, key, Row(self.stream_name, self.settings, payload))

    def deleted(self, record: Record) -> None:
        """A row deleted in the source (log-based replication: often only its key): its object should be gone."""
        default = self.collector.default_data_source_uuid
        key = (data_source(record, default) or "", optional_text(record, "external_id") or "")
        self.collector.source.delete(self.object_name, key)

    def activate_version(self, new_version: int) -> None:
        """ACTIVATE_VERSION: a closing one marks the stream's version whole."""
        self.version.activate(new_version)

    def other_stream_started(self) -> None:
        """A message of another stream: the version this stream sent arrived whole."""
        self.version.other_stream_started()

    def _version_changed(self, complete: bool) -> None:
        if complete:
            self.collector.source.complete.add(self.stream_name)
        else:
            self.collector.source.complete.discard(self.stream_name)
