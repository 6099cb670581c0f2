"""target-chartmogul benchmarks against the fake ChartMogul API (issue 7). Run by hand:

    python bench/run.py all|ceiling|invoices|rerun|cpu|memory|bulk [--quick] [--keep] [--ref HEAD]

Each benchmark prints its figures and appends them, with the command, the machine and
the date, to docs/benchmarks.md. The fake API runs in its own process; the target (and
the floor target, bench/floor_target.py) run as child processes whose CPU seconds and
peak RSS are read with os.wait4. `--quick` uses small sizes for a smoke run.
"""

from __future__ import annotations

import argparse
import pathlib
import shutil
import statistics
import sys
import tempfile
import typing as t

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import common
from common import Row

LIMIT = 40
LATENCY = 0.1

FULL = {"ceiling": 2000, "invoices": (5000, 500), "rerun": 10000, "cpu": 50000, "memory": (10000, 100000),
        "bulk": (2000, 6000), "bulk_memory": (50000, 150000)}
QUICK = {"ceiling": 200, "invoices": (500, 50), "rerun": 1000, "cpu": 2000, "memory": (1000, 5000),
         "bulk": (200, 600), "bulk_memory": (2000, 6000)}
UNLIMITED = {"max_requests_per_second": 100000, "max_concurrency": 20}


class Context:
    def __init__(self, quick: bool, keep: bool, command: str) -> None:
        self.sizes = QUICK if quick else FULL
        self.quick = quick
        self.keep = keep
        self.command = command
        self.root = pathlib.Path(tempfile.mkdtemp(prefix="tcm-bench-"))

    def workdir(self, name: str) -> pathlib.Path:
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def cleanup(self) -> None:
        if self.keep:
            print(f"(kept work files in {self.root})")
        else:
            shutil.rmtree(self.root, ignore_errors=True)


def _rate(stats: dict[str, t.Any]) -> tuple[float, float]:
    """(requests per second between the first and the last arrival at the fake, that window)."""
    if not stats["requests"] or stats["first"] is None:
        return 0.0, 0.0
    window = stats["last"] - stats["first"]
    return ((stats["requests"] - 1) / window if window > 0 else 0.0), window


def _count_429(stats: dict[str, t.Any]) -> int:
    return int(stats["by_status"].get("429", 0))


def _calls(stats: dict[str, t.Any], top: int = 6) -> str:
    return ", ".join(f"{call} ×{n}" for call, n in list(stats["by_call"].items())[:top]) or "none"


# ------------------------------------------------------------------------------ 1. ceiling


def bench_ceiling(ctx: Context) -> None:
    """New customers at 100 ms latency and 40 requests/s: how close to the limit?"""
    n = ctx.sizes["ceiling"]
    work = ctx.workdir("ceiling")
    data = common.customers_file(work / "customers.singer", n)
    with common.FakeProcess(latency=LATENCY, rate_limit=LIMIT) as fake:
        config = common.write_config(work / "config.json", common.target_config(work, fake))
        run = common.run_measured("target", common.target_command(config, data), work, env=common.target_env())
        stats = fake.stats()
    active_rate, window = _rate(stats)
    e2e_rate = stats["requests"] / run.wall
    share = active_rate / LIMIT
    rows = [
        Row("Customers", f"{n:,}"),
        Row("Requests made (at the fake)", f"{stats['requests']:,} ({_calls(stats)})"),
        Row("Wall time (process start to exit)", f"{run.wall:.1f} s"),
        Row("Requests/s while writing (first to last request)", f"{active_rate:.1f} over {window:.1f} s"),
        Row("Share of the 40 req/s limit used while writing", f"{share:.0%}", "≥ 90%", share >= 0.9),
        Row("Requests/s end to end (incl. start-up and shutdown)", f"{e2e_rate:.1f} ({e2e_rate / LIMIT:.0%} of limit)"),
        Row("Customers/s end to end", f"{n / run.wall:.1f}"),
        Row("HTTP 429 answers", str(_count_429(stats)), "0", _count_429(stats) == 0),
        Row("Max concurrent requests at the fake", str(stats["max_concurrent"])),
        Row("Target CPU seconds / peak RSS", f"{run.cpu:.1f} s / {run.max_rss_mb:.0f} MB"),
    ]
    common.report(f"1. Ceiling: {n:,} new customers, {LATENCY * 1000:.0f} ms latency, {LIMIT} req/s limit",
                  ctx.command, rows,
                  ["Fake API in its own process; default pacing settings (max_requests_per_second 40, "
                   "max_concurrency 10). Each new customer is one POST /customers (custom attributes and tags "
                   "inline), plus the ping and data-source check before the first write."])


