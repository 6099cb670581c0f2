"""Sending import requests and polling them (target_chartmogul.bulk.imports), with a stub client and memory."""

from __future__ import annotations

import collections
import logging
import threading
import time
import typing as t

import pytest

from target_chartmogul.api.client import Response
from target_chartmogul.bulk.entries import Entry
from target_chartmogul.bulk.imports import ImportRunner, InFlight
from target_chartmogul.bulk.requests import ImportRequest
from target_chartmogul.errors import StoppedError

WAIT = 10.0  # seconds a test waits for something that must happen long before


class Client:
    """Answers each import's polls "processing" as many times as `processing_polls` says (`otherwise` for an
    import it does not name), then "completed"; `polled[id]` is set at each poll.
    """

    def __init__(self, processing_polls: dict[str, int], otherwise: int = 0) -> None:
        self.processing_polls = collections.defaultdict(lambda: otherwise, processing_polls)
        self.polls: list[str] = []
        self.polled: collections.defaultdict[str, threading.Event] = collections.defaultdict(threading.Event)
        self.answer = threading.Event()  # cleared: a poll is received, but its answer waits until it is set
        self.answer.set()
        self._lock = threading.Lock()

    def post(self, path: str, body: dict[str, t.Any]) -> Response:
        return Response(200, {"id": body["external_id"].removeprefix("target-chartmogul-"), "status": "queued"}, 1)

    def get(self, path: str) -> Response:
        import_id = path.rsplit("/", 1)[-1]
        with self._lock:
            self.polls.append(import_id)
            left = self.processing_polls[import_id]
            self.processing_polls[import_id] = left - 1
        self.polled[import_id].set()
        assert self.answer.wait(WAIT)
        return Response(200, {"status": "processing" if left > 0 else "completed", "status_details": {}}, 1)


class Memory:
    """The sync memory's bulk-import notes, kept in a list."""

    def __init__(self) -> None:
        self.notes: list[tuple[str, str]] = []

    def bulk_import_sending(self, local_id: str, data_source_uuid: str, entries: t.Any) -> None:
        self.notes.append(("sending", local_id))

    def bulk_import_sent(self, local_id: str, import_id: str) -> None:
        self.notes.append(("sent", local_id))

    def bulk_import_done(self, local_id: str) -> None:
        self.notes.append(("done", local_id))


def runner(client: Client, on_done: t.Callable[[InFlight, dict[str, t.Any]], None],
           stop: threading.Event | None = None) -> ImportRunner:
    return ImportRunner(t.cast("t.Any", client), t.cast("t.Any", Memory()), logging.getLogger("test"), timeout=60.0,
                        stop_requested=stop or threading.Event(), on_done=on_done, on_refused=lambda entries, exc: None)


def flight(import_id: str) -> InFlight:
    """An import sent just now, due a poll at once."""
    now = time.monotonic()
    return InFlight(import_id, "ds", import_id, [], now, now)


def test_a_poll_goes_out_on_time_while_another_finished_import_is_being_recorded() -> None:
    client = Client({"a": 0, "b": 2})
    polled_meanwhile: list[bool] = []

    def record(done: InFlight, answer: dict[str, t.Any]) -> None:
        if done.import_id == "a":  # recording takes until b was polled again (or fails after WAIT)
            client.polled["b"].clear()
            polled_meanwhile.append(client.polled["b"].wait(WAIT))

    imports = runner(client, record)
    imports.track(flight("a"))
    imports.track(flight("b"))
    imports.wait_all()
    imports.close()

    assert polled_meanwhile == [True]
    assert sorted(client.polls) == ["a", "b", "b", "b"]
    assert imports.completed == 2


def test_each_sent_import_is_noted_before_and_after_sending_then_polled_until_done() -> None:
    client = Client({}, otherwise=1)
    recorded: list[str] = []
    imports = runner(client, lambda done, answer: recorded.append(done.import_id))
    request = ImportRequest("ds")
    request.add([Entry("s", "c1", {}, {}, "k")], 10)

    imports.send(request)
    local_id = imports.sending[0].local_id
    imports.wait_all()
    imports.close()

    assert t.cast("Memory", imports.ledger).notes == [("sending", local_id), ("sent", local_id), ("done", local_id)]
    assert client.polls == [local_id, local_id]
    assert recorded == [local_id]


def test_a_stop_while_an_import_is_processing_ends_the_wait_at_once_naming_the_import() -> None:
    client = Client({"slow": 10_000})
    stop = threading.Event()
    imports = runner(client, lambda done, answer: None, stop)
    imports.track(flight("slow"))
    assert client.polled["slow"].wait(WAIT)
    stop.set()

    with pytest.raises(StoppedError) as stopped:
        imports.wait_all()
    imports.close()
    assert str(stopped.value) == "stopped while bulk import slow was processing; the next run polls it again"
    assert imports.completed == 0


def test_a_stop_while_a_poll_is_on_its_way_reads_its_answer_before_ending() -> None:
    client = Client({"slow": 10_000})
    client.answer.clear()
    stop = threading.Event()
    imports = runner(client, lambda done, answer: None, stop)
    imports.track(flight("slow"))
    assert client.polled["slow"].wait(WAIT)  # ChartMogul has the poll; its answer is on its way
    stop.set()
    threading.Timer(0.3, client.answer.set).start()

    with pytest.raises(StoppedError) as stopped:
        imports.wait_all()
    imports.close()
    assert str(stopped.value) == "stopped while bulk import slow was processing; the next run polls it again"
