"""A voided invoice sent again stays voided and is never rejected, however ChartMogul meets a repeated status.

No recording shows what setting the status an invoice already has answers, so the fake plays
both (``fake.lifecycle.status_repeat``): a refused transition (422, the default) or a no-op
(200). With its sync memory the target sends nothing; without it (ChartMogul's invoice
answers carry no status) it sends the status again and must read either answer as done.
"""

from __future__ import annotations

import pytest

from tests.billing import customers_messages, plans_messages
from tests.helpers import fresh_memory, write_calls
from tests.running import run_target
from tests.three_tables import HEADERS_STREAM, Tables, streams_config


@pytest.mark.parametrize("memory", ["same", "lost"])
@pytest.mark.parametrize("status_repeat", ["refused", "ok"])
def test_a_voided_invoice_sent_again_stays_voided_and_is_not_rejected(fake, ds, base_config, tmp_path, status_repeat,
                                                                      memory):
    fake.lifecycle.status_repeat = status_repeat
    tables = Tables(invoices=4)
    config = {**base_config, "streams": streams_config()}
    assert run_target(config, [*plans_messages(), *customers_messages(), *tables.messages()]).rejects == []
    tables.headers[1]["status"] = "voided"
    voided = run_target(config, tables.messages())
    assert voided.rejects == [] and voided.counts(HEADERS_STREAM)["status_changed"] == 1
    fake.clear_requests()

    again = run_target(config if memory == "same" else fresh_memory(config, tmp_path, "lost"), tables.messages())

    assert again.rejects == []
    assert fake.find_invoice(ds, "inv-002")["status"] == "voided"
    puts = [r for r in write_calls(fake) if r.method == "PUT"]
    if memory == "same":
        assert write_calls(fake) == []  # the memory knows it voided this invoice
        return
    assert write_calls(fake) == puts and [r.path for r in puts] == [f"/data_sources/{ds}/invoices/inv-002/status"]
    assert [r.status for r in puts] == [422 if status_repeat == "refused" else 200]
    outcome = "status_unconfirmed" if status_repeat == "refused" else "status_changed"
    assert again.counts(HEADERS_STREAM)[outcome] == 1
