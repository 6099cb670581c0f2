"""The rejects file: one JSON line per refused record, with the reason.

Users read it to fix their source data; a later run retries from it. It holds the
record and the reason only: never a header or the API key. A dry run writes its would-be
rejects to a file of its own (`dry_run_path`), started afresh each dry run, so the real
file only ever lists records a real run refused.
"""

from __future__ import annotations

import datetime as dt
import pathlib
import threading
import typing as t

from target_chartmogul.values.encoding import dumps


def dry_run_path(path: str | pathlib.Path) -> pathlib.Path:
    """Where a dry run writes its would-be rejects: `rejects.jsonl` -> `rejects.dry-run.jsonl`, same folder."""
    path = pathlib.Path(path)
    return path.with_name(f"{path.stem}.dry-run{path.suffix}")


class RejectsFile:
    """Thread-safe appender; the file is created on the first reject only.

    `fresh`: remove what an earlier run left (a dry run's report describes that dry run only).
    """

    def __init__(self, path: str | pathlib.Path, *, fresh: bool = False) -> None:
        self.path = pathlib.Path(path)
        self._lock = threading.Lock()
        self.count = 0
        if fresh:
            self.path.unlink(missing_ok=True)

    def write(
        self,
        *,
        stream: str,
        key: dict[str, t.Any],
        record: dict[str, t.Any],
        reason: str,
        field: str | None = None,
        status: int | None = None,
    ) -> None:
        """Append one reject line and flush it, so a crash later cannot lose it."""
        line = dumps(
            {
                "time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "stream": stream,
                "key": key,
                "field": field,
                "reason": reason,
                "status": status,
                "record": record,
            },
        )
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(line + "\n")
            self.count += 1
