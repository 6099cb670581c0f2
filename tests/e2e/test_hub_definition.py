"""The Meltano Hub definition installs as the README says: `meltano add --from-ref`, a checkout next to the project.

A new Meltano project in a temporary directory, this repository beside it as
`../target-chartmogul` (a symlink), then `meltano add --plugin-type loader target-chartmogul
--from-ref meltano-hub/target-chartmogul.yml`, `meltano invoke target-chartmogul --about`, and
one real sync of the sample plans into the fake API through `meltano invoke`.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import uuid

import pytest

from tests.fake_chartmogul import FakeChartMogul
from tests.running import API_KEY, REPO

TIMEOUT = 600


def meltano(meltano_bin: pathlib.Path, project: pathlib.Path, env: dict[str, str], *args: str,
            input_text: str | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([str(meltano_bin), *args], cwd=project, env=env, input=input_text, capture_output=True,
                          text=True, timeout=TIMEOUT, check=False)
    assert proc.returncode == 0, f"meltano {' '.join(args)} exited {proc.returncode}:\n{(proc.stdout + proc.stderr)[-6000:]}"
    return proc


@pytest.mark.e2e
def test_hub_definition_installs_from_a_checkout_next_to_the_project(meltano_bin, fake: FakeChartMogul, ds, tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    (tmp_path / "target-chartmogul").symlink_to(REPO, target_is_directory=True)
    (project / "meltano.yml").write_text(
        f"version: 1\nproject_id: {uuid.uuid4()}\ndefault_environment: dev\nenvironments:\n- name: dev\n"
        "send_anonymous_usage_stats: false\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MELTANO_", "TARGET_CHARTMOGUL_"))}
    env.update({"MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false", "MELTANO_DISABLE_TRACKING": "true"})

    definition = REPO / "meltano-hub" / "target-chartmogul.yml"
    meltano(meltano_bin, project, env, "add", "--plugin-type", "loader", "target-chartmogul", "--from-ref",
            str(definition))
    about = json.loads(meltano(meltano_bin, project, env, "invoke", "target-chartmogul", "--about", "--format",
                               "json").stdout)
    assert "load_method" not in about["settings"]["properties"]
    assert "metrics_log_level" in about["settings"]["properties"]

    run_env = {**env, "TARGET_CHARTMOGUL_API_KEY": API_KEY, "TARGET_CHARTMOGUL_API_URL": fake.url,
               "TARGET_CHARTMOGUL_DATA_SOURCE_UUID": ds}
    proc = meltano(meltano_bin, project, run_env, "invoke", "target-chartmogul",
                   input_text=(REPO / "samples" / "plans.singer").read_text())
    assert "target-chartmogul finished: 2 written, 0 unchanged, 0 rejected" in proc.stderr, proc.stderr[-3000:]
    assert sorted(p["external_id"] for p in fake.plans.values()) == ["basic-monthly", "pro-yearly"]
