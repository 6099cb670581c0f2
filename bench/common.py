"""Shared pieces of the benchmarks: Singer input files, the fake API in its own process,
running a target as a measured child process, and writing docs/benchmarks.md.

The fake always runs in a separate process: the CPU seconds and peak RSS reported are
those of the target process alone (`os.wait4` on its pid).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import os
import pathlib
import platform
import random
import subprocess
import sys
import time
import typing as t

REPO = pathlib.Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
DOC = REPO / "docs" / "benchmarks.md"
API_KEY = "sk_bench_0123456789abcdef"
FAKE_SWITCHES = ("listing_order",)  # the fake's own switches FakeProcess passes on (the others are the bulk import's)

STRING = {"type": ["string", "null"]}
INTEGER = {"type": ["integer", "null"]}
NUMBER = {"type": ["number", "null"]}
BOOLEAN = {"type": ["boolean", "null"]}
DATETIME = {"type": ["string", "null"], "format": "date-time"}
STRINGS = {"type": ["array", "null"], "items": {"type": "string"}}
OBJECTS = {"type": ["array", "null"], "items": {"type": "object"}}

CUSTOMERS_STREAM = "customers"
PLANS_STREAM = "plans"
INVOICES_STREAM = "invoices"
CUSTOM_ATTRIBUTES = ["seats", "segment"]
CUSTOMER_PROPS = {
    "external_id": STRING,
    "name": STRING,
    "email": STRING,
    "company": STRING,
    "country": STRING,
    "city": STRING,
    "lead_created_at": DATETIME,
    "tags": STRINGS,
    "seats": INTEGER,
    "segment": STRING,
}
# a backfill's customers with attributes: 5 custom attributes, one of each type ChartMogul knows, and tags
BACKFILL_ATTRIBUTES = ["seats", "segment", "health_score", "partner", "renewal_at"]
BACKFILL_CUSTOMER_PROPS = {**CUSTOMER_PROPS, "health_score": NUMBER, "partner": BOOLEAN, "renewal_at": DATETIME}
PLAN_PROPS = {"external_id": STRING, "name": STRING, "interval_count": INTEGER, "interval_unit": STRING}
INVOICE_PROPS = {
    "external_id": STRING,
    "customer_external_id": STRING,
    "date": DATETIME,
    "due_date": DATETIME,
    "currency": STRING,
    "collection_method": STRING,
    "line_items": OBJECTS,
}
PLANS = [
    {"external_id": "pl-basic", "name": "Basic monthly", "interval_count": 1, "interval_unit": "month"},
    {"external_id": "pl-pro", "name": "Pro monthly", "interval_count": 1, "interval_unit": "month"},
]
COUNTRIES = ["DE", "US", "FR", "GB", "NL", "ES", "IT", "SE"]
SEGMENTS = ["enterprise", "smb", "startup"]
TAGS = ["eu", "us", "vip", "trial", "partner"]


# ------------------------------------------------------------------------ input files


def _schema(stream: str, props: dict[str, t.Any]) -> dict[str, t.Any]:
    return {"type": "SCHEMA", "stream": stream, "schema": {"type": "object", "properties": props},
            "key_properties": ["external_id"]}


def _record(stream: str, rec: dict[str, t.Any]) -> dict[str, t.Any]:
    return {"type": "RECORD", "stream": stream, "record": rec}


def customer(n: int) -> dict[str, t.Any]:
    """Customer n: a few fields, 2 custom attributes (seats, segment) and 1-2 tags."""
    rng = random.Random(n)
    day = 1 + n % 28
    return {
        "external_id": f"cus-{n:07d}",
        "name": f"Customer {n} GmbH",
        "email": f"billing+{n}@customer{n}.example",
        "company": f"Customer {n}",
        "country": COUNTRIES[n % len(COUNTRIES)],
        "city": "Berlin",
        "lead_created_at": f"2024-01-{day:02d}T09:30:00+00:00",
        "tags": sorted(set(rng.sample(TAGS, 1 + n % 2))),
        "seats": 1 + n % 250,
        "segment": SEGMENTS[n % len(SEGMENTS)],
    }


def backfill_customer(n: int, *, attributes: bool) -> dict[str, t.Any]:
    """Customer n of a backfill: the standard fields of `customer`; with `attributes`, its tags and the 5 custom
    attributes of BACKFILL_ATTRIBUTES (Integer, String, Decimal, Boolean, Timestamp).
    """
    row = customer(n)
    if not attributes:
        return {k: v for k, v in row.items() if k not in ("tags", *CUSTOM_ATTRIBUTES)}
    month = 1 + n % 12
    return {**row, "health_score": round(40 + (n % 600) / 10, 1), "partner": n % 3 == 0,
            "renewal_at": f"2025-{month:02d}-15T00:00:00+00:00"}


def invoice(n: int, customer_n: int, month: int) -> dict[str, t.Any]:
    """Invoice n of a customer: a subscription line item (plan by external id) and a one-time fee."""
    start = dt.datetime(2023, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(days=30 * month)
    end = start + dt.timedelta(days=30)
    plan = PLANS[customer_n % len(PLANS)]["external_id"]
    return {
        "external_id": f"inv-{n:07d}",
        "customer_external_id": f"cus-{customer_n:07d}",
        "date": start.isoformat(),
        "due_date": None,
        "currency": "EUR",
        "collection_method": "automatic",
        "line_items": [
            {"type": "subscription", "subscription_external_id": f"sub-{customer_n}", "plan_external_id": plan,
             "service_period_start": start.isoformat(), "service_period_end": end.isoformat(),
             "amount_in_cents": 9990, "quantity": 1, "external_id": f"li-{n}-1", "tax_amount_in_cents": 1900},
            {"type": "one_time", "amount_in_cents": 1500, "quantity": 1, "external_id": f"li-{n}-2",
             "description": "Support hours"},
        ],
    }


def _write(path: pathlib.Path, messages: t.Iterable[dict[str, t.Any]]) -> pathlib.Path:
    with path.open("w") as out:
        for message in messages:
            out.write(json.dumps(message, separators=(",", ":")) + "\n")
    return path


def _state(n: int) -> dict[str, t.Any]:
    return {"type": "STATE", "value": {"bookmarks": {"customers": {"replication_key_value": n}}}}


def customers_file(path: pathlib.Path, count: int, *, with_plans: bool = False) -> pathlib.Path:
    """SCHEMA + `count` customer RECORDs (a STATE every 1,000), optionally preceded by plans."""

    def messages() -> t.Iterator[dict[str, t.Any]]:
        if with_plans:
            yield _schema(PLANS_STREAM, PLAN_PROPS)
            yield from (_record(PLANS_STREAM, p) for p in PLANS)
        yield _schema(CUSTOMERS_STREAM, CUSTOMER_PROPS)
        for n in range(count):
            yield _record(CUSTOMERS_STREAM, customer(n))
            if (n + 1) % 1000 == 0:
                yield _state(n)
        yield _state(count)

    return _write(path, messages())


def invoices_file(path: pathlib.Path, count: int, customers: int, *, order: str = "date") -> pathlib.Path:
    """`count` invoices spread evenly over `customers` customers.

    order "date": month by month, every customer once a month (what a tap reading by date
    or by invoice id emits); "customer": all invoices of a customer together.
    """
    per_customer = count // customers
    if order == "date":
        pairs = [(m, c) for m in range(per_customer) for c in range(customers)]
    else:
        pairs = [(m, c) for c in range(customers) for m in range(per_customer)]

    def messages() -> t.Iterator[dict[str, t.Any]]:
        yield _schema(INVOICES_STREAM, INVOICE_PROPS)
        for n, (month, cust) in enumerate(pairs):
            yield _record(INVOICES_STREAM, invoice(n, cust, month))
        yield {"type": "STATE", "value": {"bookmarks": {"invoices": {"n": count}}}}

    return _write(path, messages())


def backfill_file(path: pathlib.Path, customers: int, invoices: int, *, attributes: bool = False) -> pathlib.Path:
    """A first load as tap-postgres sends it: customers, then invoices (2 line items and a payment each), then
    plans; streams one after another, `invoices // customers` invoices per customer, a STATE at the end.

    `attributes`: customers with tags and the 5 custom attributes of BACKFILL_ATTRIBUTES (else standard fields
    only); the config's `streams` must name them (`backfill_streams`).
    """
    per_customer = invoices // customers
    props = {**INVOICE_PROPS, "transactions": OBJECTS}

    def messages() -> t.Iterator[dict[str, t.Any]]:
        yield _schema(CUSTOMERS_STREAM, BACKFILL_CUSTOMER_PROPS if attributes else CUSTOMER_PROPS)
        for n in range(customers):
            yield _record(CUSTOMERS_STREAM, backfill_customer(n, attributes=attributes))
        yield _schema(INVOICES_STREAM, props)
        for c in range(customers):
            for month in range(per_customer):
                n = c * per_customer + month
                row = invoice(n, c, month)
                row["transactions"] = [{"type": "payment", "result": "successful", "date": row["date"],
                                        "external_id": f"pay-{n:07d}", "amount_in_cents": 11490}]
                yield _record(INVOICES_STREAM, row)
        yield _schema(PLANS_STREAM, PLAN_PROPS)
        yield from (_record(PLANS_STREAM, p) for p in PLANS)
        yield {"type": "STATE", "value": {"bookmarks": {"backfill": {"n": invoices}}}}

    return _write(path, messages())


# ------------------------------------------------------------------------ fake API process


class FakeProcess:
    """`bench/fake_server.py` in a child process; `stats()` asks it for its counters."""

    def __init__(self, *, latency: float, rate_limit: int | None, bulk: tuple[float, float] = (0.0, 0.0),
                 switches: t.Mapping[str, str] | None = None) -> None:
        """`switches`: the fake's own switches (`listing_order`) and the bulk import's (json_imports.py) by name,
        as fake_server.py's options."""
        cmd = [sys.executable, str(BENCH / "fake_server.py"), "--api-key", API_KEY, "--latency", str(latency),
               "--bulk-queue-delay", str(bulk[0]), "--bulk-per-object-seconds", str(bulk[1])]
        for name, value in (switches or {}).items():  # bulk_attributes is --bulk-attributes, poll_by --bulk-poll-by
            own = name in FAKE_SWITCHES  # listing_order is --listing-order
            option = name if own or name.startswith("bulk_") else f"bulk_{name}"
            cmd += [f"--{option.replace('_', '-')}", value]
        if rate_limit is not None:
            cmd += ["--rate-limit", str(rate_limit)]
        self.latency, self.rate_limit = latency, rate_limit
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO)
        hello = json.loads(self._readline())
        self.url: str = hello["url"]
        self.data_source_uuid: str = hello["data_source_uuid"]

    def _readline(self) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the fake ChartMogul process ended")
        return line

    def command(self, text: str) -> dict[str, t.Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()
        return t.cast("dict[str, t.Any]", json.loads(self._readline()))

    def stats(self) -> dict[str, t.Any]:
        return self.command("stats")

    def timeline(self) -> list[tuple[float, str, str, int]]:
        """(arrival time, method, path shape, status) of every request since the last reset."""
        return [(float(a), m, p, int(s)) for a, m, p, s in self.command("timeline")["requests"]]

    def holdings(self) -> dict[str, int]:
        """What the fake stores (customers, plans, invoices, line items, transactions)."""
        return t.cast("dict[str, int]", self.command("holdings"))

    def reset(self) -> None:
        self.command("reset")

    def set_latency(self, seconds: float) -> None:
        self.command(f"latency {seconds}")
        self.latency = seconds

    def set_rate_limit(self, per_second: int | None) -> None:
        self.command(f"rate_limit {per_second if per_second is not None else 'none'}")
        self.rate_limit = per_second

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(RuntimeError, BrokenPipeError, ValueError):
                self.command("quit")
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> FakeProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ------------------------------------------------------------------------ measured runs


@dataclasses.dataclass
class Measurement:
    """One target process: wall seconds, CPU seconds (user + system), peak RSS."""

    label: str
    command: list[str]
    returncode: int
    wall: float
    user: float
    system: float
    max_rss_mb: float
    stderr_path: pathlib.Path
    started_at: float = 0.0  # time.time() at the start, to place it on the fake's timeline

    @property
    def cpu(self) -> float:
        return self.user + self.system

    def tail(self, lines: int = 15) -> str:
        text = self.stderr_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


def target_config(workdir: pathlib.Path, fake: FakeProcess, **extra: t.Any) -> dict[str, t.Any]:
    """A target-chartmogul config for the fake; sync memory and rejects in `workdir`."""
    return {
        "api_key": API_KEY,
        "api_url": fake.url,
        "data_source_uuid": fake.data_source_uuid,
        "rejects_path": str(workdir / "rejects.jsonl"),
        "ledger_url": f"sqlite:///{workdir / 'ledger.db'}",
        "streams": {CUSTOMERS_STREAM: {"custom_attributes": CUSTOM_ATTRIBUTES}},
        "progress_interval": 0,
        **extra,
    }


def backfill_streams() -> dict[str, t.Any]:
    """The `streams` setting of a backfill (`backfill_file`): customers' 5 custom attributes."""
    return {CUSTOMERS_STREAM: {"custom_attributes": BACKFILL_ATTRIBUTES}}


def write_config(path: pathlib.Path, config: dict[str, t.Any]) -> pathlib.Path:
    path.write_text(json.dumps(config, indent=2))
    return path


def run_measured(label: str, command: list[str], workdir: pathlib.Path, *, env: dict[str, str] | None = None,
                 check: bool = True) -> Measurement:
    """Run one child process, wait for it with `os.wait4` (its own rusage), time it."""
    stderr_path = workdir / f"{label}.stderr.log"
    with stderr_path.open("w") as err, open(os.devnull, "w") as out:
        started_at, started = time.time(), time.perf_counter()
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=workdir,
                                env={**os.environ, **(env or {})})
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
    result = Measurement(label, command, proc.returncode, wall, usage.ru_utime, usage.ru_stime,
                         usage.ru_maxrss / 1024, stderr_path, started_at)
    if check and result.returncode != 0:
        msg = f"{label} exited with {result.returncode}:\n{result.tail(40)}"
        raise RuntimeError(msg)
    return result


