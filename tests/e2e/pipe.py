"""Running tap-postgres | target-chartmogul as real processes: discovery, stream selection, the pipe."""

from __future__ import annotations

import dataclasses
import json
import pathlib
import subprocess
import typing as t

TIMEOUT = 180


def discover(tap: pathlib.Path, config: pathlib.Path, workdir: pathlib.Path) -> dict[str, t.Any]:
    proc = subprocess.run([str(tap), "--config", str(config), "--discover"], capture_output=True, text=True,
                          timeout=TIMEOUT, cwd=workdir, check=False)
    assert proc.returncode == 0, f"tap-postgres --discover failed:\n{proc.stderr[-3000:]}"
    return json.loads(proc.stdout)


def select_streams(catalog: dict[str, t.Any], selected: t.Iterable[str]) -> dict[str, t.Any]:
    """Select streams in their breadcrumb-[] metadata, INCREMENTAL on updated_at; deselect the rest."""
    wanted = set(selected)
    found = {s["tap_stream_id"] for s in catalog["streams"]}
    assert wanted <= found, f"streams {sorted(wanted - found)} were not discovered (found {sorted(found)})"
    for stream in catalog["streams"]:
        root = next(m for m in stream["metadata"] if m["breadcrumb"] == [])["metadata"]
        chosen = stream["tap_stream_id"] in wanted
        root["selected"] = chosen
        if chosen:
            assert "updated_at" in stream["schema"]["properties"], stream["tap_stream_id"]
            root["replication-method"] = "INCREMENTAL"
            root["replication-key"] = "updated_at"
            stream["replication_method"] = "INCREMENTAL"
            stream["replication_key"] = "updated_at"
    return catalog


@dataclasses.dataclass
class PipeRun:
    tap_stderr: str
    target_stderr: str
    states: list[dict[str, t.Any]]

    @property
    def final_state(self) -> dict[str, t.Any]:
        assert self.states, f"the target emitted no STATE\n{self.target_stderr[-3000:]}"
        return self.states[-1]


def run_pipe(tap: pathlib.Path, target: list[str], workdir: pathlib.Path, name: str,
             state: dict[str, t.Any] | None = None) -> PipeRun:
    """`tap-postgres --config t.json --catalog c.json [--state s.json] | target-chartmogul --config config.json`."""
    tap_args = [str(tap), "--config", "t.json", "--catalog", "c.json"]
    if state is not None:
        (workdir / f"{name}-state.json").write_text(json.dumps(state))
        tap_args += ["--state", f"{name}-state.json"]
    tap_err = workdir / f"{name}-tap.stderr"
    target_err = workdir / f"{name}-target.stderr"
    with tap_err.open("w") as tap_log, target_err.open("w") as target_log:
        tap_proc = subprocess.Popen(tap_args, stdout=subprocess.PIPE, stderr=tap_log, cwd=workdir)
        target_proc = subprocess.Popen([*target, "--config", "config.json"], stdin=tap_proc.stdout,
                                       stdout=subprocess.PIPE, stderr=target_log, cwd=workdir, text=True)
        assert tap_proc.stdout is not None
        tap_proc.stdout.close()  # the target owns the read end; the tap gets SIGPIPE if the target dies
        try:
            out, _ = target_proc.communicate(timeout=TIMEOUT)
            tap_rc = tap_proc.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            tap_proc.kill()
            target_proc.kill()
            raise
    result = PipeRun(tap_err.read_text(), target_err.read_text(),
                     [json.loads(line) for line in out.splitlines() if line.strip()])
    assert tap_rc == 0, f"tap-postgres exited {tap_rc}:\n{result.tap_stderr[-3000:]}"
    target_rc = target_proc.returncode
    assert target_rc == 0, f"target-chartmogul exited {target_rc}:\n{result.target_stderr[-4000:]}"
    return result


def bookmark(state: dict[str, t.Any], stream: str) -> t.Any:
    return state["bookmarks"][stream]["replication_key_value"]
