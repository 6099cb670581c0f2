"""The bulk lane: new objects of a backfill wait in a spool, then go in bulk imports (or through REST).

Sinks hand every de-duplicated batch to `take`: the records that are new objects (per the
sync memory, or a listing of the data source when the memory holds none) and that a bulk
import can carry are spooled; the rest are written through REST as always. At the end of
the input (or when the spool is large, at a point where STATE would go out) `flush` decides:

- `auto` with fewer than `bulk_min_records` waiting, or `never`: REST, as if never spooled;
- otherwise the spool is read customer by customer into import requests (`requests`), sent and
  polled (`imports`). A customer the bulk body cannot carry as it is (its custom attributes and
  tags, where ChartMogul does not keep them from a bulk body) is created through REST, with them
  inline, before the import that carries its invoices: whatever an import's objects depend on is
  in ChartMogul before it is sent, or travels in it. Whether ChartMogul keeps attributes from a
  bulk body is learnt once per data source (`ATTRIBUTES_FACT` in the sync memory) from a first
  import of one customer that has them;
- what the imports carried is verified against ChartMogul's listings (`verify`): landed means
  seen; the newest-first listings are walked as each import finishes, while later ones are
  processing (`walks`), the others listed when all finished; what no listing shows goes through
  REST in the same run.

So bulk and REST leave ChartMogul the same. No STATE goes out while records wait in the spool;
a run that died while an import was processing polls it (`resume`) before anything else is
written.
"""

from __future__ import annotations

import collections
import decimal
import json
import time
import typing as t

from target_chartmogul.bulk.context import LaneContext
from target_chartmogul.bulk.entries import BulkWriter, Entry
from target_chartmogul.bulk.imports import UNKNOWN, ImportRunner, InFlight
from target_chartmogul.bulk.outcomes import describe, status_of
from target_chartmogul.bulk.requests import ImportRequest, Unit, customers_per_request, pack
from target_chartmogul.bulk.spool import Spool, remove_stale
from target_chartmogul.bulk.verify import Verifier
from target_chartmogul.bulk.walks import Walks
from target_chartmogul.config.registry import OBJECT_OF, RESOURCES, rank_of
from target_chartmogul.values.attributes import same_value
from target_chartmogul.values.encoding import dumps

if t.TYPE_CHECKING:
    from target_chartmogul.api.errors import APIError
Record = dict[str, t.Any]
Obj = dict[str, t.Any]
Prepared = dict[str, tuple[list[Unit], list[Record]]]  # stream -> a customer's entries and what only REST writes
# object -> the kind references and listings name it by ("customers" -> "customer")
REFERENCE_KINDS = {object_name: kind for kind, object_name in OBJECT_OF.items() if RESOURCES[kind].root is not None}
FLUSH_EARLY_AT = 100_000  # spooled records: imported at the next point where STATE may go out
ATTRIBUTES_FACT = "bulk_customer_attributes"  # "kept" or "dropped": what a bulk body's customer attributes became
PROBE_FACT = "bulk_customer_attributes_probe"  # the customer (and its attributes) of the import that tells, in flight
KEPT, DROPPED = "kept", "dropped"
PROBES = 3  # imports of one customer sent to find out, at most (one ChartMogul cannot say it took tells nothing)
PREPARED_AT_MOST = 2000  # customers whose records are mapped while the probe import is processing (memory)
POLL_FACT = "bulk_import_polled_by"  # "external_id" or "id": what ChartMogul answered polls by (data source "")


