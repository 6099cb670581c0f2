"""Deleting what left the source: `_sdc_deleted_at` rows and rows absent from a complete full-table version.

Every object sink holds one `Deletions` (composed, not inherited); it acts only with `delete_missing`:

- a row carrying `_sdc_deleted_at` (log-based replication) deletes its object;
- a full-table version (records carrying `_sdc_table_version`) that is known to have
  arrived whole (the tap moved on to another stream, or sent a closing ACTIVATE_VERSION)
  deletes the objects this stream wrote earlier that the version lacks, unless they are
  more than `max_delete_fraction` of them: then nothing is deleted and the run says why.

A truncated input never deletes: a version is acted on only once it is known complete. What a
delete is (a DELETE by id, a line taken out of its invoice) is the sink's `delete_rows`.
"""

from __future__ import annotations

import typing as t

from target_chartmogul.errors import RecordRejected
from target_chartmogul.mapping.common import OnceLogger, data_source, optional_text
from target_chartmogul.run.ordering import Sequenced

if t.TYPE_CHECKING:
    import logging

    from target_chartmogul.config.settings import StreamSettings
    from target_chartmogul.run.context import RunContext

Record = dict[str, t.Any]
Key = tuple[str, str]  # (data source, external id)


class Deleting(Sequenced, t.Protocol):
    """What `Deletions` needs of its sink."""

    @property
    def settings(self) -> StreamSettings: ...

    @property
    def context(self) -> RunContext: ...

    @property
    def logger(self) -> logging.Logger: ...

    @property
    def config(self) -> t.Mapping[str, t.Any]: ...

    def count(self, outcome: str, n: int = 1) -> None:
        """Count records of the stream with an outcome."""

    def delete_rows(self, keys: list[Key], records: list[Record]) -> None:
        """Delete the objects of these rows (a refusal lands on its row as a reject)."""


class Deletions:
    """Full-table version tracking and the deleted rows of one stream."""

    def __init__(self, sink: Deleting) -> None:
        self.sink = sink
        self.notes = OnceLogger(sink.logger)
        self.version: int | None = None
        self.version_seen: set[Key] = set()
        self.version_has_records = False

    @property
    def on(self) -> bool:
        """Whether the stream deletes (`delete_missing`)."""
        return bool(self.sink.settings.delete_missing)

    def key(self, record: Record) -> Key:
        """(data source, external id) of a (possibly partial) row, normalised as writes are."""
        try:
            ds = data_source(record, self.sink.config.get("data_source_uuid")) or ""
            external_id = optional_text(record, "external_id")
        except RecordRejected:
            return (str(record.get("data_source_uuid") or ""), str(record.get("external_id")))
        return (ds, external_id if external_id is not None else str(record.get("external_id")))

    # Versions ------------------------------------------------------------------------------
    def note(self, record: Record) -> None:
        """Note which objects the current full-table version holds."""
        version = record.get("_sdc_table_version")
        if self.on and version is not None and not record.get("_sdc_deleted_at"):
            if self.version is None or version > self.version:
                self.start_version(version)
            if version == self.version:
                self.version_seen.add(self.key(record))
                self.version_has_records = True

    def start_version(self, version: int) -> None:
        """Begin collecting the keys of a new full-table version."""
        self.version, self.version_seen, self.version_has_records = version, set(), False

    @property
    def version_pending(self) -> bool:
        """A version whose records arrived and whose completeness has not been acted on."""
        return self.version is not None and self.version_has_records

    def stream_ended(self) -> None:
        """SDK taps send one stream at a time: another stream's message proves a full-table version arrived whole."""
        if self.version_pending:
            self.complete_version()

    def activate_version(self, new_version: int) -> None:
        """ACTIVATE_VERSION after a version's records marks it whole; before them it starts one."""
        if not self.on:
            return
        if self.version_pending and self.version is not None and new_version >= self.version:
            self.complete_version()
        if new_version != self.version:
            self.start_version(new_version)

    def complete_version(self) -> None:
        """The version arrived whole: delete what this stream wrote that it lacks (within the guard)."""
        with self.sink.context.guard.writing():
            self._delete_missing()

    def _delete_missing(self) -> None:
        sink, context = self.sink, self.sink.context
        version, seen = self.version, self.version_seen
        self.version, self.version_seen, self.version_has_records = None, set(), False
        context.order.drain(sink)
        known = context.ledger.stream_objects(sink.object_name, sink.stream_name)
        missing = sorted(key for key in known if key not in seen)
        if not missing or not self._within_guard(version, len(missing), len(known)):
            return
        sink.logger.info(
            "Stream '%s': deleting %d %s absent from version %s", sink.stream_name, len(missing), sink.object_name, version
        )
        sink.delete_rows(missing, [{"data_source_uuid": ds, "external_id": ext} for ds, ext in missing])
        context.ledger.flush()

    def _within_guard(self, version: int | None, missing: int, known: int) -> bool:
        sink = self.sink
        limit = sink.settings.max_delete_fraction
        if missing <= limit * known:
            return True
        sink.context.report_problem(
            f"Stream '{sink.stream_name}': full-table version {version} lacks {missing} of the {known} "
            f"{sink.object_name} this stream wrote ({missing / known:.0%}), more than max_delete_fraction "
            f"{limit:.0%}; deleting none. Check the source, or raise max_delete_fraction."
        )
        return False

    # Rows deleted in the source -------------------------------------------------------------
    def split(self, records: list[Record]) -> list[Record]:
        """Handle the rows carrying `_sdc_deleted_at`; return the others (to write)."""
        sink = self.sink
        deletions = [r for r in records if r.get("_sdc_deleted_at")]
        if deletions and not self.on:
            self.notes.info(
                "deletes",
                "Stream '%s': %d deleted row(s) ignored; set delete_missing to delete %s",
                sink.stream_name,
                len(deletions),
                sink.object_name,
            )
            sink.count("skipped", len(deletions))
        elif deletions:
            sink.delete_rows([self.key(r) for r in deletions], deletions)
        return [r for r in records if not r.get("_sdc_deleted_at")]
