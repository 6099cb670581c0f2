"""How ChartMogul's answers name an object: the external ids it has in one data source.

Read by the listings of the sync memory (`memory.holdings`) and by the dry-run client,
which finds a customer among those it answered for the same way.
"""

from __future__ import annotations

import typing as t

Obj = dict[str, t.Any]


def external_ids_in(obj: Obj, data_source_uuid: str) -> list[str]:
    """The external ids an object has in one data source.

    A merged customer carries parallel `external_ids` and `data_source_uuids` lists
    (recorded); objects without them (plans, invoices) have one `external_id`, and an
    invoice's data source is what the listing was filtered by.
    """
    ids = obj.get("external_ids")
    sources = obj.get("data_source_uuids")
    if isinstance(ids, list) and isinstance(sources, list) and len(ids) == len(sources):
        return [str(ext) for ext, ds in zip(ids, sources, strict=True) if ds == data_source_uuid and ext]
    source = obj.get("data_source_uuid")
    if isinstance(sources, list) and data_source_uuid not in sources:
        return []
    if source is not None and not isinstance(sources, list) and source != data_source_uuid:
        return []
    if isinstance(ids, list):
        return [str(ext) for ext in ids if ext]
    return [str(obj["external_id"])] if obj.get("external_id") else []