# ------------------------------------------------------------------------------ 2. invoices


def _invoices_run(ctx: Context, order: str) -> tuple[common.Measurement, dict[str, t.Any], common.Measurement]:
    count, customers = ctx.sizes["invoices"]
    work = ctx.workdir(f"invoices-{order}")
    setup_input = common.customers_file(work / "customers.singer", customers, with_plans=True)
    data = common.invoices_file(work / "invoices.singer", count, customers, order=order)
    with common.FakeProcess(latency=LATENCY, rate_limit=LIMIT) as fake:
        config = common.write_config(work / "config.json", common.target_config(work, fake))
        setup = common.run_measured("setup", common.target_command(config, setup_input), work, env=common.target_env())
        fake.reset()
        run = common.run_measured("target", common.target_command(config, data), work, env=common.target_env())
        stats = fake.stats()
    return run, stats, setup


def bench_invoices(ctx: Context) -> None:
    """Invoices for customers created by an earlier run, at 100 ms latency and 40 req/s."""
    count, customers = ctx.sizes["invoices"]
    rows: list[Row] = []
    for order, _label in (("date", "month by month (a tap reading by date)"),
                         ("customer", "grouped by customer")):
        run, stats, setup = _invoices_run(ctx, order)
        rate = count / run.wall
        active_rate, _window = _rate(stats)
        rows += [
            Row(f"[{order} order] Invoices/s (wall)", f"{rate:.1f} ({count:,} in {run.wall:.1f} s)",
                f"> {LIMIT}", rate > LIMIT),
            Row(f"[{order} order] Requests made", f"{stats['requests']:,} ({_calls(stats, 4)}); "
                f"{count / max(stats['requests'], 1):.1f} invoices per request"),
            Row(f"[{order} order] Requests/s while writing", f"{active_rate:.1f} ({active_rate / LIMIT:.0%} of limit)"),
            Row(f"[{order} order] HTTP 429 / max concurrent", f"{_count_429(stats)} / {stats['max_concurrent']}",
                "0 429s", _count_429(stats) == 0),
            Row(f"[{order} order] Setup run (plans + {customers} customers, not counted)", f"{setup.wall:.1f} s"),
        ]
    common.report(f"2. Invoices: {count:,} invoices over {customers:,} customers, {LATENCY * 1000:.0f} ms latency, "
                  f"{LIMIT} req/s limit", ctx.command, rows,
                  ["Customers and 2 plans are created by a first run with the same sync memory; the measured run "
                   "holds only the invoices (2 line items each, plan by external id, customer by external id).",
                   "Date order: invoice i belongs to customer i mod N, the order a tap emits them by date or id; "
                   "customer order: each customer's invoices together."])


# ------------------------------------------------------------------------------ 3. unchanged rerun


