"""A copy of the repo's meltano.yml in a temporary directory, run with the Meltano of .tools/."""

from __future__ import annotations

import os
import pathlib
import subprocess
import time

from tests.e2e.postgres import Database
from tests.fake_chartmogul import FakeChartMogul
from tests.running import API_KEY, REPO

TIMEOUT = 600


class MeltanoProject:
    """A copy of the repo's meltano.yml in a temporary directory, run with the Meltano of .tools/."""

    def __init__(
        self, meltano: pathlib.Path, root: pathlib.Path, env: dict[str, str], *, project_yml: str | None = None
    ) -> None:
        self.meltano = meltano
        self.root = root
        self.env = env
        self.timings: dict[str, float] = {}
        text = project_yml if project_yml is not None else (REPO / "meltano.yml").read_text()
        assert "pip_url: -e .\n" in text
        # `-e .` means "this repository" when meltano runs in the repo; the copy must say so explicitly.
        root.mkdir(parents=True, exist_ok=True)
        (root / "meltano.yml").write_text(text.replace("pip_url: -e .\n", f"pip_url: -e {REPO}\n"))

    def __call__(self, *args: str, label: str | None = None) -> subprocess.CompletedProcess[str]:
        started = time.monotonic()
        proc = subprocess.run([str(self.meltano), *args], capture_output=True, text=True, cwd=self.root,
                              env=self.env, timeout=TIMEOUT, check=False)
        self.timings[label or " ".join(args)] = round(time.monotonic() - started, 1)
        output = (proc.stdout + proc.stderr)[-6000:]
        assert proc.returncode == 0, f"meltano {' '.join(args)} exited {proc.returncode}:\n{output}"
        return proc


def meltano_env(db: Database, fake: FakeChartMogul, ds: str, rejects: pathlib.Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MELTANO_", "TAP_POSTGRES_", "TARGET_CHARTMOGUL_"))}
    env.update({
        "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
        "MELTANO_DISABLE_TRACKING": "true",
        "TAP_POSTGRES_HOST": db.server.host,
        "TAP_POSTGRES_PORT": str(db.server.port),
        "TAP_POSTGRES_USER": db.server.user,
        "TAP_POSTGRES_PASSWORD": db.server.password,  # the tap insists on a password, even an empty one
        "TAP_POSTGRES_DATABASE": db.name,
        "TARGET_CHARTMOGUL_API_URL": fake.url,
        "TARGET_CHARTMOGUL_API_KEY": API_KEY,
        "TARGET_CHARTMOGUL_DATA_SOURCE_UUID": ds,
        "TARGET_CHARTMOGUL_REJECTS_PATH": str(rejects),
        "TARGET_CHARTMOGUL_LEDGER_URL": f"sqlite:///{rejects.parent / 'ledger.db'}",
    })
    return env
