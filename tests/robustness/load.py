"""A deterministic "few hundred records" load, shaped like tap-postgres output, and exact checks.

~150 customers, 5 plans, 300 invoices (2 line items each, about two thirds with a nested
payment) and 60 refunds (a `billing-refunds` stream written as transactions), with STATE
messages between chunks of every stream. `assert_exact` proves every object landed
exactly once, with the fields and amounts sent; `measure` counts duplicates and losses
for the figures in docs/reliability.md.
"""

from __future__ import annotations

import array
import copy
import fcntl
import json
import os
import pathlib
import platform
import random
import subprocess
import sys
import termios
import threading
import time
import typing as t
from decimal import Decimal

from tests.billing import (
    CUSTOMERS_STREAM,
    INVOICE_PROPS,
    INVOICES_STREAM,
    PLAN_PROPS,
    PLANS_STREAM,
    REFUND_PROPS,
    REFUNDS_STREAM,
    assert_invoice_matches,
    assert_refund_matches,
    billing_config,
    encode,
    invoice_row,
    raw_record,
    transactions_by_external_id,
)
from tests.fake_chartmogul import FakeChartMogul
from tests.singer_messages import customers_stream, lines, schema, state

STREAMS = (PLANS_STREAM, CUSTOMERS_STREAM, INVOICES_STREAM, REFUNDS_STREAM)
COUNTRIES = ("DE", "US", "FR", "GB", "NL", "ES", "IT", "SE", "JP", "BR")
STATE_EVERY = 25  # a STATE message after every 25 records of a stream (and at each stream's end)
# The number of the read(2) system call, as /proc/PID/syscall shows it (Linux).
READ_SYSCALL = {"x86_64": 0, "amd64": 0, "aarch64": 63, "arm64": 63}