class BulkLane:
    """The spool, the decision REST or bulk, the imports, and the verification of what they carried."""

    def __init__(self, context: LaneContext) -> None:
        self.context = context
        self.mode = str(context.setting("bulk_import"))
        self.min_records = int(context.setting("bulk_min_records"))
        self.timeout = float(context.setting("bulk_poll_timeout"))
        # A dry run's client answers every REST write (the seam); a bulk import it cannot answer, so the lane forecasts
        # what it would send instead (its one dry-run concern: what goes in which import, never a write decision).
        self.forecast = bool(context.dry_run)
        for stale in remove_stale(context.state_dir):
            context.logger.info("Removed the bulk spool a killed run left: %s", stale)
        self.spool = Spool(context.state_dir)
        self.writers: dict[str, BulkWriter] = {}
        self._through_rest = False
        self._resumed = False
        self.unfinished: str | None = None  # why a flush stopped half-way: no STATE may go out after it
        self._attributes: dict[str, str | None] = {}  # data source -> KEPT, DROPPED, or None (not known yet)
        self._probing: set[str] = set()  # data sources whose probe import carries attributes now
        self._unknown: dict[str, bool] = {}  # data source -> its last finished import was unknown to ChartMogul
        self._runner: ImportRunner | None = None
        self._verifier: Verifier | None = None  # while imports are in flight: it walks listings for what finished
        self._polled_by: str | None = None
        self._refused_rows: list[tuple[str, Record]] = []  # records of import requests ChartMogul refused: REST
        self._prepared: dict[tuple[str, str], Prepared] = {}  # a customer's entries mapped while the probe processed
        context.refs.pending = self.pending
        context.progress.sources.append(self.progress)

    # Spooling ---------------------------------------------------------------------------------
    @property
    def accepting(self) -> bool:
        """Whether new records may wait for a bulk import now (never in the final pass: it writes at once)."""
        return self.mode != "never" and not self._through_rest and not self.context.order.final_pass

    def take(self, sink: BulkWriter | None, records: list[Record]) -> list[Record]:
        """Spool the records that are new objects a bulk import can carry (`sink`: the lane's adapter of a sink, None
        for objects that always go through REST); return the others.
        """
        if sink is None or not self.accepting or not records:
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

    def attributes_ride(self, data_source_uuid: str) -> bool:
        """Whether customers of this data source carry their custom attributes and tags in a bulk body: where
        ChartMogul keeps them, and in the import that finds out (a forecast, which sends none, assumes what its
        reference says: a bulk body's customers are created as Create a Customer creates them).
        """
        known = self._attributes_known(data_source_uuid)
        return data_source_uuid in self._probing or known == KEPT or (known is None and self.forecast)

    def _attributes_known(self, data_source_uuid: str) -> str | None:
        if data_source_uuid not in self._attributes:
            self._attributes[data_source_uuid] = self.context.ledger.fact(data_source_uuid, ATTRIBUTES_FACT)
        return self._attributes[data_source_uuid]

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
                    refused = context.summary.total("rejected")
                    self._write_through_rest({stream: records for stream, records in self.spool.by_stream()})
                    went = count - (context.summary.total("rejected") - refused)  # said once known: none if all refused
                    if went:
                        context.logger.info("%d new record(s) went through REST: fewer than bulk_min_records (%d) "
                                            "waited for a bulk import", went, self.min_records)
                elif self.forecast:
                    self._forecast()
                else:
                    self._import()
            except BaseException as exc:
                self.unfinished = f"{type(exc).__name__}: {exc}" if not str(exc) else str(exc)
                raise
            finally:
                self.spool.clear()
                self._prepared.clear()
                context.ledger.flush()

    def _import(self) -> None:
        context = self.context
        context.logger.info("Bulk import of %d new record(s): %s", self.spool.count,
                            ", ".join(f"{n} of {stream}" for stream, n in sorted(self.spool.streams().items())))
        rest: dict[str, list[Record]] = collections.defaultdict(list)
        runner = self._runner = self._new_runner()
        walks = Walks(context.client, runner.carrying)
        verifier = self._verifier = Verifier(self.context, self.spool, self.writers, walks)
        runner.on_complete = lambda flight: walks.finished(flight.data_source_uuid, flight.entries)
        runner.on_idle = verifier.drain
        try:
            self._probe_attributes(runner, rest)
            later: list[ImportRequest] = []
            for request in self._requests(rest):
                if request.wave:
                    later.append(request)
                else:
                    self._send(runner, request)
            runner.wait_all()
            for wave in sorted({request.wave for request in later}):
                for request in later:
                    if request.wave == wave:
                        self._send(runner, request)
                runner.wait_all()
        except BaseException:
            walks.close()
            raise
        finally:
            self._close_runner(runner)
            self._verifier = None
        self._verify(rest, verifier)
        self._write_through_rest(rest)
        context.logger.info("Bulk import done: %d import(s) sent and finished", runner.completed)
        self._runner = None

    def _new_runner(self) -> ImportRunner:
        """A runner that knows what polls are answered by, when an earlier run learnt it."""
        context = self.context
        runner = ImportRunner(context.client, context.ledger, context.logger, timeout=self.timeout,
                              stop_requested=context.guard.requested, on_done=self._finished, on_refused=self._refused)
        polled_by = context.ledger.fact("", POLL_FACT)
        runner.by_external_id = None if polled_by is None else polled_by == "external_id"
        self._polled_by = polled_by
        return runner

    def _close_runner(self, runner: ImportRunner) -> None:
        """Wait for what is being sent; remember what polls were answered by, for the next runs."""
        runner.close()
        if runner.by_external_id is not None:
            learnt = "external_id" if runner.by_external_id else "id"
            if learnt != self._polled_by:
                self.context.ledger.set_fact("", POLL_FACT, learnt)

    def _send(self, runner: ImportRunner, request: ImportRequest) -> None:
        """Write what the request's objects depend on and the bulk body cannot carry (REST), then send it."""
        if request.before:
            self._write_through_rest(_by_stream(request.before))
        if request.entries:
            if self._verifier is not None:
                self._verifier.sending(request.data_source_uuid, request.entries)
            runner.send(request)

    def _requests(self, rest: dict[str, list[Record]]) -> t.Iterator[ImportRequest]:
        """The spool packed into import requests; what only REST can write goes to `rest` (or to a request's
        `before`, for what its objects depend on).
        """
        first, per_request = customers_per_request(self.spool.customers())
        return pack(self._units(rest), max_customers=per_request, first_customers=first,
                    too_large=lambda unit: self._too_large(unit, rest))

    def _units(self, rest: dict[str, list[Record]]) -> t.Iterator[tuple[str, str, list[Unit], list[tuple[str, Record]]]]:
        """Each customer's units (customer first, then invoices with their lines, then events), streamed, and the
        records to write through REST before them.
        """
        for ds, customer, rows in self.spool.by_customer():
            yield (ds, customer, *self._customer_units(rows, rest, self._prepared.pop((ds, customer), {})))

    def _customer_units(self, rows: list[tuple[str, Record]], rest: dict[str, list[Record]],
                        prepared: Prepared | None = None) -> tuple[list[Unit], list[tuple[str, Record]]]:
        by_stream = _by_stream(rows)
        units: list[Unit] = []
        before: list[tuple[str, Record]] = []
        for stream in sorted(by_stream, key=lambda name: rank_of(self.writers[name].object_name)):
            writer = self.writers[stream]
            got, only_rest = (prepared or {}).get(stream) or writer.bulk_entries(by_stream[stream])
            units.extend(got)
            if writer.object_name == "customers":  # what the customer's other records need: in ChartMogul first
                before.extend((stream, record) for record in only_rest)
            else:
                rest[stream].extend(only_rest)
        return units, before

    def _too_large(self, unit: Unit, rest: dict[str, list[Record]]) -> None:
        for entry in unit:
            rest[entry.stream].append(entry.record)

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
        rest: dict[str, list[Record]] = collections.defaultdict(list)
        requests = records = 0
        for request in self._requests(rest):
            if request.before:
                self._write_through_rest(_by_stream(request.before))
            requests += bool(request.entries)
            for entry in request.entries:
                records += 1
                self.context.summary.add(entry.stream, "imported")
                for external_id in entry.payments:  # the payments stream would count them with their invoice
                    self.context.invoice_parts.nested(entry.memory[0].ds, external_id, "imported")
                entry.bodies.clear()
                entry.encoded.clear()
        self.context.logger.info("DRY RUN: would send %d bulk import(s) carrying %d record(s)", requests, records)
        self._write_through_rest(rest)

    # Whether ChartMogul keeps a bulk body's customer attributes --------------------------------
    def _probe_attributes(self, runner: ImportRunner, rest: dict[str, list[Record]]) -> None:
        """Where it is not known yet, send one customer that has attributes (with all its records) in an import of
        its own, wait for it, and read what ChartMogul holds: kept, the others send theirs in the bulk body; not kept,
        each goes by one REST create with them inline, before the import with its invoices. Remembered, and noted
        before the probe is sent, so a run that dies meanwhile leaves the next run what it needs to read the answer.
        """
        for ds in self.spool.sources_of("customer"):
            for _ in range(PROBES):
                if self._attributes_known(ds) is not None or not self._probe(runner, rest, ds):
                    break

    def _probe(self, runner: ImportRunner, rest: dict[str, list[Record]], ds: str) -> bool:
        """Send one customer with attributes in an import of its own; False when no customer has any."""
        found = self.spool.first_of("customer", ds, lambda stream, record: self.writers[stream].bulk_attributes(record))
        if found is None:
            return False
        customer, _ = found
        rows = self.spool.customer_rows(ds, customer)
        self._probing.add(ds)
        try:
            units, before = self._customer_units(rows, rest)  # while its customer waits: its invoices ride with it
        finally:
            self._probing.discard(ds)
        self.spool.drop_customer(ds, customer)
        sent = next((body for unit in units for entry in unit for body in entry.bodies.get("customers", [])), None)
        if sent is not None:
            self.context.ledger.set_fact(ds, PROBE_FACT, dumps({"customer": customer, "sent": sent["attributes"]}))
        for request in pack([(ds, customer, units, before)], too_large=lambda unit: self._too_large(unit, rest)):
            self._send(runner, request)
            self._prepare(runner)
            runner.wait_all()
        self._learn_attributes(ds)
        return True

    def _prepare(self, runner: ImportRunner) -> None:
        """While the probe import is processing: map the records of the first customers whose entries do not depend
        on its answer (all but the customers themselves), for the packing that follows it.
        """
        customers = self.spool.by_customer()
        try:
            for ds, customer, rows in customers:
                if not (runner.in_flight or runner.sending) or len(self._prepared) >= PREPARED_AT_MOST:
                    return
                if (ds, customer) in self._prepared:  # (a second probe)
                    continue
                self._prepared[ds, customer] = {stream: self.writers[stream].bulk_entries(records)
                                                for stream, records in _by_stream(rows).items()
                                                if self.writers[stream].object_name != "customers"}
                runner.poll_once(block=False)
        finally:
            customers.close()

    def _learn_attributes(self, ds: str) -> None:
        """Read what ChartMogul holds of the customer a probe import carried, and remember what it tells."""
        noted = self.context.ledger.fact(ds, PROBE_FACT)
        if noted is None:
            return
        probe = json.loads(noted, parse_float=decimal.Decimal)
        self.context.ledger.forget_fact(ds, PROBE_FACT)
        held = self.context.refs.held("customer", ds, probe["customer"], fresh=True)
        if held is None:
            if not self._unknown.get(ds):  # refused or not stored: this run sends attributes by REST, the next asks
                self._attributes[ds] = DROPPED
                self.context.logger.info("ChartMogul did not create customer %s of the bulk import that carried its "
                                         "custom attributes and tags: in this run they go through REST", probe["customer"])
            return  # an import ChartMogul cannot say it took tells nothing
        learnt = self._attributes[ds] = KEPT if attributes_kept(probe["sent"], held) else DROPPED
        self.context.ledger.set_fact(ds, ATTRIBUTES_FACT, learnt)
        self.context.logger.info(
            "ChartMogul %s the custom attributes and tags of customers in a bulk import (data source %s): %s",
            learnt, ds, "they ride in the bulk body" if learnt == KEPT
            else "a customer with them is created through REST, before its invoices")

    # Outcomes ---------------------------------------------------------------------------------
    def _finished(self, flight: InFlight, answer: Obj) -> None:
        """One import finished (or is unknown): its entries wait on disk until a listing shows them."""
        brought = {REFERENCE_KINDS[obj] for entry in flight.entries for obj, _ in entry.objects if obj in REFERENCE_KINDS}
        for kind in brought:  # a listing read before the import lacks what it brought
            self.context.refs.holdings.unlist(kind, flight.data_source_uuid)
        status = status_of(answer)
        self._unknown[flight.data_source_uuid] = status == UNKNOWN
        if status not in ("completed", UNKNOWN):
            self.context.logger.warning("Bulk import %s ended %r (%s): what it carried is verified through ChartMogul's "
                                        "listings", flight.name, status, describe(answer))
        elif status == "completed" and (told := describe(answer)) != "no failure reported":
            self.context.logger.info("Bulk import %s: %s; ChartMogul's listings decide what landed", flight.name, told)
        self.spool.stash(flight.data_source_uuid, [
            (entry.objects[0][0] if entry.objects else "", entry.objects[0][1] if entry.objects else "", entry.parent,
             entry.as_json()) for entry in flight.entries])
        if self._verifier is not None:
            self._verifier.stashed(flight.data_source_uuid, flight.entries)

    def _refused(self, entries: list[Entry], exc: APIError) -> None:
        """ChartMogul refused the import request itself: its records go through REST, which says why if it refuses."""
        self.context.logger.warning("ChartMogul refused a bulk import of %d record(s) (HTTP %s: %s): they go through REST",
                                    len(entries), exc.status, exc.message)
        self._refused_rows.extend((entry.stream, entry.record) for entry in entries)
        if self._verifier is not None:
            self._verifier.refused(entries)

    def _verify(self, rest: dict[str, list[Record]], verifier: Verifier) -> None:
        """What the finished imports carried, matched against ChartMogul's listings; the rest goes through REST."""
        refused, self._refused_rows = self._refused_rows, []
        for stream, record in refused:
            rest[stream].append(record)
        for entry in verifier.run():
            rest[entry.stream].append(entry.record)

    # A run that died while an import was processing ------------------------------------------
    def resume(self) -> None:
        """Poll the imports an earlier run sent and never recorded, and record what ChartMogul shows (once per run)."""
        if self._resumed:
            return
        self._resumed = True
        context = self.context
        in_flight = context.ledger.bulk_imports_in_flight()
        if not in_flight:
            return
        if self.forecast:
            context.logger.info("DRY RUN: %d bulk import(s) of an earlier run were not recorded; a real run polls "
                                "them first", len(in_flight))
            return
        runner = self._runner = self._new_runner()
        for local_id, ds, import_id, entries in in_flight:
            restored = [Entry.from_json(entry) for entry in entries]
            now = time.monotonic()
            flight = InFlight(local_id, ds, import_id or "", restored, now, now)
            context.logger.info("Polling bulk import %s, sent by an earlier run that stopped before it finished "
                                "(%d record(s))", flight.name, len(restored))
            runner.track(flight)
        try:
            runner.wait_all()
        finally:
            self._close_runner(runner)
        self._refused_rows = []  # their records come again with the input
        missing = Verifier(self.context, self.spool, self.writers).run()
        for ds in {ds for _, ds, _, _ in in_flight}:
            self._learn_attributes(ds)
        if missing:
            context.logger.info("%d record(s) of those imports are not in ChartMogul: they are written when the input "
                                "brings them again", len(missing))
        self._runner = None

    def progress(self) -> str | None:
        """A progress line while imports are in flight."""
        runner = self._runner
        return f"bulk imports: {runner.progress()}" if runner is not None else None

    def close(self) -> None:
        """Remove the spool."""
        self.spool.close()


def _by_stream(rows: t.Iterable[tuple[str, Record]]) -> dict[str, list[Record]]:
    grouped: dict[str, list[Record]] = collections.defaultdict(list)
    for stream, record in rows:
        grouped[stream].append(record)
    return grouped


def attributes_kept(sent: Obj, held: Obj) -> bool:
    """Whether ChartMogul's copy of a customer holds the custom attributes and tags its bulk body carried."""
    attributes = held.get("attributes") or {}
    custom: dict[str, t.Any] = attributes.get("custom") or {}
    tags = {str(tag).casefold() for tag in attributes.get("tags") or []}
    return all(str(tag).casefold() in tags for tag in sent.get("tags") or []) and all(
        one["key"] in custom and same_value(one["type"], one["value"], custom[one["key"]]) for one in sent.get("custom") or [])
