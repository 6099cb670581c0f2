"""The demo (scripts/demo.py, what `bash scripts/demo.sh` runs) explains itself: labelled runs, the deliberate
bad rows announced, no raw STATE, the API calls explained, what to try next (issue 14)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.running import REPO


@pytest.mark.subprocess  # the demo script as `bash scripts/demo.sh` runs it
def test_the_demo_output_is_labelled_and_explained(tmp_path):
    env = {**os.environ, "TCM_DEMO_DIR": str(tmp_path / "demo")}
    proc = subprocess.run([sys.executable, "-m", "scripts.demo"], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=180, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    headings = re.findall(r"^== (.+)$", out, re.M)
    assert headings == [
        "target-chartmogul demo: sample billing data into a fake ChartMogul API on this machine",
        "Run 1: the first sync (everything is new)",
        "Run 2: the same input again (a rerun must change nothing)",
        "What ChartMogul (the fake) now holds",
        "Refused rows (the rejects file)",
        "What to try next",
    ]
    intro = out.split("== Run 1", 1)[0]
    assert "3 sample rows are wrong on purpose" in intro
    for row in ("billing-customers acct-4", "billing-invoices INV-1003", "billing-refunds REF-2"):
        assert row in intro
    # Each run's log is labelled; the refused rows are the deliberate ones, each shown once.
    assert "-- Run 1: the target's log (stderr) --" in out and "-- Run 2: the target's log (stderr) --" in out
    refused = out.split("== Refused rows (the rejects file)", 1)[1].split("\n== ", 1)[0]
    assert refused.count("[deliberate]") == 3 and "UNEXPECTED" not in refused
    # No raw STATE line; what stdout carried is said in words.
    assert '{"bookmarks"' not in out and "STATE emitted" not in out
    assert "Singer STATE message(s)" in out
    # The API calls of the rerun are explained: account check and one lookup, no write.
    run2 = re.search(r"-- Run 2 made (\d+) API calls: (.+) --", out)
    assert run2 is not None
    assert run2.group(1) == "3"
    assert "2 account check(s)" in run2.group(2) and "external_id=INV-9999" in run2.group(2)
    assert run2.group(2).endswith("0 write(s).")
    assert "A rerun whose input has no such row makes no call at all." in out
    assert "METRIC" not in out
    tips = out.split("== What to try next", 1)[1]
    assert "--about" in tips and "dry_run" in tips and "With Meltano" in tips
    assert (tmp_path / "demo" / "rejects.jsonl").exists()
