"""Sending import requests and polling them (target_chartmogul.bulk.imports), with a stub client and memory."""

from __future__ import annotations

import collections
import json
import logging
import threading
import time
import typing as t

import pytest

from target_chartmogul.api.client import Response
from target_chartmogul.api.errors import APIError
from target_chartmogul.bulk.entries import Entry
from target_chartmogul.bulk.imports import ImportRunner, InFlight
from target_chartmogul.bulk.requests import ImportRequest
from target_chartmogul.errors import StoppedError, UncertainWrite

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

    max_retries = 3
    backoff_base = 0.001

    def request(self, method: str, path: str, *, body: dict[str, t.Any], data: bytes, once: bool) -> Response:
        assert (method, once) == ("POST", True)
        sent = json.loads(data)
        assert body == {"external_id": sent["external_id"], "bytes": len(data)}
        return Response(200, {"id": sent["external_id"].removeprefix("target-chartmogul-"), "status": "queued"}, 1)

    def get(self, path: str) -> Response:
        import_id = path.rsplit("/", 1)[-1].removeprefix("target-chartmogul-")
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
    """An import sent just now, due a poll at once (its local id is the id too, as the stub client answers)."""
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
    assert str(stopped.value) == ("stopped while bulk import target-chartmogul-slow (slow) was processing; "
                                  "the next run polls it again")
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
    assert str(stopped.value) == ("stopped while bulk import target-chartmogul-slow (slow) was processing; "
                                  "the next run polls it again")


class Picky(Client):
    """ChartMogul as the reference or a client mock may have it: polls answer by external id only, by id only, or
    by both; the first `lost` POSTs are processed but their answer is lost (a timeout)."""

    def __init__(self, poll_by: str, lost: int = 0) -> None:
        super().__init__({}, otherwise=0)
        self.poll_by, self.lost = poll_by, lost
        self.created: dict[str, str] = {}  # external id -> id
        self.asked: list[str] = []

    def request(self, method: str, path: str, *, body: dict[str, t.Any], data: bytes, once: bool) -> Response:
        external_id = json.loads(data)["external_id"]
        import_id = self.created.setdefault(external_id, f"id-{len(self.created)}")
        if self.lost:
            self.lost -= 1
            raise UncertainWrite(f"POST {path}: no answer within 30s; it may have reached ChartMogul")
        return Response(200, {"id": import_id, "external_id": external_id, "status": "queued"}, 1)

    def get(self, path: str) -> Response:
        key = path.rsplit("/", 1)[-1]
        self.asked.append(key)
        by_external = key in self.created and self.poll_by in ("external_id", "both")
        by_id = key in self.created.values() and self.poll_by in ("id", "both")
        if not (by_external or by_id):
            raise APIError(404, "Import not found", method="GET", path=path)
        return Response(200, {"status": "completed", "status_details": {}}, 1)


def sent_one(client: Picky) -> tuple[list[dict[str, t.Any]], ImportRunner]:
    answers: list[dict[str, t.Any]] = []
    imports = runner(t.cast("Client", client), lambda done, answer: answers.append(answer))
    request = ImportRequest("ds")
    request.add([Entry("s", "c1", {}, {}, "k")], 10)
    imports.send(request)
    imports.wait_all()
    imports.close()
    return answers, imports


@pytest.mark.parametrize("poll_by", ["external_id", "id", "both"])
def test_an_import_is_polled_by_its_external_id_and_by_its_id_when_only_that_works(poll_by):
    client = Picky(poll_by)
    answers, _ = sent_one(client)

    [(external_id, import_id)] = client.created.items()
    assert answers == [{"status": "completed", "status_details": {}}]
    # the reference's way first; ChartMogul's id only where the external id is not known (then first)
    assert client.asked == {"external_id": [external_id], "id": [external_id, import_id], "both": [external_id]}[poll_by]


def test_an_import_neither_identifier_finds_is_unknown_not_completed():
    client = Picky("neither")
    answers, imports = sent_one(client)

    assert answers == [{"status": "unknown"}]
    assert imports.completed == 1


def test_a_post_whose_answer_was_lost_is_looked_up_by_its_external_id_and_never_sent_twice():
    client = Picky("external_id", lost=1)
    answers, imports = sent_one(client)

    assert len(client.created) == 1  # the lookup found it: not sent again
    [external_id] = client.created
    assert client.asked == [external_id, external_id]  # the lookup, then the poll
    assert answers == [{"status": "completed", "status_details": {}}] and imports.sent == 1


def test_a_lost_answer_that_a_poll_by_external_id_cannot_settle_leaves_the_import_unknown():
    client = Picky("id", lost=1)  # a 404 by external id proves nothing here: it is not sent again
    answers, _ = sent_one(client)

    assert len(client.created) == 1
    assert answers == [{"status": "unknown"}]


def test_a_lost_answer_is_sent_again_when_polls_by_external_id_work_and_it_is_not_there():
    client = Picky("external_id", lost=1)
    imports = runner(t.cast("Client", client), lambda done, answer: None)
    imports.by_external_id = True  # learnt from an earlier import of this run
    client.created["never-arrived"] = "id-x"  # a POST that did not arrive: ChartMogul does not know it
    request = ImportRequest("ds")
    request.add([Entry("s", "c1", {}, {}, "k")], 10)
    client.lost = 1
    lookups: list[str] = []
    real_get = client.get

    def get(path: str) -> Response:
        lookups.append(path)
        if len(lookups) == 1:  # the lookup right after the lost answer: not there (it never arrived)
            raise APIError(404, "Import not found", method="GET", path=path)
        return real_get(path)

    client.get = get  # type: ignore[method-assign]
    imports.send(request)
    imports.wait_all()
    imports.close()

    assert imports.sent == 1 and imports.completed == 1
    assert len(lookups) == 2  # looked up once (404), sent again, polled once
