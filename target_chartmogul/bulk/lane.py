"""The bulk lane: new objects of a backfill wait in a spool, then go in bulk imports (or through REST).

Sinks hand every de-duplicated batch to `take`: the records that are new objects (per the
sync memory, or a listing of the data source when the memory holds none) and that a bulk
import can carry are spooled; the rest are written through REST as always. At the end of
the input (or when the spool is large, at a point where STATE would go out) `flush` decides:

- `auto` with fewer than `bulk_min_records` waiting, or `never`: REST, as if never spooled;
- otherwise the spool is read customer by customer into import requests (`requests`), sent
  and polled (`imports`), and each finished import's answer recorded (`outcomes`): what landed
  in the sync memory and counted `imported`, what failed in the rejects file with ChartMogul's
  detail (retried next run), what the answer does not confirm written through REST;
- customers with custom attributes or tags (the bulk body cannot carry them), or not proven
  new by this run's listing, are then compared with ChartMogul's copy (one listing of the data
  source, a page at a time) and brought in line through REST.

No STATE goes out while records wait in the spool; a run that died while an import was
processing polls it (`resume`) before anything else is written.
"""

from __future__ import annotations

import collections
import contextlib
import threading
import time
import typing as t

from target_chartmogul.api.answers import external_ids_in
from target_chartmogul.bulk.entries import BulkWriter, Entry
from target_chartmogul.bulk.imports import ImportRunner, InFlight
from target_chartmogul.bulk.outcomes import read
from target_chartmogul.bulk.requests import ImportRequest, Unit, customers_per_request, pack
from target_chartmogul.bulk.spool import Spool
from target_chartmogul.config.registry import rank_of
from target_chartmogul.memory.holdings import LISTS

if t.TYPE_CHECKING:
    import logging

    from target_chartmogul.api.client import ChartMogulClient
    from target_chartmogul.api.errors import APIError
    from target_chartmogul.memory.ledger import Ledger
    from target_chartmogul.memory.references import References

Record = dict[str, t.Any]
Obj = dict[str, t.Any]
# object -> the kind references and listings name it by ("customers" -> "customer")
REFERENCE_KINDS = {memory_name: kind for kind, (_, _, memory_name) in LISTS.items()}
FLUSH_EARLY_AT = 100_000  # spooled records: imported at the next point where STATE may go out
PAGE = 200  # customers compared per listing page


# The run's pieces the lane uses, seen only through what it needs of each: they live in `run`,
# a layer above `bulk` (docs/architecture.md, "What may import what").
class Counts(t.Protocol):
    """The run's summary (`run.summary.RunSummary`)."""

    def add(self, stream: str, outcome: str, n: int = 1) -> None:
        """Count records of a stream with an outcome."""


class Order(t.Protocol):
    """The run's write order (`run.ordering.WriteOrder`)."""

    @property
    def final_pass(self) -> bool:
        """True once the input has ended."""


class NestedParts(t.Protocol):
    """The run's invoice parts (`run.invoice_parts.InvoiceParts`)."""

    def nested(self, data_source_uuid: str, external_id: str, outcome: str = "created", uuid: str | None = None) -> None:
        """A payment went into its invoice's import."""


class Progress(t.Protocol):
    """The run's progress lines (`run.progress.ProgressReporter`)."""

    @property
    def sources(self) -> list[t.Callable[[], str | None]]:
        """Other figures, a line each when set."""


class Guard(t.Protocol):
    """The run's stop guard (`run.stopping.StopGuard`)."""

    @property
    def requested(self) -> threading.Event:
        """Set on the first signal."""

    def writing(self) -> contextlib.AbstractContextManager[None]:
        """Mark a batch write in progress."""


class LaneContext(t.Protocol):
    """What the lane needs of the run (target_chartmogul.run.context.RunContext)."""

    logger: logging.Logger
    dry_run: bool
    refs: References

    @property
    def summary(self) -> Counts:
        """Outcomes per stream."""

    @property
    def order(self) -> Order:
        """The write order."""

    @property
    def invoice_parts(self) -> NestedParts:
        """Invoice parts waiting for their invoice."""

    @property
    def progress(self) -> Progress:
        """Progress lines."""

    @property
    def guard(self) -> Guard:
        """The stop guard."""

    @property
    def client(self) -> ChartMogulClient:
        """The run's HTTP client."""

    @property
    def ledger(self) -> Ledger:
        """The sync memory."""

    def setting(self, name: str) -> t.Any:
        """A top-level setting."""

    def reject(self, stream: str, key: dict[str, t.Any], reject_key: str, record: Record, reason: str, *,
               field: str | None = None, status: int | None = None) -> None:
        """Refuse one record."""


