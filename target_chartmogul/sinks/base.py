"""What every ChartMogul sink shares: validation into rejects, de-duplication, concurrency.

A batch is written completely (or the run stops) inside `process_batch`, so the STATE
the SDK emits after a drain only ever covers records that are in ChartMogul or in the
rejects file. Sinks get everything of the run from their `RunContext` (see `bind`);
they never import or reach into the target.
"""

from __future__ import annotations

import concurrent.futures
import threading
import typing as t

from singer_sdk.sinks import BatchSink

from target_chartmogul.api.errors import APIError
from target_chartmogul.config.registry import BY_NAME
from target_chartmogul.errors import FatalError, RecordRejected
from target_chartmogul.memory.ledger import Entry, payload_hash
from target_chartmogul.memory.references import Unresolved
from target_chartmogul.sinks.deletions import Deletions
from target_chartmogul.values.encoding import dumps
from target_chartmogul.values.text import is_blank
from target_chartmogul.values.validation import INVALID, Invalid, RecordChecker, SDKValidator

if t.TYPE_CHECKING:
    from singer_sdk.target_base import Target

    from target_chartmogul.api.client import ChartMogulClient
    from target_chartmogul.bulk.entries import BulkWriter
    from target_chartmogul.bulk.lane import BulkLane
    from target_chartmogul.config.settings import StreamSettings
    from target_chartmogul.run.context import RunContext

T = t.TypeVar("T")
Record = dict[str, t.Any]


S = t.TypeVar("S", bound=BatchSink)


def bind(cls: type[S], context: RunContext) -> type[S]:
    """A sink class carrying the run's context (its `context`), so the SDK can build its sinks from the class alone."""
    return type(cls.__name__, (cls,), {"context": context, "__module__": cls.__module__})


class Unnamed(t.NamedTuple):
    """The `dedupe_key` of a record that names no object: it stands apart from every other (and is rejected)."""

    record_id: int

    @classmethod
    def of(cls, record: Record) -> Unnamed:
        return cls(id(record))


