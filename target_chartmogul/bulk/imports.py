"""Sending import requests and polling them until ChartMogul finished them.

Every import carries an external id of its own (`target-chartmogul-<local id>`), noted in the
sync memory before the request is sent, and the id ChartMogul answers with right after. It is
polled as ChartMogul's reference polls it, by that external id, and by the answer's id when
the external id is not known (the python client's mock polls by id); an import neither
identifier finds is "unknown": what it carried is verified through ChartMogul's listings
(`lane`), never taken as done. A request whose answer was lost (no answer in time, a 5xx) is
not sent again blindly: its external id is looked up first, and it is sent again only when a
poll by external id has worked in this run (so a miss proves it never arrived); otherwise it is
unknown too. So no customer is ever in two unfinished imports, and a run that dies while an
import is processing leaves what the next run needs to poll it instead of sending it again.
Requests are sent from a worker thread, so the next one is built while the last is on its way
(one at a time: ChartMogul receives them in the order they were sent, which the walks of its
listings rely on), and imports sent earlier are polled meanwhile; at most `MAX_IN_FLIGHT` are sent
or processing at once, with at most 4,000 customers between them (what they keep of their records
stays bounded). Each is polled with an interval that grows with its age (a backfill's import takes
seconds to minutes), from a worker thread that waits for the poll's time: polls go out on
time while the main thread records what finished (eight imports finishing one after another
cost one round of polls, not eight serial ones, and recording one never delays the poll that
sees the next).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import logging
import threading
import time
import typing as t
import uuid as uuidlib

from target_chartmogul.api.client import Response
from target_chartmogul.api.errors import APIError, is_already_exists
from target_chartmogul.bulk.entries import Entry
from target_chartmogul.bulk.outcomes import finished, status_of
from target_chartmogul.bulk.requests import EXTERNAL_ID_PREFIX, MAX_BYTES, ImportRequest
from target_chartmogul.errors import FatalError, StoppedError, UncertainWrite

if t.TYPE_CHECKING:
    from target_chartmogul.api.client import ChartMogulClient
    from target_chartmogul.memory.ledger import Ledger

Obj = dict[str, t.Any]
MAX_IN_FLIGHT = 8
MAX_CUSTOMERS_IN_FLIGHT = 4000  # what in-flight imports keep of their records stays bounded (four full imports)
FIRST_POLL = 0.2  # seconds after sending
POLL_SHARE = 0.2  # then every fifth of its age so far, between these two
MIN_POLL_INTERVAL = 0.1
MAX_POLL_INTERVAL = 15.0
SENDING_CHECK = 0.02  # while a request is being sent: how often its answer is looked for
STOP_CHECK = 0.05  # how often a wait for a poll's time or answer looks whether the run must stop
UNKNOWN = "unknown"  # our status for an import ChartMogul no longer (or never) answers about


def external_id_of(local_id: str) -> str:
    """The external id an import is sent with (and polled by)."""
    return f"{EXTERNAL_ID_PREFIX}{local_id}"


@dataclasses.dataclass
class Sending:
    """A request on its way (its POST runs in a worker thread)."""

    local_id: str
    request: ImportRequest
    future: concurrent.futures.Future[Response]


@dataclasses.dataclass
class InFlight:
    """One import ChartMogul is processing (`import_id`: the id it answered with, "" when not known)."""

    local_id: str
    data_source_uuid: str
    import_id: str
    entries: list[Entry]
    started: float
    next_poll: float
    status: str = "queued"
    customers: int = 0

    @property
    def external_id(self) -> str:
        return external_id_of(self.local_id)

    @property
    def name(self) -> str:
        """How log lines name it: the external id it was sent with, and ChartMogul's id when known."""
        return f"{self.external_id} ({self.import_id})" if self.import_id else self.external_id


