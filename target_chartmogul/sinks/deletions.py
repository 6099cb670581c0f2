"""Deleting what left the source: `_sdc_deleted_at` rows and rows absent from a complete full-table version.

Any object sink can delete (customers today; invoices, events and contacts as they come):
it mixes `DeletesMissing` in and implements `delete_one`. With `delete_missing` on:

- a row carrying `_sdc_deleted_at` (log-based replication) deletes its object;
- a full-table version (records carrying `_sdc_table_version`) that is known to have
  arrived whole (the tap moved on to another stream, or sent a closing ACTIVATE_VERSION)
  deletes the objects this stream wrote earlier that the version lacks, unless they are
  more than `max_delete_fraction` of them: then nothing is deleted and the run says why.

A truncated input never deletes: a version is acted on only once it is known complete.
"""

from __future__ import annotations

import typing as t

from target_chartmogul.errors import RecordRejected
from target_chartmogul.mapping.common import OnceLogger, data_source, optional_text
from target_chartmogul.sinks.base import ChartMogulSink

Record = dict[str, t.Any]
Key = tuple[str, str]  # (data source, external id)


class DeletesMissing(ChartMogulSink):
    """Full-table version tracking and deletes for a sink whose objects are keyed by external id."""

    def setup(self) -> None:
        """Start with no version seen."""
        super().setup()
        self.notes = OnceLogger(self.logger)
        self.version: int | None = None
        self.version_seen: set[Key] = set()
        self.version_has_records = False

    @property
    def include_sdc_metadata_properties(self) -> bool:
        """Deletes need `_sdc_deleted_at` and `_sdc_table_version`, which the SDK strips otherwise."""
        return bool(self.settings.delete_missing) or super().include_sdc_metadata_properties

    def delete_one(self, data_source_uuid: str, external_id: str) -> str | None:
        """Delete one object; returns the outcome to count ("deleted", "unchanged" if already gone, None if counted later)."""
        raise NotImplementedError

    def deletion_key(self, record: Record) -> Key:
        """(data source, external id) of a (possibly partial) row, normalised as writes are."""
        try:
            ds = data_source(record, self.config.get("data_source_uuid")) or ""
            external_id = optional_text(record, "external_id")
        except RecordRejected:
            return (str(record.get("data_source_uuid") or ""), str(record.get("external_id")))
        return (ds, external_id if external_id is not None else str(record.get("external_id")))

    # Versions ------------------------------------------------------------------------------
    def process_record(self, record: Record, context: dict[str, t.Any]) -> None:
        """Note which objects the current full-table version holds, then stage the record."""
        version = record.get("_sdc_table_version")
        if self.settings.delete_missing and version is not None and not record.get("_sdc_deleted_at"):
            if self.version is None or version > self.version:
                self.start_version(version)
            if version == self.version:
                self.version_seen.add(self.deletion_key(record))
                self.version_has_records = True
        super().process_record(record, context)

    def start_version(self, version: int) -> None:
        """Begin collecting the keys of a new full-table version."""
        self.version, self.version_seen, self.version_has_records = version, set(), False

    @property
    def version_pending(self) -> bool:
        """A version whose records arrived and whose completeness has not been acted on."""
        return self.version is not None and self.version_has_records

    def other_stream_started(self) -> None:
        """SDK taps send one stream at a time: another stream's message proves a full-table version arrived whole."""
        if self.version_pending:
            self.complete_version()

    def activate_version(self, new_version: int) -> None:
        """ACTIVATE_VERSION after a version's records marks it whole; before them it starts one."""
        if not self.settings.delete_missing:
            return
        if self.version_pending and self.version is not None and new_version >= self.version:
            self.complete_version()
        if new_version != self.version:
            self.start_version(new_version)

    def complete_version(self) -> None:
        """The version arrived whole: delete what this stream wrote that it lacks (within the guard)."""
        with self.context.guard.writing():
            self._delete_missing()

    def _delete_missing(self) -> None:
        version, seen = self.version, self.version_seen
        self.version, self.version_seen, self.version_has_records = None, set(), False
        self.context.order.drain(self)
        known = self.context.ledger.stream_objects(self.object_name, self.stream_name)
        missing = sorted(key for key in known if key not in seen)
        if not missing or not self._within_guard(version, len(missing), len(known)):
            return
        self.logger.info(
            "Stream '%s': deleting %d %s absent from version %s", self.stream_name, len(missing), self.object_name, version
        )
        self.delete_keys(missing, [{"data_source_uuid": ds, "external_id": ext} for ds, ext in missing])
        self.context.ledger.flush()

    def _within_guard(self, version: int | None, missing: int, known: int) -> bool:
        limit = self.settings.max_delete_fraction
        if missing <= limit * known:
            return True
        self.context.report_problem(
            f"Stream '{self.stream_name}': full-table version {version} lacks {missing} of the {known} "
            f"{self.object_name} this stream wrote ({missing / known:.0%}), more than max_delete_fraction "
            f"{limit:.0%}; deleting none. Check the source, or raise max_delete_fraction."
        )
        return False

    # Rows deleted in the source -------------------------------------------------------------
    def split_deletions(self, records: list[Record]) -> list[Record]:
        """Handle the rows carrying `_sdc_deleted_at`; return the others (to write)."""
        deletions = [r for r in records if r.get("_sdc_deleted_at")]
        if deletions and not self.settings.delete_missing:
            self.notes.info(
                "deletes",
                "Stream '%s': %d deleted row(s) ignored; set delete_missing to delete %s",
                self.stream_name,
                len(deletions),
                self.object_name,
            )
            self.count("skipped", len(deletions))
        elif deletions:
            self.delete_keys([self.deletion_key(r) for r in deletions], deletions)
        return [r for r in records if not r.get("_sdc_deleted_at")]

    def delete_keys(self, keys: list[Key], records: list[Record]) -> None:
        """Delete concurrently; a refusal lands on its row as a reject."""
        self.known = self.memory_lookup(keys)
        self.run_each(
            list(zip(records, keys, strict=True)),
            lambda item: self.delete_one(*item[1]),
            records_of=lambda item: [item[0]],
        )