class BulkLane:
    """The spool, the decision REST or bulk, and the recording of each import's outcome."""

    def __init__(self, context: LaneContext) -> None:
        self.context = context
        self.mode = str(context.setting("bulk_import"))
        self.min_records = int(context.setting("bulk_min_records"))
        self.timeout = float(context.setting("bulk_poll_timeout"))
        self.spool = Spool()
        self.writers: dict[str, BulkWriter] = {}
        self._through_rest = False
        self._resumed = False
        self.unfinished: str | None = None  # why a flush stopped half-way: no STATE may go out after it
        self._listed_before: dict[str, bool] = {}  # data source -> its customers were listed before this flush
        self._unsure: list[Entry] = []
        self._runner: ImportRunner | None = None
        context.refs.pending = self.pending
        context.progress.sources.append(self.progress)

    # Spooling ---------------------------------------------------------------------------------
    @property
    def accepting(self) -> bool:
        """Whether new records may wait for a bulk import now (never in the final pass: it writes at once)."""
        return self.mode != "never" and not self._through_rest and not self.context.order.final_pass

    def take(self, sink: BulkWriter, records: list[Record]) -> list[Record]:
        """Spool the records that are new objects a bulk import can carry; return the others."""
        if not self.accepting or not records:
            return records
        spooled, rest = sink.bulk_split(records)
        if spooled:
            self.writers[sink.stream_name] = sink
            kind = REFERENCE_KINDS.get(sink.object_name, sink.object_name)
            self.spool.add(kind, ((ds, customer, sink.stream_name, ext, record) for ds, customer, ext, record in spooled))
        return rest

    def discard(self, stream: str, data_source_uuid: str, external_id: str) -> None:
        """A later row deleted a spooled record: it never goes out."""
        if self.spool.discard(stream, external_id):
            self.context.logger.info("%s %s was deleted before its bulk import: not sent", stream, external_id)
            self.context.summary.add(stream, "superseded")  # the deleted row that replaced it is counted on its own

    def pending(self, kind: str, data_source_uuid: str, external_id: str) -> bool:
        """Whether the object waits for a bulk import (so it is not in ChartMogul yet)."""
        return self.spool.holds(kind, data_source_uuid, external_id)

    def waiting(self) -> int:
        """Records in the spool: no STATE may cover them."""
        return self.spool.count

    def flush_early(self) -> bool:
        """Whether the spool is large enough to import before the end of the input."""
        return self.spool.count >= max(FLUSH_EARLY_AT, self.min_records)

    # Flushing ---------------------------------------------------------------------------------
    def flush(self) -> None:
        """Write every spooled record: REST under the threshold, else bulk imports (a forecast in a dry run)."""
        count = self.spool.count
        if not count or self.unfinished:
            return
        context = self.context
        with context.guard.writing():
            try:
                if self.mode == "auto" and count < self.min_records:
                    context.logger.info("%d new record(s) waited for a bulk import: fewer than bulk_min_records (%d), "
                                        "so they go through REST", count, self.min_records)
                    self._write_through_rest({stream: records for stream, records in self.spool.by_stream()})
                elif context.dry_run:
                    self._forecast()
                else:
                    self._import()
            except BaseException as exc:
                self.unfinished = f"{type(exc).__name__}: {exc}" if not str(exc) else str(exc)
                raise
            finally:
                self.spool.clear()
                context.ledger.flush()

    def customers_listed(self, data_source_uuid: str) -> bool:
        """Whether this run listed the data source's customers before the flush (so a spooled customer is new to
        ChartMogul, and an import creates it as sent); asked before any import of the flush finished.
        """
        if data_source_uuid not in self._listed_before:
            self._listed_before[data_source_uuid] = self.context.refs.holdings.listed("customer", data_source_uuid)
        return self._listed_before[data_source_uuid]

    def _import(self) -> None:
        context = self.context
        self._listed_before = {}
        context.logger.info("Bulk import of %d new record(s): %s", self.spool.count,
                            ", ".join(f"{n} of {stream}" for stream, n in sorted(self.spool.streams().items())))
        rest: dict[str, list[Record]] = {}
        runner = self._runner = self._new_runner()
        later: list[ImportRequest] = []
        try:
            for request in self._requests(rest):
                if request.wave:
                    later.append(request)
                else:
                    runner.send(request)
            runner.wait_all()
            for wave in sorted({request.wave for request in later}):
                for request in later:
                    if request.wave == wave:
                        runner.send(request)
                runner.wait_all()
        finally:
            runner.close()
        self._follow_up_customers()
        for entry in self._unsure:
            rest.setdefault(entry.stream, []).append(entry.record)
        self._unsure = []
        self._write_through_rest(rest)
        context.logger.info("Bulk import done: %d import(s) sent and finished", runner.completed)
        self._runner = None

    def _new_runner(self) -> ImportRunner:
        context = self.context
        return ImportRunner(context.client, context.ledger, context.logger, timeout=self.timeout,
                            stop_requested=context.guard.requested, on_done=self._finished, on_refused=self._refused)

    def _requests(self, rest: dict[str, list[Record]]) -> t.Iterator[ImportRequest]:
        """The spool packed into import requests; what only REST can write goes to `rest`."""
        first, per_request = customers_per_request(self.spool.customers())
        return pack(self._units(rest), max_customers=per_request, first_customers=first,
                    too_large=lambda unit: self._too_large(unit, rest))

    def _units(self, rest: dict[str, list[Record]]) -> t.Iterator[tuple[str, str, list[Unit]]]:
        """Each customer's units (customer first, then invoices with their lines, then events), streamed."""
        for ds, customer, rows in self.spool.by_customer():
            by_stream: dict[str, list[Record]] = collections.defaultdict(list)
            for stream, record in rows:
                by_stream[stream].append(record)
            units: list[Unit] = []
            for stream in sorted(by_stream, key=lambda name: rank_of(self.writers[name].object_name)):
                got, only_rest = self.writers[stream].bulk_entries(by_stream[stream])
                units.extend(got)
                if only_rest:
                    rest.setdefault(stream, []).extend(only_rest)
            yield ds, customer, units

    def _too_large(self, unit: Unit, rest: dict[str, list[Record]]) -> None:
        for entry in unit:
            rest.setdefault(entry.stream, []).append(entry.record)

    def _write_through_rest(self, records: t.Mapping[str, list[Record]]) -> None:
        """Write records through REST, lower ranks first (customers before their invoices)."""
        self._through_rest = True
        try:
            for stream in sorted(records, key=lambda name: rank_of(self.writers[name].object_name)):
                if records[stream]:
                    self.writers[stream].retry_records(records[stream])
        finally:
            self._through_rest = False

    def _forecast(self) -> None:
        """Dry run: what would go in which import, counted `imported`; nothing is sent."""
        rest: dict[str, list[Record]] = {}
        requests = records = 0
        for request in self._requests(rest):
            requests += 1
            for entry in request.entries:
                records += 1
                self.context.summary.add(entry.stream, "imported")
                for external_id in entry.payments:  # the payments stream would count them with their invoice
                    self.context.invoice_parts.nested(entry.memory[0].ds, external_id, "imported")
                entry.bodies.clear()
        self.context.logger.info("DRY RUN: would send %d bulk import(s) carrying %d record(s)", requests, records)
        self._write_through_rest(rest)

    # Outcomes ---------------------------------------------------------------------------------
    def _finished(self, flight: InFlight, answer: Obj) -> None:
        """Record one finished import: memory and counts for what landed, rejects for what failed."""
        brought = {REFERENCE_KINDS[obj] for entry in flight.entries for obj, _ in entry.objects if obj in REFERENCE_KINDS}
        for kind in brought:  # a listing read before the import lacks what it brought
            self.context.refs.holdings.unlist(kind, flight.data_source_uuid)
        outcome = read(flight.import_id, answer, flight.entries)
        for index, (reason, field) in outcome.failed.items():
            self._reject(flight.entries[index], reason, field)
        for index in outcome.landed:
            self._landed(flight.entries[index])
        self._unsure.extend(flight.entries[index] for index in outcome.unsure)
        self.context.ledger.flush()

    def _landed(self, entry: Entry) -> None:
        ledger = self.context.ledger
        for row in entry.memory:
            ledger.written(row.obj, row.ds, row.external_id, uuid=None, payload=row.payload_hash, stream=entry.stream,
                           record=row.record_hash if row.payload_hash else None, tags=row.tags, parent=row.parent)
        for external_id in entry.payments:
            self.context.invoice_parts.nested(entry.memory[0].ds, external_id, "imported")
        if entry.follow_up:  # counted once compared with ChartMogul's copy (kept on disk until then)
            self.spool.stash_landed(entry.memory[0].ds, entry.customer, entry.as_json())
        else:
            self.context.summary.add(entry.stream, "imported")

    def _reject(self, entry: Entry, reason: str, field: str | None, status: int | None = None) -> None:
        self.context.reject(entry.stream, entry.key, entry.reject_key, entry.record, reason, field=field, status=status)

    def _refused(self, entries: list[Entry], exc: APIError) -> None:
        """ChartMogul refused the import request itself: every record in it is refused with its answer."""
        for entry in entries:
            self._reject(entry, f"ChartMogul refused the bulk import: {exc.message}", None, exc.status)

    def _follow_up_customers(self) -> None:
        """Compare imported customers with ChartMogul's copy and write what bulk cannot carry: one listing of each
        data source, a page at a time (so memory stays flat), then those no page had.
        """
        for ds in self.spool.landed_sources():
            page: dict[str, Obj] = {}
            for customer in self.context.client.paginate("customers", "entries", {"data_source_uuid": ds}):
                page.update({external_id: customer for external_id in external_ids_in(customer, ds)})
                if len(page) >= PAGE:
                    self._follow_up_page(ds, page)
                    page = {}
            self._follow_up_page(ds, page)
            missing = [Entry.from_json(entry) for entry in self.spool.rest_landed(ds)]
            self._follow_up(ds, missing, {})
            self.context.ledger.flush()

    def _follow_up_page(self, ds: str, held: dict[str, Obj]) -> None:
        landed = self.spool.take_landed(ds, list(held))
        self._follow_up(ds, [Entry.from_json(entry) for entry in landed.values()], held)

    def _follow_up(self, ds: str, entries: list[Entry], held: dict[str, Obj]) -> None:
        by_stream: dict[str, list[Entry]] = collections.defaultdict(list)
        for entry in entries:
            by_stream[entry.stream].append(entry)
        for stream, group in by_stream.items():
            writer = self.writers.get(stream)
            if writer is not None:
                writer.bulk_follow_up(group, held)
            else:  # polled for an earlier run: the uuid only, so the replayed record is compared
                self._adopt_customers(ds, stream, group, held)

    def _adopt_customers(self, ds: str, stream: str, entries: list[Entry], held: dict[str, Obj]) -> None:
        for entry in entries:
            found = held.get(entry.customer)
            if found is None:
                self._reject(entry, "ChartMogul's bulk import reported it imported, but the data source has no "
                             "customer with this external_id", "external_id")
                continue
            self.context.ledger.written("customers", ds, entry.customer, uuid=str(found.get("uuid")), payload=None,
                                        stream=stream)
            self.context.summary.add(stream, "imported")

    # A run that died while an import was processing ------------------------------------------
    def resume(self) -> None:
        """Poll the imports an earlier run sent and never recorded, and record their outcome (once per run)."""
        if self._resumed:
            return
        self._resumed = True
        context = self.context
        in_flight = context.ledger.bulk_imports_in_flight()
        if not in_flight:
            return
        if context.dry_run:
            context.logger.info("DRY RUN: %d bulk import(s) of an earlier run were not recorded; a real run polls "
                                "them first", len(in_flight))
            return
        runner = self._runner = self._new_runner()
        for local_id, ds, import_id, entries in in_flight:
            restored = [Entry.from_json(entry) for entry in entries]
            if not import_id:
                context.logger.warning(
                    "A run died while sending a bulk import for data source %s (%d record(s)); ChartMogul's answer was "
                    "never read, so those records are written again from the input (nothing is duplicated: "
                    "what is already there is compared)", ds, len(restored))
                context.ledger.bulk_import_done(local_id)
                continue
            context.logger.info("Polling bulk import %s, sent by an earlier run that stopped before it finished "
                                "(%d record(s))", import_id, len(restored))
            now = time.monotonic()
            runner.track(InFlight(local_id, ds, import_id, restored, now, now))
        try:
            runner.wait_all()
        finally:
            runner.close()
        self._follow_up_customers()
        if self._unsure:
            context.logger.info("%d record(s) of those imports are not confirmed by ChartMogul's answer: they are "
                                "written again when the input brings them", len(self._unsure))
        self._unsure = []
        self._runner = None

    def progress(self) -> str | None:
        """A progress line while imports are in flight."""
        runner = self._runner
        return f"bulk imports: {runner.progress()}" if runner is not None else None

    def close(self) -> None:
        """Remove the spool file."""
        self.spool.close()
