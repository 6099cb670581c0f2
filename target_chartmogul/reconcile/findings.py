"""What a reconcile run finds: one line of `reconcile_path` per difference, and the counts of the log's table.

A finding says which object (`customers`, …, or `revenue`), its key, what kind of difference
it is and, for a field, both values: the source's as a write would send it, ChartMogul's as it
answered. The kinds:

- `missing`: a source row ChartMogul does not hold;
- `different`: one field that differs (one finding per field);
- `extra`: an object ChartMogul holds that no row of a complete full-table version of its stream has,
  or that the source deleted (`_sdc_deleted_at`);
- `refused`: a source row the writing path would refuse (the field and the reason), so never compared.
"""

from __future__ import annotations

import collections
import dataclasses
import typing as t

KINDS = ("missing", "different", "extra", "refused")
REVENUE = "revenue"


@dataclasses.dataclass(frozen=True)
class Finding:
    """One difference between the source and ChartMogul."""

    object: str
    key: str
    kind: str
    field: str | None = None
    source: t.Any = None
    chartmogul: t.Any = None

    def as_json(self) -> dict[str, t.Any]:
        """The line of `reconcile_path`, keys in the documented order."""
        return {
            "object": self.object,
            "key": self.key,
            "kind": self.kind,
            "field": self.field,
            "source": self.source,
            "chartmogul": self.chartmogul,
        }


def key_text(data_source_uuid: str, key: str, default_data_source_uuid: str | None) -> str:
    """A finding's key: the external id (or `email:`/`uuid:` key), prefixed by its data source when that is not the
    configured one (external ids are unique only within a data source).
    """
    return key if data_source_uuid == default_data_source_uuid else f"{data_source_uuid}/{key}"


@dataclasses.dataclass
class Tally:
    """Counts of one object kind: how many rows and objects were compared, and what was found."""

    source: int = 0  # rows of the input (refused ones included)
    chartmogul: int = 0  # objects of the data sources ChartMogul listed
    kinds: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    different_objects: set[str] = dataclasses.field(default_factory=set)

    def add(self, finding: Finding) -> None:
        """Count one finding (a different object counts once, however many of its fields differ)."""
        self.kinds[finding.kind] += 1
        if finding.kind == "different":
            self.different_objects.add(finding.key)


class Findings:
    """Every finding of the run, in the order they were found, and the tally of each object kind."""

    def __init__(self) -> None:
        self.items: list[Finding] = []
        self.tallies: dict[str, Tally] = {}

    def tally(self, obj: str) -> Tally:
        """The counts of one object kind (created on first use)."""
        return self.tallies.setdefault(obj, Tally())

    def add(self, finding: Finding) -> None:
        """Keep one finding."""
        self.items.append(finding)
        self.tally(finding.object).add(finding)

    def extend(self, findings: t.Iterable[Finding]) -> None:
        """Keep several findings."""
        for finding in findings:
            self.add(finding)

    def __len__(self) -> int:
        return len(self.items)
