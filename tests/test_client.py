"""The shared HTTP client through real HTTP: retries, Retry-After, pacing, refusals."""

from __future__ import annotations

import concurrent.futures
import random
import threading

import backoff
import pytest

from target_chartmogul.api.client import MAX_BACKOFF_SECONDS, ChartMogulClient, Clock, retry_waits
from target_chartmogul.api.errors import APIError
from target_chartmogul.errors import AuthenticationError, FatalError, RetriesExhaustedError, StoppedError, UncertainWrite
from tests.clocks import InstantClock
from tests.fake_chartmogul import FakeChartMogul, Fault
from tests.running import API_KEY


def client_for(fake: FakeChartMogul, **kwargs) -> ChartMogulClient:
    options = {"max_retries": 4, "backoff_base": 0.01, "timeout": 2.0, "clock": InstantClock(), **kwargs}
    return ChartMogulClient(fake.url, API_KEY, **options)


def test_basic_auth_with_the_key_as_user(fake):
    assert client_for(fake).get("ping").body == {"data": "pong!"}
    with pytest.raises(AuthenticationError, match="HTTP 401"):
        ChartMogulClient(fake.url, "wrong", max_retries=3).get("ping")
    assert fake.count(status=401) == 1  # no retry of a refused key


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504, 520, 524])
def test_transient_statuses_are_retried(fake, status):
    fake.inject(Fault("error_before", path_regex="^/ping$", times=2, status=status))
    response = client_for(fake).get("ping")
    assert response.status == 200 and response.attempts == 3


def test_dropped_connections_and_timeouts_are_retried(fake):
    fake.inject(Fault("drop_before", path_regex="^/ping$", times=1))
    fake.inject(Fault("latency", path_regex="^/ping$", times=1, delay=1.0))
    response = client_for(fake, timeout=0.3).get("ping")
    assert response.attempts == 3


def test_other_4xx_are_refusals_with_the_api_message(fake, ds):
    with pytest.raises(APIError) as caught:
        client_for(fake).post("customers", {"data_source_uuid": ds})
    assert caught.value.status == 400
    assert caught.value.message == 'Parameter "external_id" is missing'
    assert fake.count(method="POST") == 1


def test_retries_are_bounded(fake):
    fake.inject(Fault("error_before", path_regex="^/ping$", times=50, status=500))
    with pytest.raises(RetriesExhaustedError, match="after 3 attempts"):
        client_for(fake, max_retries=2).get("ping")
    assert fake.count(path_regex="^/ping$") == 3


class Throttled(Exception):
    """A failure that carries the server's Retry-After, as the client's transient failures do."""

    def __init__(self, retry_after: float | None) -> None:
        super().__init__("throttled")
        self.retry_after = retry_after


def waits_of(generator, failures) -> list[float]:
    next(generator)  # backoff primes it with send(None)
    return [generator.send(failure) for failure in failures]


def test_the_waits_double_from_the_base_up_to_the_cap(monkeypatch):
    monkeypatch.setattr(backoff, "full_jitter", lambda ceiling: ceiling)  # the ceilings themselves
    assert waits_of(retry_waits(0.5), [ValueError()] * 10) == [0.5, 1, 2, 4, 8, 16, 32, MAX_BACKOFF_SECONDS,
                                                                MAX_BACKOFF_SECONDS, MAX_BACKOFF_SECONDS]


def test_each_wait_is_full_jitter_from_zero_to_its_ceiling():
    random.seed(2026)
    expected = [random.uniform(0, ceiling) for ceiling in (0.5, 1, 2, 4)]
    random.seed(2026)
    assert waits_of(retry_waits(0.5), [ValueError()] * 4) == expected
    assert min(expected) < 0.25  # below half its ceiling: full jitter, not "equal" jitter (ceiling/2 to ceiling)


