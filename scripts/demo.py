"""Run target-chartmogul on the bundled samples against the fake ChartMogul API.

Starts the fake on a free 127.0.0.1 port, runs the real `target-chartmogul` command
on samples/*.singer (twice, to show that a rerun changes nothing), then prints
what the fake holds.
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
import tempfile

from tests.fake_chartmogul import FakeChartMogul

ROOT = pathlib.Path(__file__).resolve().parent.parent
API_KEY = "demo-key-not-secret"
SAMPLES = ["plans.singer", "customers.singer", "invoices.singer", "transactions.singer"]


def run_target(config_path: pathlib.Path, input_text: str) -> None:
    target = pathlib.Path(sys.executable).with_name("target-chartmogul")
    command = [str(target)] if target.exists() else [sys.executable, "-m", "target_chartmogul"]
    proc = subprocess.run([*command, "--config", str(config_path)], input=input_text, text=True,
                          capture_output=True, check=False)
    sys.stderr.write(proc.stderr)
    if proc.returncode != 0:
        raise SystemExit(f"target-chartmogul exited {proc.returncode}")
    print(f"STATE emitted: {proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else '(none)'}")


def main() -> int:
    with FakeChartMogul(api_key=API_KEY) as fake, tempfile.TemporaryDirectory() as tmp:
        ds = fake.add_data_source("demo")["uuid"]
        config = {"api_key": API_KEY, "api_url": fake.url, "data_source_uuid": ds,
                  "rejects_path": str(pathlib.Path(tmp) / "rejects.jsonl"),
                  "ledger_url": f"sqlite:///{pathlib.Path(tmp) / 'ledger.db'}",
                  "streams": {"billing-customers": {"object": "customers", "custom_attributes": ["seats", "segment"]},
                              "billing-refunds": {"object": "transactions"}}}
        config_path = pathlib.Path(tmp) / "config.json"
        config_path.write_text(json.dumps(config))
        files = [ROOT / "samples" / name for name in SAMPLES if (ROOT / "samples" / name).exists()]
        text = "".join(f.read_text() for f in files)
        print(f"== Fake ChartMogul API at {fake.url}, data source {ds}")
        print(f"== Run 1: target-chartmogul on {', '.join(f.name for f in files)}")
        run_target(config_path, text)
        calls_first = len(fake.requests)
        print("== Run 2: the same input again (idempotent: nothing duplicated)")
        run_target(config_path, text)
        print(f"== API calls: run 1 {calls_first}, run 2 {len(fake.requests) - calls_first}")
        print("== What ChartMogul (the fake) now holds:")
        with fake.lock:
            for customer in sorted(fake.customers.values(), key=lambda c: c["external_id"]):
                attributes = customer["attributes"]
                print(f"  customer {customer['external_id']:<8} {customer['name']:<22} {customer.get('country') or '':<3}"
                      f" tags={attributes['tags']} custom={attributes['custom']}")
            for plan in fake.plans.values():
                every = f"{plan['interval_count']} {plan['interval_unit']}"
                print(f"  plan     {plan['external_id']:<8} {plan['name']} every {every}")
            for invoice in fake.invoices.values():
                total = sum(li.get("amount_in_cents") or 0 for li in invoice["line_items"])
                print(f"  invoice  {invoice['external_id']:<8} {invoice['currency']} {total / 100:.2f}"
                      f" lines={len(invoice['line_items'])} transactions={len(invoice['transactions'])}")
        rejects = pathlib.Path(tmp) / "rejects.jsonl"
        if rejects.exists():
            print("== Rejected records (as written to the rejects file):")
            for line in rejects.read_text().splitlines():
                entry = json.loads(line)
                print(f"  {entry['stream']} {entry['key']}: {entry['reason']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