def bench_rerun(ctx: Context) -> None:
    """Customers already in the sync memory: no API call, and about the floor's wall time."""
    n = ctx.sizes["rerun"]
    work = ctx.workdir("rerun")
    data = common.customers_file(work / "customers.singer", n)
    repeats = 3
    with common.FakeProcess(latency=0.0, rate_limit=None) as fake:
        config = common.write_config(work / "config.json", common.target_config(work, fake))
        fast = common.write_config(work / "fill.json", common.target_config(work, fake, **UNLIMITED))
        fill = common.run_measured("fill", common.target_command(fast, data), work, env=common.target_env())
        fill_stats = fake.stats()
        fake.set_latency(LATENCY)
        fake.set_rate_limit(LIMIT)
        fake.reset()
        targets: list[common.Measurement] = []
        floors: list[common.Measurement] = []
        for i in range(repeats):  # alternate, so both see the same machine state
            floors.append(common.run_measured(f"floor-{i}", common.floor_command(config, data), work))
            targets.append(common.run_measured(f"target-{i}", common.target_command(config, data), work,
                                               env=common.target_env()))
        stats = fake.stats()
    target_wall = statistics.median(m.wall for m in targets)
    floor_wall = statistics.median(m.wall for m in floors)
    ratio = target_wall / floor_wall
    calls = stats["requests"]
    summary = common.summary_lines(targets[-1])
    rows = [
        Row("Customers (all unchanged)", f"{n:,}"),
        Row(f"API calls in {repeats} unchanged reruns", f"{calls}" + (f" ({_calls(stats)})" if calls else ""),
            "0", calls == 0),
        Row("Target wall time (median of 3)", f"{target_wall:.2f} s ({', '.join(f'{m.wall:.2f}' for m in targets)})"),
        Row("Floor wall time (median of 3)", f"{floor_wall:.2f} s ({', '.join(f'{m.wall:.2f}' for m in floors)})"),
        Row("Wall time ratio target / floor", f"{ratio:.2f}×", "≤ 1.5×", ratio <= 1.5),
        Row("CPU seconds target / floor (median)",
            f"{statistics.median(m.cpu for m in targets):.2f} / {statistics.median(m.cpu for m in floors):.2f}"),
        Row("Peak RSS target / floor", f"{max(m.max_rss_mb for m in targets):.0f} / "
            f"{max(m.max_rss_mb for m in floors):.0f} MB"),
        Row("Fill run (not counted)", f"{fill.wall:.1f} s, {fill_stats['requests']:,} requests at zero latency"),
    ]
    notes = ["The fill run writes the customers at zero latency without a limit; the measured reruns face "
             "100 ms latency and the 40 req/s limit (unused if no call is made). Target and floor alternate, "
             "3 runs each, on the same input file."]
    if summary:
        notes.append("Target summary of the last rerun: `" + " / ".join(s.strip() for s in summary.splitlines()[1:6]) + "`")
    common.report(f"3. Unchanged rerun: {n:,} customers already in the sync memory", ctx.command, rows, notes)


# ------------------------------------------------------------------------------ 4. cost per record


def bench_cpu(ctx: Context) -> None:
    """CPU seconds per record against the floor, zero latency, no limit."""
    n = ctx.sizes["cpu"]
    work = ctx.workdir("cpu")
    data = common.customers_file(work / "customers.singer", n)
    with common.FakeProcess(latency=0.0, rate_limit=None) as fake:
        config = common.write_config(work / "config.json", common.target_config(work, fake, **UNLIMITED))
        floor = common.run_measured("floor", common.floor_command(config, data), work)
        run = common.run_measured("target", common.target_command(config, data), work, env=common.target_env())
        stats = fake.stats()
    ratio = run.cpu / floor.cpu
    rows = [
        Row("Customers (new)", f"{n:,}"),
        Row("Requests made", f"{stats['requests']:,} ({_calls(stats)})"),
        Row("Target CPU seconds (user + sys)", f"{run.cpu:.1f} ({run.user:.1f} + {run.system:.1f}); "
            f"{run.cpu / n * 1e6:.0f} µs/record"),
        Row("Floor CPU seconds (user + sys)", f"{floor.cpu:.1f} ({floor.user:.1f} + {floor.system:.1f}); "
            f"{floor.cpu / n * 1e6:.0f} µs/record"),
        Row("CPU ratio target / floor", f"{ratio:.2f}×", "≤ 2×", ratio <= 2),
        Row("Target CPU per request beyond the floor",
            f"{(run.cpu - floor.cpu) / max(stats['requests'], 1) * 1e6:.0f} µs"),
        Row("Wall time target / floor", f"{run.wall:.1f} s / {floor.wall:.1f} s"),
        Row("Peak RSS target / floor", f"{run.max_rss_mb:.0f} / {floor.max_rss_mb:.0f} MB"),
        Row("HTTP 429 / max concurrent", f"{_count_429(stats)} / {stats['max_concurrent']}"),
    ]
    common.report(f"4. Cost per record: {n:,} new customers, zero latency, no limit", ctx.command, rows,
                  ["max_requests_per_second 100000, max_concurrency 20; the fake runs in its own process on the "
                   "same 2 cores, so wall times include waiting for it; CPU seconds are the target process's own."])


