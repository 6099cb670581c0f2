"""`target-chartmogul` run in this process through click's CliRunner: for checks of what the command says.

A subprocess costs a Python start-up per check; the SDK's own CLI tests use CliRunner. The log
goes to a handler of the test's own on the target's logger (the SDK's handler writes to the
stderr it found at start-up, which CliRunner cannot capture), so `lines` are the messages as
logged, without the time and level prefix. The signal handlers the target installs and the
console handler the SDK adds to the root logger are put back afterwards, and TARGET_CHARTMOGUL_*
variables of the test's environment are hidden.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import pathlib
import signal
import tempfile
import typing as t

from click.testing import CliRunner

from target_chartmogul.target import TargetChartMogul


@dataclasses.dataclass
class CliResult:
    """What one in-process command produced."""

    exit_code: int
    stdout: str
    records: list[logging.LogRecord]

    @property
    def lines(self) -> list[str]:
        """Every log message, in order."""
        return [record.getMessage() for record in self.records]

    @property
    def errors(self) -> list[str]:
        """The ERROR messages."""
        return [record.getMessage() for record in self.records if record.levelno >= logging.ERROR]


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def _working_directory(path: pathlib.Path | None) -> t.Iterator[None]:
    before = pathlib.Path.cwd()
    if path is not None:
        os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def cli(args: t.Sequence[str], *, input_text: str | None = None, env: dict[str, str] | None = None,
        cwd: pathlib.Path | None = None) -> CliResult:
    """Run `target-chartmogul ARGS` in this process (in `cwd`, which `--config ENV` reads `.env` of).

    `input_text` is handed over as `--input FILE`: the SDK's reader bound `sys.stdin` when it was imported, so
    CliRunner's stdin never reaches it.
    """
    if input_text is not None:
        with tempfile.NamedTemporaryFile("w", suffix=".singer", delete=False, encoding="utf-8") as feed:
            feed.write(input_text)
        try:
            return cli([*args, "--input", feed.name], env=env, cwd=cwd)
        finally:
            pathlib.Path(feed.name).unlink()
    hidden: dict[str, str | None] = {name: None for name in os.environ if name.startswith("TARGET_CHARTMOGUL_")}
    logger = logging.getLogger(TargetChartMogul.name)
    collect, level = _Collect(), logger.level
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
    root = logging.getLogger()
    root_handlers, root_level = list(root.handlers), root.level  # the SDK's CLI adds a console handler per call
    logger.addHandler(collect)
    logger.setLevel(logging.INFO)
    try:
        with _working_directory(cwd):
            result = CliRunner().invoke(TargetChartMogul.cli, list(args), input="", env={**hidden, **(env or {})})
    finally:
        logger.removeHandler(collect)
        logger.setLevel(level)
        root.handlers[:] = root_handlers
        root.setLevel(root_level)
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return CliResult(result.exit_code, result.stdout, collect.records)