class Load:
    """The rows of one load, and its Singer messages."""

    def __init__(self, seed: int = 2026, customers: int = 150, invoices_per_customer: int = 2,
                 refunds: int = 60) -> None:
        rng = random.Random(seed)
        self.plans = [
            {"external_id": f"pl-{n}", "name": f"Plan {n} ({unit})", "interval_count": count, "interval_unit": unit}
            for n, (count, unit) in enumerate([(1, "month"), (3, "month"), (1, "year"), (6, "month"), (2, "year")])
        ]
        self.customers = [
            {"external_id": f"cus-{i:03d}", "name": f"Customer {i:03d} {rng.choice(['GmbH', 'LLC', 'SA', 'Ltd'])}",
             "email": f"billing{i}@example{i % 7}.test", "country": rng.choice(COUNTRIES),
             "city": rng.choice(["Berlin", "Austin", "Lyon", None])}
            for i in range(customers)
        ]
        self.invoices: list[dict[str, t.Any]] = []
        n = 0
        for customer in self.customers:
            plan = rng.choice(self.plans)["external_id"]
            for k in range(invoices_per_customer):
                n += 1
                month = 1 + (n % 12)
                day = 1 + rng.randrange(27)
                date = f"2024-{month:02d}-{day:02d}T{rng.randrange(24):02d}:00:00+00:00"
                end = f"2025-{month:02d}-{day:02d}T00:00:00+00:00"
                sub = Decimal(rng.choice(["9990.00", "4900", "120000.00", "1999"]))
                one = Decimal(rng.choice(["0", "1500.00", "250"]))
                ext = f"inv-{n:04d}"
                invoice = {
                    "external_id": ext,
                    "account_code": customer["external_id"],
                    "date": date,
                    "due_date": None,
                    "currency": rng.choice(["EUR", "USD", "eur"]),
                    "collection_method": rng.choice(["automatic", "manual"]),
                    "line_items": [
                        {"type": "subscription", "subscription_external_id": f"sub-{customer['external_id']}-{k}",
                         "plan_external_id": plan, "service_period_start": date, "service_period_end": end,
                         "amount_in_cents": sub, "quantity": 1 + rng.randrange(3), "external_id": f"{ext}-li-1",
                         "description": f"{plan} subscription", "tax_amount_in_cents": Decimal("0"),
                         "discount_amount_in_cents": Decimal("0")},
                        {"type": "one_time", "amount_in_cents": one, "quantity": 1, "external_id": f"{ext}-li-2",
                         "description": "Setup"},
                    ],
                    "transactions": [],
                }
                if n % 3 != 0:
                    invoice["transactions"] = [{"type": "payment", "result": "successful", "date": date,
                                                "external_id": f"pay-{n:04d}", "amount_in_cents": sub + one}]
                self.invoices.append(invoice)
        paid = [i for i in self.invoices if i["transactions"]]
        self.refunds = [
            {"external_id": f"ref-{j:03d}", "invoice_ref": inv["external_id"], "type": "refund",
             "result": rng.choice(["successful", "failed"]), "date": inv["date"].replace("2024-", "2025-"),
             "amount_in_cents": Decimal(rng.choice(["100", "2500.00", "990"])),
             "transaction_fees_in_cents": rng.choice([None, Decimal("30.00")])}
            for j, inv in enumerate(rng.sample(paid, refunds))
        ]

    # -- messages

    def messages(self, state_every: int = STATE_EVERY) -> list[t.Any]:
        """SCHEMA, RECORDs and cumulative tap-postgres-like STATE messages, stream after stream."""
        out: list[t.Any] = []
        bookmarks: dict[str, t.Any] = {}

        def checkpoint(stream: str, n: int) -> None:
            bookmarks[stream] = {"replication_key_value": n}
            out.append(state({"bookmarks": copy.deepcopy(bookmarks)}))

        parts = [
            (PLANS_STREAM, [schema(PLANS_STREAM, PLAN_PROPS)], [raw_record(PLANS_STREAM, p) for p in self.plans]),
            (CUSTOMERS_STREAM, customers_stream(CUSTOMERS_STREAM, [])[:1],
             [encode({"type": "RECORD", "stream": CUSTOMERS_STREAM, "record": c}) for c in self.customers]),
            (INVOICES_STREAM, [schema(INVOICES_STREAM, INVOICE_PROPS)],
             [raw_record(INVOICES_STREAM, invoice_row(i)) for i in self.invoices]),
            (REFUNDS_STREAM, [schema(REFUNDS_STREAM, REFUND_PROPS)],
             [raw_record(REFUNDS_STREAM, r) for r in self.refunds]),
        ]
        for stream, head, records in parts:
            out.extend(head)
            for n, rec in enumerate(records, 1):
                out.append(rec)
                if n % state_every == 0 or n == len(records):
                    checkpoint(stream, n)
        return out

    def text(self, **kwargs: t.Any) -> str:
        return lines(self.messages(**kwargs))

    @property
    def record_count(self) -> int:
        return len(self.plans) + len(self.customers) + len(self.invoices) + len(self.refunds)

    @property
    def object_count(self) -> int:
        """Objects expected in ChartMogul (nested payments are objects too)."""
        return len(self.plans) + len(self.customers) + len(self.invoices) + len(self.expected_transactions)

    @property
    def expected_transactions(self) -> list[str]:
        return [tx["external_id"] for i in self.invoices for tx in i["transactions"]] + [
            r["external_id"] for r in self.refunds]

    # -- checks

    def measure(self, fake: FakeChartMogul, ds: str) -> dict[str, int]:
        """Duplicates (extra copies) and losses (missing objects) by external id, per object type."""
        with fake.lock:
            plans = [p["external_id"] for p in fake.plans.values()]
            customers = [c["external_id"] for c in fake.customers.values()]
            invoices = [i["external_id"] for i in fake.invoices.values()]
            transactions = [x["external_id"] for x in fake.transactions.values()]
        held = {"plans": plans, "customers": customers, "invoices": invoices, "transactions": transactions}
        sent = {"plans": [p["external_id"] for p in self.plans],
                "customers": [c["external_id"] for c in self.customers],
                "invoices": [i["external_id"] for i in self.invoices],
                "transactions": self.expected_transactions}
        duplicates = lost = unexpected = 0
        for kind, ids in held.items():
            counts: dict[str, int] = {}
            for ext in ids:
                counts[ext] = counts.get(ext, 0) + 1
            duplicates += sum(n - 1 for n in counts.values() if n > 1)
            lost += sum(1 for ext in sent[kind] if ext not in counts)
            unexpected += sum(1 for ext in counts if ext not in set(sent[kind]))
        return {"records": self.record_count, "objects": self.object_count, "duplicates": duplicates,
                "lost": lost, "unexpected": unexpected}

    def assert_exact(self, fake: FakeChartMogul, ds: str) -> dict[str, int]:
        """Every object exactly once, with the fields and amounts sent; nothing else."""
        figures = self.measure(fake, ds)
        assert (figures["duplicates"], figures["lost"], figures["unexpected"]) == (0, 0, 0), figures
        for sent in self.plans:
            plan = fake.find_plan(ds, sent["external_id"])
            assert plan is not None, sent["external_id"]
            assert {k: plan[k] for k in sent} == sent
        assert len(fake.plans) == len(self.plans)
        for sent in self.customers:
            found = fake.find_customers(ds, sent["external_id"])
            assert len(found) == 1, (sent["external_id"], len(found))
            held = found[0]
            assert (held["name"], held["email"], held["country"]) == (sent["name"], sent["email"], sent["country"]), \
                sent["external_id"]
            assert held.get("city") == sent["city"], sent["external_id"]
        assert len(fake.customers) == len(self.customers)
        for sent in self.invoices:
            assert_invoice_matches(fake, ds, sent)
        assert len(fake.invoices) == len(self.invoices)
        by_ext = transactions_by_external_id(fake)
        assert sorted(by_ext) == sorted(self.expected_transactions)
        assert all(len(copies) == 1 for copies in by_ext.values())
        for refund in self.refunds:
            assert_refund_matches(fake, ds, refund)
        assert len(fake.transactions) == len(self.expected_transactions)
        return figures