class ChartMogulSink(BatchSink):
    """Base for the object sinks; subclasses implement `write_records`."""

    context: t.ClassVar[RunContext]  # set by `bind`

    object_name: str = ""  # set by the sink class, or from the stream's settings (`lifecycle.ObjectSink`)
    MAX_SIZE_DEFAULT = 1000

    def __init__(
        self,
        target: Target,
        stream_name: str,
        schema: dict[str, t.Any],
        key_properties: t.Sequence[str] | None,
    ) -> None:
        self.settings: StreamSettings = self.context.stream(stream_name)
        super().__init__(target, stream_name, schema, key_properties)
        self.summary = self.context.summary
        self.summary.objects[stream_name] = self.object_name
        self.context.order.register(self)
        self.context.ledger.save_schema(stream_name, schema, key_properties or [])
        self.context.progress.start()
        self.context.bulk.resume()  # imports an earlier run left processing are recorded before any write
        self.listing_ahead = False
        self.deletions = Deletions(self)

    def list_ahead(self) -> None:
        """With a lost memory, start reading what the data source holds of this object while records arrive
        (from the first record that passes the schema and names its object: a run whose records are all refused
        before a call is needed makes none).
        """
        self.listing_ahead = True
        ds, entry = self.config.get("data_source_uuid"), BY_NAME.get(self.object_name)
        if ds and entry is not None and entry.listing is not None:
            self.context.refs.holdings.prefetch(entry.listing.kind, str(ds))

    # SDK hooks --------------------------------------------------------------------
    def get_validator(self) -> SDKValidator:
        """Validate with `RecordChecker`, which marks a bad record (to reject it) instead of raising."""
        self.checker = RecordChecker(self.stream_name, self.schema, validate=self.validate_schema)
        return SDKValidator(self.checker)

    def preprocess_record(self, record: Record, context: dict[str, t.Any]) -> Record:
        """A record without a key property becomes a reject, not the end of the run."""
        self.checker.mark_missing_keys(record, self.key_properties)
        return record

    @property
    def include_sdc_metadata_properties(self) -> bool:
        """Deletes need `_sdc_deleted_at` and `_sdc_table_version`, which the SDK strips otherwise."""
        return bool(self.settings.delete_missing) or super().include_sdc_metadata_properties

    def activate_version(self, new_version: int) -> None:
        """ACTIVATE_VERSION: a full-table version starts, or the one that arrived is whole (`Deletions`)."""
        self.deletions.activate_version(new_version)

    def process_record(self, record: Record, context: dict[str, t.Any]) -> None:
        """Stage the record (noting the full-table version it belongs to); every write happens in `process_batch`."""
        self.deletions.note(record)
        if not self.listing_ahead and INVALID not in record and self.names_its_object(record):
            self.list_ahead()
        self.summary.add(self.stream_name, "received")
        context.setdefault("records", []).append(record)

    def process_batch(self, context: dict[str, t.Any]) -> None:
        """Reject invalid records, keep the last of each key, write the rest.

        The sync memory is committed before this returns, and so before the SDK can
        emit a STATE that covers these records.
        """
        with self.context.guard.writing():
            try:
                self._process_records(context.get("records", []))
            finally:
                self.context.ledger.flush()

    def _process_records(self, records: list[Record]) -> None:
        valid: dict[t.Hashable, Record] = {}
        ledger = self.context.ledger
        remembered = ledger.remembers_rejects()
        for record in records:
            if remembered:  # a newer record replaces a refused one remembered from an earlier run
                ledger.forget_reject(self.stream_name, self.reject_key(record))
            invalid: Invalid | None = record.pop(INVALID, None)
            if invalid is not None:
                self.reject(invalid.record, invalid.reason, field=invalid.field)
                continue
            key = self.dedupe_key(record)
            if key in valid:
                self.summary.add(self.stream_name, "superseded")
                del valid[key]  # re-insert so the batch keeps arrival order of the last copies
            valid[key] = record
        rest = self.context.bulk.take(self.bulk_writer, list(valid.values()))  # new objects may wait for a bulk import
        if rest:
            self.context.order.before_write(self)
            self.write_records(rest)

    # Ordering hooks (see target_chartmogul.run.ordering) ------------------------------------
    def retry(self, records: list[Record]) -> None:
        """Write records that waited for a reference (the final pass)."""
        self.context.logger.info("Retrying %d %s record(s) that waited for a reference", len(records), self.stream_name)
        self.process_batch({"records": records})

    def retry_records(self, records: list[Record]) -> None:
        """Write records remembered from an earlier run (read back from JSON: validated and dates read again)."""
        for record in records:
            self.checker.validate(record)
        self.process_batch({"records": records})

    def other_stream_started(self) -> None:
        """A message of another stream arrived: a full-table version of this stream arrived whole."""
        self.deletions.stream_ended()

    def finish_input(self) -> None:
        """The input was written or refused; a sink with a last step (line items) overrides this."""

    # For subclasses ---------------------------------------------------------------
    @property
    def client(self) -> ChartMogulClient:
        """The HTTP client shared by every sink of the run."""
        return self.context.client

    @property
    def bulk(self) -> BulkLane:
        """The run's bulk lane."""
        return self.context.bulk

    @property
    def bulk_writer(self) -> BulkWriter | None:
        """The lane's adapter of this sink (bulk/writers.py), when its new objects can ride in a bulk import."""
        return None

    def dedupe_key(self, record: Record) -> t.Hashable:
        """Records of one object in one batch: the last wins (one object per data source and external id)."""
        if is_blank(record.get("external_id")):  # nothing to merge on: each is its own (and is rejected)
            return Unnamed.of(record)
        ds = record.get("data_source_uuid") or self.config.get("data_source_uuid")
        return (str(ds), str(record.get("external_id")))

    def names_its_object(self, record: Record) -> bool:
        """Whether the record says which object it is (else `dedupe_key` keeps it apart, and it is rejected)."""
        return not isinstance(self.dedupe_key(record), Unnamed)

    def record_key(self, record: Record) -> dict[str, t.Any]:
        """The record's identity for reject lines and messages."""
        keys = list(self.key_properties) or [k for k in ("external_id", "uuid", "email") if k in record]
        return {k: record.get(k) for k in keys}

    def reject_key(self, record: Record) -> str:
        """The identity under which a refused record is remembered for a retry."""
        return dumps(self.record_key(record), sort_keys=True)

    def memory_lookup(self, keys: t.Iterable[tuple[str, str]]) -> dict[tuple[str, str], Entry]:
        """Sync-memory entries for (data source, external id) keys, one query per data source."""
        by_source: dict[str, list[str]] = {}
        for ds, ext in keys:
            by_source.setdefault(ds, []).append(ext)
        known: dict[tuple[str, str], Entry] = {}
        for ds, ids in by_source.items():
            entries = self.context.ledger.lookup(self.object_name, ds, ids)
            known.update({(ds, ext): entry for ext, entry in entries.items()})
        return known

    @staticmethod
    def is_current(entry: Entry | None, fingerprint: t.Any) -> bool:
        """Whether the memory says ChartMogul already holds exactly this payload."""
        return entry is not None and entry.payload_hash is not None and entry.payload_hash == payload_hash(fingerprint)

    def remember(
        self,
        data_source_uuid: str,
        external_id: str,
        *,
        uuid: str | None,
        payload: t.Any,
        record_hash: str | None = None,
        tags: t.Sequence[str] | None = None,
    ) -> None:
        """Note a confirmed write in the sync memory; `payload` None when ChartMogul holds other data.

        `tags`: the customer tags the loader answers for (the only ones it may remove later).
        """
        digest = payload_hash(payload) if payload is not None else None
        self.context.ledger.written(
            self.object_name,
            data_source_uuid,
            external_id,
            uuid=uuid,
            payload=digest,
            stream=self.stream_name,
            record=record_hash if digest is not None else None,
            tags=tags,
        )

    def write_records(self, records: list[Record]) -> None:
        """Write one de-duplicated batch; must not return before every call is done."""
        raise NotImplementedError

    def split_deletions(self, records: list[Record]) -> list[Record]:
        """Delete the objects of rows carrying `_sdc_deleted_at` (with `delete_missing`); return the others."""
        return self.deletions.split(records)

    def delete_rows(self, keys: list[tuple[str, str]], records: list[Record]) -> None:
        """Delete the objects of rows deleted in the source (`Deletions`); a refusal lands on its row as a reject."""
        raise NotImplementedError

    def reject(
        self,
        record: Record,
        reason: str,
        *,
        field: str | None = None,
        status: int | None = None,
    ) -> None:
        """Record a refused record in the rejects file, the sync memory and the summary."""
        self.context.reject(self.stream_name, self.record_key(record), self.reject_key(record), record, reason,
                            field=field, status=status)

    def count(self, outcome: str, n: int = 1) -> None:
        """Count records of this stream with an outcome."""
        self.summary.add(self.stream_name, outcome, n)

    def defer_or_reject(self, record: Record, exc: RecordRejected) -> None:
        """An unresolved reference waits for the end of input; anything else is rejected."""
        if isinstance(exc, Unresolved) and not self.context.order.final_pass:
            self.context.order.defer(self, record)
            return
        self.reject(record, exc.reason, field=exc.field, status=exc.status)

    # Writing items concurrently ------------------------------------------------------
    def run_each(
        self,
        items: t.Sequence[T],
        write: t.Callable[[T], str | None],
        records_of: t.Callable[[T], list[Record]],
    ) -> None:
        """Write items concurrently (up to the client's concurrency).

        `write` returns the outcome to count, or None when it counted itself. A refused
        item rejects (or defers) its records; a fatal error stops new writes, waits for
        the ones in flight and is raised, so the batch never counts as done.
        """
        stop = threading.Event()

        def guarded(item: T) -> None:
            if not stop.is_set():
                self._write_guarded(item, write, records_of, stop)

        workers = self.client.pacer.max_concurrency
        if workers == 1 or len(items) == 1:
            for item in items:
                guarded(item)
            return
        with concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix=self.object_name) as pool:
            futures = [pool.submit(guarded, item) for item in items]
            errors = [future.exception() for future in concurrent.futures.as_completed(futures)]
        first_error = next((error for error in errors if error is not None), None)
        if first_error is not None:
            raise first_error

    def _write_guarded(
        self,
        item: T,
        write: t.Callable[[T], str | None],
        records_of: t.Callable[[T], list[Record]],
        stop: threading.Event,
    ) -> None:
        """Write one item; its refusal lands on its records, a fatal error stops the others."""
        try:
            outcome = write(item)
        except RecordRejected as exc:
            for record in records_of(item):
                self.defer_or_reject(record, exc)
            return
        except APIError as exc:
            field = next(iter(exc.fields), None)
            for record in records_of(item):
                self.reject(record, f"ChartMogul refused it: {exc.message}", field=field, status=exc.status)
            return
        except FatalError:
            stop.set()
            raise
        except Exception as exc:  # a bug met on odd input must not sink the good rows
            self.logger.exception("Unexpected error writing a %s record", self.stream_name)
            for record in records_of(item):
                self.reject(record, f"unexpected error in target-chartmogul: {type(exc).__name__}: {exc}")
            return
        if outcome:
            self.count(outcome)
