"""The fake ChartMogul API in its own process, driven over stdin/stdout (one JSON line each).

Benchmarks run it apart from the target so that the target's CPU seconds and peak RSS
are its own. Started by `bench/common.py`; not meant to be run by hand, though it can be:

    python bench/fake_server.py --api-key K --rate-limit 40 --latency 0.1 \
        [--bulk-queue-delay 0.5 --bulk-per-object-seconds 0.00005] [--bulk-poll-by id] [--bulk-validation async] ...
        [--listing-order created]

(every switch of the bulk import has a `--bulk-…` option: `python bench/fake_server.py --help`; `--listing-order`
is the fake's own `listing_order`).

It prints `{"url": ..., "data_source_uuid": ...}` once, then answers each command line:
  stats                 -> counts of the requests seen since the last reset
  timeline              -> [arrival time, method, path, status] of every request seen
  holdings              -> what the fake stores: customers (and those with custom attributes and
                           tags), plans, invoices, line items, transactions
  reset                 -> forget the requests and counters (the stored objects stay)
  latency <seconds>     -> change the added latency
  rate_limit <n|none>   -> change the rate limit
  quit                  -> stop
"""

from __future__ import annotations

import argparse
import collections
import json
import pathlib
import re
import sys

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.fake_chartmogul import FakeChartMogul  # noqa: E402
from tests.fake_chartmogul.json_imports import add_switch_options, apply_switch_options  # noqa: E402

_ID = re.compile(r"/(?:[a-z]+_[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})")
_IMPORT_EXTERNAL_ID = re.compile(r"/json_imports/target-chartmogul-[0-9a-f]{32}")


def _shape(path: str) -> str:
    """`/customers/cus_123/attributes` -> `/customers/{id}/attributes`, to group counts (an import polled by the
    external id the target gave it -> `/json_imports/{external_id}`)."""
    return _ID.sub("/{id}", _IMPORT_EXTERNAL_ID.sub("/json_imports/{external_id}", path))


def stats(fake: FakeChartMogul) -> dict:
    records = fake.requests
    by_status: collections.Counter[str] = collections.Counter(str(r.status) for r in records)
    by_call: collections.Counter[str] = collections.Counter(f"{r.method} {_shape(r.path)}" for r in records)
    times = sorted(r.time for r in records)
    return {
        "requests": len(records),
        "by_status": dict(by_status),
        "by_call": dict(by_call.most_common()),
        "rate_limited": fake.rate_limited_count,
        "max_concurrent": fake.max_concurrent_seen,
        "connections_opened": fake.connections_opened,
        "first": times[0] if times else None,
        "last": times[-1] if times else None,
    }


def holdings(fake: FakeChartMogul) -> dict:
    """What the fake holds, so a benchmark can check that everything it timed landed."""
    store = fake.store
    with store.lock:
        customers = list(store.customers.values())
        invoices = list(store.invoices.values())
        return {
            "customers": len(customers),
            "customers_with_attributes": sum(
                1 for c in customers if c["attributes"]["tags"] and c["attributes"]["custom"]),
            "custom_attributes": sum(len(c["attributes"]["custom"]) for c in customers),
            "plans": len(store.plans),
            "invoices": len(invoices),
            "line_items": sum(len(i["line_items"]) for i in invoices),
            "transactions": sum(len(i["transactions"]) for i in invoices),
        }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--rate-limit", type=int, default=None)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--max-connections", type=int, default=20)
    parser.add_argument("--listing-order", choices=("recorded", "created"), default="recorded",
                        help="invoices and subscription events newest first (recorded) or oldest first")
    add_switch_options(parser)  # --bulk-queue-delay, --bulk-poll-by, ...: every switch of the bulk import
    args = parser.parse_args()
    fake = FakeChartMogul(
        api_key=args.api_key, rate_limit=args.rate_limit, latency=args.latency, max_connections=args.max_connections,
        listing_order=args.listing_order,
    )
    apply_switch_options(fake.json_imports, args)
    fake.json_imports.background = True  # ChartMogul applies imports on its own time, not on the next poll
    ds = fake.add_data_source("bench")["uuid"]
    url = fake.start()
    print(json.dumps({"url": url, "data_source_uuid": ds}), flush=True)
    try:
        for line in sys.stdin:
            command, _, arg = line.strip().partition(" ")
            if command == "stats":
                answer: dict = stats(fake)
            elif command == "timeline":
                answer = {"requests": [[r.time, r.method, _shape(r.path), r.status] for r in fake.requests]}
            elif command == "holdings":
                answer = holdings(fake)
            elif command == "reset":
                fake.clear_requests()
                fake.reset_stats()
                answer = {"ok": True}
            elif command == "latency":
                fake.set_latency(float(arg))
                answer = {"ok": True}
            elif command == "rate_limit":
                fake.set_rate_limit(None if arg in ("", "none") else int(arg))
                answer = {"ok": True}
            elif command == "quit":
                break
            else:
                answer = {"error": f"unknown command {command!r}"}
            print(json.dumps(answer), flush=True)
    finally:
        fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