class ImportRunner:
    """Sends requests and polls them; `on_done(import, answer)` records each finished one."""

    def __init__(
        self,
        client: ChartMogulClient,
        ledger: Ledger,
        logger: logging.Logger,
        *,
        timeout: float,
        stop_requested: threading.Event,
        on_done: t.Callable[[InFlight, Obj], None],
        on_refused: t.Callable[[list[Entry], APIError], None],
    ) -> None:
        self.client = client
        self.ledger = ledger
        self.logger = logger
        self.timeout = timeout
        self.stop_requested = stop_requested
        self.on_done = on_done
        self.on_refused = on_refused
        self.in_flight: list[InFlight] = []
        self.sending: list[Sending] = []
        self._polling: dict[str, concurrent.futures.Future[Obj | None]] = {}  # local id -> its next poll
        self._closed = threading.Event()
        self._posting = threading.Lock()
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=MAX_IN_FLIGHT, thread_name_prefix="bulk-send")
        self._polls = concurrent.futures.ThreadPoolExecutor(max_workers=MAX_IN_FLIGHT, thread_name_prefix="bulk-poll")
        self.sent = self.completed = 0
        self.on_idle: t.Callable[[], None] = lambda: None  # called after each round of polls (walks' pages matched)
        self.on_complete: t.Callable[[InFlight], None] = lambda flight: None  # in the polling thread, when it finished
        # which identifier ChartMogul answered polls by: None until a poll found an import
        self.by_external_id: bool | None = None

    def send(self, request: ImportRequest) -> None:
        """Start sending one request in the background (the next one is built meanwhile); waits for a free slot.

        It is noted in the sync memory first; its id is noted as soon as ChartMogul answers, before any poll.
        """
        self.poll_once(block=False)  # imports sent earlier are polled while the next ones are built
        while len(self.in_flight) + len(self.sending) >= MAX_IN_FLIGHT or (
                (busy := self.in_flight_customers()) > 0 and busy + len(request.customers) > MAX_CUSTOMERS_IN_FLIGHT):
            self.poll_once()
        local_id = uuidlib.uuid4().hex
        ds = request.data_source_uuid
        self.ledger.bulk_import_sending(local_id, ds, [entry.as_json() for entry in request.entries])
        body = request.body(external_id_of(local_id))
        if len(body) > MAX_BYTES:  # the packing counts every byte: this would be a bug, never a refused import
            msg = f"a bulk import body of {len(body)} bytes was built (at most {MAX_BYTES})"
            raise FatalError(msg)
        for entry in request.entries:
            entry.bodies.clear()  # in the request body now: memory stays flat
            entry.encoded.clear()
        future = self._pool.submit(self._submit, ds, local_id, body)
        self.sending.append(Sending(local_id, request, future))

    def _submit(self, ds: str, local_id: str, body: bytes) -> Response:
        """POST the import once; when its answer was lost, find out whether it arrived before sending it again."""
        path, external_id = f"data_sources/{ds}/json_imports", external_id_of(local_id)
        summary = {"external_id": external_id, "bytes": len(body)}
        attempts = 0
        while True:
            attempts += 1
            try:
                with self._posting:  # one at a time: they arrive in the order they were numbered (`walks`)
                    return self.client.request("POST", path, data=body, body=summary, once=True)
            except UncertainWrite as exc:
                found = self._look_up(ds, external_id, "")
                if found is not None:
                    return _response(found, attempts)
                if not self.by_external_id or attempts > self.client.max_retries:
                    self.logger.warning("Bulk import %s: %s, and a poll by its external id cannot tell whether it "
                                        "arrived; what it carries is verified through ChartMogul's listings", external_id,
                                        exc)
                    return _response({"external_id": external_id, "status": UNKNOWN}, attempts)
                self.logger.info("Bulk import %s: %s; ChartMogul does not know it, so it is sent again", external_id, exc)
                self._wait(min(MAX_POLL_INTERVAL, self.client.backoff_base * 2 ** attempts),
                           "while a bulk import waited to be sent again")
            except APIError as exc:
                if attempts == 1 or not is_already_exists(exc):
                    raise
                found = self._look_up(ds, external_id, "")  # a repeat met the one that did arrive
                return _response(found if found is not None else {"external_id": external_id, "status": UNKNOWN},
                                 attempts)

    def carrying(self, ds: str, kind: str) -> int:
        """Objects of a kind that the imports being sent or processing carry into a data source (read from the threads
        that poll: over copies of the lists).
        """
        entries = [entry for s in list(self.sending) if s.request.data_source_uuid == ds for entry in s.request.entries]
        entries += [entry for f in list(self.in_flight) if f.data_source_uuid == ds for entry in f.entries]
        return sum(1 for entry in entries for obj, _ in entry.objects if obj == kind)

    def in_flight_customers(self) -> int:
        """Customers of the imports being sent or processing."""
        return sum(len(s.request.customers) for s in self.sending) + sum(f.customers for f in self.in_flight)

    def _collect_sent(self) -> None:
        """Note the ids of the requests ChartMogul answered (a refused one refuses its records)."""
        for sending in [s for s in self.sending if s.future.done()]:
            self.sending.remove(sending)
            request, ds = sending.request, sending.request.data_source_uuid
            try:
                answer = sending.future.result().body or {}
            except APIError as exc:
                self.ledger.bulk_import_done(sending.local_id)
                self.on_refused(request.entries, exc)
                continue
            import_id = str(answer.get("id") or "")
            if import_id:
                self.ledger.bulk_import_sent(sending.local_id, import_id)
            self.sent += 1
            counts = request.counts()
            now = time.monotonic()
            flight = InFlight(sending.local_id, ds, import_id, request.entries, now, now + FIRST_POLL,
                              status=status_of(answer) or "queued", customers=len(request.customers))
            self.logger.info(
                "Bulk import %s sent: %d customer(s), %s (%.2f MB)", flight.name, len(request.customers),
                ", ".join(f"{n} {kind}" for kind, n in counts.items()), request.size / 1e6,
            )
            self.track(flight)

    def track(self, flight: InFlight) -> None:
        """Poll this import until it finished (also one an earlier run sent); one known to be unknown is done."""
        self.in_flight.append(flight)
        if flight.status == UNKNOWN:
            done: concurrent.futures.Future[Obj | None] = concurrent.futures.Future()
            done.set_result({"status": UNKNOWN})
            self._polling[flight.local_id] = done
            return
        self._schedule(flight)

    def wait_all(self) -> None:
        """Poll until every import sent finished and was recorded."""
        while self.in_flight or self.sending:
            self.poll_once()

    def close(self) -> None:
        """Wait for requests still being sent (their answers are not read: the next run settles them); polls not
        sent yet are not sent.
        """
        self._closed.set()
        self._pool.shutdown(wait=True)
        self._polls.shutdown(wait=True)

    def poll_once(self, *, block: bool = True) -> None:
        """Wait for the next answer to a poll (or to a request being sent) and handle what arrived (`block=False`:
        only what arrived already).
        """
        self._collect_sent()
        if not self.in_flight:
            if self.sending and block:
                self._wait(SENDING_CHECK, "while a bulk import was being sent; the next run sends its records again")
            return
        polls = {self._polling[flight.local_id]: flight for flight in self.in_flight}
        done, _ = concurrent.futures.wait(polls, timeout=(SENDING_CHECK if self.sending else STOP_CHECK) if block else 0,
                                          return_when=concurrent.futures.FIRST_COMPLETED)
        if self.stop_requested.is_set():  # a poll on its way is answered first (one waiting for its time ends now)
            done, _ = concurrent.futures.wait(polls)
        for poll in sorted(done, key=lambda future: polls[future].next_poll):
            flight = polls[poll]
            answer = poll.result()  # a refusal other than 404 ends the run, as before
            if answer is None:  # stopped before its time came
                continue
            if finished(answer):
                self._record(flight, answer)
            else:
                self._later(flight, status_of(answer))
                self._schedule(flight)
        self.on_idle()
        if self.stop_requested.is_set() and self.in_flight:
            first = min(self.in_flight, key=lambda f: f.next_poll)
            raise StoppedError(f"stopped while bulk import {first.name} was {first.status}; "
                               "the next run polls it again")

    def _schedule(self, flight: InFlight) -> None:
        """Its next poll, sent by a worker thread at `next_poll` (none once a stop is requested)."""
        self._polling[flight.local_id] = self._polls.submit(self._poll_at, flight)

    def _poll_at(self, flight: InFlight) -> Obj | None:
        while (remaining := flight.next_poll - time.monotonic()) > 0:
            if self.stop_requested.wait(min(remaining, STOP_CHECK)) or self._closed.is_set():
                return None
        if self._closed.is_set():
            return None
        answer = self._status(flight)
        if finished(answer):
            self.on_complete(flight)  # at once: what it brought heads ChartMogul's newest-first listings now
        return answer

    def _status(self, flight: InFlight) -> Obj:
        """The import's answer, polled by its external id, else by its id; `unknown` when neither finds it."""
        found = self._look_up(flight.data_source_uuid, flight.external_id, flight.import_id)
        if found is not None:
            return found
        self.logger.warning("ChartMogul does not know bulk import %s (404 by external id%s): what it carried is "
                            "verified through its listings", flight.name, " and by id" if flight.import_id else "")
        return {"status": UNKNOWN}

    def _look_up(self, ds: str, external_id: str, import_id: str) -> Obj | None:
        """The import as ChartMogul answers about it by either identifier (the one that worked before first), or
        None when both answer 404; which one works is learnt for the next polls.
        """
        keys = [(external_id, True), *([(import_id, False)] if import_id else [])]
        if self.by_external_id is False:
            keys.reverse()
        for key, is_external in keys:
            try:
                answer = self.client.get(f"data_sources/{ds}/json_imports/{key}").body
            except APIError as exc:
                if exc.status != 404:
                    raise
                continue
            if is_external:
                self.by_external_id = True
            elif not self.by_external_id:
                self.by_external_id = False
            return answer if isinstance(answer, dict) else {}
        return None

    def _record(self, flight: InFlight, answer: Obj) -> None:
        self.in_flight.remove(flight)
        self._polling.pop(flight.local_id, None)
        self.on_done(flight, answer)
        self.ledger.bulk_import_done(flight.local_id)
        self.completed += 1
        self.logger.info("Bulk import %s %s after %.1fs (%d of %d sent finished)", flight.name, status_of(answer),
                         time.monotonic() - flight.started, self.completed, self.sent)

    def _later(self, flight: InFlight, status: str) -> None:
        """Not finished: poll again later (a longer wait each time), unless bulk_poll_timeout passed."""
        if status != flight.status:
            self.logger.info("Bulk import %s is %s", flight.name, status or "answered without a status")
            flight.status = status
        waited = time.monotonic() - flight.started
        if waited > self.timeout:
            msg = (f"bulk import {flight.name} is still {status} after {waited:.0f}s (bulk_poll_timeout); "
                   "no STATE covers its records, and the next run polls it again")
            raise FatalError(msg)
        interval = min(max(waited * POLL_SHARE, MIN_POLL_INTERVAL), MAX_POLL_INTERVAL)
        flight.next_poll = time.monotonic() + interval

    def _wait(self, seconds: float, doing: str) -> None:
        if self.stop_requested.wait(seconds):
            raise StoppedError(f"stopped {doing}")

    def progress(self) -> str:
        """Imports sent, processing and finished (for progress lines)."""
        return f"{self.sent} sent, {len(self.in_flight)} processing, {self.completed} finished"


def _response(answer: Obj, attempts: int) -> Response:
    """An import found by a lookup, answered as its POST would have been."""
    return Response(200, answer, attempts)
