"""Run target-chartmogul on the bundled samples against the fake ChartMogul API, and explain what happened.

Starts the fake on a free 127.0.0.1 port, runs the real `target-chartmogul` command on
samples/*.singer twice (a rerun changes nothing), then shows what the fake holds and the
refused rows, renames a customer behind the loader's back and lets `reconcile: true` find it,
and says what to try next. Its files stay in .target-chartmogul/demo/ until the
next demo. tests/test_demo.py checks the labels of this output.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys
import typing as t

import requests

from tests.fake_chartmogul import FakeChartMogul

ROOT = pathlib.Path(__file__).resolve().parent.parent
WORK = pathlib.Path(os.environ.get("TCM_DEMO_DIR") or ROOT / ".target-chartmogul" / "demo")  # the tests use their own
API_KEY = "demo-key-not-secret"
SAMPLES = ["plans.singer", "customers.singer", "invoices.singer", "transactions.singer"]
# The sample rows that are wrong on purpose: (stream, external id) -> what is wrong with them.
DELIBERATE = {
    ("billing-customers", "acct-4"): "country 'Germany' instead of the ISO code 'DE'",
    ("billing-invoices", "INV-1003"): "a line amount of 12.5 cents (amounts are whole cents)",
    ("billing-refunds", "REF-2"): "a refund of invoice INV-9999, which exists nowhere",
}
ACCOUNT_CHECK = ("/ping", "/data_sources/")
# How the samples' streams map (the custom attributes the customers carry, the refunds stream's object): the demo runs
# with these, and the config it suggests to try next has them too.
STREAMS = {"billing-customers": {"object": "customers", "custom_attributes": ["seats", "segment"]},
           "billing-refunds": {"object": "transactions"}}
DEV_CONFIG = {"api_key": "dev", "api_url": "http://127.0.0.1:8089/v1", "data_source_uuid": "ds_dev", "streams": STREAMS}


def shown(path: pathlib.Path) -> str:
    """A path as the reader types it: relative to the repository when it is inside."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def section(title: str) -> None:
    print(f"\n== {title}", flush=True)


def run_target(config_path: pathlib.Path, input_text: str, label: str, *, exits: tuple[int, ...] = (0,)) -> int:
    """Run the real CLI; show its log (stderr) indented, and say what its stdout (Singer STATE) was for."""
    target = pathlib.Path(sys.executable).with_name("target-chartmogul")
    command = [str(target)] if target.exists() else [sys.executable, "-m", "target_chartmogul"]
    proc = subprocess.run([*command, "--config", str(config_path)], input=input_text, text=True,
                          capture_output=True, check=False, cwd=WORK)
    print(f"-- {label}: the target's log (stderr) --")
    for line in proc.stderr.splitlines():
        print(f"   {line}")
    if proc.returncode not in exits:
        raise SystemExit(f"target-chartmogul exited {proc.returncode}")
    states = [line for line in proc.stdout.splitlines() if line.strip()]
    if states:
        print(f"-- {label}: stdout carried {len(states)} Singer STATE message(s): the tap's bookmarks, passed on once "
              "everything before them was written or refused. Meltano stores the last one to resume from. --")
    else:
        print(f"-- {label}: stdout carried no Singer STATE message: a run that writes nothing moves no bookmark. --")
    return proc.returncode


def describe_calls(requests: t.Sequence[t.Any]) -> str:
    """What the calls of a run were for: the account check, listings, lookups by external id, writes."""
    reads = [r for r in requests if r.method == "GET"]
    checks = [r for r in reads if r.path.startswith(ACCOUNT_CHECK)]
    lookups = [r for r in reads if r not in checks and "external_id" in r.query]
    listings = [r for r in reads if r not in checks and r not in lookups]
    parts = [f"{len(checks)} account check(s) (the key and the data source, before the first call of a run)"]
    if listings:
        paths = ", ".join(r.path for r in listings)
        parts.append(f"{len(listings)} listing(s) of what the data source holds ({paths}: once, the sync memory being empty)")
    parts += [f"a lookup of {r.path} external_id={r.query['external_id']}" for r in lookups]
    parts.append(f"{len(requests) - len(reads)} write(s)")
    return "; ".join(parts)


def show_holdings(fake: FakeChartMogul) -> None:
    with fake.lock:
        for customer in sorted(fake.customers.values(), key=lambda c: c["external_id"]):
            attributes = customer["attributes"]
            print(f"   customer {customer['external_id']:<8} {customer['name']:<22} {customer.get('country') or '':<3}"
                  f" tags={attributes['tags']} custom={attributes['custom']}")
        for plan in fake.plans.values():
            every = f"{plan['interval_count']} {plan['interval_unit']}"
            print(f"   plan     {plan['external_id']:<8} {plan['name']} every {every}")
        for invoice in fake.invoices.values():
            total = sum(li.get("amount_in_cents") or 0 for li in invoice["line_items"])
            print(f"   invoice  {invoice['external_id']:<8} {invoice['currency']} {total / 100:.2f}"
                  f" lines={len(invoice['line_items'])} transactions={len(invoice['transactions'])}")


def show_rejects(rejects: pathlib.Path) -> None:
    """The refused rows, one line each, marked as the deliberate ones (or not)."""
    seen: dict[tuple[str, str], str] = {}
    for line in rejects.read_text().splitlines() if rejects.exists() else []:
        entry = json.loads(line)
        seen[(entry["stream"], str(entry["key"].get("external_id")))] = entry["reason"]
    for (stream, key), reason in seen.items():
        mark = "deliberate" if (stream, key) in DELIBERATE else "UNEXPECTED"
        print(f"   [{mark}] {stream} {key}: {reason}")
    print(f"   Each run appends its refusals to {shown(rejects)} (one JSON line each, with the record);"
          f" both runs refused the same {len(seen)} rows, so it holds {len(rejects.read_text().splitlines())} lines.")


