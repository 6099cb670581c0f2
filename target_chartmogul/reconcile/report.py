"""A reconcile run's outputs: the JSON-lines file, the summary table in the log, and the closing line.

`reconcile_path` gets one line per finding, `{"object", "key", "kind", "field", "source",
"chartmogul"}`, written afresh each run (empty when both sides agree), so a scheduler can read it
after the exit status (0: agree, 3: differ).
"""

from __future__ import annotations

import pathlib
import typing as t

from target_chartmogul.config.registry import RANKS
from target_chartmogul.reconcile.findings import KINDS, REVENUE, Finding, Findings
from target_chartmogul.values.encoding import dumps

if t.TYPE_CHECKING:
    from target_chartmogul.reconcile.revenue import Revenue

DEFAULT_NAME = "reconcile.jsonl"
PREFIX = "target-chartmogul"


def report_path(reconcile_path: str | None, rejects_path: str | pathlib.Path) -> pathlib.Path:
    """`reconcile_path`, else `reconcile.jsonl` in the folder of the rejects file."""
    if reconcile_path:
        return pathlib.Path(reconcile_path).expanduser()
    return pathlib.Path(rejects_path).expanduser().parent / DEFAULT_NAME


def page_path(path: pathlib.Path) -> pathlib.Path:
    """The HTML page beside the JSON-lines file: `reconcile.jsonl` -> `reconcile.html`."""
    return path.with_suffix(".html")


def ordered(findings: t.Iterable[Finding]) -> list[Finding]:
    """Objects in write order (plans, customers, …), revenue last; then by key, kind and field."""
    kinds = {kind: i for i, kind in enumerate(KINDS)}
    return sorted(findings, key=lambda f: (f.object == REVENUE, RANKS.get(f.object, len(RANKS)), f.key,
                                          kinds.get(f.kind, len(kinds)), f.field or ""))


def write_lines(path: pathlib.Path, findings: t.Sequence[Finding]) -> None:
    """One JSON line per finding (the file is replaced: it describes this run only)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(dumps(finding.as_json()) + "\n" for finding in findings)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)


COLUMNS = ("object", "source", "ChartMogul", "missing", "different", "fields", "extra", "refused")


def summary_rows(findings: Findings) -> list[tuple[str, ...]]:
    """Per object kind: rows in the source, objects in ChartMogul, and what was found (different: objects; fields:
    the field lines).
    """
    rows: list[tuple[str, ...]] = []
    for obj in sorted(findings.tallies, key=lambda name: (name == REVENUE, RANKS.get(name, len(RANKS)), name)):
        if obj == REVENUE:
            continue
        tally = findings.tallies[obj]
        rows.append((obj, str(tally.source), str(tally.chartmogul), str(tally.kinds["missing"]),
                     str(len(tally.different_objects)), str(tally.kinds["different"]), str(tally.kinds["extra"]),
                     str(tally.kinds["refused"])))
    return rows


def table(findings: Findings) -> str:
    """The summary as a fixed-width text table."""
    rows: list[tuple[str, ...]] = [COLUMNS, *summary_rows(findings)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                               for i, (cell, w) in enumerate(zip(row, widths, strict=True))).rstrip() for row in rows)


def revenue_line(revenue: Revenue) -> str:
    """How many months were compared and which differ."""
    months = revenue.months()
    differing = [month.key for month in months if month.differs]
    listed = f": {', '.join(differing)}" if differing else ""
    return (f"Revenue: {len(months)} month(s) compared ({revenue.invoices['source']} invoice(s) in the source, "
            f"{revenue.invoices['chartmogul']} in ChartMogul), {len(differing)} differ{listed}")


def closing_line(findings: Findings, path: pathlib.Path, page: pathlib.Path) -> str:
    """The last line of the run: agreement, or the count of each kind of difference and where to read them."""
    if not findings.items:
        return f"{PREFIX} reconcile: the source and ChartMogul agree (report: {path}, {page})"
    counts = {kind: sum(1 for f in findings.items if f.kind == kind and f.object != REVENUE) for kind in KINDS}
    months = sum(1 for f in findings.items if f.object == REVENUE)
    parts = [f"{n} {kind}" for kind, n in counts.items() if n] + ([f"{months} revenue month(s)"] if months else [])
    return f"{PREFIX} reconcile: {len(findings.items)} difference(s): {', '.join(parts)} (see {path}, {page})"
