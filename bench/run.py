"""target-chartmogul benchmarks against the fake ChartMogul API (issue 7). Run by hand:

    python bench/run.py all|ceiling|invoices|rerun|cpu|memory|bulk [--quick] [--keep] [--ref HEAD]

Each benchmark prints its figures and appends them, with the command, the machine and
the date, to docs/benchmarks.md. The fake API runs in its own process; the target (and
the floor target, bench/floor_target.py) run as child processes whose CPU seconds and
peak RSS are read with os.wait4. `--quick` uses small sizes for a smoke run.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import os
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

FULL: dict[str, t.Any] = {"ceiling": 2000, "invoices": (5000, 500), "rerun": 10000, "cpu": 50000, "memory": (10000, 100000),
        "bulk": (2000, 6000), "bulk_memory": (50000, 150000)}
QUICK: dict[str, t.Any] = {"ceiling": 200, "invoices": (500, 50), "rerun": 1000, "cpu": 2000, "memory": (1000, 5000),
         "bulk": (200, 600), "bulk_memory": (2000, 6000)}
UNLIMITED: dict[str, t.Any] = {"max_requests_per_second": 100000, "max_concurrency": 20}


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
BULK_REPEATS = {False: 3, True: 1}  # runs of each bulk figure near a goal (median and spread), by --quick


@dataclasses.dataclass
class Backfill:
    """One first load through the target against a fresh fake: what it took, and what landed."""

    run: common.Measurement
    stats: dict[str, t.Any]
    held: dict[str, int]
    rejects: int
    timeline: list[tuple[float, str, str, int]]
    load: float  # the machine's 1-minute load average when the run started (other work on the same cores)


LISTINGS = ("GET /customers", "GET /invoices", "GET /subscription_events")


def _phases(done: Backfill) -> str:
    """Where a run's wall time went, from the fake's arrival times: when the last import was sent and last polled,
    and the listing reads after the first import (the verification that imported objects landed), from process start.
    """
    start = done.run.started_at
    sent = [at for at, method, path, _ in done.timeline if method == "POST" and path.endswith("/json_imports")]
    polls = [at for at, method, path, _ in done.timeline if method == "GET" and "/json_imports/" in path]
    after = sent[0] if sent else float("inf")
    listed = [at for at, method, path, _ in done.timeline if f"{method} {path}" in LISTINGS and at > after]
    parts = [f"first request {done.timeline[0][0] - start:.1f} s" if done.timeline else "no request"]
    if sent:
        parts.append(f"last import sent {sent[-1] - start:.1f} s")
    if polls:
        parts.append(f"last poll {polls[-1] - start:.1f} s")
    if listed:
        parts.append(f"{len(listed)} listing reads {listed[0] - start:.1f}–{listed[-1] - start:.1f} s")
    parts.append(f"exit {done.run.wall:.1f} s")
    return ", ".join(parts)


def _backfill_data(ctx: Context, customers: int, invoices: int, attributes: bool) -> pathlib.Path:
    """The backfill input, written once per shape and read by every run of it."""
    path = ctx.workdir("inputs") / f"backfill-{customers}-{invoices}{'-attributes' if attributes else ''}.singer"
    return path if path.exists() else common.backfill_file(path, customers, invoices, attributes=attributes)


def _backfill_run(ctx: Context, name: str, customers: int, invoices: int, *, latency: float, limit: int | None,
                  attributes: bool = False, switches: dict[str, str] | None = None,
                  **settings: t.Any) -> Backfill:
    work = ctx.workdir(name)
    data = _backfill_data(ctx, customers, invoices, attributes)
    with common.FakeProcess(latency=latency, rate_limit=limit, bulk=BULK_FAKE, switches=switches) as fake:
        config = common.write_config(work / "config.json", common.target_config(
            work, fake, streams=common.backfill_streams(), **settings))
        load = os.getloadavg()[0]
        run = common.run_measured("target", common.target_command(config, data), work, env=common.target_env())
        stats, held, timeline = fake.stats(), fake.holdings(), fake.timeline()
    rejects_path = work / "rejects.jsonl"
    rejects = len(rejects_path.read_text().splitlines()) if rejects_path.exists() else 0
    return Backfill(run, stats, held, rejects, timeline, load)


def _missing(done: Backfill, customers: int, invoices: int, attributes: bool) -> str:
    """What of the load is not in the fake, or was rejected ("" when everything landed, exactly)."""
    expected = {"customers": customers, "plans": len(common.PLANS), "invoices": invoices, "line_items": 2 * invoices,
                "transactions": invoices}
    if attributes:
        expected |= {"customers_with_attributes": customers,
                     "custom_attributes": customers * len(common.BACKFILL_ATTRIBUTES)}
    wrong = [f"{kind} {done.held.get(kind, 0):,} of {n:,}" for kind, n in expected.items() if done.held.get(kind) != n]
    if done.rejects:
        wrong.append(f"{done.rejects} rejected")
    return "; ".join(wrong)


def _landed(runs: list[Backfill], customers: int, invoices: int, attributes: bool) -> tuple[bool, str]:
    """(every run landed everything, the note for a row that says otherwise)."""
    problems = [text for text in (_missing(r, customers, invoices, attributes) for r in runs) if text]
    return not problems, ("; NOT ALL LANDED: " + " / ".join(problems)) if problems else ""


def _rest_writes(done: Backfill) -> tuple[int, str]:
    """REST writes the fake saw (every call but reads and the bulk import's own; an attempt answered 429, refused
    before it was looked at, is not a write but is named), and which.
    """
    writes: collections.Counter[str] = collections.Counter()
    limited = 0
    for _, method, path, status in done.timeline:
        if method != "GET" and not path.endswith("/json_imports"):
            if status == 429:
                limited += 1
            else:
                writes[f"{method} {path}"] += 1
    which = ", ".join(f"{call} ×{n}" for call, n in writes.most_common()) or "none"
    return sum(writes.values()), which + (f"; and {limited} attempt(s) answered 429, retried" if limited else "")


def _rate_row(label: str, runs: list[Backfill], records: int, landed: tuple[bool, str]) -> Row:
    """Records per second: the median of the runs, their spread, the requests of the median run."""
    rates = sorted(records / r.run.wall for r in runs)
    middle = sorted(runs, key=lambda r: r.run.wall)[len(runs) // 2]
    median = statistics.median(rates)
    each = ", ".join(f"{records / r.run.wall:,.0f} ({r.run.wall:.1f} s, load {r.load:.1f})"
                     for r in sorted(runs, key=lambda r: -r.run.wall))
    value = (f"**{median:,.0f}** (runs: {each}); {middle.stats['requests']:,} requests ({_calls(middle.stats, 6)}); "
             f"median run: {_phases(middle)}{landed[1]}")
    return Row(label, value, "≥ 1,000 records/s (median)", median >= 1000 and landed[0])


def _writes_row(label: str, done: Backfill, customers: int, records: int, landed: tuple[bool, str]) -> Row:
    writes, which = _rest_writes(done)
    per = writes / customers
    return Row(label, f"**{per:.3f}** ({writes:,} REST writes: {which}); {records / done.run.wall:,.0f} records/s "
               f"({done.run.wall:.1f} s, load {done.load:.1f}, {done.stats['requests']:,} requests){landed[1]}",
               "≤ 1.1 REST writes per customer", per <= 1.1 and landed[0])


def bench_bulk(ctx: Context) -> None:  # long: one row per goal of issue 21, each its runs and its landing check
    """First loads through the bulk JSON import under each documented behaviour of ChartMogul's (issue 21), the same
    load through REST, and the memory of a large one.
    """
    customers, invoices = ctx.sizes["bulk"]
    records = 2 + customers + invoices
    repeats = BULK_REPEATS[ctx.quick]
    timed: dict[str, t.Any] = {"latency": LATENCY, "limit": LIMIT}
    rows = [Row("Records (2 plans, customers, invoices with 2 line items and a payment)", f"{records:,}")]
    shapes: dict[str, dict[str, t.Any]] = {  # the runs near a goal, interleaved so that each meets the same machine
        **{poll_by: {"switches": {"poll_by": poll_by}} for poll_by in ("external_id", "id", "both")},
        "kept": {"attributes": True, "switches": {"bulk_attributes": "kept"}},
    }
    runs: dict[str, list[Backfill]] = {name: [] for name in shapes}
    for i in range(repeats):
        for name, shape in shapes.items():
            runs[name].append(_backfill_run(ctx, f"bulk-{name}-{i}", customers, invoices, **shape, **timed))
    plain = {poll_by: runs[poll_by] for poll_by in ("external_id", "id", "both")}
    for poll_by, done in plain.items():
        rows.append(_rate_row(f"Bulk, no attributes, ChartMogul answers polls by {poll_by.replace('_', ' ')}: "
                              f"records/s (median of {repeats})", done, records,
                              _landed(done, customers, invoices, False)))
    rows.append(_rate_row(f"Bulk, 5 custom attributes and tags, kept from the bulk body: records/s (median of "
                          f"{repeats})", runs["kept"], records, _landed(runs["kept"], customers, invoices, True)))
    for mode in ("ignored", "refused"):
        single = _backfill_run(ctx, f"bulk-attributes-{mode}", customers, invoices, attributes=True,
                               switches={"bulk_attributes": mode}, **timed)
        rows.append(_writes_row(f"Bulk, 5 custom attributes and tags, {mode} in the bulk body: REST writes per "
                                "customer", single, customers, records, _landed([single], customers, invoices, True)))
    rest = _backfill_run(ctx, "rest", customers, invoices, bulk_import="never", **timed)
    bulk_wall = statistics.median(r.run.wall for r in plain["both"])
    speedup = rest.run.wall / bulk_wall
    rest_landed = _landed([rest], customers, invoices, False)
    rows += [
        Row("REST (bulk_import never), no attributes: wall time / records per second",
            f"{rest.run.wall:.1f} s / {records / rest.run.wall:,.0f} ({rest.stats['requests']:,} requests)"
            f"{rest_landed[1]}"),
        Row("Speed-up of bulk (polls by both, median) over REST", f"{speedup:.1f}×", "≥ 25×", speedup >= 25),
    ]
    big_customers, big_invoices = ctx.sizes["bulk_memory"]
    big = _backfill_run(ctx, "bulk-large", big_customers, big_invoices, latency=0.0, limit=None, **UNLIMITED)
    big_landed = _landed([big], big_customers, big_invoices, False)
    median_plain = sorted(plain["both"], key=lambda r: r.run.wall)[len(plain["both"]) // 2]
    rows += [
        Row(f"Peak RSS, {big_customers:,} customers and {big_invoices:,} invoices in bulk (zero latency)",
            f"{big.run.max_rss_mb:.0f} MB ({big.run.wall:.1f} s, {big.stats['requests']:,} requests){big_landed[1]}",
            "< 300 MB", big.run.max_rss_mb < 300 and big_landed[0]),
        Row("Target CPU seconds / peak RSS (bulk polled by both, median run; REST)",
            f"{median_plain.run.cpu:.1f} s / {median_plain.run.max_rss_mb:.0f} MB; {rest.run.cpu:.1f} s / "
            f"{rest.run.max_rss_mb:.0f} MB"),
    ]
    common.report(f"6. Bulk import (issue 21): {customers:,} new customers and {invoices:,} invoices, "
                  f"{LATENCY * 1000:.0f} ms latency, {LIMIT} req/s limit", ctx.command, rows, [
                      "Fresh fake and sync memory per run; the fake's bulk import waits 0.5 s in the queue, then takes "
                      "0.05 ms per object (customers, invoices, line items, transactions), one import after another "
                      "per data source, applied by the fake's own worker thread when due (as ChartMogul works on its "
                      "own time, not on the next poll). Streams as tap-postgres sends them (customers, invoices, "
                      "plans). Default settings (bulk_import auto). Each run is checked against what the fake holds "
                      "afterwards (every customer, plan, invoice, line item and payment; with attributes, 5 custom "
                      "attributes and tags on every customer) and its rejects file (empty): a row whose run lost "
                      "anything says so and is not met.",
                      "ChartMogul's polling: the fake's `poll_by` switch (external_id: the import's external id only, "
                      "as the reference's example; id: the answer's id only; both).",
                      "Attributes: the first import carries one customer with attributes, and the target reads "
                      "ChartMogul's copy of it to learn whether a bulk body's attributes are kept. Kept: every other "
                      "customer's ride in the bulk body. Not kept (the fake's `bulk_attributes` ignored: the customer "
                      "is made without them; refused: the customer fails): each customer with attributes is created "
                      "by one REST `POST /customers` with them inline, before the import that carries its invoices "
                      "(and the probe's customer gets its attributes, or itself, through REST). REST writes per "
                      "customer count every write the fake saw but the bulk import's own (plans included).",
                      "Verification: the fake lists invoices newest first with keyset cursors (its default "
                      "`listing_order`, as recorded); as each import finishes the target walks the head of that "
                      "listing for what it brought, while the later imports are processing, and after the last one "
                      "lists the data source's customers (200 per page) and matches everything against what the "
                      "imports carried (\"median run\": when the last import was sent and polled, and the listing "
                      "reads after the first import, from the target's start). The "
                      "fake copies only the objects of the page it serves (it copied the whole data source's for "
                      "each page before 2026-12-07's fix). The 50,000-customer row runs at zero latency and no "
                      "limit: it measures the target's peak RSS, not time. \"load\" is the machine's 1-minute "
                      "load average when a run started (2 cores shared with other work).",
                  ])


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
