"""The run's default data source: `data_source_uuid` as given, or the one `data_source_name` names.

A new user has a name in mind, not a `ds_…` uuid copied from elsewhere. With
`data_source_name` the run finds that data source (`GET /data_sources?name=`, one
unpaginated read) or, when the account has none, creates it once and says so. Two runs
racing to create it both end with the same one: ChartMogul refuses the second name
("Has already been taken."), and the loser finds the winner's by name. Given both settings,
they must name the same data source, or the run stops before any input is read.

`RunContext.resolve_data_source` calls `resolve` once, early, and every reader of the
setting (sinks, the bulk lane, the account check) sees the resolved uuid as
`data_source_uuid`. A record's own `data_source_uuid` column still wins for that record.
"""

from __future__ import annotations

import dataclasses
import logging
import typing as t

from target_chartmogul.api.errors import APIError, is_already_exists
from target_chartmogul.errors import FatalError

if t.TYPE_CHECKING:
    from target_chartmogul.api.client import ChartMogulClient


@dataclasses.dataclass(frozen=True)
class DataSource:
    """Where records that name no data source go: its uuid (None: every record must name one)."""

    uuid: str | None
    name: str | None = None
    created: bool = False


def _named(client: ChartMogulClient, name: str) -> dict[str, t.Any] | None:
    """The account's data source with exactly this name, or None (the listing is not paginated)."""
    body = client.get("data_sources", {"name": name}).body
    sources = body.get("data_sources") if isinstance(body, dict) else None
    matches = [s for s in sources or [] if isinstance(s, dict) and s.get("name") == name and s.get("uuid")]
    if len(matches) > 1:  # names are unique per account: a second one would make the choice a guess
        uuids = ", ".join(str(s["uuid"]) for s in matches)
        msg = f"data_source_name {name!r} names {len(matches)} data sources ({uuids}); set data_source_uuid instead"
        raise FatalError(msg)
    return matches[0] if matches else None


def _name_of(client: ChartMogulClient, uuid: str) -> str | None:
    """The name of the data source `uuid`, or None when the account has no such data source."""
    try:
        body = client.get(f"data_sources/{uuid}").body
    except APIError as exc:
        if exc.status == 404:
            return None
        raise
    return str(body.get("name")) if isinstance(body, dict) else None


def _disagree(client: ChartMogulClient, uuid: str, name: str, found: dict[str, t.Any] | None) -> t.NoReturn:
    """Stop: the two settings name different data sources (each is named in the message)."""
    held = _name_of(client, uuid)
    what = f"is the data source {held!r}" if held is not None else "is not a data source of this ChartMogul account"
    named = f"the data source {name!r} is {found['uuid']}" if found else f"no data source is named {name!r}"
    msg = (f"data_source_uuid {uuid!r} and data_source_name {name!r} disagree: {uuid} {what}, and {named}; "
           "set one of them, or both naming the same data source")
    raise FatalError(msg)


def _create(client: ChartMogulClient, name: str, logger: logging.Logger, *, dry_run: bool) -> DataSource:
    """Create the data source `name`; when another run created it first, find that one."""
    try:
        body = client.post("data_sources", {"name": name}).body
    except APIError as exc:
        if not is_already_exists(exc):
            msg = f"ChartMogul refused to create the data source {name!r} (data_source_name): {exc.message}"
            raise FatalError(msg) from None
        found = _named(client, name)  # a run racing this one created it between the listing and the create
        if found is None:
            msg = f"ChartMogul says the data source name {name!r} is taken, but lists no data source of that name"
            raise FatalError(msg) from None
        logger.info("Data source %r was created by another run meanwhile: %s", name, found["uuid"])
        return DataSource(str(found["uuid"]), name)
    uuid = str(body["uuid"])
    if dry_run:
        logger.info("DRY RUN: no data source is named %r: a real run would create it; %s stands for it here, "
                    "and it holds nothing yet", name, uuid)
    else:
        logger.info("Created the data source %r (%s): the account had no data source of that name", name, uuid)
    return DataSource(uuid, name, created=True)


def resolve(
    client: ChartMogulClient,
    uuid: str | None,
    name: str | None,
    logger: logging.Logger,
    *,
    dry_run: bool,
    create: bool = True,
) -> DataSource:
    """The default data source of the run; a FatalError when the settings disagree or ChartMogul refuses.

    `create` False (a reconcile run, which writes nothing): a name no data source has stops the run instead.
    """
    if not name:
        return DataSource(uuid or None)
    found = _named(client, name)
    if uuid and (found is None or found["uuid"] != uuid):
        _disagree(client, uuid, name, found)
    if found is not None:
        logger.info("Data source %r: %s", name, found["uuid"])
        return DataSource(str(found["uuid"]), name)
    if not create:
        msg = (f"no data source is named {name!r} (data_source_name), and a reconcile run creates nothing: "
               "ChartMogul holds none of the input")
        raise FatalError(msg)
    return _create(client, name, logger, dry_run=dry_run)
