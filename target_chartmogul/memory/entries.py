"""What the sync memory holds for one object (`Entry`), and the hash it keeps of a payload.

A row whose `payload_hash` is None proves nothing about the content ChartMogul holds: the object
was found in a listing (adopted), written by an older release (see migrations.unprove_hashes), or
left as ChartMogul held it. The sinks compare such an object with ChartMogul's copy before writing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import typing as t

from target_chartmogul.values.encoding import dumps


class Digest(str):
    """A payload's hash taken already (before the payload changed), which `payload_hash` passes through."""


def payload_hash(payload: t.Any) -> str:
    """Stable hash of a mapped payload (key order does not matter)."""
    if isinstance(payload, Digest):
        return payload
    return hashlib.sha256(dumps(payload, sort_keys=True).encode("utf-8")).hexdigest()


@dataclasses.dataclass(frozen=True)
class Entry:
    """What the memory holds for one object."""

    uuid: str | None
    payload_hash: str | None
    stream: str | None
    record_hash: str | None = None  # hash of the incoming record: lets an unchanged one skip mapping
    tags: tuple[str, ...] | None = None  # customer tags the loader set from the record; None = unknown
    parent: str | None = None  # a line item's invoice (external id)
    status: str | None = None  # an invoice's status last applied (voided, written_off); None: none, or unknown