def test_retry_after_sets_the_minimum_wait(monkeypatch):
    monkeypatch.setattr(backoff, "full_jitter", lambda ceiling: 0.0)  # full jitter's shortest wait
    assert waits_of(retry_waits(0.01), [Throttled(2.5), Throttled(None), Throttled(0.0), ValueError()]) == [
        2.5, 0.0, 0.0, 0.0]
    monkeypatch.setattr(backoff, "full_jitter", lambda ceiling: ceiling)
    # a ceiling longer than Retry-After wins: Retry-After is a minimum, not the wait
    assert waits_of(retry_waits(4.0), [Throttled(2.5), Throttled(2.5)]) == [4.0, 8.0]


def test_the_client_waits_what_backoff_computes_on_its_clock(fake, monkeypatch):
    monkeypatch.setattr(backoff, "full_jitter", lambda ceiling: ceiling)
    fake.inject(Fault("error_before", path_regex="^/ping$", times=3, status=502))
    fake.inject(Fault("status_429", path_regex="^/ping$", times=1, retry_after=7))
    clock = InstantClock()
    response = client_for(fake, clock=clock, backoff_base=0.25).get("ping")
    assert response.attempts == 5
    assert clock.waits == [0.25, 0.5, 1.0, 7.0]  # Retry-After 7 over the ceiling of 2


def test_a_retry_after_above_the_cap_is_cut_to_it(fake):
    fake.inject(Fault("status_429", path_regex="^/ping$", times=1, retry_after=3600))
    clock = InstantClock()
    client_for(fake, clock=clock, backoff_base=0.0).get("ping")
    assert clock.waits == [120.0]  # MAX_RETRY_AFTER_SECONDS: a server cannot park the run for an hour


def test_pacing_keeps_under_the_servers_rate_limit():
    with FakeChartMogul(api_key=API_KEY, rate_limit=40) as fake:
        client = client_for(fake, max_requests_per_second=40, max_concurrency=10)
        with concurrent.futures.ThreadPoolExecutor(10) as pool:
            list(pool.map(lambda _: client.get("ping"), range(100)))
        assert fake.rate_limited_count == 0
        assert fake.count(path_regex="^/ping$") == 100


def test_concurrency_stays_under_the_connection_limit():
    with FakeChartMogul(api_key=API_KEY, max_connections=5, latency=0.05) as fake:
        client = client_for(fake, max_requests_per_second=None, max_concurrency=5)
        with concurrent.futures.ThreadPoolExecutor(20) as pool:
            list(pool.map(lambda _: client.get("ping"), range(60)))
        assert fake.count(status=503) == 0
        assert fake.count(path_regex="^/ping$") == 60
        # How many overlap depends on thread timing: only the cap is certain.
        assert fake.max_concurrent_seen <= 5


def test_pagination_follows_the_cursor(fake, ds):
    client = client_for(fake)
    for i in range(5):
        client.post("customers", {"data_source_uuid": ds, "external_id": f"p{i}", "name": "P"})
    fake.clear_requests()
    seen = list(client.paginate("customers", "entries", {"data_source_uuid": ds, "per_page": 2}))
    assert sorted(c["external_id"] for c in seen) == [f"p{i}" for i in range(5)]
    # The last page carries a string cursor with has_more false (as recorded): not followed.
    assert fake.count("GET", r"^/customers$") == 3


def test_a_429_without_retry_after_is_retried_with_our_own_backoff(fake):
    # No recorded 429 carries Retry-After; the fake sends none by default.
    fake.inject(Fault("status_429", path_regex="^/ping$", times=2))
    response = client_for(fake).get("ping")
    assert (response.status, response.attempts) == (200, 3)
    assert fake.count(path_regex="^/ping$", status=429) == 2


def test_a_refused_first_connection_fails_at_once_naming_the_host():
    with FakeChartMogul(api_key=API_KEY) as fake:
        url = fake.url
    attempts = []
    clock = InstantClock()
    with pytest.raises(FatalError, match=r"cannot reach ChartMogul at 127\.0\.0\.1:\d+: the connection was refused"):
        ChartMogulClient(url, API_KEY, max_retries=8, observers=[attempts.append], clock=clock).get("ping")
    assert (len(attempts), clock.waits) == (1, [])  # one attempt, no wait


