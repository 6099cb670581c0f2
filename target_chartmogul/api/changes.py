"""A write the lifecycle decided, named as a person reads it: the stream, the record's key and what changes.

The lifecycle (`sinks.lifecycle`) wraps the writes of each decision in `client.change(...)`. A real
run sends them as they are; a dry run (`api.dry_run`) answers them and shows the change:
`would update public-accounts acct-1: name: "Acme GmbH" → "Acme AG"`.
"""

from __future__ import annotations

import dataclasses
import typing as t

from target_chartmogul.values.encoding import dumps

CREATE, UPDATE, DELETE = "create", "update", "delete"


def key_text(key: t.Mapping[str, t.Any]) -> str:
    """A record's key as text: its one value (`acct-1`), or `name=value` pairs when it has several."""
    if len(key) == 1:
        return str(next(iter(key.values())))
    return ", ".join(f"{name}={value}" for name, value in key.items())


def shown(value: t.Any) -> str:
    """A value as JSON writes it (`"Acme AG"`, `3`, `null`, `["vip"]`)."""
    return dumps(value)


@dataclasses.dataclass
class Change:
    """One decision's writes: create, update (with each field that changes, when known) or delete."""

    stream: str
    key: str
    action: str
    fields: dict[str, tuple[t.Any, t.Any]] = dataclasses.field(default_factory=dict)  # field -> (held, wanted)
    named: list[str] = dataclasses.field(default_factory=list)  # changes known by name only (an invoice's lines)

    def described(self) -> str:
        """`update public-accounts acct-1: name: "Acme GmbH" → "Acme AG"`, `create public-accounts acct-2`."""
        line = f"{self.action} {self.stream} {self.key}"
        parts = [*(f"{name}: {shown(old)} → {shown(new)}" for name, (old, new) in self.fields.items()), *self.named]
        return f"{line}: {'; '.join(parts)}" if parts else line
