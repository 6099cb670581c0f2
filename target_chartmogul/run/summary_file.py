"""The summary file (`summary_path`): how the run ended, as JSON a scheduler can read.

Cron, Airflow, Dagster or a Meltano job see only the log and the exit code; a run with
rejects exits 0. This file says it plainly: `status` is `succeeded`, `succeeded_with_rejects`,
`failed` or `stopped` (a signal ended the run), with the exit code, the figures of the
log's last lines and per stream the counts of the summary table. It is written as
`running` when the run starts, so a run killed outright (SIGKILL, out of memory) never
leaves the previous run's `succeeded` behind. Each write replaces the whole file at once.
It holds no setting but the paths and the data source: never the API key, which is also
cut out of the reason a failure gives.
"""

from __future__ import annotations

import datetime as dt
import os
import pathlib
import tempfile
import typing as t

from target_chartmogul.run.summary import OUTCOMES
from target_chartmogul.values.encoding import dumps

STATUSES = ("running", "succeeded", "succeeded_with_rejects", "failed", "stopped",
            "succeeded_with_differences")  # the last: a reconcile run (`reconcile: true`) found differences (exit 3)
HIDDEN = "***"
MIN_SECRET = 6


def now() -> str:
    """The time as the file states it: ISO-8601 in UTC, to the second."""
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def stream_counts(counts: t.Mapping[str, t.Mapping[str, int]], objects: t.Mapping[str, str]) -> dict[str, t.Any]:
    """Per stream (sorted, as the log's table): its object and every summary column, zeros included."""
    return {stream: {"object": objects.get(stream), **{c: row.get(c, 0) for c in ("received", *OUTCOMES)}}
            for stream, row in sorted(counts.items())}


def totals(counts: t.Mapping[str, t.Mapping[str, int]]) -> dict[str, int]:
    """The table's totals row: every column summed over the streams."""
    return {c: sum(row.get(c, 0) for row in counts.values()) for c in ("received", *OUTCOMES)}


def hidden(text: str | None, secrets: t.Iterable[str]) -> str | None:
    """`text` with each secret (of a real key's length: a one-letter test key would garble it) replaced."""
    for secret in secrets:
        if text and secret and len(secret) >= MIN_SECRET:
            text = text.replace(secret, HIDDEN)
    return text


def write(path: pathlib.Path, document: t.Mapping[str, t.Any]) -> None:
    """Replace the file with `document` at once: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(dumps(document, indent=2) + "\n")
        os.replace(temporary, path)
    except BaseException:
        pathlib.Path(temporary).unlink(missing_ok=True)
        raise