def target_command(config: pathlib.Path, input_path: pathlib.Path) -> list[str]:
    return [sys.executable, "-m", "target_chartmogul", "--config", str(config), "--input", str(input_path)]


def floor_command(config: pathlib.Path, input_path: pathlib.Path) -> list[str]:
    return [sys.executable, str(BENCH / "floor_target.py"), "--config", str(config), "--input", str(input_path)]


# Where `python -m target_chartmogul` is imported from: this checkout, or a snapshot of a
# commit (`bench/run.py --ref`) so that edits in progress do not change the figures mid-run.
CODE_ROOT = REPO
CODE_LABEL = "working tree"


def use_ref(ref: str, into: pathlib.Path) -> None:
    """Measure `target_chartmogul/` as committed at `ref` (git archive into `into`)."""
    global CODE_ROOT, CODE_LABEL
    commit = subprocess.run(["git", "rev-parse", "--short", ref], cwd=REPO, capture_output=True, text=True,
                            check=True).stdout.strip()
    into.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "archive", commit, "target_chartmogul"], cwd=REPO, capture_output=True,
                             check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    # with its bytecode, as pip installs a package (else each run compiles it: ~0.1 s of a 4 s bulk run)
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(into)], check=True, stdout=subprocess.DEVNULL)
    CODE_ROOT, CODE_LABEL = into, f"commit {commit}"


