"""The README, the Hub definition and `--about` say the same thing."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import yaml

from scripts.settings_table import settings_markdown
from tests.running import REPO


def about() -> dict:
    proc = subprocess.run([sys.executable, "-m", "target_chartmogul", "--about", "--format", "json"],
                          capture_output=True, text=True, check=True)
    return json.loads(proc.stdout)


def test_readme_settings_tables_are_generated_from_the_schema():
    readme = (REPO / "README.md").read_text()
    block = re.search(r"<!-- settings:start[^>]*-->\n(.*?)\n<!-- settings:end -->", readme, re.S)
    assert block is not None, "README lost its settings markers"
    assert block.group(1).strip() == settings_markdown().strip(), "run: python -m scripts.settings_table"


def test_readme_opens_with_the_demo_and_test_commands():
    readme = (REPO / "README.md").read_text()
    first_block = readme.split("```bash", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in first_block.strip().splitlines()]
    assert commands == ["bash scripts/demo.sh", "bash scripts/test.sh"]
    assert "bash scripts/test.sh" in (REPO / ".ci" / "run").read_text()


def test_hub_definition_declares_every_setting_and_capability():
    hub = yaml.safe_load((REPO / "meltano-hub" / "target-chartmogul.yml").read_text())
    info = about()
    assert [s["name"] for s in hub["settings"]] == list(info["settings"]["properties"])
    assert hub["capabilities"] == info["capabilities"]
    sensitive = {s["name"] for s in hub["settings"] if s.get("sensitive")}
    assert sensitive == {"api_key"}