def test_a_refused_connection_after_the_api_answered_is_retried():
    """Once ChartMogul has answered, a refused connection is a blip (a restart), not a wrong api_url."""
    fake = FakeChartMogul(api_key=API_KEY)
    with fake:
        client = client_for(fake, max_retries=2)
        assert client.get("ping").status == 200
    with pytest.raises(RetriesExhaustedError, match="after 3 attempts"):
        client.get("ping")


class SignalledClock(Clock):
    """The real clock, which tells the test when a wait has begun and whether a stop ended it."""

    def __init__(self) -> None:
        self.waiting = threading.Event()
        self.asked: list[float] = []
        self.stopped: list[bool] = []

    def wait(self, stop: threading.Event, seconds: float) -> bool:
        self.asked.append(seconds)
        self.waiting.set()
        stopped = super().wait(stop, seconds)
        self.stopped.append(stopped)
        return stopped


def test_a_stop_request_ends_the_retry_wait_at_once(fake):
    fake.inject(Fault("status_429", path_regex="^/ping$", times=50, retry_after=30))
    stop = threading.Event()
    clock = SignalledClock()
    client = client_for(fake, max_retries=8, stop_requested=stop, clock=clock)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        call = pool.submit(client.get, "ping")
        assert clock.waiting.wait(60)  # the client waits out Retry-After: 30 s
        stop.set()
        with pytest.raises(StoppedError, match=r"stopped by a signal while retrying GET ping \(last: HTTP 429\)"):
            call.result(timeout=60)
    # the one wait was asked for 30 s and ended by the stop (Event.wait answers False when the time ran out)
    assert (clock.asked, clock.stopped) == ([30.0], [True])
    assert fake.count(path_regex="^/ping$") == 1


def test_a_stop_requested_before_a_failure_ends_the_call_without_a_wait(fake):
    fake.inject(Fault("error_before", path_regex="^/ping$", times=5, status=500))
    stop = threading.Event()
    stop.set()
    clock = SignalledClock()
    with pytest.raises(StoppedError, match=r"stopped by a signal while retrying GET ping \(last: HTTP 500\)"):
        client_for(fake, stop_requested=stop, clock=clock).get("ping")
    assert clock.stopped == [True]
    assert fake.count(path_regex="^/ping$") == 1


@pytest.mark.parametrize(("fault", "status"), [("error_before", 500), ("error_after", 502), ("drop_after", None)])
def test_a_write_sent_once_is_not_repeated_after_a_failure_that_may_have_landed(fake, ds, fault, status):
    fake.inject(Fault(fault, method="POST", path_regex="^/customers$", times=1,
                      **({"status": status} if status else {})))
    clock = InstantClock()
    body = {"data_source_uuid": ds, "external_id": "c1", "name": "C"}
    with pytest.raises(UncertainWrite, match=r"^POST customers: .*; it may have reached ChartMogul$"):
        client_for(fake, clock=clock).request("POST", "customers", body=body, once=True)
    assert (fake.count("POST", "^/customers$"), clock.waits) == (1, [])


@pytest.mark.parametrize("status", [429, 503])
def test_a_write_sent_once_is_retried_after_a_refusal_before_any_work(fake, ds, status):
    fake.inject(Fault(f"status_{status}", method="POST", path_regex="^/customers$", times=2))
    body = {"data_source_uuid": ds, "external_id": "c1", "name": "C"}
    response = client_for(fake).request("POST", "customers", body=body, once=True)
    assert (response.status, response.attempts) == (201, 3)
    assert [c["external_id"] for c in fake.customers.values()] == ["c1"]


def test_the_default_policy_is_eight_retries_from_half_a_second(fake, monkeypatch, default_retries):
    monkeypatch.setattr(backoff, "full_jitter", lambda ceiling: ceiling)
    fake.inject(Fault("error_before", path_regex="^/ping$", times=50, status=500))
    clock = InstantClock()
    with pytest.raises(RetriesExhaustedError, match="after 9 attempts"):
        ChartMogulClient(fake.url, API_KEY, clock=clock).get("ping")
    assert clock.waits == [0.5, 1, 2, 4, 8, 16, 32, 60]
