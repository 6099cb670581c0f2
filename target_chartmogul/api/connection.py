"""Telling an API that cannot be reached from one that is slow or failing.

A refused connection, a host name that does not resolve or a network with no route to the
host, before ChartMogul has answered anything, means a wrong `api_url` or no network:
retrying it for a minute and a half only delays the one line that says so. Timeouts,
dropped connections and 5xx answers keep the full retry policy (see client.py).
"""

from __future__ import annotations

import errno
import socket
import typing as t
from urllib.parse import urlsplit

NO_ROUTE = frozenset({errno.ENETUNREACH, errno.EHOSTUNREACH})


def _causes(exc: BaseException) -> t.Iterator[BaseException]:
    """The exception and everything it wraps: causes, contexts, urllib3's `reason`, exceptions in `args`."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        linked = [current.__cause__, current.__context__, getattr(current, "reason", None), *current.args]
        todo.extend(item for item in linked if isinstance(item, BaseException))


def unreachable(exc: BaseException) -> str | None:
    """Why the host cannot be reached at all (DNS, refused, no route), or None for any other failure."""
    for cause in _causes(exc):
        if isinstance(cause, socket.gaierror):
            return "its host name does not resolve (DNS lookup failed)"
        if isinstance(cause, ConnectionRefusedError):
            return "the connection was refused"
        if isinstance(cause, OSError) and cause.errno in NO_ROUTE:
            return "there is no route to the host"
    return None


def public_url(url: str) -> str:
    """The URL without a user or password (never shown) and without a query."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def unreachable_message(url: str, reason: str) -> str:
    """One line naming the host, the port and the setting to check."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"cannot reach ChartMogul at {parts.hostname}:{port}: {reason}; check api_url ({public_url(url)}) and the network"
