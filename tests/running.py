"""Ways to run the target in tests: in this process (fast, the summary can be read) or as users do.

`run_target` runs `TargetChartMogul` on a list of messages in this process; `invoke_cli` runs its
command line in this process (click's CliRunner: exit code, STATE lines and the log, as a user
sees them); `run_cli` and `run_command` run `python -m target_chartmogul` as a subprocess reading
stdin, for the tests where the process boundary is under test (the `subprocess` tier).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import logging
import os
import pathlib
import subprocess
import sys
import typing as t

from click.testing import CliRunner

from target_chartmogul.target import TargetChartMogul
from tests.singer_messages import lines

API_KEY = "sk_test_0123456789abcdefSECRET"
REPO = pathlib.Path(__file__).resolve().parent.parent


@dataclasses.dataclass
class RunResult:
    """What one in-process run produced."""

    stdout: str
    target: TargetChartMogul | None
    error: BaseException | None
    rejects_path: pathlib.Path

    @property
    def states(self) -> list[dict[str, t.Any]]:
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]

    @property
    def rejects(self) -> list[dict[str, t.Any]]:
        if not self.rejects_path.exists():
            return []
        return [json.loads(line) for line in self.rejects_path.read_text().splitlines()]

    def counts(self, stream: str) -> dict[str, int]:
        assert self.target is not None
        return self.target.summary.as_dict().get(stream, {})


def run_target(config: dict[str, t.Any], messages: t.Iterable[t.Any], *, expect_error: bool = False) -> RunResult:
    """Run the target in this process on `messages`; fast, and the summary can be read."""
    out = io.StringIO()
    target: TargetChartMogul | None = None
    error: BaseException | None = None
    with contextlib.redirect_stdout(out):
        try:
            target = TargetChartMogul(config=config, validate_config=True)
            target.listen(io.StringIO(lines(messages)))
        except Exception as exc:
            error = exc
    if error is not None and not expect_error:
        raise error
    rejects = pathlib.Path(config.get("rejects_path", ".target-chartmogul/rejects.jsonl"))
    return RunResult(out.getvalue(), target, error, rejects)


@dataclasses.dataclass
class ProcessResult:
    returncode: int
    stdout: str
    stderr: str


def run_cli(config: dict[str, t.Any], messages: t.Iterable[t.Any] | str, tmp_path: pathlib.Path,
            *, extra_args: t.Sequence[str] = (), env: dict[str, str] | None = None,
            timeout: float = 120) -> ProcessResult:
    """Run `target-chartmogul` as users do: a subprocess reading stdin."""
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config))
    text = messages if isinstance(messages, str) else lines(messages)
    proc = subprocess.run(
        [sys.executable, "-m", "target_chartmogul", "--config", str(config_path), *extra_args],
        input=text, capture_output=True, text=True, timeout=timeout, cwd=tmp_path,
        env={**os.environ, **(env or {})}, check=False,
    )
    return ProcessResult(proc.returncode, proc.stdout, proc.stderr)


def invoke_cli(args: t.Sequence[str], cwd: pathlib.Path, *, input_text: str = "",
               env: dict[str, str] | None = None) -> ProcessResult:
    """`target-chartmogul ARGS` in this process, in `cwd`, with no TARGET_CHARTMOGUL_* variable but those in `env`.

    The command is `TargetChartMogul.cli`, as the installed script runs it; its log goes to the
    stderr of click's CliRunner, through the console handler the SDK adds when `cli` is read
    (read here, inside the runner, and taken off again with the root logger's level). The
    message reader takes the runner's stdin: its default input is the `sys.stdin` of import time.
    """
    overrides: dict[str, str | None] = {k: None for k in os.environ if k.startswith("TARGET_CHARTMOGUL_")}
    overrides.update(env or {})
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    reader = TargetChartMogul.message_reader_class
    here = os.getcwd()
    os.chdir(cwd)
    try:
        with CliRunner().isolation(input=input_text, env=overrides) as streams:
            reader.default_input = sys.stdin
            try:
                TargetChartMogul.cli.main(args=list(args), prog_name="target-chartmogul", standalone_mode=True)
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
            stdout, stderr = (stream.getvalue().decode("utf-8", "replace") for stream in streams[:2])
    finally:
        reader.default_input = sys.stdin
        os.chdir(here)
        root.handlers[:] = handlers
        root.setLevel(level)
    return ProcessResult(code, stdout, stderr)


def invoke_target(config: dict[str, t.Any], messages: t.Iterable[t.Any] | str, tmp_path: pathlib.Path,
                  *, extra_args: t.Sequence[str] = (), env: dict[str, str] | None = None) -> ProcessResult:
    """What `run_cli` does (a config file, the messages on stdin), in this process through `invoke_cli`."""
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config))
    text = messages if isinstance(messages, str) else lines(messages)
    return invoke_cli(["--config", str(config_path), *extra_args], tmp_path, input_text=text,
                      env={k: v for k, v in os.environ.items() if k.startswith("TARGET_CHARTMOGUL_")} | (env or {}))


def run_command(args: t.Sequence[str], cwd: pathlib.Path, *, input_text: str = "",
                env: dict[str, str] | None = None, timeout: float = 120) -> ProcessResult:
    """`python -m target_chartmogul ARGS` in `cwd`, with no TARGET_CHARTMOGUL_* variable but those in `env`."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TARGET_CHARTMOGUL_")}
    proc = subprocess.run([sys.executable, "-m", "target_chartmogul", *args], input=input_text, capture_output=True,
                          text=True, timeout=timeout, cwd=cwd, env={**clean, **(env or {})}, check=False)
    return ProcessResult(proc.returncode, proc.stdout, proc.stderr)


def last_line(stderr: str) -> str:
    """The message of the run's last log line (after the `time | LEVEL | logger | ` prefix)."""
    return stderr.rstrip().splitlines()[-1].split(" | ", 3)[-1]