def code_label() -> str:
    if CODE_ROOT != REPO:
        return CODE_LABEL
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                          check=False).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "target_chartmogul"], cwd=REPO,
                           capture_output=True, text=True, check=False).stdout.strip()
    return f"working tree at {head}" + (" with uncommitted changes to target_chartmogul/" if dirty else "")


def target_env() -> dict[str, str]:
    """Import the target from CODE_ROOT whatever the caller's cwd."""
    path = os.environ.get("PYTHONPATH")
    return {"PYTHONPATH": f"{CODE_ROOT}{os.pathsep}{path}" if path else str(CODE_ROOT)}


def summary_lines(measurement: Measurement) -> str:
    """The target's own summary table, from its log."""
    lines = measurement.stderr_path.read_text(errors="replace").splitlines()
    for i, line in enumerate(lines):
        if "Summary of this run" in line:
            return "\n".join(lines[i : i + 12])
    return ""


# ------------------------------------------------------------------------ reporting


def machine() -> dict[str, str]:
    uname = subprocess.run(["uname", "-a"], capture_output=True, text=True, check=False).stdout.strip()
    try:
        import singer_sdk

        sdk = getattr(singer_sdk, "__version__", "")
    except ImportError:  # pragma: no cover
        sdk = ""
    if not sdk:
        from importlib.metadata import version

        sdk = version("singer-sdk")
    return {
        "uname": uname or platform.platform(),
        "cpus": str(os.cpu_count()),
        "python": platform.python_version(),
        "singer_sdk": sdk,
    }


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