LOAD = Load()


def load_config(base_config: dict[str, t.Any], **extra: t.Any) -> dict[str, t.Any]:
    """billing_config (refunds as transactions, account_code mapped) without the client-side rate cap.

    Through REST unless `bulk_import` is given: these tests kill and fault the REST writes of a
    first load (tests/robustness/test_bulk_crash.py and the bulk fault test cover the bulk import).
    """
    extra.setdefault("bulk_import", "never")
    return billing_config(base_config, max_requests_per_second=1000, progress_interval=0, **extra)


def fault_figures(fake: FakeChartMogul) -> dict[str, t.Any]:
    """What the fake's request log says was injected: faults by kind, 503/429 answers, total requests."""
    requests = fake.requests
    by_kind: dict[str, int] = {}
    for r in requests:
        if r.fault:
            by_kind[r.fault] = by_kind.get(r.fault, 0) + 1
    over_limit = sum(1 for r in requests if r.status == 503 and not r.fault)
    if over_limit:
        by_kind["503_too_many_connections"] = over_limit
    return {"requests": len(requests), "faults": sum(by_kind.values()), "by_kind": by_kind}


def record_figures(name: str, figures: dict[str, t.Any]) -> None:
    """Print one line of figures (shown with -s); also appended to $TCM_FIGURES_FILE when set."""
    line = json.dumps({"test": name, **figures}, sort_keys=True)
    print(f"FIGURES {line}")
    target = os.environ.get("TCM_FIGURES_FILE")
    if target:
        with pathlib.Path(target).open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")


# ------------------------------------------------------------------ a target as a child process


