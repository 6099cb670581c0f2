"""The pacer: at most N starts in any sliding window, and a cap on requests in flight."""

from __future__ import annotations

import threading

import pytest

from target_chartmogul.api.pacing import API_MAX_CONNECTIONS, WINDOW_MARGIN_SECONDS, Pacer


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.lock = threading.Lock()

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.now += seconds


def test_never_more_than_the_limit_in_any_window():
    clock = FakeClock()
    pacer = Pacer(40, 1, clock=clock.time, sleep=clock.sleep)
    starts = []
    for _ in range(200):
        with pacer.slot():
            starts.append(clock.now)
    window = 1.0 + WINDOW_MARGIN_SECONDS
    busiest = 0
    for i, start in enumerate(starts):
        in_window = [s for s in starts[i:] if s - start < window - 1e-9]
        assert len(in_window) <= 40
        busiest = max(busiest, len(in_window))
    # and it uses the limit: 200 requests take 5 windows, 40 in each, not more
    assert busiest == 40
    assert [sum(1 for s in starts if k * window <= s < (k + 1) * window) for k in range(5)] == [40] * 5
    assert starts[-1] < 5 * window


def test_rates_below_one_per_second_space_requests_out():
    clock = FakeClock()
    pacer = Pacer(0.5, 1, clock=clock.time, sleep=clock.sleep)
    starts = []
    for _ in range(3):
        with pacer.slot():
            starts.append(clock.now)
    # one start every 2 s, plus the same safety margin as a window (the clock is fake: exact)
    assert starts == pytest.approx([0.0, 2.0 + WINDOW_MARGIN_SECONDS, 2 * (2.0 + WINDOW_MARGIN_SECONDS)])


def test_concurrency_is_capped_at_twenty():
    assert Pacer(None, 50).max_concurrency == API_MAX_CONNECTIONS
    assert Pacer(None, 0).max_concurrency == 1


def test_slots_bound_requests_in_flight():
    pacer = Pacer(None, 3)
    inside = 0
    peak = 0
    lock = threading.Lock()
    release = threading.Event()

    def work():
        nonlocal inside, peak
        with pacer.slot():
            with lock:
                inside += 1
                peak = max(peak, inside)
            release.wait(0.2)
            with lock:
                inside -= 1

    threads = [threading.Thread(target=work) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert peak == 3