def reconcile(fake: FakeChartMogul, config: dict[str, t.Any], text: str) -> None:
    """Rename a customer behind the loader's back (through the fake's API), then let `reconcile: true` find it."""
    section("Run 3: is ChartMogul right? (a customer renamed in ChartMogul by hand; reconcile: true compares)")
    with fake.lock:
        uuid = next(c["uuid"] for c in fake.customers.values() if c["external_id"] == "acct-1")
    answer = requests.patch(f"{fake.url}/customers/{uuid}", json={"name": "Acme AG"}, auth=(API_KEY, ""), timeout=10)
    answer.raise_for_status()
    print("   Someone renamed acct-1 to 'Acme AG' in ChartMogul; the database still says 'Acme GmbH'.")
    path = WORK / "reconcile-config.json"
    path.write_text(json.dumps({**config, "reconcile": True}, indent=2))
    before = len(fake.requests)
    code = run_target(path, text, "Run 3", exits=(0, 3))
    writes = [r for r in list(fake.requests)[before:] if r.method != "GET"]
    report = WORK / "reconcile.jsonl"
    meaning = "the two sides differ" if code == 3 else "the two sides agree"
    print(f"-- Run 3 exited {code} ({code}: {meaning}) and made {len(writes)} write(s). "
          f"What differs ({shown(report)}, one JSON line each): --")
    for line in report.read_text(encoding="utf-8").splitlines():
        found = json.loads(line)
        if found["kind"] == "different":
            print(f"   {found['object']} {found['key']} {found['field']}: "
                  f"{json.dumps(found['source'], ensure_ascii=False)} in the source, "
                  f"{json.dumps(found['chartmogul'], ensure_ascii=False)} in ChartMogul")
    print(f"   The same with the monthly revenue of both sides as a chart: {shown(report.with_suffix('.html'))}"
          " (open it in a browser). The refused sample rows are listed there too.")


def what_next(config_path: pathlib.Path) -> None:
    section("What to try next")
    print(f"   - Read the files of this demo in {shown(WORK)}/: {config_path.name} (the settings it ran with),")
    print("     rejects.jsonl (every refused row, with its reason and the record) and ledger.db (the sync memory).")
    print("   - See every setting: .venv/bin/target-chartmogul --about (the README's Settings table says the same).")
    print("   - Drive it yourself against a fake API that stays up (`kill %1` stops it):")
    for command in (
        ".venv/bin/python -m tests.fake_chartmogul --port 8089 --api-key dev --data-source-uuid ds_dev &",
        f"echo '{json.dumps(DEV_CONFIG)}' > my.json",
        f"cat {' '.join(f'samples/{name}' for name in SAMPLES)} | .venv/bin/target-chartmogul --config my.json",
        "sed 's/\"Germany\"/\"DE\"/' samples/customers.singer | .venv/bin/target-chartmogul --config my.json"
        "   # acct-4 lands",
    ):
        print(f"       {command}")
    print('     Add "dry_run": true to my.json to see what a run would write without writing it.')
    print("   - Load your own database: README.md, 'With Meltano' (tap-postgres -> target-chartmogul).")


def main() -> int:
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    with FakeChartMogul(api_key=API_KEY) as fake:
        ds = fake.add_data_source("demo")["uuid"]
        config = {"api_key": API_KEY, "api_url": fake.url, "data_source_uuid": ds,
                  "rejects_path": str(WORK / "rejects.jsonl"), "ledger_url": f"sqlite:///{WORK / 'ledger.db'}",
                  "streams": STREAMS}
        config_path = WORK / "config.json"
        config_path.write_text(json.dumps(config, indent=2))
        files = [ROOT / "samples" / name for name in SAMPLES if (ROOT / "samples" / name).exists()]
        text = "".join(f.read_text() for f in files)

        section("target-chartmogul demo: sample billing data into a fake ChartMogul API on this machine")
        print(f"   Fake ChartMogul API at {fake.url}, data source {ds}; input: {', '.join(f.name for f in files)}")
        print(f"   {len(DELIBERATE)} sample rows are wrong on purpose, to show how refused rows are reported:")
        for (stream, key), wrong in DELIBERATE.items():
            print(f"     - {stream} {key}: {wrong}")

        section("Run 1: the first sync (everything is new)")
        run_target(config_path, text, "Run 1")
        first = list(fake.requests)
        print(f"-- Run 1 made {len(first)} API calls: {describe_calls(first)}. --")

        section("Run 2: the same input again (a rerun must change nothing)")
        run_target(config_path, text, "Run 2")
        second = list(fake.requests)[len(first):]
        print(f"-- Run 2 made {len(second)} API calls: {describe_calls(second)}. --")
        print("   Nothing was written: every good record is unchanged and the sync memory knows it without asking.\n"
              "   The calls are for the deliberate rows, which are refused again on every run until fixed: the refund\n"
              "   REF-2 needs invoice INV-9999, which might have reached ChartMogul since, so the target looks once.\n"
              "   A rerun whose input has no such row makes no call at all.")

        section("What ChartMogul (the fake) now holds")
        show_holdings(fake)
        section("Refused rows (the rejects file)")
        show_rejects(WORK / "rejects.jsonl")
        reconcile(fake, config, text)
        what_next(config_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