# ------------------------------------------------------------------------------ 5. memory


def bench_memory(ctx: Context) -> None:
    """Peak RSS of a fresh load and of an unchanged rerun, at two sizes."""
    rows: list[Row] = []
    peaks: dict[str, list[float]] = {"fresh": [], "rerun": [], "floor": []}
    sizes = ctx.sizes["memory"]
    for n in sizes:
        work = ctx.workdir(f"memory-{n}")
        data = common.customers_file(work / "customers.singer", n)
        with common.FakeProcess(latency=0.0, rate_limit=None) as fake:
            config = common.write_config(work / "config.json", common.target_config(work, fake, **UNLIMITED))
            floor = common.run_measured("floor", common.floor_command(config, data), work)
            fresh = common.run_measured("fresh", common.target_command(config, data), work, env=common.target_env())
            fresh_stats = fake.stats()
            fake.reset()
            rerun = common.run_measured("rerun", common.target_command(config, data), work, env=common.target_env())
            rerun_stats = fake.stats()
        peaks["fresh"].append(fresh.max_rss_mb)
        peaks["rerun"].append(rerun.max_rss_mb)
        peaks["floor"].append(floor.max_rss_mb)
        rows += [
            Row(f"{n:,} customers: fresh load (zero latency)", f"{fresh.max_rss_mb:.0f} MB "
                f"({fresh_stats['requests']:,} requests, {fresh.wall:.1f} s)", "< 200 MB", fresh.max_rss_mb < 200),
            Row(f"{n:,} customers: unchanged rerun", f"{rerun.max_rss_mb:.0f} MB "
                f"({rerun_stats['requests']} requests, {rerun.wall:.1f} s)", "< 200 MB", rerun.max_rss_mb < 200),
            Row(f"{n:,} customers: floor target", f"{floor.max_rss_mb:.0f} MB"),
        ]
    for kind in ("fresh", "rerun"):
        small, large = peaks[kind]
        growth = large - small
        flat = growth <= max(0.1 * small, 10)
        rows.append(Row(f"Growth {sizes[0]:,} → {sizes[1]:,} ({kind})", f"{growth:+.0f} MB "
                        f"({growth * 1000 / (sizes[1] - sizes[0]):.2f} MB per 1,000 records)",
                        "flat (≤ +10% or 10 MB)", flat))
    common.report(f"5. Memory: peak RSS at {sizes[0]:,} and {sizes[1]:,} customers", ctx.command, rows,
                  ["Fresh load: new customers into the fake at zero latency, no limit (max_concurrency 20), fresh "
                   "sync memory; unchanged rerun: the same input again right after (no API call expected). "
                   "Peak RSS is ru_maxrss of the target process alone."])


# ------------------------------------------------------------------------------ 6. bulk import

BULK_FAKE = (0.5, 0.00005)  # the fake's bulk import: 0.5 s in the queue, then 0.05 ms per object


def _backfill_run(ctx: Context, name: str, customers: int, invoices: int, *, latency: float, limit: int | None,
                  attributes: bool = False, **settings: t.Any) -> tuple[common.Measurement, dict[str, t.Any]]:
    work = ctx.workdir(name)
    data = common.backfill_file(work / "backfill.singer", customers, invoices, attributes=attributes)
    with common.FakeProcess(latency=latency, rate_limit=limit, bulk=BULK_FAKE) as fake:
        config = common.write_config(work / "config.json", common.target_config(work, fake, **settings))
        run = common.run_measured("target", common.target_command(config, data), work, env=common.target_env())
        stats = fake.stats()
    return run, stats


