"""The README, the Hub definition and `--about` say the same thing."""

from __future__ import annotations

import ast
import json
import re

import yaml

from scripts.settings_table import settings_markdown
from target_chartmogul.config.settings import MODES
from target_chartmogul.target import TargetChartMogul
from tests.fake_chartmogul import FakeChartMogul
from tests.running import API_KEY, REPO, invoke_cli, invoke_target


def about(tmp_path) -> dict:
    proc = invoke_cli(["--about", "--format", "json"], tmp_path)
    assert proc.returncode == 0, proc.stderr
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


def test_hub_definition_declares_every_setting_and_capability(tmp_path):
    hub = yaml.safe_load((REPO / "meltano-hub" / "target-chartmogul.yml").read_text())
    info = about(tmp_path)
    assert [s["name"] for s in hub["settings"]] == list(info["settings"]["properties"])
    assert hub["capabilities"] == info["capabilities"]
    sensitive = {s["name"] for s in hub["settings"] if s.get("sensitive")}
    assert sensitive == {"api_key"}


# The README's examples, names, paths and messages, against the code (issue 14) -----------------
README = REPO / "README.md"


def package_strings() -> list[str]:
    """Every string literal of the package (adjacent literals joined, an f-string's fields as NUL)."""
    found = []
    for path in sorted((REPO / "target_chartmogul").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                found.append(node.value)
            elif isinstance(node, ast.JoinedStr):
                found.append("".join(v.value if isinstance(v, ast.Constant) else "\0" for v in node.values))
    return found


def in_one_string(fragments: list[str], strings: list[str]) -> bool:
    """Whether one string of the package holds every fragment, in this order (not each in a string of its own)."""
    pattern = re.compile(".*?".join(re.escape(fragment) for fragment in fragments), re.S)
    return any(pattern.search(string) for string in strings)


PACKAGE_STRINGS = package_strings()
# What a troubleshooting message leaves to the run: … and <x> placeholders, counts, quoted values,
# identifiers (snake_case: field and setting names), paths. The rest must be text the code holds.
VARIABLE = re.compile(r"…|<[^>]*>|\b[NMKR]\b|\d+|'[^']*'|\"[^\"]*\"|`[^`]*`|\b\w*_\w*\b|\S*[/.]\S*[/.]\S*")


def readme_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(), re.S)


def troubleshooting_messages() -> list[str]:
    section = README.read_text().split("## Troubleshooting", 1)[1].split("\n## ", 1)[0]
    messages = []
    for row in section.splitlines():
        if row.startswith("| ") and not row.startswith(("| Message", "|:--")):
            first = row.split(" | ", 1)[0]
            messages += re.findall(r"``(.+?)``|`([^`]+)`", first)
    return [double or single for double, single in messages]


def real_messages(tmp_path) -> str:
    """Real output of runs that meet composed messages: the bundled samples (bad rows included) against
    the fake, then the fake gone (a refused connection), an unknown object, a misspelt setting, and
    `--config ENV` with a value of the wrong type."""
    text = "".join((REPO / "samples" / name).read_text()
                   for name in ("plans.singer", "customers.singer", "invoices.singer", "transactions.singer"))
    with FakeChartMogul(api_key=API_KEY) as fake:
        ds = fake.add_data_source("docs")["uuid"]
        config = {"api_key": API_KEY, "api_url": fake.url, "data_source_uuid": ds,
                  "rejects_path": str(tmp_path / "rejects.jsonl"), "ledger_url": f"sqlite:///{tmp_path / 'l.db'}",
                  "streams": {"billing-refunds": {"object": "transactions"}}}
        samples = invoke_target(config, text, tmp_path).stderr
    samples += invoke_target({**config, "ledger_url": f"sqlite:///{tmp_path / 'l2.db'}"}, text, tmp_path).stderr  # gone
    samples += invoke_target({**config, "streams": {"accounts": {"object": "customer"}}}, "", tmp_path).stderr
    samples += invoke_target({**config, "max_concurency": 2}, "", tmp_path).stderr  # a misspelt setting
    env = {"TARGET_CHARTMOGUL_API_KEY": "k", "TARGET_CHARTMOGUL_MAX_CONCURRENCY": "ten"}
    return samples + invoke_cli(["--config", "ENV"], tmp_path, env=env).stderr