@dataclasses.dataclass
class Row:
    figure: str
    value: str
    goal: str = ""
    met: bool | None = None


def met_text(met: bool | None) -> str:
    return "" if met is None else ("yes" if met else "**no**")


def report(title: str, command: str, rows: list[Row], notes: t.Sequence[str] = ()) -> str:
    """Print the figures and append them, as a markdown section, to docs/benchmarks.md."""
    info = machine()
    lines = [
        f"### {title}",
        "",
        f"- Date: {now()}",
        f"- Command: `{command}`",
        f"- Machine: `{info['uname']}`; {info['cpus']} CPUs; Python {info['python']}; singer-sdk {info['singer_sdk']}",
        f"- Code measured: {code_label()}",
        "",
        "| Figure | Value | Goal | Met? |",
        "|---|---|---|---|",
        *(f"| {r.figure} | {r.value} | {r.goal} | {met_text(r.met)} |" for r in rows),
        "",
        *(f"- {note}" for note in notes),
        "",
    ]
    text = "\n".join(lines) + "\n"
    print(text, flush=True)
    doc_path = DOC
    doc_path.parent.mkdir(parents=True, exist_ok=True)
    if not doc_path.exists():
        doc_path.write_text("# Benchmarks\n\nWritten by `python bench/run.py`; newest results at the end.\n\n")
    with doc_path.open("a") as doc:
        doc.write(text)
    return text
