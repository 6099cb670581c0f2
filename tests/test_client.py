"""The shared HTTP client through real HTTP: retries, Retry-After, pacing, refusals."""

from __future__ import annotations

import concurrent.futures
import threading
import time

import pytest

from target_chartmogul.api.client import ChartMogulClient, _wait_gen
from target_chartmogul.api.errors import APIError
from target_chartmogul.errors import AuthenticationError, FatalError, RetriesExhaustedError, StoppedError
from tests.fake_chartmogul import FakeChartMogul, Fault
from tests.running import API_KEY


def client_for(fake: FakeChartMogul, **kwargs) -> ChartMogulClient:
    options = {"max_retries": 4, "backoff_base": 0.01, "timeout": 2.0, **kwargs}
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


def test_retry_after_sets_the_minimum_wait():
    waits = _wait_gen(0.01, 60.0)
    next(waits)

    class Throttled(Exception):
        retry_after = 2.5

    # base 0.01: the exponential waits (0.01, 0.02, 0.04) are all shorter than Retry-After
    assert [waits.send(Throttled()) for _ in range(3)] == [2.5, 2.5, 2.5]
    # without Retry-After, the 4th wait is full jitter in [0.04, 0.08]: random, so a range
    assert 0.04 <= waits.send(ValueError()) <= 0.08


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
    started = time.monotonic()
    with pytest.raises(FatalError, match=r"cannot reach ChartMogul at 127\.0\.0\.1:\d+: the connection was refused"):
        ChartMogulClient(url, API_KEY, max_retries=8).get("ping")
    assert time.monotonic() - started < 2  # wall-clock time: a bound


def test_a_refused_connection_after_the_api_answered_is_retried():
    """Once ChartMogul has answered, a refused connection is a blip (a restart), not a wrong api_url."""
    fake = FakeChartMogul(api_key=API_KEY)
    with fake:
        client = client_for(fake, max_retries=2)
        assert client.get("ping").status == 200
    with pytest.raises(RetriesExhaustedError, match="after 3 attempts"):
        client.get("ping")


def test_a_stop_request_ends_the_retry_wait_at_once(fake):
    fake.inject(Fault("status_429", path_regex="^/ping$", times=50, retry_after=30))
    stop = threading.Event()
    client = client_for(fake, max_retries=8, stop_requested=stop)
    threading.Timer(0.3, stop.set).start()
    started = time.monotonic()
    with pytest.raises(StoppedError, match=r"stopped by a signal while retrying GET ping \(last: HTTP 429\)"):
        client.get("ping")
    assert time.monotonic() - started < 2  # Retry-After asked for 30 s
    assert fake.count(path_regex="^/ping$") == 1
