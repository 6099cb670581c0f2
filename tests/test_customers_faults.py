"""Customers under injected faults: every customer lands exactly once."""

from __future__ import annotations

import pytest

from tests.fake_chartmogul import Fault
from tests.running import run_target
from tests.singer_messages import INTEGER, customers_stream

STREAM = "customers"
ROWS = [{"external_id": f"f-{i}", "name": f"Customer {i}", "tags": ["t"], "seats": i} for i in range(40)]


def assert_exactly_once(fake, ds):
    for row in ROWS:
        found = fake.find_customers(ds, row["external_id"])
        assert len(found) == 1, row["external_id"]
        assert found[0]["name"] == row["name"]
        assert found[0]["attributes"]["tags"] == ["t"]
        assert found[0]["attributes"]["custom"] == {"seats": row["seats"]}
    assert len(fake.customers) == len(ROWS)


@pytest.fixture
def config(base_config):
    return {**base_config, "streams": {STREAM: {"custom_attributes": ["seats"]}}, "request_timeout": 1}


@pytest.mark.parametrize(
    "faults",
    [
        pytest.param([Fault("error_before", method="POST", path_regex=r"^/customers$", times=8, status=500)],
                     id="500-before-write"),
        pytest.param([Fault("error_after", method="POST", path_regex=r"^/customers$", times=8, status=502)],
                     id="502-after-write"),
        pytest.param([Fault("drop_after", method="POST", path_regex=r"^/customers$", times=8)],
                     id="dropped-after-write"),
        pytest.param([Fault("drop_before", method="POST", path_regex=r"^/customers", times=8)],
                     id="dropped-before-write"),
        pytest.param([Fault("status_429", method="POST", path_regex=r"^/customers", times=15, retry_after=0)],
                     id="429-storm"),
        pytest.param([Fault("latency", method="POST", path_regex=r"^/customers$", times=4, delay=1.5)],
                     id="timeout-after-write"),
    ],
)
def test_every_customer_lands_exactly_once(fake, ds, config, faults):
    for fault in faults:
        fake.inject(fault)
    result = run_target(config, customers_stream(STREAM, ROWS, {"seats": INTEGER}))
    assert_exactly_once(fake, ds)
    assert result.rejects == []
    counts = result.counts(STREAM)
    assert counts["created"] == len(ROWS), counts


def test_random_mixed_faults_with_a_fixed_seed(fake, ds, config):
    fake.random_faults(rate=0.3, kinds=("error_before", "error_after", "drop_after", "status_429"), seed=7)
    result = run_target({**config, "max_retries": 10}, customers_stream(STREAM, ROWS, {"seats": INTEGER}))
    assert_exactly_once(fake, ds)
    assert result.rejects == []
