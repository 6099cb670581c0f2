"""Changes to remembered objects waiting for the next flush, and the one rule of which change wins.

Four kinds of change reach a row between two flushes, in any order: a write (every column but the
status), a delete, an adoption (a uuid a listing of ChartMogul showed) and a status (voided,
written_off). Each is folded into the row's one `Pending` as it comes, so precedence is decided here
and nowhere else:

- a write or a delete replaces whatever came before it; a delete also drops a status set before it,
  and a row written again after its delete starts without a status;
- an adoption only fills a gap: a row the memory does not hold, or the uuid of a row that has none.
  It never changes a row written or deleted in this run, and the first adoption stands;
- a status applies to the row the flush leaves, unless a delete came after it (a row that exists
  nowhere stays without one).

`Pending.over` is that rule applied to the row as last flushed (what a lookup answers); `Changes`
is the same pending changes as the statements that make the table say it (objects.py runs them).
"""

from __future__ import annotations

import dataclasses
import typing as t

from target_chartmogul.memory.entries import Entry

Key = tuple[str, str, str]  # (data source, object, external id)
Written = tuple[str | None, str | None, str, str | None, tuple[str, ...] | None, str | None]  # Entry but its status


class _Keep:
    """The status is not changed by this run."""

    def __repr__(self) -> str:
        return "KEEP"


KEEP = _Keep()


@dataclasses.dataclass
class Pending:
    """What this run changed of one row and has not flushed, precedence already resolved."""

    row: Written | None = None  # written in this run
    gone: bool = False  # the row as last flushed no longer counts (deleted in this run, maybe written again since)
    adopted: str | None = None  # a uuid a listing showed, to fill a gap
    status: str | _Keep | None = KEEP

    def write(self, row: Written) -> None:
        """A confirmed write: it wins over everything before it (a row written after its delete has no status)."""
        if self.gone and self.status is KEEP:
            self.status = None
        self.row, self.adopted = row, None

    def delete(self) -> None:
        """The object is gone from ChartMogul: whatever came before is dropped."""
        self.row, self.adopted, self.gone, self.status = None, None, True, KEEP

    def adopt(self, uuid: str) -> None:
        """A uuid seen in a listing: kept only where nothing of this run says more (the first one stands)."""
        if self.row is None and not self.gone and self.adopted is None:
            self.adopted = uuid

    def set_status(self, status: str | None) -> None:
        """The status this target applied to the invoice (None: none)."""
        self.status = status

    def over(self, stored: Entry | None) -> Entry | None:
        """The row as this run sees it: the row as last flushed (`stored`) with these changes applied."""
        base = None if self.gone else stored
        entry = base
        if self.row is not None:
            entry = Entry(*self.row, status=base.status if base is not None else None)
        elif self.adopted is not None and base is None:
            entry = Entry(self.adopted, None, None)
        elif self.adopted is not None and base is not None and base.uuid is None:
            entry = dataclasses.replace(base, uuid=self.adopted)
        if entry is not None and not isinstance(self.status, _Keep):
            entry = dataclasses.replace(entry, status=self.status)
        return entry


@dataclasses.dataclass
class Changes:
    """One flush of pending changes, as the statements to run in this order: deletes, writes, adoptions (which fill
    gaps only), statuses (after the rows they belong to).
    """

    deleted: list[Key] = dataclasses.field(default_factory=list)
    written: dict[Key, Written] = dataclasses.field(default_factory=dict)
    adopted: dict[Key, str] = dataclasses.field(default_factory=dict)
    statuses: dict[Key, str | None] = dataclasses.field(default_factory=dict)

    @classmethod
    def of(cls, pending: t.Mapping[Key, Pending]) -> Changes:
        """The statements that make the table hold what `Pending.over` answers for each key."""
        changes = cls()
        for key, change in pending.items():
            if change.gone:
                changes.deleted.append(key)
            if change.row is not None:
                changes.written[key] = change.row
            if change.adopted is not None:
                changes.adopted[key] = change.adopted
            if not isinstance(change.status, _Keep):
                changes.statuses[key] = change.status
        return changes

    def __bool__(self) -> bool:
        return bool(self.deleted or self.written or self.adopted or self.statuses)
