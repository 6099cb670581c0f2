"""Customer rows with a `seats` custom attribute, as the sync-memory and ledger-migration tests load them."""

from __future__ import annotations

import typing as t

from tests.singer_messages import INTEGER, customers_stream

STREAM = "public-customers"


def rows(n: int, **changes: t.Any) -> list[dict[str, t.Any]]:
    return [{"external_id": f"c{i:04d}", "name": f"Customer {i}", "seats": i, "tags": ["a"], **changes}
            for i in range(n)]


def stream(rows_: list[dict[str, t.Any]]) -> list[dict[str, t.Any]]:
    return customers_stream(STREAM, rows_, {"seats": INTEGER})
