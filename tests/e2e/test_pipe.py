"""The plain Singer pipe, as real processes: tap-postgres --catalog c.json | target-chartmogul.

The demo billing database (seed.sql) goes into a fake ChartMogul; afterwards the fake must hold
exactly what the database holds. Then one customer changes and an incremental run (with the
first run's STATE) must send that change and nothing else.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import subprocess
import typing as t

import pytest
import yaml

from tests.e2e.compare import assert_fake_matches_db, assert_only_customer_written
from tests.e2e.postgres import Database
from tests.fake_chartmogul import FakeChartMogul
from tests.running import API_KEY, REPO

pytestmark = pytest.mark.e2e

SELECTED = ("billing-plans", "billing-customers", "billing-invoices_with_lines", "billing-refunds")
TIMEOUT = 180


def loader_streams_config() -> dict[str, t.Any]:
    """The loader's `streams` setting from meltano.yml, so the pipe and Meltano use the same mapping."""
    project = yaml.safe_load((REPO / "meltano.yml").read_text())
    loader = next(p for p in project["plugins"]["loaders"] if p["name"] == "target-chartmogul")
    return loader["config"]["streams"]


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


def write_target_config(workdir: pathlib.Path, fake: FakeChartMogul, ds: str, memory: str) -> None:
    """config.json of the target: meltano.yml's streams, the sync memory in `memory` (a file in workdir)."""
    (workdir / "config.json").write_text(json.dumps({
        "api_key": API_KEY,
        "api_url": fake.url,
        "data_source_uuid": ds,
        "streams": loader_streams_config(),
        "rejects_path": str(workdir / "rejects.jsonl"),
        "ledger_url": f"sqlite:///{workdir / memory}",
        "request_timeout": 10,
    }))


def bookmark(state: dict[str, t.Any], stream: str) -> t.Any:
    return state["bookmarks"][stream]["replication_key_value"]


def test_postgres_pipe_full_then_incremental(
    billing_db: Database,
    fake: FakeChartMogul,
    ds: str,
    tap_postgres_bin: pathlib.Path,
    target_command: list[str],
    tmp_path: pathlib.Path,
) -> None:
    rejects = tmp_path / "rejects.jsonl"
    (tmp_path / "t.json").write_text(json.dumps(billing_db.tap_config()))
    write_target_config(tmp_path, fake, ds, "ledger.db")
    catalog = select_streams(discover(tap_postgres_bin, tmp_path / "t.json", tmp_path), SELECTED)
    (tmp_path / "c.json").write_text(json.dumps(catalog))

    # 1. Full first run: ChartMogul ends up holding exactly the database.
    first = run_pipe(tap_postgres_bin, target_command, tmp_path, "first")
    assert not rejects.exists(), f"rejected records:\n{rejects.read_text()}"  # created at the first reject
    assert_fake_matches_db(fake, ds, billing_db)
    state = first.final_state
    for stream in SELECTED:
        assert bookmark(state, stream), f"no bookmark for {stream} in {state}"

    # 2. One customer changes; an incremental run from the first run's STATE sends only that change.
    billing_db.execute(
        "UPDATE billing.customers SET city = 'Munich', seats = 15, segment = 'mid-market', "
        "tags = '{vip,eu,de}', updated_at = now() WHERE external_id = 'cus_001'"
    )
    with pytest.raises(AssertionError, match="cus_001"):  # the comparison sees the change not yet synced
        assert_fake_matches_db(fake, ds, billing_db)
    fake.clear_requests()
    second = run_pipe(tap_postgres_bin, target_command, tmp_path, "second", state=state)
    assert not rejects.exists(), f"rejected records:\n{rejects.read_text()}"  # created at the first reject

    assert_only_customer_written(fake, ds, "cus_001")
    assert_fake_matches_db(fake, ds, billing_db)
    held = fake.find_customers(ds, "cus_001")[0]
    assert held["city"] == "Munich"
    assert held["attributes"]["custom"] == {"seats": 15, "segment": "mid-market"}
    assert sorted(tag.casefold() for tag in held["attributes"]["tags"]) == ["de", "eu", "vip"]  # EU was there

    # The customers bookmark moved on (to the row's new updated_at, now(): only its order is known);
    # the others stayed where they were.
    assert bookmark(second.final_state, "billing-customers") > bookmark(state, "billing-customers")
    for stream in ("billing-plans", "billing-invoices_with_lines", "billing-refunds"):
        assert bookmark(second.final_state, stream) == bookmark(state, stream)


def test_postgres_pipe_with_the_sync_memory_lost_writes_only_what_is_new(
    billing_db: Database,
    fake: FakeChartMogul,
    ds: str,
    tap_postgres_bin: pathlib.Path,
    target_command: list[str],
    tmp_path: pathlib.Path,
) -> None:
    """A new working directory (no sync memory): new refunds land, nothing else is written or doubled."""
    rejects = tmp_path / "rejects.jsonl"
    (tmp_path / "t.json").write_text(json.dumps(billing_db.tap_config()))

    def config(memory: str) -> None:
        write_target_config(tmp_path, fake, ds, memory)

    catalog = select_streams(discover(tap_postgres_bin, tmp_path / "t.json", tmp_path), SELECTED)
    (tmp_path / "c.json").write_text(json.dumps(catalog))
    config("first.db")
    first = run_pipe(tap_postgres_bin, target_command, tmp_path, "first")
    before = fake.dump_state()

    # 1. The same database again, from scratch, with the memory gone: no write at all.
    config("lost.db")
    fake.clear_requests()
    run_pipe(tap_postgres_bin, target_command, tmp_path, "again")
    assert [r for r in fake.requests if r.method != "GET"] == []
    assert fake.dump_state() == before

    # 2. New refunds of old invoices, incremental from the first STATE, with yet another empty memory.
    billing_db.execute(
        "INSERT INTO billing.refunds VALUES "
        "('ref_101', 'inv_002', 'refund', 'successful', date_trunc('second', now()), 100, now()), "
        "('ref_102', 'inv_003', 'refund', 'failed', date_trunc('second', now()), 250, now())"
    )
    config("lost-again.db")
    fake.clear_requests()
    run_pipe(tap_postgres_bin, target_command, tmp_path, "refunds", state=first.final_state)

    assert not rejects.exists(), f"rejected records:\n{rejects.read_text()}"  # created at the first reject
    posts = [r for r in fake.requests if r.method != "GET"]
    assert sorted(r.body["external_id"] for r in posts) == ["ref_101", "ref_102"]
    assert all(r.path.endswith("/transactions") and r.status == 201 for r in posts)
    assert_fake_matches_db(fake, ds, billing_db)