class TargetProcess:
    """`python -m target_chartmogul --config c.json [--input file]` with stdout read as it comes."""

    def __init__(self, config: dict[str, t.Any], workdir: pathlib.Path, *, input_file: pathlib.Path | None = None,
                 env: dict[str, str] | None = None) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        config_path = workdir / "c.json"
        config_path.write_text(json.dumps(config))
        args = [sys.executable, "-m", "target_chartmogul", "--config", str(config_path)]
        if input_file is not None:
            args += ["--input", str(input_file)]
        self.stderr_path = workdir / f"stderr-{id(self)}.log"
        self._stderr = self.stderr_path.open("w", encoding="utf-8")
        try:
            self.proc = subprocess.Popen(
                args, cwd=workdir, stdin=subprocess.PIPE if input_file is None else subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=self._stderr, text=True, env={**os.environ, **(env or {})},
            )
        except BaseException:  # (the fast tier refuses processes): no open file is left to fail a later test
            self._stderr.close()
            raise
        self.stdout_lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.stdout_lines.append(line)

    def send(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text)
        self.proc.stdin.flush()

    @property
    def states(self) -> list[dict[str, t.Any]]:
        return [json.loads(line) for line in list(self.stdout_lines) if line.strip()]

    def wait(self, timeout: float = 60) -> int:
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=5)
        self._stderr.close()
        for pipe in (self.proc.stdout, self.proc.stdin):  # closed here, not left to the garbage collector
            if pipe is not None:
                pipe.close()
        return code

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8")

    def kill(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def idle_on_stdin(self) -> bool:
        """The target has handled every line sent so far and waits for the next one.

        True when the pipe to its stdin is empty and its main thread (the only one that
        reads input, line by line) is blocked in read(2) on fd 0: Python's line reader
        asks the kernel for more only once every complete line it holds was handed out,
        and the SDK handles each line before asking for the next, so nothing sent is
        still waiting to be read or handled.
        """
        assert self.proc.stdin is not None
        try:
            fields = pathlib.Path(f"/proc/{self.proc.pid}/syscall").read_text().split()
        except OSError:  # the process is gone
            return False
        read = READ_SYSCALL[platform.machine().lower()]
        # "running" while it works; otherwise the syscall number and its arguments (fd first).
        if len(fields) < 2 or fields[0] != str(read) or int(fields[1], 16) != 0:
            return False
        unread = array.array("i", [0])
        fcntl.ioctl(self.proc.stdin.fileno(), termios.FIONREAD, unread, True)
        return unread[0] == 0


PROCESS_CHECK = 0.01  # seconds between looks at what no request of the fake shows (a process's state)


def wait_for(condition: t.Callable[[], bool], timeout: float = 30, *, fake: FakeChartMogul | None = None) -> None:
    """Until `condition()` holds: looked at again after each request the fake records (when given), and every
    10 ms for what no request shows (a process that ended, or waits on stdin); an AssertionError after `timeout`.
    """
    deadline = time.monotonic() + timeout
    woken = fake.changed if fake is not None else threading.Condition()
    with woken:  # the fake notifies under this lock, so no request between a look and the wait goes unseen
        while not condition():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError("condition not reached in time")
            woken.wait(min(remaining, PROCESS_CHECK))


def resume_messages(messages: list[t.Any], last_state: dict[str, t.Any] | None) -> list[t.Any]:
    """What a tap resumed from `last_state` re-sends: every SCHEMA first, then what followed that STATE.

    With no STATE emitted, the tap starts over from the beginning.
    """
    schemas = [m for m in messages if isinstance(m, dict) and m.get("type") == "SCHEMA"]
    if last_state is None:
        return list(messages)
    for index, message in enumerate(messages):
        if isinstance(message, dict) and message.get("type") == "STATE" and message["value"] == last_state:
            return schemas + [m for m in messages[index + 1:] if not (isinstance(m, dict) and m.get("type") == "SCHEMA")]
    raise AssertionError(f"the target emitted a STATE the tap never sent: {last_state}")


def record_of(message: t.Any) -> tuple[str, dict[str, t.Any]] | None:
    """(stream, record) of a RECORD message, whether a dict or a raw JSON line."""
    if isinstance(message, str):
        message = json.loads(message)
    if message.get("type") != "RECORD":
        return None
    return message["stream"], message["record"]


def assert_state_covered(fake: FakeChartMogul, ds: str, messages: list[t.Any], emitted: dict[str, t.Any]) -> None:
    """Every record sent before the STATE message `emitted` is in ChartMogul."""
    index = next((i for i, m in enumerate(messages)
                  if isinstance(m, dict) and m.get("type") == "STATE" and m["value"] == emitted), None)
    assert index is not None, f"the target emitted a STATE the tap never sent: {emitted}"
    with fake.lock:
        plans = {p["external_id"] for p in fake.plans.values()}
        customers = {c["external_id"] for c in fake.customers.values()}
        invoices = {i["external_id"] for i in fake.invoices.values()}
        transactions = {x["external_id"] for x in fake.transactions.values()}
    held = {PLANS_STREAM: plans, CUSTOMERS_STREAM: customers, INVOICES_STREAM: invoices, REFUNDS_STREAM: transactions}
    missing = []
    for message in messages[:index]:
        found = record_of(message)
        if found is None:
            continue
        stream, rec = found
        if rec["external_id"] not in held[stream]:
            missing.append((stream, rec["external_id"]))
    assert not missing, f"STATE {emitted} was emitted but {len(missing)} earlier record(s) are not written: {missing[:5]}"