def bench_bulk(ctx: Context) -> None:
    """A first load through the bulk JSON import against the same load through REST, and the memory of a large one."""
    customers, invoices = ctx.sizes["bulk"]
    records = 2 + customers + invoices
    bulk, bulk_stats = _backfill_run(ctx, "bulk", customers, invoices, latency=LATENCY, limit=LIMIT)
    with_attrs, attrs_stats = _backfill_run(ctx, "bulk-attributes", customers, invoices, latency=LATENCY, limit=LIMIT,
                                            attributes=True)
    rest, rest_stats = _backfill_run(ctx, "rest", customers, invoices, latency=LATENCY, limit=LIMIT,
                                     bulk_import="never")
    big_customers, big_invoices = ctx.sizes["bulk_memory"]
    big, big_stats = _backfill_run(ctx, "bulk-large", big_customers, big_invoices, latency=0.0, limit=None,
                                   **UNLIMITED)
    rate, speedup = records / bulk.wall, rest.wall / bulk.wall
    rows = [
        Row("Records (2 plans, customers, invoices with 2 line items and a payment)", f"{records:,}"),
        Row("Bulk import: wall time / records per second", f"{bulk.wall:.1f} s / {rate:,.0f}", "≥ 1,000 records/s",
            rate >= 1000),
        Row("Bulk import: requests made", f"{bulk_stats['requests']:,} ({_calls(bulk_stats, 5)})"),
        Row("REST (bulk_import never): wall time / records per second",
            f"{rest.wall:.1f} s / {records / rest.wall:,.0f} ({rest_stats['requests']:,} requests)"),
        Row("Speed-up of bulk over REST", f"{speedup:.1f}×", "≥ 25×", speedup >= 25),
        Row("Bulk, every customer with 2 custom attributes and tags: wall time / records per second",
            f"{with_attrs.wall:.1f} s / {records / with_attrs.wall:,.0f} ({attrs_stats['requests']:,} requests: "
            f"{_calls(attrs_stats, 4)})"),
        Row(f"Peak RSS, {big_customers:,} customers and {big_invoices:,} invoices in bulk (zero latency)",
            f"{big.max_rss_mb:.0f} MB ({big.wall:.1f} s, {big_stats['requests']:,} requests)", "< 300 MB",
            big.max_rss_mb < 300),
        Row("Target CPU seconds / peak RSS (bulk, REST)",
            f"{bulk.cpu:.1f} s / {bulk.max_rss_mb:.0f} MB; {rest.cpu:.1f} s / {rest.max_rss_mb:.0f} MB"),
    ]
    common.report(f"6. Bulk import: {customers:,} new customers and {invoices:,} invoices, {LATENCY * 1000:.0f} ms "
                  f"latency, {LIMIT} req/s limit", ctx.command, rows,
                  ["Fresh fake and sync memory per run; the fake's bulk import waits 0.5 s in the queue, then takes "
                   "0.05 ms per object (customers, invoices, line items, transactions), one import after another per "
                   "data source, applied by the fake's own worker thread when due (as ChartMogul works on its own "
                   "time, not on the next poll). Streams as tap-postgres sends them (customers, invoices, plans). "
                   "Default settings "
                   "(bulk_import auto). Custom attributes and tags cannot ride in the bulk body: with them, each "
                   "customer costs two REST calls after the import (the third row)."])


BENCHES: dict[str, t.Callable[[Context], None]] = {
    "ceiling": bench_ceiling,
    "invoices": bench_invoices,
    "rerun": bench_rerun,
    "cpu": bench_cpu,
    "memory": bench_memory,
    "bulk": bench_bulk,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("which", choices=["all", *BENCHES])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--ref", help="measure target_chartmogul/ as committed at this git ref (default: working tree)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (inputs, logs, sync memory)")
    args = parser.parse_args(argv)
    command = "python bench/run.py " + " ".join(sys.argv[1:] if argv is None else argv)
    ctx = Context(args.quick, args.keep, command)
    if args.ref:
        common.use_ref(args.ref, ctx.root / "code")
    if args.quick:  # smoke runs do not go into the published figures
        common.DOC = common.BENCH / "quick-results.md"
    try:
        for name in BENCHES if args.which == "all" else [args.which]:
            print(f"== {name} ==", flush=True)
            BENCHES[name](ctx)
    finally:
        ctx.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