def test_readme_json_examples_are_settings_the_target_accepts():
    blocks = readme_blocks("json")
    assert len(blocks) >= 3
    for block in blocks:
        try:
            example = json.loads(block)
        except json.JSONDecodeError:
            example = json.loads("{" + block + "}")  # a fragment: "stream_maps": {...}
        TargetChartMogul(config={"api_key": "k", **example}, validate_config=True)  # unknown names would raise


def test_readme_environment_variables_name_settings():
    text = README.read_text()
    settings = set(TargetChartMogul.settings_schema()["properties"])
    named = set(re.findall(r"TARGET_CHARTMOGUL_([A-Z][A-Z_]*[A-Z])", text)) - {"LOGLEVEL"}
    assert named, "the README shows no TARGET_CHARTMOGUL_ variable"
    assert {name.lower() for name in named} - settings == set()
    tap = {s["name"] for s in next(p for p in yaml.safe_load((REPO / "meltano.yml").read_text())["plugins"]["extractors"]
                                   if p["name"] == "tap-postgres")["settings"]}
    assert {name.lower() for name in re.findall(r"TAP_POSTGRES_([A-Z_]+[A-Z])", text)} - tap == set()


def test_readme_paths_exist():
    text = README.read_text()
    linked = re.findall(r"\]\(([^)#:]+)\)", text)
    mentioned = re.findall(r"(?<![\w./<~-])((?:tests|scripts|docs|samples|meltano-hub|bench|target_chartmogul)/[\w./-]*\w)", text)
    missing = sorted({path for path in [*linked, *mentioned] if not (REPO / path).exists()})
    assert missing == []


def test_readme_meltano_recipe_seeds_the_database_meltano_yml_reads():
    recipe = next(block for block in readme_blocks("bash") if "meltano run tap-postgres target-chartmogul" in block)
    tap = next(p for p in yaml.safe_load((REPO / "meltano.yml").read_text())["plugins"]["extractors"]
               if p["name"] == "tap-postgres")
    database = tap["config"]["database"]
    assert f"createdb {database}\n" in recipe
    seeded = re.search(rf"psql -d {database} -f (\S+)", recipe)
    assert seeded is not None and (REPO / seeded.group(1)).is_file()
    assert set(tap["config"]["filter_schemas"]) <= set(re.findall(r"CREATE SCHEMA (\w+)", (REPO / seeded.group(1)).read_text()))
    assert recipe.index("createdb") < recipe.index("meltano install") < recipe.index("meltano run")


def test_readme_object_table_names_every_mode_of_each_object():
    section = README.read_text().split("## What each object takes", 1)[1].split("\n## ", 1)[0]
    rows = {row.split(" | ")[0].strip("| "): row.split(" | ")[1] for row in section.splitlines()
            if row.startswith("| ") and row.count(" | ") >= 2}
    checked = [obj for obj in rows if len(MODES.get(obj, ())) > 1]  # where a stream chooses its mode
    assert {"customers", "plans"} <= set(checked)
    for obj in checked:
        assert {mode for mode in MODES[obj] if f"`{mode}`" not in rows[obj]} == set(), obj


def test_fragments_count_only_when_one_string_holds_them_all_in_order():
    strings = ["a refused connection to the host", "names no data source"]
    assert in_one_string(["refused connection", "the host"], strings)
    assert not in_one_string(["the host", "refused connection"], strings)
    assert not in_one_string(["refused connection", "no data source"], strings)


def test_readme_troubleshooting_quotes_what_the_code_prints(tmp_path):
    """Each message's fixed text is in the code, or (for messages the code composes) in a real run's output."""
    messages = troubleshooting_messages()
    assert len(messages) >= 10
    stderr = None
    for message in messages:
        fragments = [f.strip() for f in VARIABLE.split(message)]
        fragments = [f for f in fragments if len(f.split()) >= 2]
        if fragments and in_one_string(fragments, PACKAGE_STRINGS):
            continue
        stderr = stderr if stderr is not None else real_messages(tmp_path)
        pattern = re.escape(message).replace("…", ".+?")
        assert re.search(pattern, stderr), f"README troubleshooting quotes text the code does not print: {message}"
