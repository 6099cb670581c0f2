"""The client's helpers that read the table of ChartMogul's resources (`config.registry.RESOURCES`).

What one resource's endpoints answer is written once, in its table line: where one object is
read, listed and deleted, and how ChartMogul says "no such object" (404) or "that external id
is used" (its duplicate message). These helpers are the only readers of a 404 for an object
and of a duplicate refusal; the lifecycle, the invoice machinery, the references and the dry
run ask them.
"""

from __future__ import annotations

import typing as t

from target_chartmogul.api.answers import external_ids_in
from target_chartmogul.api.errors import APIError
from target_chartmogul.config.registry import RESOURCES, Resource

if t.TYPE_CHECKING:
    from target_chartmogul.api.client import ChartMogulClient

Obj = dict[str, t.Any]


def resource(kind: str) -> Resource:
    """The table line of one kind ("customer")."""
    return RESOURCES[kind]


def is_missing(exc: APIError) -> bool:
    """Whether a refusal says the object (or what its path names) does not exist."""
    return exc.status == 404


def is_duplicate(exc: APIError, kind: str) -> bool:
    """Whether a refusal is ChartMogul's "this external id is used" for this kind (its table message)."""
    message = RESOURCES[kind].duplicate
    return message is not None and exc.status in (400, 422) and exc.mentions(message)


def get_or_none(client: ChartMogulClient, kind: str, object_id: t.Any) -> Obj | None:
    """One object as ChartMogul holds it, or None when there is none (404)."""
    try:
        body = client.get(RESOURCES[kind].one(object_id)).body
    except APIError as exc:
        if is_missing(exc):
            return None
        raise
    return body if isinstance(body, dict) else {}


def delete_if_present(client: ChartMogulClient, kind: str, object_id: t.Any, *,
                      params: dict[str, t.Any] | None = None, body: t.Any = None) -> bool:
    """DELETE one object (by id, or as `params`/`body` name it); False when it was gone already (404: a retried
    delete whose first answer was lost, or one deleted by hand).
    """
    found = RESOURCES[kind]
    path = found.one(object_id) if object_id is not None else str(found.path)
    try:
        client.request("DELETE", path, params=params, body=body)
    except APIError as exc:
        if is_missing(exc):
            return False
        raise
    return True


class Pages(t.Protocol):
    """What a listing needs of a client: its cursor-paginated reads (the run's client, or a read-only view of it)."""

    def paginate(self, path: str, root_key: str, params: dict[str, t.Any] | None = None) -> t.Iterator[Obj]:
        """Every entry of a list endpoint, page by page."""


def listing(client: Pages, kind: str, params: dict[str, t.Any]) -> t.Iterator[Obj]:
    """Every object of a list query (`data_source_uuid`, `external_id`, `customer_uuid`, …), page by page."""
    found = RESOURCES[kind]
    if found.list_path is None or found.root is None:
        msg = f"ChartMogul has no listing of {kind}s"
        raise ValueError(msg)
    return client.paginate(found.list_path, found.root, params)


def search(client: ChartMogulClient, kind: str, params: dict[str, t.Any]) -> list[Obj]:
    """What the kind's search endpoint finds (customers by email); none found is a 404 there."""
    found = RESOURCES[kind]
    try:
        return list(client.paginate(str(found.search_path), str(found.root), params))
    except APIError as exc:
        if is_missing(exc):
            return []
        raise


def find(client: ChartMogulClient, kind: str, data_source_uuid: str, external_id: str) -> Obj | None:
    """The object with this external id in the data source, asked of ChartMogul now (a merged customer has several;
    invoices carry no data source: the filter is trusted).
    """
    params = {"data_source_uuid": data_source_uuid, "external_id": external_id}
    return next((obj for obj in listing(client, kind, params) if external_id in external_ids_in(obj, data_source_uuid)),
                None)
