"""The body of the request a handler is answering, as sent: for routes that need more than a JSON object.

Handlers receive the body as a JSON object (``{}`` for anything else). The bulk JSON import
must also tell a body that is not an object from an empty one, and count its bytes (5 MB
at most), so the server puts the body as sent here for the length of each handler call.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

_current = threading.local()


@dataclass(frozen=True)
class Sent:
    """The parsed JSON body of any type (None when empty) and the request body's size in bytes."""

    body: Any
    size: int


@contextmanager
def sending(body: Any, size: int) -> Iterator[None]:
    """Make ``sent()`` answer this body in this thread while the block runs."""
    previous = getattr(_current, "sent", None)
    _current.sent = Sent(body, size)
    try:
        yield
    finally:
        _current.sent = previous


def sent() -> Sent:
    """The body of the request this thread is handling (empty outside a handler)."""
    current = getattr(_current, "sent", None)
    return current if isinstance(current, Sent) else Sent(None, 0)
