"""Run the fake ChartMogul API in the foreground (used by the README demo).

Prints ``FAKE_CHARTMOGUL_URL=<url>`` on one stdout line so scripts can pick the
URL up, then serves until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from .json_imports import add_switch_options, apply_switch_options
from .server import FakeChartMogul


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options; ``--port 0`` picks a free port."""
    parser = argparse.ArgumentParser(prog="python -m tests.fake_chartmogul", description=__doc__)
    parser.add_argument("--port", type=int, default=8089)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--data-source-uuid", help="pre-create a data source with this uuid")
    parser.add_argument("--data-source-name", default="demo")
    parser.add_argument("--rate-limit", type=int, default=None, help="requests per second")
    parser.add_argument("--max-connections", type=int, default=20)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to each request")
    parser.add_argument("--invoice-batch-mode", choices=("save_valid", "save_none"), default="save_valid")
    parser.add_argument("--tag-case", choices=("keep", "lower"), default="keep")
    parser.add_argument("--auto-tags", action="store_true", help="add ChartMogul's own tags (first import, merge)")
    parser.add_argument("--last-page-cursor", choices=("string", "null"), default="string")
    parser.add_argument("--listing-order", choices=("recorded", "created"), default="recorded",
                        help="invoices and subscription events newest first (recorded) or oldest first")
    parser.add_argument("--retry-after", type=float, default=None, help="Retry-After seconds on 429 (default: none)")
    parser.add_argument("--unset-city", choices=("empty", "null"), default="empty", help='unset city as "" or null')
    parser.add_argument("--line-item-order", choices=("sent", "reversed"), default="sent")
    parser.add_argument("--dump", type=Path, help="write the state as JSON here on shutdown")
    add_switch_options(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Start the server, announce its URL, wait for a signal, stop, dump."""
    args = parse_args(argv)
    fake = FakeChartMogul(
        api_key=args.api_key,
        rate_limit=args.rate_limit,
        max_connections=args.max_connections,
        latency=args.latency,
        invoice_batch_mode=args.invoice_batch_mode,
        host=args.host,
        port=args.port,
        tag_case=args.tag_case,
        auto_tags=args.auto_tags,
        last_page_cursor=args.last_page_cursor,
        listing_order=args.listing_order,
        retry_after=args.retry_after,
        unset_city="" if args.unset_city == "empty" else None,
        line_item_order=args.line_item_order,
    )
    apply_switch_options(fake.json_imports, args)
    if args.data_source_uuid:
        fake.add_data_source(args.data_source_name, uuid=args.data_source_uuid)
    done = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    url = fake.start()
    print(f"FAKE_CHARTMOGUL_URL={url}", flush=True)
    try:
        while not done.wait(0.5):
            pass
    finally:
        fake.stop()
        if args.dump is not None:
            args.dump.write_text(json.dumps(fake.dump_state(), indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
