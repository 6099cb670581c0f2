"""Transaction records (payments and refunds) to ChartMogul payloads.

Used for the transactions stream and for transactions nested in an invoice.
"""

from __future__ import annotations

import typing as t

from target_chartmogul.errors import RecordRejected
from target_chartmogul.mapping.common import amount_column
from target_chartmogul.values.dates import timestamp_text
from target_chartmogul.values.numbers import amount_cents
from target_chartmogul.values.text import choice, currency, is_blank, text

TYPES = ("payment", "refund")
RESULTS = ("successful", "failed")


def map_transaction(
    record: t.Mapping[str, t.Any],
    prefix: str = "",
    *,
    require_external_id: bool = True,
    unit: str = "cents",
    currency_code: str | None = None,
) -> dict[str, t.Any]:
    """The API body of one transaction; `prefix` names nested fields (`transactions[0].`).

    `unit` (the stream's `amount_unit`) and the invoice's currency say how amounts are read.
    """

    def field(name: str) -> str:
        return f"{prefix}{name}"

    for name in ("type", "result", "date"):
        if is_blank(record.get(name)):
            raise RecordRejected(f"field '{field(name)}' is required", field=field(name))
    body: dict[str, t.Any] = {
        "type": choice(record["type"], field("type"), TYPES),
        "result": choice(record["result"], field("result"), RESULTS),
        "date": timestamp_text(record["date"], field("date")),
    }
    if not is_blank(record.get("external_id")):
        body["external_id"] = text(record["external_id"], field("external_id")).strip()
    elif require_external_id:
        msg = f"field '{field('external_id')}' is required: without it a replayed transaction would be doubled"
        raise RecordRejected(msg, field=field("external_id"))
    for name in ("amount_in_cents", "transaction_fees_in_cents"):
        column = amount_column(record, name, unit)
        if column is not None:
            body[name] = amount_cents(record[column], field(column), unit=unit, currency=currency_code)
    if not is_blank(record.get("transaction_fees_currency")):
        body["transaction_fees_currency"] = currency(
            record["transaction_fees_currency"], field("transaction_fees_currency")
        )
    return body
