"""Invoices and transactions under injected faults: everything lands exactly once."""

from __future__ import annotations

import pytest

from tests.billing import (
    IMPORT_PATH,
    TRANSACTION_PATH,
    assert_all_created,
    assert_billing_landed,
    billing_config,
    billing_messages,
)
from tests.fake_chartmogul import Fault
from tests.running import run_target


def on_both(kind: str, times: int, **kwargs) -> list[Fault]:
    """The same fault on invoice imports and on standalone transaction posts."""
    return [Fault(kind, method="POST", path_regex=IMPORT_PATH, times=times, **kwargs),
            Fault(kind, method="POST", path_regex=TRANSACTION_PATH, times=times, **kwargs)]


@pytest.fixture
def config(base_config):
    # Batches of two, through REST: the invoices are imported before the refunds arrive, so the refunds
    # are posted on their own (a refund that arrives first rides in its invoice's import instead).
    return billing_config(base_config, request_timeout=1, batch_size_rows=2, bulk_import="never")


@pytest.mark.parametrize(
    "faults",
    [
        pytest.param(on_both("error_before", 3, status=500), id="500-before-write"),
        pytest.param(on_both("error_after", 3, status=502), id="502-after-write"),
        pytest.param(on_both("drop_after", 3), id="dropped-after-write"),
        pytest.param(on_both("status_429", 4, retry_after=0), id="429"),
        pytest.param(on_both("latency", 1, delay=1.5), id="timeout-after-write"),
    ],
)
def test_invoices_and_transactions_land_exactly_once(fake, ds, config, faults):
    for fault in faults:
        fake.inject(fault)
    result = run_target(config, billing_messages())

    assert result.error is None
    assert fake.faults.pending() == []  # every injected fault really hit the target
    assert result.rejects == []
    assert_billing_landed(fake, ds)
    assert_all_created(result)


def test_random_mixed_faults_with_a_fixed_seed(fake, ds, config):
    fake.random_faults(rate=0.3, kinds=("error_before", "error_after", "drop_after", "status_429"), seed=11)
    result = run_target({**config, "max_retries": 10}, billing_messages(("invoices", "refunds", "customers", "plans")))

    assert result.error is None
    assert result.rejects == []
    assert_billing_landed(fake, ds)
    assert_all_created(result)
    # The seed fixes the sequence of draws, not which request gets which: requests go out from
    # several threads, so how many faults fire varies from run to run. Only "some did" is certain.
    assert sum(1 for r in fake.requests if r.fault) > 0
